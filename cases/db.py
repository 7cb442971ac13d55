"""Connecting to the case desk's PostgreSQL and migrating its schema (Alembic)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import OperationalError

MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot be reached; the message says where and why, in one line."""


class NotFound(Exception):
    """No such case, user, silence, rule or delivery."""


def make_engine(url: str) -> Engine:
    # pool_pre_ping: after a PostgreSQL restart, stale pooled connections are replaced, not used.
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str) -> str:
    """Bring the schema to the newest migration; returns the revision it is at."""
    try:
        command.upgrade(_alembic_config(url), "head")
    except OperationalError as exc:
        raise DatabaseUnavailable(f"cannot reach PostgreSQL at {_safe(url)}: {_first_line(exc)}") from exc
    return head_revision()


def head_revision() -> str:
    script = ScriptDirectory.from_config(_alembic_config("postgresql://"))
    return str(script.get_current_head())


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
