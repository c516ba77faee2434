"""Optional Redis cache of hot session state (a session's message history).

The database stays the source of truth. An entry is stamped with the session's
`last_active` at the time it was written; every message append moves `last_active`, so a
reader that compares the stamp with the session row it has just read never uses a stale
history, even when another server replica appended to the session. Redis failures are
logged and treated as misses: the service works the same without Redis.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Protocol

from domain.chat.store import ChatMessageRecord, Sender

log = logging.getLogger(__name__)

KEY_PREFIX = "llmserve:chat:history:"


class HistoryCache(Protocol):
    async def get(self, session_id: str, stamp: datetime) -> list[ChatMessageRecord] | None: ...
    async def put(self, session_id: str, stamp: datetime, messages: list[ChatMessageRecord]) -> None: ...
    async def drop(self, session_id: str) -> None: ...
    async def close(self) -> None: ...


class NoCache:
    """The cache when Redis is not configured: always a miss."""

    async def get(self, session_id: str, stamp: datetime) -> list[ChatMessageRecord] | None:
        return None

    async def put(self, session_id: str, stamp: datetime, messages: list[ChatMessageRecord]) -> None:
        return None

    async def drop(self, session_id: str) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisHistoryCache:
    """History per session as one JSON value with a sliding TTL."""

    def __init__(self, url: str, ttl_s: int) -> None:
        import redis.asyncio as aioredis  # only imported when configured

        # Short timeouts: a slow or dead Redis must degrade to the database, not stall calls.
        self._redis = aioredis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._ttl = ttl_s
        self.hits = 0
        self.misses = 0

    async def get(self, session_id: str, stamp: datetime) -> list[ChatMessageRecord] | None:
        try:
            raw = await self._redis.get(KEY_PREFIX + session_id)
        except Exception as exc:  # noqa: BLE001 - any Redis failure is a miss
            log.warning("redis get failed: %s", exc)
            return None
        if raw is not None:
            entry = json.loads(raw)
            if entry["stamp"] == stamp.isoformat():
                self.hits += 1
                return [_decode(m) for m in entry["messages"]]
        self.misses += 1
        return None

    async def put(self, session_id: str, stamp: datetime, messages: list[ChatMessageRecord]) -> None:
        entry = {"stamp": stamp.isoformat(), "messages": [_encode(m) for m in messages]}
        try:
            await self._redis.set(KEY_PREFIX + session_id, json.dumps(entry), ex=self._ttl)
        except Exception as exc:  # noqa: BLE001
            log.warning("redis set failed: %s", exc)

    async def drop(self, session_id: str) -> None:
        try:
            await self._redis.delete(KEY_PREFIX + session_id)
        except Exception as exc:  # noqa: BLE001
            log.warning("redis delete failed: %s", exc)

    async def close(self) -> None:
        await self._redis.aclose()


def _encode(m: ChatMessageRecord) -> dict:
    return {"message_id": m.message_id, "session_id": m.session_id, "seq": m.seq, "sender": m.sender.value,
            "content": m.content, "content_json": m.content_json, "timestamp": m.timestamp.isoformat()}


def _decode(d: dict) -> ChatMessageRecord:
    return ChatMessageRecord(d["message_id"], d["session_id"], d["seq"], Sender(d["sender"]), d["content"],
                             d["content_json"], datetime.fromisoformat(d["timestamp"]))
