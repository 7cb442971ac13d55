"""Tests of the local PostgreSQL manager, :mod:`yujing.services.database`.

The pure tests need no PostgreSQL. Tests marked ``postgres`` run real clusters from the
machine's server programs (``apt-get install postgresql``) on free ports, each in a temporary
home of its own, and the ``database_url`` fixture's scratch databases.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy
from typer.testing import CliRunner

import yujing.settings as settings_module
from yujing.cli.db import db_app
from yujing.services.database import (
    DatabaseError,
    LocalPostgres,
    postgres_from_settings,
    scratch_database,
)
from yujing.services.postgres_dist import (
    PostmasterInfo,
    as_user,
    conf_string,
    find_server_bin_dir,
    last_server_error,
    libpq_url,
    missing_search_bit,
    parse_postmaster_pid,
    pg_ctl_failure,
    postgres_responds,
    render_config,
    server_env,
)
from yujing.settings import Settings


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


@pytest.fixture
def pg_home() -> Iterator[Path]:
    """A home outside pytest's private (0700) tmp directory, removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="yujing-pg-"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def local_pg(pg_home: Path) -> Iterator[LocalPostgres]:
    """A LocalPostgres on a free port, stopped at the end whatever the test did."""
    db = LocalPostgres(home=pg_home, port=free_port())
    yield db
    db.stop()


def fake_bin(
    root: Path, version: str, programs: tuple[str, ...] = ("initdb", "pg_ctl", "postgres")
) -> Path:
    bin_dir = root / version / "bin"
    bin_dir.mkdir(parents=True)
    for name in programs:
        program = bin_dir / name
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    return bin_dir


# -- pure tests ----------------------------------------------------------------------


def test_paths_live_under_home(tmp_path: Path) -> None:
    db = LocalPostgres(home=tmp_path / "home", port=5999)
    pg = tmp_path / "home" / "postgres"
    assert db.data_dir == pg / "data"
    assert db.socket_dir == pg / "run"
    assert db.log_path == pg / "logs" / "postgres.log"
    assert db.pid_file == pg / "data" / "postmaster.pid"
    assert db.socket_path == pg / "run" / ".s.PGSQL.5999"
    assert db.url == "postgresql+psycopg://yujing@127.0.0.1:5999/yujing"


def test_relative_home_becomes_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert (
        LocalPostgres(home=Path(".yujing")).data_dir == tmp_path / ".yujing" / "postgres" / "data"
    )


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No YUJING_* database settings from the environment (test.sh sets the port)."""
    monkeypatch.delenv("YUJING_POSTGRES_PORT", raising=False)
    monkeypatch.delenv("YUJING_DATABASE_URL", raising=False)


@pytest.mark.usefixtures("clean_env")
def test_settings_database_defaults_to_the_local_cluster(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, postgres_port=6001)
    assert settings.database == "postgresql+psycopg://yujing@127.0.0.1:6001/yujing"
    assert settings.database == postgres_from_settings(settings).url
    other = "postgresql+psycopg://cases:secret@db.example:5432/cases"
    assert Settings(database_url=other).database == other
    assert Settings().postgres_port == 5532


@pytest.mark.usefixtures("clean_env")
def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUJING_POSTGRES_PORT", "6002")
    assert Settings().database.endswith("@127.0.0.1:6002/yujing")
    monkeypatch.setenv("YUJING_DATABASE_URL", "postgresql+psycopg://x@h/d")
    assert Settings().database == "postgresql+psycopg://x@h/d"


def test_libpq_url_drops_the_driver() -> None:
    assert libpq_url("postgresql+psycopg://yujing@127.0.0.1:5532/yujing") == (
        "postgresql://yujing@127.0.0.1:5532/yujing"
    )
    assert libpq_url("postgres://a@b/c") == "postgresql://a@b/c"
    assert libpq_url("postgresql://a@b/c?sslmode=require") == "postgresql://a@b/c?sslmode=require"


def test_config_listens_on_loopback_with_its_own_socket() -> None:
    text = render_config("127.0.0.1", 5532, Path("/srv/it's here/run"))
    assert "listen_addresses = '127.0.0.1'" in text
    assert "port = 5532" in text
    assert "unix_socket_directories = '/srv/it''s here/run'" in text
    assert "unix_socket_directories = ''" in render_config("127.0.0.1", 5532, None)
    assert conf_string("a\\b") == "'a\\\\b'"


def test_a_socket_path_too_long_for_unix_sockets_means_no_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 100)
    db = LocalPostgres(home=deep, port=5532)
    assert db.socket_path is None
    assert "unix_socket_directories = ''" in db.render_config()


def test_parse_postmaster_pid() -> None:
    text = "4242\n/data\n1700000000\n5532\n/run\n127.0.0.1\n  5532001    32768\nready   \n"
    assert parse_postmaster_pid(text) == PostmasterInfo(pid=4242, port=5532, state="ready")
    # Before PostgreSQL 10 there was no state line; a server writing the file may be caught
    # after its first line only.
    assert parse_postmaster_pid("4242\n/data\n") == PostmasterInfo(pid=4242, port=None, state="")
    assert parse_postmaster_pid("") is None
    assert parse_postmaster_pid("garbage\n") is None
    assert parse_postmaster_pid("-1\n") is None


def test_the_newest_server_version_is_chosen(tmp_path: Path) -> None:
    for version in ("9.6", "13", "15"):
        fake_bin(tmp_path, version)
    fake_bin(tmp_path, "16", programs=("pg_ctl", "psql"))  # client only: no initdb
    assert find_server_bin_dir(root=tmp_path) == tmp_path / "15" / "bin"


def test_an_existing_cluster_keeps_its_version(tmp_path: Path) -> None:
    for version in ("9.6", "13", "15"):
        fake_bin(tmp_path, version)
    assert find_server_bin_dir("13", root=tmp_path) == tmp_path / "13" / "bin"
    with pytest.raises(
        DatabaseError,
        match=r"/d was created by PostgreSQL 12, which is not installed \(found 9.6, 13, 15\)",
    ):
        find_server_bin_dir("12", Path("/d"), root=tmp_path)


def test_missing_server_programs_are_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no pg_config, no initdb
    with pytest.raises(
        DatabaseError,
        match=r"server programs \(initdb, pg_ctl\) not found .*apt-get install postgresql",
    ):
        find_server_bin_dir(root=tmp_path)


def test_a_given_bin_dir_must_hold_the_server(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path, "15", programs=("pg_ctl",))
    db = LocalPostgres(home=tmp_path / "home", bin_dir=bin_dir)
    with pytest.raises(DatabaseError, match=r"initdb, postgres not found in"):
        db.server_bin_dir()


def test_as_user_wraps_only_under_another_user() -> None:
    assert as_user(["pg_ctl", "status"], None) == ["pg_ctl", "status"]
    wrapped = as_user(["pg_ctl", "status"], "postgres")
    assert Path(wrapped[0]).name in ("runuser", "setpriv")
    assert wrapped[-3:] == ["--", "pg_ctl", "status"]
    assert "postgres" in " ".join(wrapped[1:-2])


def test_server_env_drops_pg_variables() -> None:
    env = server_env({"PATH": "/bin", "PGDATA": "/elsewhere", "PGPORT": "1", "LANG": "C"})
    assert env == {"PATH": "/bin", "LANG": "C"}


def test_missing_search_bit() -> None:
    pg_uid, pg_gid = 101, 104
    assert missing_search_bit(0o700, 0, 0, pg_uid, {pg_gid}) == stat.S_IXOTH
    assert missing_search_bit(0o701, 0, 0, pg_uid, {pg_gid}) == 0
    assert missing_search_bit(0o750, 0, pg_gid, pg_uid, {pg_gid}) == 0
    assert (
        missing_search_bit(0o707, 0, pg_gid, pg_uid, {pg_gid}) == stat.S_IXGRP
    )  # group class applies
    assert missing_search_bit(0o600, pg_uid, 0, pg_uid, {pg_gid}) == stat.S_IXUSR


def test_last_server_error() -> None:
    log = (
        "2026-01-01 00:00:00.000 UTC [9] LOG:  starting PostgreSQL 15.18\n"
        '2026-01-01 00:00:00.001 UTC [9] LOG:  could not bind IPv4 address "127.0.0.1": Address already in use\n'
        "2026-01-01 00:00:00.001 UTC [9] HINT:  Is another postmaster already running on port 5532?\n"
        '2026-01-01 00:00:00.002 UTC [9] WARNING:  could not create listen socket for "127.0.0.1"\n'
        "2026-01-01 00:00:00.002 UTC [9] FATAL:  could not create any TCP/IP sockets\n"
        "2026-01-01 00:00:00.003 UTC [9] LOG:  database system is shut down\n"
    )
    assert last_server_error(log) == (
        'could not create any TCP/IP sockets (could not bind IPv4 address "127.0.0.1": '
        "Address already in use)"
    )
    assert last_server_error("2026-01-01 UTC [9] FATAL:  data directory has wrong ownership") == (
        "data directory has wrong ownership"
    )
    assert last_server_error("2026-01-01 UTC [9] LOG:  database system is ready\n") == ""


def test_probe_rejects_closed_ports_and_non_postgres_servers() -> None:
    assert not postgres_responds("127.0.0.1", free_port())
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def answer_http() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(8)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        thread = threading.Thread(target=answer_http, daemon=True)
        thread.start()
        assert not postgres_responds("127.0.0.1", port, timeout=2)
        thread.join(5)


def test_stopped_server_status_and_stop(local_pg: LocalPostgres) -> None:
    st = local_pg.status()
    assert not st.running and not st.reachable and st.pid is None and st.version is None
    assert local_pg.stop() is False


def test_a_foreign_or_dead_pid_is_not_taken_for_the_server(local_pg: LocalPostgres) -> None:
    local_pg.data_dir.mkdir(parents=True)
    # A live process that is not a PostgreSQL of this data directory: this test itself.
    local_pg.pid_file.write_text(f"{os.getpid()}\n{local_pg.data_dir}\n0\n{local_pg.port}\n")
    assert not local_pg.status().running
    assert local_pg.stop() is False
    assert local_pg.pid_file.exists()  # left to the server, which checks it on its next start
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    local_pg.pid_file.write_text(f"{done.stdout.strip()}\n{local_pg.data_dir}\n")
    assert not local_pg.status().running


def test_data_of_another_user_is_refused_clearly(
    monkeypatch: pytest.MonkeyPatch, local_pg: LocalPostgres
) -> None:
    local_pg.data_dir.mkdir(parents=True)
    monkeypatch.setattr(os, "geteuid", lambda: 4242)  # as if we were another, unprivileged user
    with pytest.raises(DatabaseError, match=r"belongs to user .*: run yujing as that user"):
        local_pg.start()


# -- the CLI ---------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, pg_home: Path) -> Iterator[Path]:
    monkeypatch.setenv("YUJING_HOME", str(pg_home))
    monkeypatch.setenv("YUJING_POSTGRES_PORT", str(free_port()))
    monkeypatch.delenv("YUJING_DATABASE_URL", raising=False)
    settings_module.get_settings.cache_clear()
    yield pg_home
    settings_module.get_settings.cache_clear()


@pytest.mark.usefixtures("cli_env")
def test_cli_on_a_stopped_server() -> None:
    runner = CliRunner()
    status = runner.invoke(db_app, ["status"])
    assert status.exit_code == 1 and "not running" in status.stdout
    stop = runner.invoke(db_app, ["stop"])
    assert stop.exit_code == 0 and "not running" in stop.stdout
    logs = runner.invoke(db_app, ["logs"])
    assert logs.exit_code == 1 and logs.stderr.startswith("error: no PostgreSQL log")


def test_cli_url(monkeypatch: pytest.MonkeyPatch, cli_env: Path) -> None:
    runner = CliRunner()
    port = os.environ["YUJING_POSTGRES_PORT"]
    assert (
        runner.invoke(db_app, ["url"]).stdout
        == f"postgresql+psycopg://yujing@127.0.0.1:{port}/yujing\n"
    )
    monkeypatch.setenv("YUJING_DATABASE_URL", "postgresql+psycopg://cases@db.example/cases")
    settings_module.get_settings.cache_clear()
    assert runner.invoke(db_app, ["url"]).stdout == "postgresql+psycopg://cases@db.example/cases\n"


def test_cli_error_is_one_red_line_without_traceback(
    monkeypatch: pytest.MonkeyPatch, cli_env: Path
) -> None:
    empty = cli_env / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr("yujing.services.database.DEBIAN_ROOT", empty)
    result = CliRunner().invoke(db_app, ["start"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: PostgreSQL server programs (initdb, pg_ctl) not found")
    assert "Traceback" not in result.output


def test_the_main_cli_mounts_db() -> None:
    from yujing.cli.app import app

    result = CliRunner().invoke(app, ["db", "--help"])
    assert result.exit_code == 0
    for command in ("start", "stop", "status", "url", "psql", "logs"):
        assert command in result.stdout


# -- against real clusters ---------------------------------------------------------------


def connect(db: LocalPostgres, **kwargs: object) -> psycopg.Connection:
    return psycopg.connect(libpq_url(db.url), autocommit=True, connect_timeout=5, **kwargs)  # type: ignore[arg-type]


@pytest.mark.postgres
def test_local_postgres_lifecycle(local_pg: LocalPostgres) -> None:
    db = local_pg
    first = db.start(timeout=60)
    assert first.running and first.reachable and not first.already_running and first.initialized
    assert first.pid is not None and first.version == db.server_bin_dir().parent.name
    assert db.status().running and db.status().reachable and db.status().pid == first.pid

    again = db.start()
    assert again.already_running and not again.initialized and again.pid == first.pid
    assert again.elapsed is not None and again.elapsed < 2
    # Another invocation (a fresh manager on the same home) finds it too.
    assert LocalPostgres(home=db.home, port=db.port).start().pid == first.pid

    with connect(db) as conn:
        row = conn.execute(
            "SELECT current_user, current_database(), r.rolsuper, r.rolcreatedb, "
            "pg_get_userbyid(d.datdba), current_setting('listen_addresses'), "
            "current_setting('server_encoding') "
            "FROM pg_roles r, pg_database d "
            "WHERE r.rolname = current_user AND d.datname = current_database()"
        ).fetchone()
    assert row == ("yujing", "yujing", False, True, "yujing", "127.0.0.1", "UTF8")
    # The Unix socket is in the cluster's own directory.
    assert db.socket_path is not None and db.socket_path.is_socket()
    with psycopg.connect(
        host=str(db.socket_dir), port=db.port, user="yujing", dbname="yujing"
    ) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # Trust for loopback and the socket only.
    with connect(db, user="postgres") as conn:
        rules = conn.execute("SELECT type, address FROM pg_hba_file_rules").fetchall()
    assert set(rules) == {("local", None), ("host", "127.0.0.1"), ("host", "::1")}
    if os.geteuid() == 0:
        st = db.data_dir.stat()
        assert (_user(st.st_uid), stat.S_IMODE(st.st_mode)) == ("postgres", 0o700)

    assert db.stop() is True
    assert not db.status().running
    assert not postgres_responds(db.host, db.port)
    assert db.stop() is False


@pytest.mark.postgres
def test_restart_keeps_data(local_pg: LocalPostgres) -> None:
    local_pg.start()
    with connect(local_pg) as conn:
        conn.execute("CREATE TABLE kept (note text)")
        conn.execute("INSERT INTO kept VALUES ('预警 survives a restart')")
    assert local_pg.stop() is True

    again = LocalPostgres(home=local_pg.home, port=local_pg.port).start()
    assert not again.already_running and not again.initialized
    with connect(local_pg) as conn:
        assert conn.execute("SELECT note FROM kept").fetchall() == [("预警 survives a restart",)]


@pytest.mark.postgres
def test_a_changed_port_takes_effect(local_pg: LocalPostgres) -> None:
    local_pg.start()
    moved = LocalPostgres(home=local_pg.home, port=free_port())
    with pytest.raises(
        DatabaseError,
        match=rf"already runs \(pid \d+\) on port {local_pg.port}, not {moved.port}: stop it first",
    ):
        moved.start()
    assert moved.stop() is True  # the port does not matter for stopping
    try:
        moved.start()
        with connect(moved) as conn:
            assert conn.execute("SELECT current_setting('port')").fetchone() == (str(moved.port),)
    finally:
        moved.stop()


@pytest.mark.postgres
def test_a_taken_port_is_one_clear_error(local_pg: LocalPostgres) -> None:
    with socket.create_server((local_pg.host, local_pg.port)):
        with pytest.raises(
            DatabaseError,
            match=rf"127.0.0.1:{local_pg.port} is already in use .*YUJING_POSTGRES_PORT",
        ):
            local_pg.start()
    assert not local_pg.status().running


@pytest.mark.postgres
def test_a_startup_failure_names_the_cause(local_pg: LocalPostgres) -> None:
    local_pg.start()
    local_pg.stop()
    conf = local_pg.data_dir / "postgresql.conf"
    with conf.open("a") as f:
        f.write("shared_buffers = 'lots'\n")
    with pytest.raises(DatabaseError) as failure:
        local_pg.start()
    message = str(failure.value)
    assert message.startswith(f"PostgreSQL did not start on {local_pg.address}: configuration file")
    assert "contains errors" in message and str(local_pg.log_path) in message
    assert "\n" not in message
    assert not local_pg.status().running


def test_pg_ctl_failure_keeps_what_matters() -> None:
    output = "waiting for server to start.... stopped waiting\npg_ctl: could not start server\nExamine the log output.\n"
    assert pg_ctl_failure(output) == "pg_ctl: could not start server"
    assert pg_ctl_failure("") == ""


@pytest.mark.postgres
def test_cli_lifecycle(cli_env: Path) -> None:
    runner = CliRunner()
    port = os.environ["YUJING_POSTGRES_PORT"]
    try:
        start = runner.invoke(db_app, ["start"])
        assert start.exit_code == 0, start.output
        assert "started" in start.stdout and "created the cluster" in start.stdout
        assert "already running" in runner.invoke(db_app, ["start"]).stdout
        status = runner.invoke(db_app, ["status"])
        assert status.exit_code == 0 and "running pid" in status.stdout and port in status.stdout
        logs = runner.invoke(db_app, ["logs", "-n", "200"])
        assert logs.exit_code == 0 and "ready to accept connections" in logs.stdout
    finally:
        stop = runner.invoke(db_app, ["stop"])
    assert stop.exit_code == 0 and "stopped" in stop.stdout


# -- the fixtures' scratch databases -------------------------------------------------------


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_its_own_empty_database(database_url: str, run: int) -> None:
    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.begin() as conn:
            assert sqlalchemy.inspect(conn).get_table_names() == []  # nothing of the other run
            conn.execute(sqlalchemy.text("CREATE TABLE seen (run int)"))
            conn.execute(sqlalchemy.text("INSERT INTO seen VALUES (:run)"), {"run": run})
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT run FROM seen")).scalars().all() == [run]
    finally:
        engine.dispose()


def test_scratch_databases_are_isolated_and_dropped(postgres_url: str) -> None:
    with scratch_database(postgres_url) as first, scratch_database(postgres_url) as second:
        assert first != second and postgres_url not in (first, second)
        with psycopg.connect(libpq_url(first), autocommit=True) as conn:
            conn.execute("CREATE TABLE only_here (x int)")
        with psycopg.connect(libpq_url(second), autocommit=True) as conn:
            found = conn.execute("SELECT to_regclass('only_here')").fetchone()
        assert found == (None,)
        # A connection still open at the end does not keep the database alive.
        lingering = psycopg.connect(libpq_url(first))
    names = {first.rsplit("/", 1)[1], second.rsplit("/", 1)[1]}
    with psycopg.connect(libpq_url(postgres_url)) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)", (list(names),)
        ).fetchall()
    assert left == []
    assert lingering.closed or lingering.broken or _is_dead(lingering)
    lingering.close()


def _is_dead(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def _user(uid: int) -> str:
    import pwd

    return pwd.getpwuid(uid).pw_name


def test_dropping_a_scratch_database_waits_out_a_backend_it_may_not_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """An autovacuum worker that starts on the database at teardown is not this role's to end:
    the drop tries again (CI met it once), and its last try lets PostgreSQL end the worker itself."""
    import psycopg

    from yujing.services import database

    statements: list[str] = []

    class Connection:
        def __enter__(self) -> Connection:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def execute(self, statement: object) -> None:
            statements.append(statement.as_string(None))  # type: ignore[attr-defined]
            if len(statements) <= 2:
                raise psycopg.errors.InsufficientPrivilege("must be a member of the role whose process is being terminated")

    monkeypatch.setattr(psycopg, "connect", lambda *a, **k: Connection())
    monkeypatch.setattr(database.time, "sleep", lambda _: None)
    database._drop_database("postgresql://x", "test_1")
    assert statements == ['DROP DATABASE IF EXISTS "test_1" WITH (FORCE)'] * 3

    statements.clear()
    database._drop_database("postgresql://x", "test_2", attempts=3)
    assert statements[-1] == 'DROP DATABASE IF EXISTS "test_2"'  # without FORCE: the server ends the worker
