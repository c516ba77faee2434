"""Database handle: engine set-up for SQLite (default) or PostgreSQL, migrations, sessions.

Repositories get a `Database` and open one short transaction per call through `session()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from storage.errors import UnavailableError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

CONNECT_TIMEOUT_S = 3
SQLITE_BUSY_TIMEOUT_MS = 5000
"""How long a SQLite writer waits for the write lock before failing with 'database is locked'."""

_BEGIN_OPTION = "llmserve_sqlite_begin"


def sqlite_url(data_dir: str | Path) -> str:
    """URL of the default SQLite database file inside `data_dir`."""
    return f"sqlite:///{Path(data_dir).resolve() / 'llmserve.db'}"


class Database:
    """One engine plus helpers; safe to share between threads.

    On SQLite every read-write transaction starts with `BEGIN IMMEDIATE`: it takes the
    single write lock up front (waiting up to `busy_timeout`), so two writers never both
    read and then deadlock on upgrading to a write lock, which SQLite would report as
    SQLITE_BUSY without waiting. Read-only sessions use a plain deferred `BEGIN` so readers
    never queue behind writers (WAL lets them read alongside one writer).
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.dialect_name = self.url.get_backend_name()
        if self.dialect_name == "sqlite":
            self.engine = _sqlite_engine(url, echo)
        elif self.dialect_name == "postgresql":
            # pre_ping: drop pooled connections the server closed (restarts, idle timeouts);
            # connect_timeout: while the server is down, calls fail fast instead of hanging.
            self.engine = create_engine(url, echo=echo, pool_pre_ping=True,
                                        connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
        else:
            raise ValueError(f"unsupported database backend {self.dialect_name!r}")
        self._read_engine = self.engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"})

    @property
    def is_sqlite(self) -> bool:
        return self.dialect_name == "sqlite"

    def migrate(self) -> None:
        """Bring the schema to the newest migration (Alembic `upgrade head`); idempotent."""
        # Imported here: Alembic is only needed at start-up, not in every process that reads.
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.connect() as connection:
            # env.py picks this connection up instead of building its own engine.
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            # SQLAlchemy 2 connections autobegin; make sure nothing is left uncommitted.
            connection.commit()

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed on normal exit, rolled back on error.

        `readonly=True` only changes how SQLite begins the transaction (see class doc);
        writing in such a session may fail with 'database is locked' under contention.
        """
        bind = self._read_engine if readonly else self.engine
        try:
            with Session(bind, expire_on_commit=False) as session, session.begin():
                yield session
        except (OperationalError, InterfaceError) as exc:
            # Lost connection, server restarting, SQLite still locked after busy_timeout:
            # the caller can retry, so say UNAVAILABLE rather than INTERNAL.
            raise UnavailableError() from exc

    def insert(self, table: Any) -> Any:
        """The dialect's INSERT construct, which offers `on_conflict_do_nothing/update`."""
        # Imported here: a server on SQLite never loads the PostgreSQL dialect, nor the reverse.
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        return insert(table)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _sqlite_engine(url: str, echo: bool) -> Engine:
    path = make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Turn off pysqlite's own transaction handling: it issues a deferred BEGIN lazily before
    # the first write, which defeats BEGIN IMMEDIATE; `_on_sqlite_begin` issues BEGIN instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",  # readers do not block the writer and vice versa
        f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        "foreign_keys=ON",  # off by default in SQLite; needed for ON DELETE CASCADE
        "synchronous=NORMAL",  # durable at checkpoints; safe with WAL, much faster than FULL
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _on_sqlite_begin(connection: Any) -> None:
    mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
    connection.exec_driver_sql(f"BEGIN {mode}")

