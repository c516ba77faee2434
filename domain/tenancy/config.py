"""Typed settings of tenancy: authentication mode and the default quotas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from domain.secret import Secret

DEFAULT_TENANT = "default"
"""The one tenant of `auth.mode = "off"`, and the owner of data written before tenants existed."""


@dataclass(frozen=True)
class QuotaLimits:
    """Per-tenant limits; 0 means unlimited. An admin may set other limits per tenant."""

    requests_per_minute: int = 0
    """Authenticated calls per rolling minute."""
    generated_tokens_per_minute: int = 0
    """Completion tokens generated per rolling minute (checked before a generation starts,
    counted when it ends)."""
    concurrent_streams: int = 0
    """Generations (unary or streaming) running at once."""
    lut_entries: int = 0
    """LUT entries stored, over all of the tenant's LUTs."""
    corpus_bytes: int = 0
    """Bytes of uploaded SAE corpora stored."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 0:
                raise ValueError(f"quota {name} must be >= 0 (0 is unlimited), got {value}")


@dataclass(frozen=True)
class AuthConfig:
    """Who may call: `mode = "off"` serves one implicit tenant (a single-user machine);
    `mode = "api_key"` needs a key on every call but health, reflection and `GET /`."""

    mode: Literal["off", "api_key"] = "off"
    """"off" or "api_key"."""
    admin_key: Secret = Secret()
    """The administrator's key (AdminService, adding or deleting specialists); required in
    api_key mode. Set it through the environment: LLMSERVE_AUTH__ADMIN_KEY."""
    metrics_public: bool = True
    """Whether GET /metrics answers without a key in api_key mode."""
    quotas: QuotaLimits = QuotaLimits()
    """Limits of tenants that have none of their own."""
