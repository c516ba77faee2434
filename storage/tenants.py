"""Tenants and their API keys: a key is stored as the hash of its secret (the secret
itself is shown once, at creation), so a read of this table reveals no usable key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from storage import schema as t
from storage.db import Database
from storage.errors import AlreadyExistsError, NotFoundError, check_name
from storage.pagination import Page, after_key, clamp_page_size, decode_token, make_page
from storage.schema import TENANT_LEN, utcnow


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    tenant: str
    secret_hash: str
    description: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class TenantRecord:
    name: str
    quotas: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def _key(row: t.ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(row.key_id, row.tenant, row.secret_hash, row.description, row.created_at, row.revoked_at)


class TenantRepository:
    """Reads and writes API keys and per-tenant quotas; one transaction per call."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create_key(self, key_id: str, tenant: str, secret_hash: str, description: str = "") -> ApiKeyRecord:
        check_name("tenant", tenant, TENANT_LEN)
        check_name("key_id", key_id, 32)
        record = ApiKeyRecord(key_id, tenant, secret_hash, description, utcnow(), None)
        stmt = self._db.insert(t.ApiKey).values(vars(record)).on_conflict_do_nothing().returning(t.ApiKey.key_id)
        with self._db.session() as s:
            if s.execute(stmt).first() is None:
                raise AlreadyExistsError("api_key", key_id)
        return record

    def get_key(self, key_id: str) -> ApiKeyRecord | None:
        with self._db.session(readonly=True) as s:
            row = s.get(t.ApiKey, key_id)
            return _key(row) if row is not None else None

    def list_keys(self, *, tenant: str | None = None, page_size: int = 0, page_token: str = "") -> Page[ApiKeyRecord]:
        """Keys newest first, of one tenant or all."""
        size = clamp_page_size(page_size)
        scope = f"keys:{tenant if tenant is not None else '*'}"
        key = decode_token(page_token, scope, (datetime, str))
        order = (t.ApiKey.created_at, t.ApiKey.key_id)
        stmt = select(t.ApiKey).order_by(*(c.desc() for c in order)).limit(size + 1)
        if tenant is not None:
            stmt = stmt.where(t.ApiKey.tenant == tenant)
        if key is not None:
            stmt = stmt.where(after_key(order, key, descending=True))
        with self._db.session(readonly=True) as s:
            rows = [_key(r) for r in s.scalars(stmt)]
        return make_page(rows, size, scope, lambda r: (r.created_at, r.key_id))

    def revoke_key(self, key_id: str) -> ApiKeyRecord:
        """Revoke a key (idempotent: a revoked key keeps its first revocation time)."""
        with self._db.session() as s:
            s.execute(update(t.ApiKey).where(t.ApiKey.key_id == key_id, t.ApiKey.revoked_at.is_(None))
                      .values(revoked_at=utcnow()))
            row = s.get(t.ApiKey, key_id, populate_existing=True)
            if row is None:
                raise NotFoundError("api_key", key_id)
            return _key(row)

    def get_tenant(self, name: str) -> TenantRecord | None:
        with self._db.session(readonly=True) as s:
            row = s.get(t.Tenant, name)
            return TenantRecord(row.name, dict(row.quotas), row.created_at, row.updated_at) if row else None

    def set_quotas(self, name: str, quotas: dict[str, Any]) -> TenantRecord:
        """Create the tenant or replace its quotas."""
        check_name("tenant", name, TENANT_LEN)
        now = utcnow()
        stmt = (self._db.insert(t.Tenant).values(name=name, quotas=quotas, created_at=now, updated_at=now)
                .on_conflict_do_update(index_elements=[t.Tenant.name], set_={"quotas": quotas, "updated_at": now}))
        with self._db.session() as s:
            s.execute(stmt)
            row = s.get_one(t.Tenant, name, populate_existing=True)
            return TenantRecord(row.name, dict(row.quotas), row.created_at, row.updated_at)
