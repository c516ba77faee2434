"""Per-tenant quotas: the limits (a tenant's own, else the configured defaults) and their
enforcement. Over a limit: ResourceExhausted naming the quota, with the seconds after which
a retry can succeed (gRPC RetryInfo, HTTP 429 with Retry-After)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable

from domain.tenancy.config import QuotaLimits
from domain.tenancy.counters import WINDOW_S, Counters
from domain.tenancy.keys import check_tenant
from domain.tenancy.store import TenantStore
from models.errors import InvalidArgument, ResourceExhausted

log = logging.getLogger(__name__)

LIMITS_TTL_S = 2.0
"""How long a tenant's limits are reused before the database is read again."""


class Quotas:
    def __init__(self, store: TenantStore, defaults: QuotaLimits, counters: Counters,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._defaults = defaults
        self._counters = counters
        self._clock = clock
        self._limits: dict[str, tuple[float, QuotaLimits]] = {}

    async def limits(self, tenant: str) -> QuotaLimits:
        now = time.monotonic()
        cached = self._limits.get(tenant)
        if cached is not None and now - cached[0] < LIMITS_TTL_S:
            return cached[1]
        record = await asyncio.to_thread(self._store.get_tenant, tenant)
        limits = dataclasses.replace(self._defaults, **record.quotas) if record else self._defaults
        self._limits[tenant] = (now, limits)
        return limits

    async def set_limits(self, tenant: str, values: dict[str, int]) -> QuotaLimits:
        """Replace a tenant's own limits (unnamed quotas take the defaults)."""
        check_tenant(tenant)
        known = {f.name for f in dataclasses.fields(QuotaLimits)}
        for name, value in values.items():
            if name not in known:
                raise InvalidArgument(f"quotas.{name}", f"is not a quota; quotas: {sorted(known)}")
            if value < 0:
                raise InvalidArgument(f"quotas.{name}", "must be >= 0 (0 is unlimited)")
        await asyncio.to_thread(self._store.set_quotas, tenant, dict(values))
        self._limits.pop(tenant, None)
        log.info("quotas set", extra={"audit": "tenant.quotas", "tenant": tenant, "quotas": values})
        return dataclasses.replace(self._defaults, **values)

    def _retry_after(self) -> float:
        return max(1.0, math.ceil(WINDOW_S - self._clock() % WINDOW_S))

    async def _over_rate(self, tenant: str, name: str, limit: int, adding: float) -> None:
        if limit and await self._counters.rate(f"{tenant}:{name}", self._clock()) + adding > limit:
            raise ResourceExhausted(f"tenant '{tenant}' is over its {name} quota ({limit})", self._retry_after(),
                                    subject=name)

    async def admit_request(self, tenant: str) -> None:
        """Count one call, or refuse it when the tenant's request rate is used up."""
        await self._over_rate(tenant, "requests_per_minute", (await self.limits(tenant)).requests_per_minute, 1)
        await self._counters.add(f"{tenant}:requests_per_minute", 1, self._clock())

    async def check_tokens(self, tenant: str) -> None:
        """Refuse a generation while the tenant's generated-token budget is used up."""
        limits = await self.limits(tenant)
        await self._over_rate(tenant, "generated_tokens_per_minute", limits.generated_tokens_per_minute, 0.5)

    async def charge_tokens(self, tenant: str, tokens: int) -> None:
        if tokens > 0:
            await self._counters.add(f"{tenant}:generated_tokens_per_minute", tokens, self._clock())

    async def open_stream(self, tenant: str) -> bool:
        """Take one of the tenant's concurrent-generation slots (True: release it later)."""
        limit = (await self.limits(tenant)).concurrent_streams
        if not limit:
            return False
        if not await self._counters.acquire(f"{tenant}:streams", limit):
            raise ResourceExhausted(f"tenant '{tenant}' already runs {limit} generations (concurrent_streams quota)",
                                    1.0, subject="concurrent_streams")
        return True

    async def close_stream(self, tenant: str) -> None:
        await self._counters.release(f"{tenant}:streams")

    async def check_stored(self, tenant: str, name: str, current: int, adding: int) -> None:
        """Refuse a write that would take a storage quota (lut_entries, corpus_bytes) over."""
        limit = getattr(await self.limits(tenant), name)
        if limit and current + adding > limit:
            raise ResourceExhausted(f"tenant '{tenant}' would hold {current + adding} of its {limit} {name}",
                                    0.0, subject=name)
