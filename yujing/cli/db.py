"""``yujing db``: start, stop and inspect the local PostgreSQL the case desk uses (:mod:`yujing.services.database`)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.markup import escape

from yujing.services.database import (
    LocalPostgres,
    postgres_from_settings,
)
from yujing.services.lifecycle import (
    fail,
    out,
    print_log,
    print_started,
    print_state,
    print_stopped,
)
from yujing.services.postgres_dist import (
    INSTALL_HINT,
    DatabaseError,
    executable,
    libpq_url,
)
from yujing.settings import Settings, get_settings

db_app = typer.Typer(
    help="Run a local PostgreSQL (from the Debian packages) for the case service: its own "
    "cluster under YUJING_HOME, on loopback.",
    no_args_is_help=True,
)


def _local_postgres() -> tuple[Settings, LocalPostgres]:
    settings = get_settings()
    return settings, postgres_from_settings(settings)


@db_app.command("start")
def start_command(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server.")] = 60,
) -> None:
    """Start the local PostgreSQL (creating its cluster, role and database the first time)."""
    _, db = _local_postgres()
    try:
        with out.status(f"Starting PostgreSQL on {db.address}..."):
            started = db.start(timeout=timeout)
    except DatabaseError as error:
        fail(error)
    print_started(f"PostgreSQL {started.version}", db.address, started)
    if started.initialized:
        out.print(f"  created the cluster in {escape(str(db.data_dir))}")
    out.print(f"  {escape(db.url)}")
    out.print(f"[dim]log: {db.log_path}[/dim]")


@db_app.command("stop")
def stop_command(
    timeout: Annotated[float, typer.Option(help="Seconds before an immediate shutdown.")] = 30,
) -> None:
    """Stop the local PostgreSQL (fast shutdown); its data stays for the next start."""
    _, db = _local_postgres()
    try:
        stopped = db.stop(timeout=timeout)
    except DatabaseError as error:
        fail(error)
    print_stopped("PostgreSQL", stopped)


@db_app.command("status")
def status_command() -> None:
    """Show whether the local PostgreSQL runs, its address and data (exit 1 if down)."""
    _, db = _local_postgres()
    st = db.status()
    version = f"PostgreSQL {st.version}" if st.version else "PostgreSQL"
    print_state(st, version, "PostgreSQL")
    out.print(f"  url:  {escape(st.url)}")
    out.print(f"  data: {escape(str(st.data_dir))}")
    out.print(f"[dim]log: {st.log_path}[/dim]")
    if not st.running:
        raise typer.Exit(1)


@db_app.command("url")
def url_command() -> None:
    """Print the database URL yujing uses (YUJING_DATABASE_URL, or the local cluster's)."""
    typer.echo(get_settings().database)


@db_app.command("psql", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def psql_command(ctx: typer.Context) -> None:
    """Open psql on the database yujing uses; extra arguments go to psql (-c 'select 1')."""
    settings = get_settings()
    try:
        psql = find_psql(postgres_from_settings(settings))
    except DatabaseError as error:
        fail(error)
    os.execv(psql, psql_argv(psql, settings.database, ctx.args))


def find_psql(db: LocalPostgres) -> str:
    """psql of the server's version if installed, else the one on PATH."""
    with contextlib.suppress(DatabaseError):
        candidate = db.server_bin_dir() / "psql"
        if executable(candidate):
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
    missing = DatabaseError(f"no PostgreSQL log at {db.log_path} yet: run `yujing db start`")
    print_log(db.log_path, lines, missing)
