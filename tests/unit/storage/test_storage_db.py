"""Database set-up, migrations and transaction behaviour, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, func, inspect, select, text

from storage import ChatRepository, Database, JobRepository, LutRepository, NotFoundError, sqlite_url
from storage import schema as t

TABLES = {
    "luts",
    "lut_entries",
    "chat_sessions",
    "chat_messages",
    "json_schemas",
    "jobs",
    "specialists",
}

T = "t1"


def _schema_diff(db: Database, metadata: MetaData) -> list:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, metadata)


def test_migrate_creates_tables_and_is_idempotent(db: Database) -> None:
    LutRepository(db).add_entry(T, "u", "gpt2", "kept", b"x", payload_format="raw")
    db.migrate()
    db.migrate()
    with db.engine.connect() as conn:
        assert TABLES <= set(inspect(conn).get_table_names())
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [_head()]
    assert LutRepository(db).get_lut(T, "u", "gpt2").entry_count == 1


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from storage.db import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def test_rows_from_before_tenants_move_into_the_default_tenant(db_url: str) -> None:
    """Upgrading a database written by 0001 keeps its rows, owned by the default tenant;
    built-in schemas and specialist jobs become deployment-wide."""
    from alembic import command
    from alembic.config import Config

    from storage.db import MIGRATIONS_DIR

    database = Database(db_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with database.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        now = "2025-01-01 00:00:00"
        conn.execute(text(f"INSERT INTO luts (lut_name, model, version, created_at, updated_at) "
                          f"VALUES ('old', 'gpt2', 1, '{now}', '{now}')"))
        conn.execute(text(f"INSERT INTO json_schemas (name, schema_json, created_at, builtin) "
                          f"VALUES ('Builtin', '{{}}', '{now}', true), ('Mine', '{{}}', '{now}', false)"))
        conn.execute(text(f"INSERT INTO jobs (job_id, kind, state, params, progress, message, created_at, updated_at, "
                          f"cancel_requested) VALUES ('s1', 'specialist_training', 'queued', '{{}}', 0, '', '{now}', "
                          f"'{now}', false), ('a1', 'sae_training', 'queued', '{{}}', 0, '', '{now}', '{now}', false)"))
        conn.commit()
    database.migrate()
    chat = ChatRepository(database)
    assert LutRepository(database).get_lut("default", "old", "gpt2").entry_count == 0
    assert chat.get_schema("alice", "Builtin").builtin  # every tenant sees the built-in one
    assert chat.get_schema("default", "Mine").name == "Mine"
    with pytest.raises(NotFoundError):
        chat.get_schema("alice", "Mine")
    jobs = JobRepository(database)
    assert jobs.get("a1").tenant == "default" and jobs.get("s1").tenant == ""
    database.dispose()


def test_migrations_match_schema_module(db: Database) -> None:
    assert _schema_diff(db, t.Base.metadata) == []


def test_schema_comparison_detects_a_difference(db: Database) -> None:
    # Guards the test above: the comparison must notice a column the migrations lack.
    altered = MetaData()
    for table in t.Base.metadata.tables.values():
        table.to_metadata(altered)
    altered.tables["luts"].append_column(Column("extra", Integer, nullable=True))
    diff = _schema_diff(db, altered)
    assert [(d[0], d[3].name) for d in diff] == [("add_column", "extra")]


def test_session_rolls_back_everything_on_error(db: Database) -> None:
    now = t.utcnow()
    with pytest.raises(RuntimeError):
        with db.session() as s:
            lut = t.Lut(lut_name="half", model="gpt2", version=1, created_at=now, updated_at=now)
            s.add(lut)
            s.flush()
            s.add(
                t.LutEntry(
                    lut_id=lut.id,
                    label="l",
                    payload=b"p",
                    payload_format="raw",
                    size_bytes=1,
                    created_at=now,
                )
            )
            s.flush()
            raise RuntimeError("crash after both rows were written")
    with db.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(t.Lut)) == 0
        assert s.scalar(select(func.count()).select_from(t.LutEntry)) == 0


def test_failed_repository_call_leaves_nothing_half_written(db: Database) -> None:
    luts = LutRepository(db)
    added = luts.add_entry(T, "u", "gpt2", "a", b"a", payload_format="raw")
    # delete_entry bumps the version before finding the entry is missing; the bump must
    # be rolled back with the failed call.
    with pytest.raises(NotFoundError):
        luts.delete_entry(T, "u", "gpt2", added.entry.id + 1000)
    assert luts.get_version(T, "u", "gpt2") == added.version
    assert luts.get_lut(T, "u", "gpt2").entry_count == 1


def test_timestamps_round_trip_as_aware_utc(db: Database) -> None:
    before = datetime.now(timezone.utc)
    luts = LutRepository(db)
    luts.add_entry(T, "u", "gpt2", "a", b"a", payload_format="raw")
    stored = luts.get_lut(T, "u", "gpt2")
    assert stored.created_at.tzinfo == timezone.utc
    assert before - timedelta(seconds=1) <= stored.created_at <= datetime.now(timezone.utc)
    # A non-UTC aware value is stored as the same instant.
    plus_two = timezone(timedelta(hours=2))
    instant = datetime(2024, 5, 1, 14, 0, tzinfo=plus_two)
    with db.session() as s:
        s.add(t.JsonSchema(name="s", schema_json="{}", created_at=instant, builtin=False))
    with db.session(readonly=True) as s:
        stored_at = s.get_one(t.JsonSchema, ("default", "s")).created_at
    assert stored_at == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


def test_naive_datetimes_are_refused(db: Database) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        with db.session() as s:
            naive = datetime(2024, 1, 1)
            s.add(t.JsonSchema(name="n", schema_json="{}", created_at=naive, builtin=False))


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "nested" / "dir"))
    assert (tmp_path / "nested" / "dir").is_dir()
    with db.engine.connect() as conn:
        pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("busy_timeout") == 5000
        assert pragma("foreign_keys") == 1
        assert pragma("synchronous") == 1  # NORMAL
    db.dispose()


def test_sqlite_url_points_into_data_dir(tmp_path: Path) -> None:
    assert sqlite_url(tmp_path) == f"sqlite:///{tmp_path.resolve()}/llmserve.db"


def test_unsupported_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        Database("mysql://localhost/x")


def test_an_unreachable_database_is_unavailable_not_an_internal_error() -> None:
    from storage import UnavailableError

    database = Database("postgresql+psycopg://postgres@127.0.0.1:1/test")  # nothing listens there
    with pytest.raises(UnavailableError):
        LutRepository(database).get_version("t", "lut", "model")
    database.dispose()
