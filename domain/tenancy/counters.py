"""Rate and concurrency counters per tenant: in this process, or in Redis so the limits
hold across every replica that shares it.

Rates use a sliding window of one minute approximated by two fixed buckets (the previous
bucket weighted by how much of it still overlaps the window): O(1) state, and no burst of
twice the limit at a bucket boundary."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Protocol

log = logging.getLogger(__name__)

WINDOW_S = 60.0
STREAM_TTL_S = 900
"""A concurrency count left behind by a replica that died mid-stream clears after this long
without any change for that tenant."""


class Counters(Protocol):
    async def rate(self, key: str, now: float) -> float:
        """Events of `key` in the sliding minute ending at `now`."""

    async def add(self, key: str, amount: float, now: float) -> None: ...

    async def acquire(self, key: str, limit: int) -> bool:
        """Take one of `limit` concurrent slots; False when all are taken."""

    async def release(self, key: str) -> None: ...


def _bucket(now: float) -> tuple[int, float]:
    """The current bucket and the share of the previous one still inside the window."""
    bucket = int(now // WINDOW_S)
    return bucket, 1.0 - (now - bucket * WINDOW_S) / WINDOW_S


class MemoryCounters:
    def __init__(self) -> None:
        self._buckets: dict[tuple[str, int], float] = defaultdict(float)
        self._slots: dict[str, int] = defaultdict(int)

    async def rate(self, key: str, now: float) -> float:
        bucket, prev_share = _bucket(now)
        return self._buckets[(key, bucket)] + prev_share * self._buckets[(key, bucket - 1)]

    async def add(self, key: str, amount: float, now: float) -> None:
        bucket, _ = _bucket(now)
        self._buckets[(key, bucket)] += amount
        for stale in [k for k in self._buckets if k[1] < bucket - 1]:
            del self._buckets[stale]

    async def acquire(self, key: str, limit: int) -> bool:
        if self._slots[key] >= limit:
            return False
        self._slots[key] += 1
        return True

    async def release(self, key: str) -> None:
        self._slots[key] = max(0, self._slots[key] - 1)


class RedisCounters:
    """The same counters in Redis. If Redis cannot be reached, the limits fall back to this
    process's own counts (logged once per outage) rather than failing every request."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._local = MemoryCounters()
        self._down_since: float | None = None

    def _failed(self, exc: Exception) -> None:
        if self._down_since is None:
            log.warning("redis unreachable for quota counters (%s); using per-process counts", type(exc).__name__)
            self._down_since = time.monotonic()

    def _ok(self) -> None:
        if self._down_since is not None:
            log.info("redis reachable again for quota counters")
            self._down_since = None

    async def rate(self, key: str, now: float) -> float:
        bucket, prev_share = _bucket(now)
        try:
            cur, prev = await self._redis.mget(f"llmserve:rate:{key}:{bucket}", f"llmserve:rate:{key}:{bucket - 1}")
        except Exception as exc:  # noqa: BLE001 - any Redis failure: count locally
            self._failed(exc)
            return await self._local.rate(key, now)
        self._ok()
        return float(cur or 0) + prev_share * float(prev or 0)

    async def add(self, key: str, amount: float, now: float) -> None:
        bucket, _ = _bucket(now)
        name = f"llmserve:rate:{key}:{bucket}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                await pipe.incrbyfloat(name, amount).expire(name, int(3 * WINDOW_S)).execute()
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)
            await self._local.add(key, amount, now)
            return
        self._ok()

    async def acquire(self, key: str, limit: int) -> bool:
        name = f"llmserve:streams:{key}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                count, _ = await pipe.incr(name).expire(name, STREAM_TTL_S).execute()
            if count > limit:
                await self._redis.decr(name)
                return False
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)
            return await self._local.acquire(key, limit)
        self._ok()
        return True

    async def release(self, key: str) -> None:
        try:
            await self._redis.decr(f"llmserve:streams:{key}")
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)
            await self._local.release(key)

    async def close(self) -> None:
        await self._redis.aclose()


async def close(counters: Counters) -> None:
    closer = getattr(counters, "close", None)
    if closer is not None:
        await asyncio.shield(closer())
