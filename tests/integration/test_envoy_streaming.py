"""Server-streaming RPCs over REST arrive as Server-Sent Events, incrementally: the JSON
events of the `:stream` paths, seed 001's `data: <text>` ... `data: [DONE]` for
`"stream": true` bodies on POST /completion and POST /chat (answered by the REST adapters
for body-decides-stream paths), and OpenAI's chunks on /v1/chat/completions.

"Incrementally" is shown without a stopwatch: the model's forward passes are held after
the first few tokens, and the first event must reach the client while they are held,
that is, while the generation provably has not finished."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re

import httpx
import pytest

from tests.forward_gate import ForwardGate
from tests.integration.conftest import read_sse, sse_events

# Long enough that the held generation is far from its end.
LONG = {"max_new_tokens": 96, "do_sample": False}
# Prefill plus a few decode steps run before the hold: enough for a first delta.
PASSES_BEFORE_HOLD = 8


@pytest.fixture
async def held_model(tiny_server):
    """The tiny model, idle: no row or background unit that could use up the passes before the hold."""
    engine = tiny_server.manager.loaded("tiny").engine
    async with asyncio.timeout(60):
        while (stats := engine.stats()).running_rows or stats.queued_requests or stats.background_jobs:
            await asyncio.sleep(0.01)
    return engine.model


@contextlib.asynccontextmanager
async def _open(http: httpx.AsyncClient, path: str, **send):
    headers = {"accept": "*/*", **send.pop("headers", {})}
    async with http.stream("POST", path, headers=headers, **send) as resp:
        assert resp.status_code == 200, (await resp.aread()).decode()
        assert resp.headers["content-type"] == "text/event-stream"
        yield resp


async def _stream(http: httpx.AsyncClient, path: str, **send) -> list[dict]:
    async with _open(http, path, **send) as resp:
        return await read_sse(resp)


async def text_events(response: httpx.Response):
    """The data of each event of a stream as SSE defines it: lines end at CR, LF or CRLF only
    (not at the other Unicode line breaks that httpx's aiter_lines also splits on), several
    `data:` lines join with a newline, one space after the colon is dropped."""
    lines: list[str] = []
    async for line in _sse_lines(response):
        if line == "":
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
        else:
            assert line.startswith("event:"), f"not an SSE line: {line!r}"
    if lines:
        yield "\n".join(lines)


async def _sse_lines(response: httpx.Response):
    pending = ""
    async for text in response.aiter_text():
        pending += text
        parts = re.split(r"\r\n|\r(?!$)|\n", pending)  # a CR at the end may be half of a CRLF
        pending = parts.pop()
        for part in parts:
            yield part
    if pending:
        yield pending


async def _held_stream(http: httpx.AsyncClient, model, path: str, body: dict, parse=sse_events) -> list:
    """The events of a stream whose first event must arrive while the model's passes are
    held after PASSES_BEFORE_HOLD, i.e. long before the generation can end."""
    with ForwardGate(model, PASSES_BEFORE_HOLD, max_hold_s=60) as gate:
        async with contextlib.AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(30):  # a buffered stream shows nothing until the passes resume
                    events = parse(await stack.enter_async_context(_open(http, path, json=body)))
                    first = await anext(events)
                assert not gate.timed_out and gate.passes <= PASSES_BEFORE_HOLD + 1
            finally:
                gate.open()
            rest = [e async for e in events]
    assert gate.passes > PASSES_BEFORE_HOLD + 1, gate.passes  # the generation went on after the first event
    return [first, *rest]


def _check_events(events: list[dict]) -> dict:
    """Several deltas, then exactly one final, last; returns the final."""
    kinds = [next(iter(e)) for e in events]
    assert kinds.count("final") == 1 and kinds[-1] == "final", kinds
    assert "error" not in kinds, events[-1]
    assert set(kinds[:-1]) <= {"delta"}, kinds
    assert len(kinds) >= 4, kinds
    final = events[-1]["final"]
    assert final["text"] == "".join(e["delta"]["text"] for e in events[:-1])
    assert final["usage"]["completion_tokens"] >= len(events) - 1 - 1  # deltas may hold several tokens
    assert final["finish_reason"] in {"FINISH_REASON_LENGTH", "FINISH_REASON_EOS", "FINISH_REASON_STOP_SEQUENCE"}
    return final


@pytest.mark.parametrize("path", ["/v1/generation/completions:stream", "/v1/completions:stream"])
async def test_v1_completion_stream_is_incremental_sse(http: httpx.AsyncClient, held_model, path):
    events = await _held_stream(http, held_model, path, {"prompt": "Once upon a time", **LONG})
    final = _check_events(events)
    assert final["usage"]["prompt_tokens"] > 0


def _sse_text(text: str) -> str:
    """`text` as SSE can carry it: CR and CRLF are line ends there, read back as LF."""
    return re.sub(r"\r\n?", "\n", text)


async def _unary_text(http: httpx.AsyncClient, path: str, body: dict) -> str:
    reply = (await http.post(path, json={**body, "stream": False})).json()
    return reply["text"] if "text" in reply else reply["message"]["content"]


@pytest.mark.parametrize(("path", "body"), [
    # Seed 001's streaming examples, bodies verbatim but for a token budget.
    ("/completion", {"prompt": "Explain Bayes theorem:", "stream": True}),
    ("/completion", {"prompt": "Write a factorial function in Python:", "stream": True}),
    ("/chat", {"messages": [{"role": "user", "content": "Explain the central limit theorem"}], "stream": True}),
])
async def test_stream_true_in_body_gets_seed_text_events(http: httpx.AsyncClient, held_model, path, body):
    events = await _held_stream(http, held_model, path, {**body, **LONG}, parse=text_events)
    assert events[-1] == "[DONE]" and "[DONE]" not in events[:-1]
    assert len(events) >= 4, events
    assert "".join(events[:-1]) == _sse_text(await _unary_text(http, path, {**body, **LONG}))


async def test_openai_stream_is_incremental(http: httpx.AsyncClient, held_model):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "stream": True, "max_tokens": 96,
            "temperature": 0}
    events = await _held_stream(http, held_model, "/v1/chat/completions", body, parse=text_events)
    assert events[-1] == "[DONE]" and len(events) >= 4
    assert json.loads(events[-2])["choices"][0]["finish_reason"] in {"stop", "length"}


async def test_stream_true_as_raw_curl_body(http: httpx.AsyncClient):
    # The bytes of seed 001's curl -N example (whitespace and newlines included), plus a token budget.
    raw = '{\n    "prompt": "Explain Bayes theorem:",\n    "stream": true,\n    "max_new_tokens": 40,\n    "do_sample": false\n  }'
    async with _open(http, "/completion", content=raw, headers={"content-type": "application/json"}) as resp:
        events = [e async for e in text_events(resp)]
    assert events[-1] == "[DONE]"
    text = await _unary_text(http, "/completion", {"prompt": "Explain Bayes theorem:", "max_new_tokens": 40,
                                                   "do_sample": False})
    assert "".join(events[:-1]) == _sse_text(text)


@pytest.mark.parametrize("body", [
    {"prompt": "Hi", "stream": False},
    {"prompt": 'say "stream": true', "max_new_tokens": 3},  # inside a string value
    {"prompt": "Hi", "stop_sequences": ['"stream":true'], "max_new_tokens": 3},
])
async def test_other_bodies_stay_unary(http: httpx.AsyncClient, body):
    resp = await http.post("/completion", json={"max_new_tokens": 3, **body})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert set(resp.json()) >= {"text", "prompt", "model", "usage"}


async def test_chat_stream_path(http: httpx.AsyncClient):
    body = {"messages": [{"role": "system", "content": "You are a statistics expert."},
                         {"role": "user", "content": "What is p-value?"}], "max_new_tokens": 24, "do_sample": False}
    for path in ("/v1/chat/completions:stream", "/chat/stream"):
        final = _check_events(await _stream(http, path, json=body))
        assert final["usage"]["prompt_tokens"] > 10  # the chat template was applied


async def test_openai_stream_of_two_choices_frees_both_rows_when_the_client_leaves(http: httpx.AsyncClient, held_model,
                                                                                  tiny_server):
    engine = tiny_server.manager.loaded("tiny").engine
    budget = 400
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "stream": True, "n": 2,
            "max_tokens": budget, "temperature": 0}
    before = engine.stats().tokens_generated
    with ForwardGate(held_model, PASSES_BEFORE_HOLD, max_hold_s=60) as gate:
        async with asyncio.timeout(30), _open(http, "/v1/chat/completions", json=body) as resp:
            async for event in text_events(resp):
                if json.loads(event)["choices"][0]["delta"].get("content"):
                    break  # text is flowing; the client leaves mid-generation
        gate.open()
    async with asyncio.timeout(30):
        while engine.stats().running_rows:
            await asyncio.sleep(0.01)
    # Both rows left the engine long before their budgets: the disconnect cancelled them.
    assert engine.stats().tokens_generated - before < 2 * budget
