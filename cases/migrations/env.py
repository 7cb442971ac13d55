"""Alembic environment: migrations run through :func:`cases.db.migrate` (``yujing cases
migrate``), which passes the connection URL in; ``alembic`` on the command line also works with
``-x url=...``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from cases.schema import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url") or context.get_x_argument(as_dictionary=True)["url"]

if context.is_offline_mode():
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
