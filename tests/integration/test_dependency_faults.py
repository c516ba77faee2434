"""Dependency faults: Redis going away and coming back while the server runs. Redis is
a cache and a shared counter, never the source of truth: chat, quotas and generation
keep working without it, and nothing written meanwhile is lost or read stale after."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import grpc
import pytest
import redis

from bench.reliability_stack import PrivateRedis
from domain.tenancy.config import AuthConfig, QuotaLimits
from domain.secret import Secret
from llmserve.chat.v1 import chat_service_pb2 as pb
from llmserve.chat.v1 import chat_service_pb2_grpc as pb_grpc
from tests.support import make_settings, running, tiny_specs

pytestmark = pytest.mark.redis

ADMIN = "admin-secret-for-faults"


async def test_chat_and_quotas_keep_working_while_redis_is_down(tmp_path: Path, tiny_model_dir: Path):
    cache = PrivateRedis(tmp_path)
    cache.start()
    auth = AuthConfig(mode="api_key", admin_key=Secret(ADMIN), quotas=QuotaLimits(requests_per_minute=1000))
    settings = make_settings(tmp_path / "data", tiny_specs(tiny_model_dir), "tiny", redis_url=cache.url, auth=auth)
    try:
        async with running(settings) as app:
            key = await app.features.api_keys.create("faults", "redis fault test")
            metadata = (("authorization", f"Bearer {key.key}"),)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                stub = pb_grpc.ChatServiceStub(channel)

                async def say(sid: str, text: str) -> pb.SendMessageResponse:
                    return await stub.SendMessage(pb.SendMessageRequest(session_id=sid, user_message=text,
                                                                        max_new_tokens=2), metadata=metadata, timeout=30)

                async def users(sid: str) -> list[str]:
                    reply = await stub.GetHistory(pb.GetHistoryRequest(session_id=sid), metadata=metadata, timeout=30)
                    return [m.content for m in reply.messages if m.sender == "user"]

                sid = (await stub.StartConversation(pb.StartConversationRequest(
                    user_id=str(uuid.uuid4()), initial_message="before", max_new_tokens=2), metadata=metadata)).session_id
                assert await users(sid) == ["before"]
                assert redis.Redis(port=cache.port).dbsize() > 0  # the cache and counters were in use

                cache.stop()
                started = time.monotonic()
                await say(sid, "while down")
                assert await users(sid) == ["before", "while down"]
                assert time.monotonic() - started < 20  # no call waits on the dead cache for long

                cache.start()  # empty again: nothing stale can be served from it
                await say(sid, "after")
                assert await users(sid) == ["before", "while down", "after"]
    finally:
        cache.stop()
