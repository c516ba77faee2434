"""API keys: `llms_<key id>_<secret>`. Only a SHA-256 of the secret is stored (the secret
is 32 random bytes, so a fast hash is enough); the whole key is shown once, at creation.
Every check reads the key's row, so a revocation holds from the next request on, on every
server that shares the database."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass

from domain.tenancy.store import ApiKeyRecord, Page, TenantStore
from models.errors import InvalidArgument

log = logging.getLogger(__name__)

PREFIX = "llms"
TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KEY_RE = re.compile(rf"^{PREFIX}_([0-9a-f]{{16}})_([A-Za-z0-9_-]{{20,100}})$")


def check_tenant(name: str, field: str = "tenant") -> str:
    if not TENANT_RE.match(name or ""):
        raise InvalidArgument(field, "must be 1 to 64 characters from [A-Za-z0-9_.-], starting with a letter or digit")
    return name


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    record: ApiKeyRecord
    key: str
    """The whole key: shown to the creator once, never stored."""


class ApiKeys:
    def __init__(self, store: TenantStore) -> None:
        self._store = store

    async def create(self, tenant: str, description: str = "") -> NewKey:
        check_tenant(tenant)
        if len(description) > 256:
            raise InvalidArgument("description", "must be at most 256 characters")
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        record = await asyncio.to_thread(self._store.create_key, key_id, tenant, _hash(secret), description)
        log.info("api key created", extra={"audit": "api_key.create", "tenant": tenant, "key_id": key_id})
        return NewKey(record, f"{PREFIX}_{key_id}_{secret}")

    async def verify(self, key: str) -> ApiKeyRecord | None:
        """The key's record when `key` is a live key; None for a malformed, unknown or revoked
        one (callers answer all three the same way)."""
        match = _KEY_RE.match(key or "")
        if match is None:
            return None
        record = await asyncio.to_thread(self._store.get_key, match.group(1))
        if record is None or record.revoked or not hmac.compare_digest(record.secret_hash, _hash(match.group(2))):
            return None
        return record

    async def list(self, tenant: str | None, page_size: int, page_token: str) -> Page[ApiKeyRecord]:
        if tenant:
            check_tenant(tenant)
        return await asyncio.to_thread(self._store.list_keys, tenant=tenant or None, page_size=page_size,
                                       page_token=page_token)

    async def revoke(self, key_id: str) -> ApiKeyRecord:
        if not re.fullmatch(r"[0-9a-f]{16}", key_id or ""):
            raise InvalidArgument("key_id", "must be the 16-character id returned when the key was created")
        record = await asyncio.to_thread(self._store.revoke_key, key_id)
        log.info("api key revoked", extra={"audit": "api_key.revoke", "tenant": record.tenant, "key_id": key_id})
        return record
