"""Initial schema: LUTs, chat sessions and messages, JSON schemas, jobs, specialists.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written by hand to match storage/schema.py; tests compare the two with autogenerate.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_JSON = sa.JSON(none_as_null=True)


def upgrade() -> None:
    op.create_table(
        "luts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("lut_name", sa.String(255), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_luts"),
        sa.UniqueConstraint("lut_name", "model", name="uq_luts_lut_name_model"),
        sa.CheckConstraint("version >= 1", name="ck_luts_version_positive"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "lut_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("lut_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("label_context", sa.Text(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("payload_format", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lut_entries"),
        sa.ForeignKeyConstraint(
            ["lut_id"], ["luts.id"], name="fk_lut_entries_lut_id_luts", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_lut_entries_lut_id", "lut_entries", ["lut_id"])

    op.create_table(
        "chat_sessions",
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_active", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("session_id", name="pk_chat_sessions"),
        sa.CheckConstraint("status IN ('active', 'ended')", name="ck_chat_sessions_status"),
    )
    op.create_index(
        "ix_chat_sessions_user_id_created_at", "chat_sessions", ["user_id", "created_at"]
    )
    op.create_table(
        "chat_messages",
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_json", sa.Text(), nullable=True),
        sa.Column("timestamp", _TS, nullable=False),
        sa.PrimaryKeyConstraint("message_id", name="pk_chat_messages"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["chat_sessions.session_id"],
            name="fk_chat_messages_session_id_chat_sessions",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("session_id", "seq", name="uq_chat_messages_session_id_seq"),
        sa.CheckConstraint(
            "sender IN ('user', 'assistant', 'system')", name="ck_chat_messages_sender"
        ),
    )
    op.create_table(
        "json_schemas",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("schema_json", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_json_schemas"),
    )

    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("device", sa.String(64), nullable=True),
        sa.Column("params", _JSON, nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("result", _JSON, nullable=True),
        sa.Column("details", _JSON, nullable=True),
        sa.Column("checkpoint_path", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("completed_at", _TS, nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_jobs"),
        sa.CheckConstraint("kind IN ('sae_training', 'specialist_training')", name="ck_jobs_kind"),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'completed', 'failed', 'cancelled')",
            name="ck_jobs_state",
        ),
    )
    op.create_index("ix_jobs_kind_state_created_at", "jobs", ["kind", "state", "created_at"])

    op.create_table(
        "specialists",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("corpus_bytes", sa.BigInteger(), nullable=False),
        sa.Column("corpus_files", sa.Integer(), nullable=False),
        sa.Column("weights_path", sa.Text(), nullable=True),
        sa.Column("metrics", _JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_specialists"),
        sa.CheckConstraint(
            "status IN ('pending', 'training', 'ready', 'failed')", name="ck_specialists_status"
        ),
    )


def downgrade() -> None:
    op.drop_table("specialists")
    op.drop_index("ix_jobs_kind_state_created_at", table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("json_schemas")
    op.drop_table("chat_messages")
    op.drop_index("ix_chat_sessions_user_id_created_at", table_name="chat_sessions")
    op.drop_table("chat_sessions")
    op.drop_index("ix_lut_entries_lut_id", table_name="lut_entries")
    op.drop_table("lut_entries")
    op.drop_table("luts")
