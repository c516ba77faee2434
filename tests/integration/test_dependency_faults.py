"""Dependency faults: Redis going away and coming back while the server runs. Redis is
a cache and a shared counter, never the source of truth: chat, quotas and generation
keep working without it, and nothing written meanwhile is lost or read stale after."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import grpc
import pytest
import redis

from domain.tenancy.config import AuthConfig, QuotaLimits
from domain.secret import Secret
from llmserve.chat.v1 import chat_service_pb2 as pb
from llmserve.chat.v1 import chat_service_pb2_grpc as pb_grpc
from tools.envoy_config import free_port
from tests.support import make_settings, running, tiny_specs

pytestmark = pytest.mark.redis

ADMIN = "admin-secret-for-faults"


class PrivateRedis:
    """A redis-server of this test's own (the shared one must keep running for others)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port),
                                      "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                      "--dir", str(self.folder)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


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
