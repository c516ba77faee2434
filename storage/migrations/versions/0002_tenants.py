"""Tenants: a tenant column on every tenant-owned table, tenants with their quotas, API keys.

Existing rows move into the default tenant; built-in JSON schemas and specialist training
jobs are deployment-wide (the shared tenant, '').

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_JSON = sa.JSON(none_as_null=True)


def _tenant() -> sa.Column:
    return sa.Column("tenant", sa.String(64), nullable=False, server_default="default")


def upgrade() -> None:
    with op.batch_alter_table("luts", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(_tenant())
        batch.drop_constraint("uq_luts_lut_name_model", type_="unique")
        batch.create_unique_constraint("uq_luts_tenant_lut_name_model", ["tenant", "lut_name", "model"])

    with op.batch_alter_table("chat_sessions") as batch:
        batch.add_column(_tenant())
        batch.drop_index("ix_chat_sessions_user_id_created_at")
        batch.create_index("ix_chat_sessions_tenant_user_id_created_at", ["tenant", "user_id", "created_at"])

    with op.batch_alter_table("json_schemas", recreate="always") as batch:
        batch.add_column(_tenant())
        batch.drop_constraint("pk_json_schemas", type_="primary")
        batch.create_primary_key("pk_json_schemas", ["tenant", "name"])
    op.execute(sa.text("UPDATE json_schemas SET tenant = '' WHERE builtin"))

    with op.batch_alter_table("jobs") as batch:
        batch.add_column(_tenant())
        batch.create_index("ix_jobs_tenant_kind_created_at", ["tenant", "kind", "created_at"])
    op.execute(sa.text("UPDATE jobs SET tenant = '' WHERE kind = 'specialist_training'"))

    op.create_table(
        "tenants",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("quotas", _JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_tenants"),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
    )
    op.create_index("ix_api_keys_tenant_created_at", "api_keys", ["tenant", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_tenant_created_at", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("tenants")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_tenant_kind_created_at")
        batch.drop_column("tenant")
    with op.batch_alter_table("json_schemas", recreate="always") as batch:
        batch.drop_constraint("pk_json_schemas", type_="primary")
        batch.create_primary_key("pk_json_schemas", ["name"])
        batch.drop_column("tenant")
    with op.batch_alter_table("chat_sessions") as batch:
        batch.drop_index("ix_chat_sessions_tenant_user_id_created_at")
        batch.create_index("ix_chat_sessions_user_id_created_at", ["user_id", "created_at"])
        batch.drop_column("tenant")
    with op.batch_alter_table("luts", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_constraint("uq_luts_tenant_lut_name_model", type_="unique")
        batch.create_unique_constraint("uq_luts_lut_name_model", ["lut_name", "model"])
        batch.drop_column("tenant")
