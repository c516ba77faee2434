"""Chat sessions survive a server restart on SQLite and on PostgreSQL, and the Redis
history cache is used, refreshed on new messages (also ones another replica wrote
straight to the database) and dropped on end."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import grpc
import pytest
import redis

from llmserve.chat.v1 import chat_service_pb2 as pb
from llmserve.chat.v1 import chat_service_pb2_grpc as pb_grpc
from domain.chat.cache import KEY_PREFIX
from storage.chat import ChatRepository, Sender
from storage.db import Database
from tests.support import make_settings, pg_schema_url, running, tiny_specs

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis() -> redis.Redis:
    # The suite runs against the real Redis: an unreachable one fails the test.
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    client.ping()
    return client


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path: Path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chat.db'}"
        return
    with pg_schema_url() as url:
        yield url


async def _history(stub, sid: str) -> list[pb.ChatMessage]:
    return list((await stub.GetHistory(pb.GetHistoryRequest(session_id=sid))).messages)


@pytest.mark.redis
async def test_sessions_survive_restart_and_redis_cache_stays_fresh(database_url, tmp_path, tiny_model_dir):
    cache = _redis()
    user = str(uuid.uuid4())
    settings = make_settings(tmp_path / "data", tiny_specs(tiny_model_dir), "tiny", database_url=database_url,
                             redis_url=REDIS_URL)
    async with running(settings) as app:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = pb_grpc.ChatServiceStub(channel)
            sid = (await stub.StartConversation(pb.StartConversationRequest(
                user_id=user, initial_message="remember me", max_new_tokens=3))).session_id
            await stub.SendMessage(pb.SendMessageRequest(session_id=sid, user_message="second", max_new_tokens=3))
            entry = json.loads(cache.get(KEY_PREFIX + sid))
            assert [m["content"] for m in entry["messages"][::2]] == ["remember me", "second"]
            servicer = app.servicers["llmserve.chat.v1.ChatService"]
            hits = servicer._sessions._cache.hits
            assert len(await _history(stub, sid)) == 4
            assert servicer._sessions._cache.hits == hits + 1  # served from Redis

            # Another replica appends straight to the database: the stale entry is not used.
            other = Database(database_url)
            try:
                ChatRepository(other).append_message("default", sid, Sender.USER, "from another replica")
            finally:
                other.dispose()
            assert [m.content for m in await _history(stub, sid)][-1] == "from another replica"
            assert json.loads(cache.get(KEY_PREFIX + sid))["messages"][-1]["content"] == "from another replica"

            ended = (await stub.StartConversation(pb.StartConversationRequest(
                user_id=user, initial_message="short lived", max_new_tokens=1))).session_id
            await stub.EndConversation(pb.EndConversationRequest(session_id=ended))
            assert cache.get(KEY_PREFIX + ended) is None

    # Restart on the same database, without Redis: the database is the source of truth.
    async with running(make_settings(tmp_path / "data2", tiny_specs(tiny_model_dir), "tiny",
                                     database_url=database_url)) as app:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = pb_grpc.ChatServiceStub(channel)
            before = await _history(stub, sid)
            users = [m.content for m in before if m.sender == "user"]
            assert users == ["remember me", "second", "from another replica"] and len(before) == 5
            reply = await stub.SendMessage(pb.SendMessageRequest(session_id=sid, user_message="after restart",
                                                                 max_new_tokens=2))
            after = await _history(stub, sid)
            assert len(after) == 7 and after[-1].message_id == reply.message_id
            assert after[-2].content == "after restart"
            listed = await stub.ListSessions(pb.ListSessionsRequest(user_id=user))
            assert [s.session_id for s in listed.sessions] == [sid]  # the ended one is not listed
            assert listed.sessions[0].message_count == 7
    cache.delete(KEY_PREFIX + sid)
