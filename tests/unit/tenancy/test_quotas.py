"""Quota arithmetic on a fake clock, in this process and in the real Redis: sliding-window
rates, the token budget, concurrent generations, storage quotas."""

from __future__ import annotations

import uuid

import pytest

from domain.tenancy.config import QuotaLimits
from domain.tenancy.counters import MemoryCounters, RedisCounters
from domain.tenancy.quotas import Quotas
from models.errors import InvalidArgument, ResourceExhausted
from storage.tenants import TenantRecord


class Store:
    """Tenants' own limits, as the repository would return them."""

    def __init__(self, quotas: dict[str, dict]) -> None:
        self.quotas = quotas

    def get_tenant(self, name: str):
        q = self.quotas.get(name)
        return TenantRecord(name, q, None, None) if q is not None else None

    def set_quotas(self, name: str, quotas: dict) -> None:
        self.quotas[name] = quotas


class Clock:
    def __init__(self, now: float = 6_000_000.0) -> None:  # a bucket boundary
        self.now = now

    def __call__(self) -> float:
        return self.now


def _counters(kind: str):
    if kind == "memory":
        return MemoryCounters()
    return RedisCounters("redis://127.0.0.1:6379/0")


KINDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.mark.parametrize("kind", KINDS)
async def test_request_rate_slides_over_the_minute(kind):
    clock, tenant = Clock(), f"t-{uuid.uuid4().hex[:8]}"
    quotas = Quotas(Store({tenant: {"requests_per_minute": 4}}), QuotaLimits(), _counters(kind), clock)
    for _ in range(4):
        await quotas.admit_request(tenant)
    with pytest.raises(ResourceExhausted) as err:
        await quotas.admit_request(tenant)
    assert err.value.subject == "requests_per_minute" and 1 <= err.value.retry_after_s <= 60
    clock.now += 105  # 3/4 into the next minute: a quarter of the old 4 still counts
    for _ in range(3):
        await quotas.admit_request(tenant)
    with pytest.raises(ResourceExhausted):
        await quotas.admit_request(tenant)
    clock.now += 60
    await quotas.admit_request(tenant)
    assert (await Quotas(Store({}), QuotaLimits(), _counters(kind), clock).limits("other")).requests_per_minute == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_token_budget_refuses_new_generations_once_spent(kind):
    clock, tenant = Clock(), f"t-{uuid.uuid4().hex[:8]}"
    quotas = Quotas(Store({}), QuotaLimits(generated_tokens_per_minute=100), _counters(kind), clock)
    await quotas.check_tokens(tenant)
    await quotas.charge_tokens(tenant, 99)
    await quotas.check_tokens(tenant)  # 99 of 100 spent: one more generation may start
    await quotas.charge_tokens(tenant, 30)  # ... and may overshoot; the next one waits
    with pytest.raises(ResourceExhausted) as err:
        await quotas.check_tokens(tenant)
    assert err.value.subject == "generated_tokens_per_minute"
    clock.now += 120
    await quotas.check_tokens(tenant)


@pytest.mark.parametrize("kind", KINDS)
async def test_concurrent_generations_are_capped_and_released(kind):
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    quotas = Quotas(Store({tenant: {"concurrent_streams": 2}}), QuotaLimits(), _counters(kind), Clock())
    assert await quotas.open_stream(tenant) and await quotas.open_stream(tenant)
    with pytest.raises(ResourceExhausted) as err:
        await quotas.open_stream(tenant)
    assert err.value.subject == "concurrent_streams"
    await quotas.close_stream(tenant)
    assert await quotas.open_stream(tenant)
    assert await Quotas(Store({}), QuotaLimits(), MemoryCounters()).open_stream(tenant) is False  # unlimited


async def test_storage_quotas_and_validation_of_limits():
    store = Store({})
    quotas = Quotas(store, QuotaLimits(lut_entries=10), MemoryCounters(), Clock())
    await quotas.check_stored("a", "lut_entries", 9, 1)
    with pytest.raises(ResourceExhausted):
        await quotas.check_stored("a", "lut_entries", 9, 2)
    set_ = await quotas.set_limits("a", {"lut_entries": 20})
    assert set_.lut_entries == 20 and store.quotas["a"] == {"lut_entries": 20}
    await quotas.check_stored("a", "lut_entries", 19, 1)  # the change is seen at once on this server
    with pytest.raises(InvalidArgument) as err:
        await quotas.set_limits("a", {"lut_entrees": 1})
    assert err.value.field == "quotas.lut_entrees"
    with pytest.raises(InvalidArgument):
        await quotas.set_limits("a", {"lut_entries": -1})
    with pytest.raises(InvalidArgument):
        await quotas.set_limits("bad tenant!", {})


async def test_counters_fall_back_to_this_process_when_redis_is_down():
    counters = RedisCounters("redis://127.0.0.1:1/0")  # nothing listens there
    quotas = Quotas(Store({"t": {"requests_per_minute": 1}}), QuotaLimits(), counters, Clock())
    await quotas.admit_request("t")
    with pytest.raises(ResourceExhausted):
        await quotas.admit_request("t")
