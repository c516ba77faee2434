"""Table definitions (SQLAlchemy 2 typed declarative) shared by SQLite and PostgreSQL.

`migrations/versions/*.py` are written by hand to match this file; a test compares the two
with Alembic autogenerate on both databases. Enum-like columns are plain strings guarded by
CHECK constraints rather than native enums, so adding a value never needs a PG type migration.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so migrations can name them and later ones can drop them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NAME_LEN = 255
"""Length of name-like columns (LUT names, models, user ids, job ids)."""
TENANT_LEN = 64
"""Length of tenant names."""
DEFAULT_TENANT = "default"
"""Owner of rows written before tenants existed (and of every row when auth is off)."""
SHARED_TENANT = ""
"""Owner of deployment-wide rows: built-in JSON schemas, specialist training jobs."""


def _tenant_column() -> Mapped[str]:
    return mapped_column(String(TENANT_LEN), server_default=DEFAULT_TENANT)


def utcnow() -> datetime:
    """Current time as a timezone-aware UTC datetime."""
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases.

    SQLite has no timezone type and hands back naive values; storing UTC and re-attaching
    the zone on read keeps records identical whichever database is behind them.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; storage only accepts timezone-aware values")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # none_as_null: a Python None is stored as SQL NULL, not the JSON text 'null'.
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON(none_as_null=True)}


class Lut(Base):
    """One lookup table, keyed by (lut_name, model); `version` changes on every edit so
    readers can tell cheaply whether a cached copy is stale."""

    __tablename__ = "luts"
    __table_args__ = (
        UniqueConstraint("tenant", "lut_name", "model"),
        CheckConstraint("version >= 1", name="version_positive"),
        # AUTOINCREMENT stops SQLite reusing the id of a deleted LUT, which keeps
        # (id, version) unique over a name's whole history.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = _tenant_column()
    lut_name: Mapped[str] = mapped_column(String(NAME_LEN))
    model: Mapped[str] = mapped_column(String(NAME_LEN))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class LutEntry(Base):
    """One learned entry of a LUT; `payload` holds the serialized key/value tensors."""

    __tablename__ = "lut_entries"
    __table_args__ = (Index(None, "lut_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lut_id: Mapped[int] = mapped_column(ForeignKey("luts.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(Text)
    label_context: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_format: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]


class ChatSession(Base):
    __tablename__ = "chat_sessions"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'ended')", name="status"),
        Index(None, "tenant", "user_id", "created_at"),
    )

    session_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = _tenant_column()
    user_id: Mapped[str] = mapped_column(String(NAME_LEN))
    model: Mapped[str] = mapped_column(String(NAME_LEN))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    last_active: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class ChatMessage(Base):
    """One message; `seq` orders a session's messages (1, 2, 3, ... without gaps)."""

    __tablename__ = "chat_messages"
    __table_args__ = (
        UniqueConstraint("session_id", "seq"),
        CheckConstraint("sender IN ('user', 'assistant', 'system')", name="sender"),
    )

    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("chat_sessions.session_id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    content_json: Mapped[str | None] = mapped_column(Text)
    timestamp: Mapped[datetime]


class JsonSchema(Base):
    """A named JSON schema that constrained generation can refer to."""

    __tablename__ = "json_schemas"

    tenant: Mapped[str] = mapped_column(String(TENANT_LEN), primary_key=True, server_default=DEFAULT_TENANT)
    """The owner; built-in schemas belong to SHARED_TENANT and every tenant sees them."""
    name: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True)
    schema_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    builtin: Mapped[bool] = mapped_column(Boolean)


class Job(Base):
    """A long-running training job (SAE or specialist)."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("kind IN ('sae_training', 'specialist_training')", name="kind"),
        CheckConstraint(
            "state IN ('queued', 'running', 'completed', 'failed', 'cancelled')", name="state"
        ),
        # Serves claim_next (oldest queued of a kind) and list(kind).
        Index(None, "kind", "state", "created_at"),
        Index(None, "tenant", "kind", "created_at"),
    )

    job_id: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True)
    tenant: Mapped[str] = _tenant_column()
    """Who created it; specialist training jobs belong to SHARED_TENANT."""
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    device: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any]]
    progress: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]
    details: Mapped[dict[str, Any] | None]
    """Live statistics of a running job (epoch, loss, tokens...), kept after it ends."""
    checkpoint_path: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(Boolean)
    owner: Mapped[str | None] = mapped_column(String(NAME_LEN))
    """The replica that holds the job while it runs; None when no one does."""
    lease_expires_at: Mapped[datetime | None]
    """When the owner's claim lapses unless its heartbeat renews it; then another replica
    may requeue the job and resume it from its last checkpoint."""
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    """How many times the job has been claimed (1 for a job that ran once, uninterrupted)."""


class Specialist(Base):
    __tablename__ = "specialists"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'training', 'ready', 'failed')", name="status"),
    )

    name: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True)
    model: Mapped[str] = mapped_column(String(NAME_LEN))
    status: Mapped[str] = mapped_column(String(16))
    corpus_bytes: Mapped[int] = mapped_column(BigInteger)
    corpus_files: Mapped[int] = mapped_column(Integer)
    weights_path: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Tenant(Base):
    """A tenant with quotas of its own (tenants without a row use the configured defaults)."""

    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(TENANT_LEN), primary_key=True)
    quotas: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ApiKey(Base):
    """An API key: only the hash of its secret is kept; the key itself is shown once."""

    __tablename__ = "api_keys"
    __table_args__ = (Index(None, "tenant", "created_at"),)

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(TENANT_LEN))
    secret_hash: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


ARTIFACT_KEY_LEN = 512
"""Length of artifact keys (slash-separated paths such as `sae/jobs/<id>/sae.pt`)."""


class Artifact(Base):
    """A named file shared by every replica (corpora, checkpoints, weights): its bytes are
    the chunks of `blob_id`. A rewrite stores a new blob and swaps the id in one
    transaction, so readers see the old file or the new one, never a mix."""

    __tablename__ = "artifacts"

    tenant: Mapped[str] = mapped_column(String(TENANT_LEN), primary_key=True)
    key: Mapped[str] = mapped_column(String(ARTIFACT_KEY_LEN), primary_key=True)
    blob_id: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ArtifactChunk(Base):
    """One piece of a blob, in order of `seq`; a blob no artifact names is a write in
    progress or left by a crash, and is swept once old."""

    __tablename__ = "artifact_chunks"
    __table_args__ = (Index(None, "created_at"),)

    blob_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
