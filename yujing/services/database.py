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

:class:`LocalPostgres` does the work; ``db_app`` is the ``yujing db`` command group (``start``,
``stop``, ``status``, ``url``, ``psql``, ``logs``) that the main CLI mounts. Importing this
module has no side effects.
"""

from __future__ import annotations

import contextlib
import math
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from yujing.services.broker import (
    _locked,
    _signal,
    _size,
    last_line,
    pid_alive,
    port_in_use,
    tail_lines,
)

if TYPE_CHECKING:
    from yujing.settings import Settings

SERVER_USER = "postgres"  # the system user the server runs as under root (Debian creates it)
SUPERUSER = "postgres"  # the cluster's bootstrap superuser
ROLE = "yujing"
DATABASE = "yujing"
DEBIAN_ROOT = Path("/usr/lib/postgresql")  # <version>/bin/{initdb,pg_ctl,postgres,psql}
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
INSTALL_HINT = "install them (apt-get install postgresql, or run deploy/local/setup.sh)"
INITDB_TIMEOUT_S = 180
SOCKET_PATH_MAX = 107  # bytes; sockaddr_un.sun_path is 108 with its terminating NUL
SSL_REQUEST = struct.pack(">ii", 8, 80877103)

HBA_CONF = """\
# Written by yujing (yujing/services/database.py): trust local connections, nothing else.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
host    all       all   ::1/128       trust
"""


class DatabaseError(Exception):
    """The local PostgreSQL cannot do what was asked; the message is one line for a human."""


@dataclass(frozen=True)
class DatabaseStatus:
    """What :meth:`LocalPostgres.status` and :meth:`LocalPostgres.start` observed."""

    running: bool  # our server process is alive
    reachable: bool  # something answers the PostgreSQL protocol at ``address``
    pid: int | None
    address: str
    url: str
    data_dir: Path
    log_path: Path
    version: str | None  # major version of the data directory; None before the first start
    elapsed: float | None = None  # seconds :meth:`LocalPostgres.start` took
    already_running: bool = False
    initialized: bool = False  # this start created the cluster (initdb)


@dataclass(frozen=True)
class PostmasterInfo:
    """The parts of ``postmaster.pid`` yujing uses (PostgreSQL writes and removes the file)."""

    pid: int
    port: int | None
    state: str  # "starting", "ready", "stopping", ... or "" (PostgreSQL before 10)


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
            missing = [p for p in SERVER_PROGRAMS if not _executable(self.bin_dir / p)]
            if missing:
                raise DatabaseError(f"{', '.join(missing)} not found in {self.bin_dir}")
            return self.bin_dir
        return find_server_bin_dir(self.data_version(), self.data_dir)

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
            self._prepare_dirs()
            with _locked(self.pg_dir / ".lock"):
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

    def _prepare_dirs(self) -> None:
        ids = self._server_ids()
        if ids is None:
            owner = _owner(self.data_dir)
            if owner is not None and owner != os.geteuid():
                raise DatabaseError(
                    f"{self.data_dir} belongs to user {_user_name(owner)}: run yujing as "
                    f"that user (or as root), or remove {self.pg_dir} to start afresh"
                )
        for directory in (self.pg_dir, self.logs_dir, self.socket_dir):
            directory.mkdir(parents=True, exist_ok=True)
        if ids is None:
            return
        uid, gid = ids
        os.chown(self.pg_dir, uid, gid)
        for directory in (self.logs_dir, self.socket_dir):
            _chown_tree(directory, uid, gid)  # the log may have been written by another user
        if self.data_dir.exists() and _owner(self.data_dir) != uid:
            _chown_tree(self.data_dir, uid, gid)  # created by another user: hand it over
        groups = set(os.getgrouplist(SERVER_USER, gid))
        for parent in self.pg_dir.parents:
            st = parent.stat()
            bit = missing_search_bit(st.st_mode, st.st_uid, st.st_gid, uid, groups)
            if bit:
                os.chmod(parent, stat.S_IMODE(st.st_mode) | bit)

    def _server_ids(self) -> tuple[int, int] | None:
        """(uid, gid) of the user the server runs as when that is not us, i.e. under root."""
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise DatabaseError(
                f"PostgreSQL refuses to run as root and there is no {SERVER_USER!r} system "
                f"user to run it as: install the postgresql package (apt-get install postgresql)"
            ) from None
        return entry.pw_uid, entry.pw_gid

    def _check_same_port(self, pid: int) -> None:
        info = read_postmaster_pid(self.pid_file)
        if info is not None and info.port is not None and info.port != self.port:
            raise DatabaseError(
                f"PostgreSQL from {self.pg_dir} already runs (pid {pid}) on port {info.port}, "
                f"not {self.port}: stop it first (yujing db stop) to move it"
            )

    def _check_port_free(self) -> None:
        if port_in_use(self.host, self.port):
            raise DatabaseError(
                f"{self.address} is already in use by another process (a PostgreSQL from "
                f"another home?): stop it or set YUJING_POSTGRES_PORT"
            )

    def _init_once(self, bin_dir: Path) -> bool:
        """Create the cluster unless it exists; return whether it was created now.

        initdb writes into a staging directory that is renamed into place once the
        cluster is complete, so an interrupted first start is simply redone.
        """
        if self.data_version() is not None:
            return False
        if self.data_dir.exists():
            if any(self.data_dir.iterdir()):
                raise DatabaseError(
                    f"{self.data_dir} exists but is not a PostgreSQL data directory: "
                    f"remove it to start afresh"
                )
            self.data_dir.rmdir()
        staging = self.pg_dir / "data.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            str(bin_dir / "initdb"), "-D", str(staging), "-U", SUPERUSER,
            "--encoding=UTF8", "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=trust",
        ]  # fmt: skip
        try:
            done = self._run(cmd, timeout=INITDB_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise DatabaseError(f"initdb took over {INITDB_TIMEOUT_S} s") from exc
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            reason = last_line(done.stdout + "\n" + done.stderr) or f"exit code {done.returncode}"
            raise DatabaseError(f"initdb could not create the cluster in {staging}: {reason}")
        self._write_server_file(staging / "pg_hba.conf", HBA_CONF)
        conf = staging / "postgresql.conf"
        include = f"\n# Added by yujing: where to listen (rendered on every start).\ninclude = '{self.config_path.name}'\n"
        self._write_server_file(conf, conf.read_text() + include)
        self._write_server_file(staging / self.config_path.name, self.render_config())
        staging.rename(self.data_dir)
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
        self._write_server_file(self.config_path, self.render_config())

    def _write_server_file(self, path: Path, text: str) -> None:
        path.write_text(text)
        os.chmod(path, 0o600)
        ids = self._server_ids()
        if ids is not None:
            os.chown(path, *ids)

    def _pg_ctl_start(self, bin_dir: Path, deadline: float) -> int:
        offset = _size(self.log_path)
        wait = max(1, math.ceil(deadline - time.monotonic()))
        cmd = [
            str(bin_dir / "pg_ctl"), "start", "-D", str(self.data_dir), "-l", str(self.log_path),
            "-w", "-t", str(wait), "-s",
        ]  # fmt: skip
        try:
            done = self._run(cmd, timeout=wait + 30)
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
            last_server_error(_read_from(self.log_path, offset))
            or pg_ctl_failure(output)
            or "no server process after pg_ctl start"
        )
        raise DatabaseError(
            f"PostgreSQL did not start on {self.address}: {reason}; see {self.log_path}"
        )

    def _wait_ready(self, pid: int, deadline: float, timeout: float) -> None:
        """Wait for a server that is already running (maybe still starting) to be ready."""
        while True:
            if not pid_alive(pid):
                raise DatabaseError(
                    f"PostgreSQL (pid {pid}) exited while starting; see {self.log_path}"
                )
            info = read_postmaster_pid(self.pid_file)
            if (
                info is not None
                and info.state in ("ready", "")
                and postgres_responds(self.host, self.port)
            ):
                return
            if time.monotonic() >= deadline:
                raise DatabaseError(
                    f"PostgreSQL (pid {pid}) did not accept connections on {self.address} "
                    f"within {timeout:g} s; see {self.log_path}"
                )
            time.sleep(0.1)

    def _ensure_role_and_database(self, deadline: float) -> None:
        """Create the ``yujing`` role and database if missing (idempotent)."""
        import psycopg
        from psycopg import sql

        connect_timeout = max(2, math.ceil(deadline - time.monotonic()))
        try:
            with psycopg.connect(
                host=self.host, port=self.port, user=SUPERUSER, dbname="postgres",
                connect_timeout=connect_timeout, autocommit=True,
            ) as conn:  # fmt: skip
                role, database = sql.Identifier(ROLE), sql.Identifier(DATABASE)
                if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).rowcount:
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(role))
                if not conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
                ).rowcount:
                    conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, role))
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot create the {ROLE} role and database on {self.address}: {first_line(exc)}"
            ) from exc

    # -- stop --------------------------------------------------------------------

    def stop(self, timeout: float = 30) -> bool:
        """Stop the server (``pg_ctl stop -m fast``; ``-m immediate`` after ``timeout`` s).

        Returns whether a server was running; stopping a stopped server is not an error.
        The data stays for the next start.
        """
        if not self.pg_dir.is_dir():
            return False
        try:
            with _locked(self.pg_dir / ".lock"):
                pid = self._running_pid()
                if pid is None:
                    return False
                self._pg_ctl_stop(pid, "fast", timeout)
                if pid_alive(pid):
                    self._pg_ctl_stop(pid, "immediate", 10)
                if not _wait_exit(pid, 10):
                    raise DatabaseError(f"PostgreSQL (pid {pid}) did not stop; see {self.log_path}")
                return True
        except OSError as exc:
            raise DatabaseError(f"cannot stop PostgreSQL in {self.pg_dir}: {exc}") from exc

    def _pg_ctl_stop(self, pid: int, mode: str, timeout: float) -> None:
        try:
            bin_dir = self.server_bin_dir()
        except DatabaseError:
            # The programs are gone (package removed): the signals pg_ctl would send.
            _signal(pid, signal.SIGINT if mode == "fast" else signal.SIGQUIT)
            _wait_exit(pid, timeout)
            return
        wait = max(1, math.ceil(timeout))
        cmd = [
            str(bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", mode,
            "-w", "-t", str(wait), "-s",
        ]  # fmt: skip
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._run(cmd, timeout=wait + 30)

    # -- process bookkeeping -----------------------------------------------------

    def _run(self, cmd: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a server program, as the server user under root, from the cluster's directory."""
        user = SERVER_USER if self._server_ids() is not None else None
        return subprocess.run(
            as_user(list(cmd), user),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.pg_dir,
            env=server_env(os.environ),
            stdin=subprocess.DEVNULL,
        )

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
        try:
            if Path(os.readlink(f"/proc/{pid}/cwd")) == self.data_dir:
                return True
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
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
            f"cannot create a database on {_safe(server_url)}: {first_line(exc)}"
        ) from exc
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(server, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# -- small helpers ------------------------------------------------------------------


def sqlalchemy_url(host: str, port: int, database: str = DATABASE, user: str = ROLE) -> str:
    """The SQLAlchemy URL (psycopg 3 driver) of a database on a trusting local server.

    >>> sqlalchemy_url("127.0.0.1", 5532)
    'postgresql+psycopg://yujing@127.0.0.1:5532/yujing'
    """
    return f"postgresql+psycopg://{user}@{host}:{port}/{database}"


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL as libpq (psql, ``psycopg.connect``) takes it: without the driver.

    >>> libpq_url("postgresql+psycopg://yujing@127.0.0.1:5532/yujing")
    'postgresql://yujing@127.0.0.1:5532/yujing'
    >>> libpq_url("postgresql://u:p@db.example/cases?sslmode=require")
    'postgresql://u:p@db.example/cases?sslmode=require'
    """
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url)


def render_config(host: str, port: int, socket_dir: Path | None) -> str:
    """The cluster's ``yujing.conf``: loopback only, and its own socket directory (or no
    Unix socket when ``socket_dir`` is None) so it never touches ``/var/run/postgresql``."""
    sockets = conf_string(str(socket_dir) if socket_dir is not None else "")
    return (
        "# Written by yujing on every start (yujing/services/database.py); settings of your own go\n"
        "# into postgresql.conf above the include line.\n"
        f"listen_addresses = {conf_string(host)}\n"
        f"port = {int(port)}\n"
        f"unix_socket_directories = {sockets}\n"
    )


def conf_string(value: str) -> str:
    """A quoted ``postgresql.conf`` string value.

    >>> print(conf_string("/tmp/o'neil/run"))
    '/tmp/o''neil/run'
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def find_server_bin_dir(
    version: str | None = None,
    data_dir: Path | None = None,
    root: Path | None = None,
) -> Path:
    """The bin directory of the machine's PostgreSQL server programs.

    Debian installs each major version under ``/usr/lib/postgresql/<version>/bin`` and puts
    only the client programs on PATH (``pg_config --bindir`` names the client's directory),
    so those directories are searched first, newest version first; then ``pg_config
    --bindir`` and PATH, for other systems. With ``version`` (the data directory's), only
    that major version will do: a newer server cannot open an older cluster.
    """
    root = DEBIAN_ROOT if root is None else root
    found: dict[str, Path] = {}
    for bin_dir in sorted(root.glob("*/bin")):
        if _has_server(bin_dir):
            found.setdefault(bin_dir.parent.name, bin_dir)
    if not found:
        for bin_dir in _other_bin_dirs():
            major = _major_version_of(bin_dir)
            if major is not None:
                found.setdefault(major, bin_dir)
    if not found:
        raise DatabaseError(
            f"PostgreSQL server programs (initdb, pg_ctl) not found in {root}/*/bin, "
            f"pg_config --bindir or PATH: {INSTALL_HINT}"
        )
    if version is None:
        return found[newest_version(found)]
    if version in found:
        return found[version]
    where = f"{data_dir} was" if data_dir is not None else "the cluster was"
    raise DatabaseError(
        f"{where} created by PostgreSQL {version}, which is not installed (found "
        f"{', '.join(sorted(found, key=version_key))}): install postgresql-{version}, or "
        f"remove the data directory to start afresh"
    )


def newest_version(versions: Iterable[str]) -> str:
    """
    >>> newest_version(["9.6", "15", "13"])
    '15'
    """
    return max(versions, key=version_key)


def version_key(version: str) -> tuple[int, ...]:
    """Numeric order of versions ("9.6" < "13"); a name that is not a version sorts first."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (-1,)


def major_version(text: str) -> str | None:
    """The major version in ``pg_ctl --version`` output (two parts before PostgreSQL 10).

    >>> major_version("pg_ctl (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)")
    '15'
    >>> major_version("pg_ctl (PostgreSQL) 9.6.24")
    '9.6'
    """
    match = re.search(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?", text)
    if match is None:
        return None
    major, minor = match.groups()
    return f"{major}.{minor}" if int(major) < 10 and minor is not None else major


def as_user(cmd: list[str], user: str | None) -> list[str]:
    """``cmd`` run as ``user`` (from root) through runuser, or setpriv; unchanged for None."""
    if user is None:
        return cmd
    runuser = _which("runuser")
    if runuser is not None:
        return [runuser, "-u", user, "--", *cmd]
    setpriv = _which("setpriv")
    if setpriv is not None:
        return [setpriv, f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *cmd]
    raise DatabaseError(
        f"neither runuser nor setpriv found (util-linux): needed to run PostgreSQL as "
        f"{user} under root"
    )


def server_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for the server programs: without the ``PG*`` variables (PGDATA,
    PGPORT, ...) that would override what yujing passes.

    >>> server_env({"PATH": "/bin", "PGPORT": "1", "PGDATA": "/x"})
    {'PATH': '/bin'}
    """
    return {k: v for k, v in environ.items() if not k.startswith("PG")}


def missing_search_bit(
    mode: int, owner: int, group: int, uid: int, groups: set[int] | frozenset[int]
) -> int:
    """The permission bit a directory lacks for user ``uid`` (in ``groups``) to pass through
    it: the owner's, the group's or the others' execute bit, whichever class applies; 0 if
    it can already.

    >>> oct(missing_search_bit(0o700, 0, 0, 101, {104}))
    '0o1'
    >>> missing_search_bit(0o755, 0, 0, 101, {104})
    0
    """
    if owner == uid:
        bit = stat.S_IXUSR
    elif group in groups:
        bit = stat.S_IXGRP
    else:
        bit = stat.S_IXOTH
    return 0 if mode & bit else bit


def parse_postmaster_pid(text: str) -> PostmasterInfo | None:
    """The pid, port and state in the text of a ``postmaster.pid`` file, or None.

    >>> parse_postmaster_pid("4242\\n/d\\n1700000000\\n5532\\n/d/run\\n127.0.0.1\\n  1  2\\nready   \\n")
    PostmasterInfo(pid=4242, port=5532, state='ready')
    """
    lines = text.splitlines()
    try:
        pid = int(lines[0].strip())
    except (IndexError, ValueError):
        return None
    if pid <= 0:
        return None
    port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
    state = lines[7].strip() if len(lines) > 7 else ""
    return PostmasterInfo(pid=pid, port=port, state=state)


def read_postmaster_pid(path: Path) -> PostmasterInfo | None:
    try:
        return parse_postmaster_pid(path.read_text())
    except OSError:
        return None


def last_server_error(log: str) -> str:
    """The last FATAL/PANIC/ERROR message in server log text, with the "could not bind"
    line that explains a "could not create any TCP/IP sockets".

    >>> last_server_error('''2026-01-01 00:00:00 UTC [9] LOG:  could not bind IPv4 address "127.0.0.1": Address already in use
    ... 2026-01-01 00:00:00 UTC [9] FATAL:  could not create any TCP/IP sockets''')
    'could not create any TCP/IP sockets (could not bind IPv4 address "127.0.0.1": Address already in use)'
    """
    entries = [
        (match.group(1), match.group(2).strip())
        for match in re.finditer(r"\b(LOG|WARNING|ERROR|FATAL|PANIC):\s+(.*)$", log, re.MULTILINE)
    ]
    errors = [message for level, message in entries if level in ("ERROR", "FATAL", "PANIC")]
    if not errors:
        return ""
    message = errors[-1]
    binds = [m for _, m in entries if m.startswith("could not bind")]
    if binds and "TCP/IP" in message:
        message += f" ({binds[-1]})"
    return message[:400]


def pg_ctl_failure(output: str) -> str:
    """What pg_ctl said when it failed, on one line, without its boilerplate.

    >>> pg_ctl_failure('''sh: 1: cannot create /h/postgres.log: Permission denied
    ... pg_ctl: could not start server
    ... Examine the log output.
    ... ''')
    'sh: 1: cannot create /h/postgres.log: Permission denied; pg_ctl: could not start server'
    """
    boilerplate = re.compile(r"^(Examine the log output\.|waiting for server|stopped waiting|\.+$)")
    lines = [line.strip() for line in output.splitlines()]
    return "; ".join(line for line in lines if line and not boilerplate.match(line))[:400]


def postgres_responds(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a PostgreSQL server at ``host:port`` answers an SSLRequest ('S' or 'N').

    A bare TCP connect is not enough: the port may belong to something else. The server
    does not log a connection that ends right after this probe.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(SSL_REQUEST)
            answer = sock.recv(1)
    except OSError:
        return False
    return answer in (b"S", b"N")


def first_line(error: BaseException) -> str:
    """The first non-empty line of an error message (libpq's are several lines long)."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), repr(error))


def _safe(url: str) -> str:
    """A URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _has_server(bin_dir: Path) -> bool:
    return all(_executable(bin_dir / name) for name in SERVER_PROGRAMS)


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _other_bin_dirs() -> list[Path]:
    """Candidates beyond Debian's layout: ``pg_config --bindir``, then initdb on PATH."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
            )
            if done.returncode == 0 and done.stdout.strip():
                candidates.append(Path(done.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(Path(initdb).resolve().parent)
    return [c for c in candidates if _has_server(c)]


def _major_version_of(bin_dir: Path) -> str | None:
    try:
        done = subprocess.run(
            [str(bin_dir / "pg_ctl"), "--version"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return major_version(done.stdout)


def _which(name: str) -> str | None:
    # root's PATH normally has the sbin directories, but do not rely on it.
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if _executable(p)),
        None,
    )


def _owner(path: Path) -> int | None:
    try:
        return path.stat().st_uid
    except OSError:
        return None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    os.chown(top, uid, gid)
    for directory, dirs, files in os.walk(top):
        for name in (*dirs, *files):
            os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


# -- the `yujing db` commands --------------------------------------------------------

db_app = typer.Typer(
    help="Run a local PostgreSQL (from the Debian packages) for the case service: its own "
    "cluster under YUJING_HOME, on loopback.",
    no_args_is_help=True,
)
_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(error: DatabaseError) -> NoReturn:
    _err.print(f"[red]error: {escape(str(error))}[/red]")
    raise typer.Exit(1)


def _local_postgres() -> tuple[Settings, LocalPostgres]:
    from yujing.settings import get_settings

    settings = get_settings()
    return settings, postgres_from_settings(settings)


@db_app.command("start")
def start_command(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server.")] = 60,
) -> None:
    """Start the local PostgreSQL (creating its cluster, role and database the first time)."""
    _, db = _local_postgres()
    try:
        with _out.status(f"Starting PostgreSQL on {db.address}..."):
            started = db.start(timeout=timeout)
    except DatabaseError as error:
        _fail(error)
    state = "already running" if started.already_running else "started"
    _out.print(
        f"[green]PostgreSQL {started.version} {state}[/green] at [bold]{db.address}[/bold] "
        f"(pid {started.pid}) in {started.elapsed or 0:.1f} s"
    )
    if started.initialized:
        _out.print(f"  created the cluster in {escape(str(db.data_dir))}")
    _out.print(f"  {escape(db.url)}")
    _out.print(f"[dim]log: {db.log_path}[/dim]")


@db_app.command("stop")
def stop_command(
    timeout: Annotated[float, typer.Option(help="Seconds before an immediate shutdown.")] = 30,
) -> None:
    """Stop the local PostgreSQL (fast shutdown); its data stays for the next start."""
    _, db = _local_postgres()
    try:
        stopped = db.stop(timeout=timeout)
    except DatabaseError as error:
        _fail(error)
    _out.print("[green]PostgreSQL stopped[/green]" if stopped else "PostgreSQL was not running")


@db_app.command("status")
def status_command() -> None:
    """Show whether the local PostgreSQL runs, its address and data (exit 1 if down)."""
    _, db = _local_postgres()
    st = db.status()
    version = f"PostgreSQL {st.version}" if st.version else "PostgreSQL"
    if st.running and st.reachable:
        _out.print(f"[green]running[/green] pid {st.pid}, {version} at [bold]{st.address}[/bold]")
    elif st.running:
        _out.print(
            f"[yellow]starting or stuck[/yellow]: pid {st.pid} does not answer on {st.address}"
        )
    elif st.reachable:
        _out.print(f"[yellow]not ours[/yellow]: another PostgreSQL answers at {st.address}")
    else:
        _out.print(f"[red]not running[/red] ({st.address})")
    _out.print(f"  url:  {escape(st.url)}")
    _out.print(f"  data: {escape(str(st.data_dir))}")
    _out.print(f"[dim]log: {st.log_path}[/dim]")
    if not st.running:
        raise typer.Exit(1)


@db_app.command("url")
def url_command() -> None:
    """Print the database URL yujing uses (YUJING_DATABASE_URL, or the local cluster's)."""
    from yujing.settings import get_settings

    typer.echo(get_settings().database)


@db_app.command("psql", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def psql_command(ctx: typer.Context) -> None:
    """Open psql on the database yujing uses; extra arguments go to psql (-c 'select 1')."""
    from yujing.settings import get_settings

    settings = get_settings()
    try:
        psql = find_psql(postgres_from_settings(settings))
    except DatabaseError as error:
        _fail(error)
    os.execv(psql, psql_argv(psql, settings.database, ctx.args))


def find_psql(db: LocalPostgres) -> str:
    """psql of the server's version if installed, else the one on PATH."""
    with contextlib.suppress(DatabaseError):
        candidate = db.server_bin_dir() / "psql"
        if _executable(candidate):
            return str(candidate)
    found = shutil.which("psql")
    if found is None:
        raise DatabaseError(f"psql not found: {INSTALL_HINT}")
    return found


def psql_argv(psql: str, url: str, args: Sequence[str]) -> list[str]:
    """
    >>> psql_argv("/usr/bin/psql", "postgresql+psycopg://yujing@127.0.0.1:5532/yujing", ["-c", "select 1"])
    ['/usr/bin/psql', 'postgresql://yujing@127.0.0.1:5532/yujing', '-c', 'select 1']
    """
    return [psql, libpq_url(url), *args]


@db_app.command("logs")
def logs_command(
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines to show.")] = 50,
) -> None:
    """Print the end of the local PostgreSQL's log."""
    _, db = _local_postgres()
    if not db.log_path.is_file():
        _fail(DatabaseError(f"no PostgreSQL log at {db.log_path} yet: run `yujing db start`"))
    for line in tail_lines(db.log_path, lines):
        typer.echo(line)
