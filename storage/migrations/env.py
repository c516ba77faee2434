"""Alembic environment for llmserve's storage; run through `Database.migrate()`.

There is no alembic.ini: `Database.migrate()` hands over an open connection in
`config.attributes["connection"]`. Running `alembic` by hand works too with
`-x url=<database url>` and `script_location` pointing here.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from storage.schema import Base

# Any constant works; it only has to be the same for every llmserve process.
_PG_MIGRATION_LOCK = 0x6C6C6D73


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two servers starting at once must not both run the same migration;
            # SQLite gets the same from BEGIN IMMEDIATE.
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
