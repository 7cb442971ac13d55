"""A local PostgreSQL cluster that yujing runs itself, for the case service, its tests and CI.

The server programs come from the machine's Debian packages (``apt-get install postgresql``,
which ``deploy/local/setup.sh`` does); the package's own cluster is not used. yujing initialises
its own cluster under ``home/"postgres"/data`` and runs it with ``pg_ctl`` on loopback only
(TCP on ``127.0.0.1:<port>`` and a Unix socket in ``home/"postgres"/run``), trusting every local
connection. On the first start it creates the login role ``yujing`` (allowed to create
databases, not a superuser) owning the database ``yujing``; the cluster's superuser is
``postgres``.

PostgreSQL refuses to run as root. Under root, ``initdb`` and ``pg_ctl`` run as the ``postgres``
system user the Debian package creates (through ``runuser``), the cluster's directory belongs to
that user, and the directories above it get search permission for it where they lack it.

The programs, the server user and the server's files are handled in
:mod:`yujing.services.postgres_dist`; lock, pid checks, readiness wait and the commands' output
are those of every local service (:mod:`yujing.services.lifecycle`).

:class:`LocalPostgres` does the work; the ``yujing db`` command group (``start``,
``stop``, ``status``, ``url``, ``psql``, ``logs``) is :mod:`yujing.cli.db`. Importing this
module has no side effects.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from yujing.services.lifecycle import (
    Readiness,
    ServiceStatus,
    check_ports_free,
    file_size,
    locked,
    pid_alive,
    process_args,
    process_cwd,
    read_from,
    send_signal,
    wait_exit,
    wait_until_ready,
)
from yujing.services.postgres_dist import (
    SERVER_PROGRAMS,
    DatabaseError,
    ensure_role_and_database,
    executable,
    find_server_bin_dir,
    first_line,
    last_server_error,
    libpq_url,
    pg_ctl_command,
    pg_ctl_failure,
    postgres_responds,
    prepare_server_dirs,
    read_postmaster_pid,
    redact_password,
    render_config,
    run_initdb,
    run_server_program,
    sqlalchemy_url,
    write_server_file,
)

if TYPE_CHECKING:
    from yujing.settings import Settings

DEBIAN_ROOT = Path("/usr/lib/postgresql")  # <version>/bin/{initdb,pg_ctl,postgres,psql}
SOCKET_PATH_MAX = 107  # bytes; sockaddr_un.sun_path is 108 with its terminating NUL

HBA_CONF = """\
# Written by yujing (yujing/services/database.py): trust local connections, nothing else.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
host    all       all   ::1/128       trust
"""


@dataclass(frozen=True, kw_only=True)
class DatabaseStatus(ServiceStatus):
    """What :meth:`LocalPostgres.status` and :meth:`LocalPostgres.start` observed; ``reachable``:
    something answers the PostgreSQL protocol at ``address``."""

    url: str
    data_dir: Path
    version: str | None  # major version of the data directory; None before the first start
    initialized: bool = False  # this start created the cluster (initdb)


@dataclass
class LocalPostgres:
    """One PostgreSQL cluster whose files all live under ``home/"postgres"``."""

    home: Path
    host: str = "127.0.0.1"
    port: int = 5532
    bin_dir: Path | None = None  # the server programs; searched for on the machine when None

    def __post_init__(self) -> None:
        # Absolute paths: they go into the server's config and the pg_ctl command line.
        self.home = Path(self.home).expanduser().resolve()
        if self.bin_dir is not None:
            self.bin_dir = Path(self.bin_dir).expanduser().resolve()

    # -- paths -------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``yujing`` database as the ``yujing`` role."""
        return sqlalchemy_url(self.host, self.port)

    @property
    def pg_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def data_dir(self) -> Path:
        return self.pg_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.pg_dir / "run"

    @property
    def logs_dir(self) -> Path:
        return self.pg_dir / "logs"

    @property
    def log_path(self) -> Path:
        return self.logs_dir / "postgres.log"

    @property
    def pid_file(self) -> Path:
        """Written by the server itself: pid, data dir, start time, port, socket dir, state."""
        return self.data_dir / "postmaster.pid"

    @property
    def config_path(self) -> Path:
        """Where the cluster listens; included by its ``postgresql.conf``, rendered every start."""
        return self.data_dir / "yujing.conf"

    @property
    def socket_path(self) -> Path | None:
        """The server's Unix socket, or None when that path would be too long for a socket."""
        path = self.socket_dir / f".s.PGSQL.{self.port}"
        return path if len(os.fsencode(path)) <= SOCKET_PATH_MAX else None

    def data_version(self) -> str | None:
        """The PostgreSQL major version that created the data directory, if it exists."""
        try:
            return (self.data_dir / "PG_VERSION").read_text().strip() or None
        except OSError:
            return None

    def server_bin_dir(self) -> Path:
        """The directory with initdb and pg_ctl: the given one, or the machine's newest
        PostgreSQL (the data directory's own version once the cluster exists)."""
        if self.bin_dir is not None:
            missing = [p for p in SERVER_PROGRAMS if not executable(self.bin_dir / p)]
            if missing:
                raise DatabaseError(f"{', '.join(missing)} not found in {self.bin_dir}")
            return self.bin_dir
        return find_server_bin_dir(self.data_version(), self.data_dir, root=DEBIAN_ROOT)

    # -- start -------------------------------------------------------------------

    def start(self, timeout: float = 60) -> DatabaseStatus:
        """Start the cluster detached and wait until it accepts connections.

        Idempotent: a server already running from this home is waited for and returned,
        never started twice. The cluster is created on the first start; the ``yujing`` role
        and database are created whenever they are missing. The server survives the calling
        process (pg_ctl gives it its own session).
        """
        began = time.monotonic()
        deadline = began + timeout
        try:
            prepare_server_dirs(self.pg_dir, self.data_dir, (self.logs_dir, self.socket_dir))
            with locked(self.pg_dir / ".lock"):
                pid = self._running_pid()
                if pid is not None:
                    self._check_same_port(pid)
                    self._wait_ready(pid, deadline, timeout)
                    self._ensure_role_and_database(deadline)
                    return self._status(pid, began, already_running=True, initialized=False)
                bin_dir = self.server_bin_dir()
                self._check_port_free()
                initialized = self._init_once(bin_dir)
                self._write_config()
                pid = self._pg_ctl_start(bin_dir, deadline)
                try:
                    self._ensure_role_and_database(deadline)
                except DatabaseError:
                    # A server that is not usable is not left behind.
                    self._pg_ctl_stop(pid, "immediate", 10)
                    raise
                return self._status(pid, began, already_running=False, initialized=initialized)
        except OSError as exc:
            raise DatabaseError(f"cannot start PostgreSQL in {self.pg_dir}: {exc}") from exc

    def _status(
        self, pid: int, began: float, *, already_running: bool, initialized: bool
    ) -> DatabaseStatus:
        return DatabaseStatus(
            running=True,
            reachable=True,
            pid=pid,
            address=self.address,
            url=self.url,
            data_dir=self.data_dir,
            log_path=self.log_path,
            version=self.data_version(),
            elapsed=time.monotonic() - began,
            already_running=already_running,
            initialized=initialized,
        )

    def _check_same_port(self, pid: int) -> None:
        info = read_postmaster_pid(self.pid_file)
        if info is not None and info.port is not None and info.port != self.port:
            raise DatabaseError(
                f"PostgreSQL from {self.pg_dir} already runs (pid {pid}) on port {info.port}, "
                f"not {self.port}: stop it first (yujing db stop) to move it"
            )

    def _check_port_free(self) -> None:
        ports = ((self.port, "YUJING_POSTGRES_PORT"),)
        check_ports_free(self.host, ports, "a PostgreSQL", DatabaseError)

    def _init_once(self, bin_dir: Path) -> bool:
        """Create the cluster unless it exists; return whether it was created now."""
        if self.data_version() is not None:
            return False
        run_initdb(bin_dir, self.data_dir, HBA_CONF, self.config_path.name, self.render_config())
        return True

    def render_config(self) -> str:
        socket_path = self.socket_path
        return render_config(
            host=self.host,
            port=self.port,
            socket_dir=self.socket_dir if socket_path is not None else None,
        )

    def _write_config(self) -> None:
        # Rendered on every start so a changed port takes effect.
        write_server_file(self.config_path, self.render_config())

    def _pg_ctl_start(self, bin_dir: Path, deadline: float) -> int:
        offset = file_size(self.log_path)
        wait = max(1, math.ceil(deadline - time.monotonic()))
        cmd = pg_ctl_command(bin_dir, "start", self.data_dir, wait, "-l", str(self.log_path))
        try:
            done = run_server_program(cmd, self.pg_dir, timeout=wait + 30)
            failed = done.returncode != 0
            output = done.stdout + "\n" + done.stderr
        except subprocess.TimeoutExpired:
            failed, output = True, "pg_ctl did not return"
        info = read_postmaster_pid(self.pid_file)
        if not failed and info is not None:
            return info.pid
        if info is not None and pid_alive(info.pid):
            # Started but never became ready in time: not left behind half-alive.
            self._pg_ctl_stop(info.pid, "immediate", 10)
        reason = (
            last_server_error(read_from(self.log_path, offset))
            or pg_ctl_failure(output)
            or "no server process after pg_ctl start"
        )
        raise DatabaseError(
            f"PostgreSQL did not start on {self.address}: {reason}; see {self.log_path}"
        )

    def _wait_ready(self, pid: int, deadline: float, timeout: float) -> None:
        """Wait for a server that is already running (maybe still starting) to be ready."""
        readiness = wait_until_ready(self._accepts_connections, lambda: pid_alive(pid), deadline)
        if readiness is Readiness.EXITED:
            raise DatabaseError(f"PostgreSQL (pid {pid}) exited while starting; see {self.log_path}")
        if readiness is Readiness.TIMED_OUT:
            raise DatabaseError(
                f"PostgreSQL (pid {pid}) did not accept connections on {self.address} "
                f"within {timeout:g} s; see {self.log_path}"
            )

    def _accepts_connections(self) -> bool:
        """The server says it is ready (postmaster.pid) and answers on its port."""
        info = read_postmaster_pid(self.pid_file)
        return (
            info is not None
            and info.state in ("ready", "")
            and postgres_responds(self.host, self.port)
        )

    def _ensure_role_and_database(self, deadline: float) -> None:
        """Create the ``yujing`` role and database if missing (idempotent)."""
        connect_timeout = max(2, math.ceil(deadline - time.monotonic()))
        ensure_role_and_database(self.host, self.port, connect_timeout)

    # -- stop --------------------------------------------------------------------

    def stop(self, timeout: float = 30) -> bool:
        """Stop the server (``pg_ctl stop -m fast``; ``-m immediate`` after ``timeout`` s).

        Returns whether a server was running; stopping a stopped server is not an error.
        The data stays for the next start.
        """
        if not self.pg_dir.is_dir():
            return False
        try:
            with locked(self.pg_dir / ".lock"):
                pid = self._running_pid()
                if pid is None:
                    return False
                self._pg_ctl_stop(pid, "fast", timeout)
                if pid_alive(pid):
                    self._pg_ctl_stop(pid, "immediate", 10)
                if not wait_exit(pid, 10):
                    raise DatabaseError(f"PostgreSQL (pid {pid}) did not stop; see {self.log_path}")
                return True
        except OSError as exc:
            raise DatabaseError(f"cannot stop PostgreSQL in {self.pg_dir}: {exc}") from exc

    def _pg_ctl_stop(self, pid: int, mode: str, timeout: float) -> None:
        try:
            bin_dir = self.server_bin_dir()
        except DatabaseError:
            # The programs are gone (package removed): the signals pg_ctl would send.
            send_signal(pid, signal.SIGINT if mode == "fast" else signal.SIGQUIT)
            wait_exit(pid, timeout)
            return
        wait = max(1, math.ceil(timeout))
        cmd = pg_ctl_command(bin_dir, "stop", self.data_dir, wait, "-m", mode)
        with contextlib.suppress(subprocess.TimeoutExpired):
            run_server_program(cmd, self.pg_dir, timeout=wait + 30)

    # -- process bookkeeping -----------------------------------------------------

    def _running_pid(self) -> int | None:
        """The pid of this home's server if it is alive.

        A stale ``postmaster.pid`` is left alone: the server removes it on its next start.
        """
        info = read_postmaster_pid(self.pid_file)
        if info is None or not pid_alive(info.pid) or not self._is_ours(info.pid):
            return None
        return info.pid

    def _is_ours(self, pid: int) -> bool:
        """Guard against a recycled pid: the process must run in (or name) our data dir."""
        cwd = process_cwd(pid)
        if cwd == self.data_dir:
            return True
        args = process_args(pid)
        if cwd is None or args is None:
            return not Path("/proc/self").exists()  # no /proc (not Linux): trust the pid file
        return os.fsencode(self.data_dir) in args

    # -- status ------------------------------------------------------------------

    def status(self) -> DatabaseStatus:
        """Is it running, where, which version, where its data and log are."""
        pid = self._running_pid()
        return DatabaseStatus(
            running=pid is not None,
            reachable=postgres_responds(self.host, self.port),
            pid=pid,
            address=self.address,
            url=self.url,
            data_dir=self.data_dir,
            log_path=self.log_path,
            version=self.data_version(),
        )


# -- building from settings -------------------------------------------------------


def postgres_from_settings(settings: Settings) -> LocalPostgres:
    return LocalPostgres(home=settings.home, port=settings.postgres_port)


# -- a scratch database, for tests ----------------------------------------------------


@contextlib.contextmanager
def scratch_database(server_url: str, prefix: str = "t") -> Iterator[str]:
    """A new, uniquely named, empty database on the server of ``server_url`` (a SQLAlchemy
    URL whose role may create databases); yields its SQLAlchemy URL and drops it on exit,
    closing whatever connections are still open to it."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    server = libpq_url(server_url)
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise DatabaseError(
            f"cannot create a database on {redact_password(server_url)}: {first_line(exc)}"
        ) from exc
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _drop_database(server, name)


def _drop_database(server: str, name: str, attempts: int = 20) -> None:
    """``DROP DATABASE … WITH (FORCE)``, again after a moment if it met a backend this role may not
    end: an autovacuum worker that started on the database just then (it has no role of ours;
    without FORCE, PostgreSQL ends such a worker itself, so the last attempt waits for it)."""
    import psycopg
    from psycopg import sql

    for attempt in range(attempts):
        force = sql.SQL(" WITH (FORCE)") if attempt < attempts - 1 else sql.SQL("")
        try:
            with psycopg.connect(server, autocommit=True, connect_timeout=10) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)) + force)
            return
        except psycopg.errors.InsufficientPrivilege:
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)


# -- the `yujing db` commands --------------------------------------------------------
