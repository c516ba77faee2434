"""The OpenAI-compatible provider against a small local HTTP server speaking
/v1/chat/completions: retries with backoff on 503/429/connection errors, giving up after
N, no retry on other 4xx, and the chat service working end to end on it (SQLite)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from domain.chat.config import ChatConfig
from domain.secret import Secret
from domain.chat.factory import build_chat_sessions
from domain.chat.openai import OpenAIProvider
from domain.chat.sessions import ChatReply, ReplyOptions
from models.errors import FailedPrecondition, Unavailable
from models.generation import ChatTurn
from models.types import FinishReason
from models.sampling_policy import SamplingDefaults, SamplingParams
from storage.chat import ChatRepository
from storage.db import Database, sqlite_url


class FakeOpenAI:
    """Answers POST /v1/chat/completions; `statuses` scripts the first responses."""

    def __init__(self, statuses: list[int] | None = None, reply: str = "Hello from the API") -> None:
        self.statuses = list(statuses or [])
        self.reply = reply
        self.requests: list[dict] = []
        self.times: list[float] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.requests.append({"path": self.path, "auth": self.headers.get("authorization"), **body})
                fake.times.append(time.monotonic())
                status = fake.statuses.pop(0) if fake.statuses else 200
                if status != 200:
                    payload = json.dumps({"error": {"message": "busy"}}).encode()
                else:
                    payload = json.dumps({
                        "id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": fake.reply}}],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    def __enter__(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _config(base_url: str, **kw) -> ChatConfig:
    values = dict(provider="openai", openai_base_url=base_url, openai_api_key=Secret("sk-test"), openai_model="remote-1",
                  openai_backoff_s=0.05, openai_max_retries=3, openai_timeout_s=2.0)
    return ChatConfig(**{**values, **kw})


async def _reply(provider: OpenAIProvider, **kw):
    bound = await provider.bind(None)
    return [e async for e in bound.generate([ChatTurn("user", "hi")], SamplingParams(max_new_tokens=8, **kw),
                                            None, None)]


async def test_retries_503_twice_then_succeeds_with_backoff():
    with FakeOpenAI([503, 503]) as api:
        provider = OpenAIProvider(_config(api.base_url))
        try:
            events = await _reply(provider, seed=7)
        finally:
            await provider.close()
    assert len(api.requests) == 3 and provider.attempts == 3
    assert events[-1].text == "Hello from the API" and events[-1].reason is FinishReason.EOS
    assert events[-1].prompt_tokens == 11 and events[-1].completion_tokens == 5
    first = api.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
    assert first["model"] == "remote-1" and first["messages"] == [{"role": "user", "content": "hi"}]
    assert first["max_tokens"] == 8 and first["seed"] == 7
    gaps = [b - a for a, b in zip(api.times, api.times[1:])]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # exponential: 0.05 s, then 0.1 s


async def test_gives_up_after_max_retries():
    with FakeOpenAI([503, 429, 502, 500, 503]) as api:
        provider = OpenAIProvider(_config(api.base_url, openai_max_retries=2))
        with pytest.raises(Unavailable, match="after 3 attempts"):
            await _reply(provider)
        await provider.close()
    assert len(api.requests) == 3


async def test_client_errors_are_not_retried():
    with FakeOpenAI([400]) as api:
        provider = OpenAIProvider(_config(api.base_url))
        with pytest.raises(FailedPrecondition, match="HTTP 400"):
            await _reply(provider)
        await provider.close()
    assert len(api.requests) == 1


async def test_connection_errors_are_retried_then_reported():
    with FakeOpenAI() as api:
        dead = api.base_url
    provider = OpenAIProvider(_config(dead, openai_max_retries=1))  # the server is gone: connect refused
    with pytest.raises(Unavailable, match="ConnectError"):
        await _reply(provider)
    await provider.close()
    assert provider.attempts == 2


async def test_chat_service_on_the_openai_provider(tmp_path: Path):
    db = Database(sqlite_url(tmp_path))
    db.migrate()
    doc = {"source_block_id": str(uuid.uuid4()), "target_block_id": str(uuid.uuid4()), "edge_type": "data"}
    with FakeOpenAI([503], reply="Sure.") as api:
        sessions = build_chat_sessions(_config(api.base_url), ChatRepository(db), None, SamplingDefaults())
        await sessions.start()
        reply = await sessions.start_conversation("default", str(uuid.uuid4()), "hello", system_prompt="Be brief.",
                                                  model=None, options=ReplyOptions())
        assert reply.message.content == "Sure."
        api.reply = json.dumps(doc)
        events = [e async for e in sessions.send("default", reply.session_id, "edge please",
                                                 ReplyOptions(json_schema_name="EdgeAPIRequest"))]
        await sessions.close()
    final = events[-1]
    assert isinstance(final, ChatReply) and final.parsed == doc and final.invalid_reason is None
    last = api.requests[-1]
    assert last["response_format"]["json_schema"]["name"] == "EdgeAPIRequest"
    # The whole conversation went to the API, system prompt first.
    assert [m["role"] for m in last["messages"]] == ["system", "user", "assistant", "user"]
    history = await sessions.history("default", reply.session_id)
    assert [m.content for m in history] == ["hello", "Sure.", "edge please", json.dumps(doc)]
    db.dispose()
