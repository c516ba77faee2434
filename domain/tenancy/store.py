"""What tenancy needs from storage (`storage.tenants.TenantRepository` implements it)."""

from __future__ import annotations

from typing import Any, Protocol

from storage.pagination import Page
from storage.tenants import ApiKeyRecord, TenantRecord

__all__ = ["ApiKeyRecord", "Page", "TenantRecord", "TenantStore"]


class TenantStore(Protocol):
    def create_key(self, key_id: str, tenant: str, secret_hash: str, description: str = "") -> ApiKeyRecord: ...
    def get_key(self, key_id: str) -> ApiKeyRecord | None: ...
    def list_keys(self, *, tenant: str | None = None, page_size: int = 0,
                  page_token: str = "") -> Page[ApiKeyRecord]: ...
    def revoke_key(self, key_id: str) -> ApiKeyRecord: ...
    def get_tenant(self, name: str) -> TenantRecord | None: ...
    def set_quotas(self, name: str, quotas: dict[str, Any]) -> TenantRecord: ...
