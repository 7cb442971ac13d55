"""The PostgreSQL the local cluster runs, and what it reads and says.

The machine's server programs: which versions are installed and where, running ``initdb`` and
``pg_ctl`` as the ``postgres`` system user under root (PostgreSQL refuses to run as root) with
the cluster's directories and files handed over to that user. The ``yujing`` role and database
and their URLs. The files yujing writes for the server (``yujing.conf``) and reads of it
(``postmaster.pid``), the SSLRequest probe that tells whether a PostgreSQL answers, and the one
line that says why the server or ``pg_ctl`` failed.

:class:`yujing.services.database.LocalPostgres` decides what runs where and when.
Importing this module has no side effects.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import stat
import struct
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from yujing.services.lifecycle import ServiceError, failure_line

SERVER_USER = "postgres"  # the system user the server runs as under root (Debian creates it)
SUPERUSER = "postgres"  # the cluster's bootstrap superuser
ROLE = "yujing"  # the login role of the case service, its tests and CI
DATABASE = "yujing"
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
SSL_REQUEST = struct.pack(">ii", 8, 80877103)
INSTALL_HINT = "install them (apt-get install postgresql, or run deploy/local/setup.sh)"
INITDB_TIMEOUT_S = 180


class DatabaseError(ServiceError):
    """The local PostgreSQL cannot do what was asked; the message is one line for a human."""


# -- running the server programs ----------------------------------------------------


def server_ids() -> tuple[int, int] | None:
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


def prepare_server_dirs(pg_dir: Path, data_dir: Path, subdirs: Sequence[Path]) -> None:
    """Create the cluster's directory and ``subdirs``; under root, hand them (and a data
    directory another user made) to the server user and let it pass through the directories
    above. An unprivileged user may not take over another user's data directory.
    """
    ids = server_ids()
    if ids is None:
        owner = _owner(data_dir)
        if owner is not None and owner != os.geteuid():
            raise DatabaseError(
                f"{data_dir} belongs to user {_user_name(owner)}: run yujing as "
                f"that user (or as root), or remove {pg_dir} to start afresh"
            )
    for directory in (pg_dir, *subdirs):
        directory.mkdir(parents=True, exist_ok=True)
    if ids is None:
        return
    uid, gid = ids
    os.chown(pg_dir, uid, gid)
    for directory in subdirs:
        _chown_tree(directory, uid, gid)  # the log may have been written by another user
    if data_dir.exists() and _owner(data_dir) != uid:
        _chown_tree(data_dir, uid, gid)  # created by another user: hand it over
    groups = set(os.getgrouplist(SERVER_USER, gid))
    for parent in pg_dir.parents:
        st = parent.stat()
        bit = missing_search_bit(st.st_mode, st.st_uid, st.st_gid, uid, groups)
        if bit:
            os.chmod(parent, stat.S_IMODE(st.st_mode) | bit)


def write_server_file(path: Path, text: str) -> None:
    """Write a file of the cluster's: private to the user the server runs as."""
    path.write_text(text)
    os.chmod(path, 0o600)
    ids = server_ids()
    if ids is not None:
        os.chown(path, *ids)


def run_server_program(
    cmd: Sequence[str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a server program, as the server user under root, from ``cwd`` (the cluster's directory)."""
    user = SERVER_USER if server_ids() is not None else None
    return subprocess.run(
        as_user(list(cmd), user),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        env=server_env(os.environ),
        stdin=subprocess.DEVNULL,
    )


def run_initdb(
    bin_dir: Path, data_dir: Path, hba_conf: str, include_name: str, include_text: str
) -> None:
    """Create a cluster in ``data_dir`` with initdb: UTF-8, superuser ``postgres``, the
    clients ``hba_conf`` lets in, and a ``postgresql.conf`` that includes ``include_name``
    (written with ``include_text``; where to listen, rendered again on every start).

    initdb writes into a staging directory that is renamed into place once the
    cluster is complete, so an interrupted first start is simply redone. An empty
    ``data_dir`` is replaced; anything else in it is refused.
    """
    if data_dir.exists():
        if any(data_dir.iterdir()):
            raise DatabaseError(
                f"{data_dir} exists but is not a PostgreSQL data directory: "
                f"remove it to start afresh"
            )
        data_dir.rmdir()
    staging = data_dir.with_name("data.initdb")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        str(bin_dir / "initdb"), "-D", str(staging), "-U", SUPERUSER,
        "--encoding=UTF8", "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=trust",
    ]  # fmt: skip
    try:
        done = run_server_program(cmd, data_dir.parent, timeout=INITDB_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise DatabaseError(f"initdb took over {INITDB_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise DatabaseError(
            f"initdb could not create the cluster in {staging}: {failure_line(done)}"
        )
    write_server_file(staging / "pg_hba.conf", hba_conf)
    conf = staging / "postgresql.conf"
    include = f"\n# Added by yujing: where to listen (rendered on every start).\ninclude = '{include_name}'\n"
    write_server_file(conf, conf.read_text() + include)
    write_server_file(staging / include_name, include_text)
    staging.rename(data_dir)


def pg_ctl_command(
    bin_dir: Path, action: str, data_dir: Path, wait: int, *options: str
) -> list[str]:
    """pg_ctl doing ``action`` (start, stop) on ``data_dir`` silently, waiting up to ``wait`` s."""
    return [
        str(bin_dir / "pg_ctl"), action, "-D", str(data_dir), *options,
        "-w", "-t", str(wait), "-s",
    ]  # fmt: skip


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


def _which(name: str) -> str | None:
    # root's PATH normally has the sbin directories, but do not rely on it.
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if executable(p)),
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


# -- finding the server programs ---------------------------------------------------


def find_server_bin_dir(
    version: str | None = None,
    data_dir: Path | None = None,
    *,
    root: Path,
) -> Path:
    """The bin directory of the machine's PostgreSQL server programs.

    Debian installs each major version under ``root/<version>/bin`` (``/usr/lib/postgresql``) and puts
    only the client programs on PATH (``pg_config --bindir`` names the client's directory),
    so those directories are searched first, newest version first; then ``pg_config
    --bindir`` and PATH, for other systems. With ``version`` (the data directory's), only
    that major version will do: a newer server cannot open an older cluster.
    """
    found: dict[str, Path] = {}
    for bin_dir in sorted(root.glob("*/bin")):
        if has_server_programs(bin_dir):
            found.setdefault(bin_dir.parent.name, bin_dir)
    if not found:
        for bin_dir in other_bin_dirs():
            major = major_version_of(bin_dir)
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


def has_server_programs(bin_dir: Path) -> bool:
    """Whether ``bin_dir`` holds initdb, pg_ctl and postgres (not only the client programs)."""
    return all(executable(bin_dir / name) for name in SERVER_PROGRAMS)


def executable(path: Path) -> bool:
    """Whether ``path`` is a file we may run."""
    return path.is_file() and os.access(path, os.X_OK)


def other_bin_dirs() -> list[Path]:
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
    return [c for c in candidates if has_server_programs(c)]


def major_version_of(bin_dir: Path) -> str | None:
    """The major version of the server programs in ``bin_dir`` (asked of ``pg_ctl --version``)."""
    try:
        done = subprocess.run(
            [str(bin_dir / "pg_ctl"), "--version"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return major_version(done.stdout)


# -- the yujing role and database, and their URLs -----------------------------------


def ensure_role_and_database(host: str, port: int, connect_timeout: int) -> None:
    """Create the login role ``yujing`` (allowed to create databases, not a superuser) and
    the database ``yujing`` it owns, where missing (idempotent)."""
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(
            host=host, port=port, user=SUPERUSER, dbname="postgres",
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
            f"cannot create the {ROLE} role and database on {host}:{port}: {first_line(exc)}"
        ) from exc


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


def redact_password(url: str) -> str:
    """A URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


# -- what the server reads and says -------------------------------------------------


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


@dataclass(frozen=True)
class PostmasterInfo:
    """The parts of ``postmaster.pid`` yujing uses (PostgreSQL writes and removes the file)."""

    pid: int
    port: int | None
    state: str  # "starting", "ready", "stopping", ... or "" (PostgreSQL before 10)


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
