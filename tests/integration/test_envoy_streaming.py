"""Server-streaming RPCs over REST arrive as Server-Sent Events, incrementally:
the /v1 stream paths, and seed 001's `"stream": true` bodies on POST
/completion and POST /chat (rewritten to the stream paths by Envoy's Lua filter)."""

from __future__ import annotations

import time

import httpx
import pytest

# Long enough that a buffered stream and an incremental one are far apart in time.
LONG = {"max_new_tokens": 96, "do_sample": False}


async def _stream(http: httpx.AsyncClient, read_sse, path: str, body: dict):
    started = time.monotonic()
    async with http.stream("POST", path, json=body, headers={"accept": "*/*"}) as resp:
        assert resp.status_code == 200, (await resp.aread()).decode()
        assert resp.headers["content-type"] == "text/event-stream"
        events = await read_sse(resp, started)
    return events


def _check_events(events) -> dict:
    """Several deltas, then exactly one final, last; returns the final."""
    kinds = [next(iter(e.data)) for e in events]
    assert kinds.count("final") == 1 and kinds[-1] == "final", kinds
    assert "error" not in kinds, events[-1].data
    assert set(kinds[:-1]) <= {"delta"}, kinds
    assert len(kinds) >= 4, kinds
    final = events[-1].data["final"]
    assert final["text"] == "".join(e.data["delta"]["text"] for e in events[:-1])
    assert final["usage"]["completion_tokens"] >= len(events) - 1 - 1  # deltas may hold several tokens
    assert final["finish_reason"] in {"FINISH_REASON_LENGTH", "FINISH_REASON_EOS", "FINISH_REASON_STOP_SEQUENCE"}
    return final


def _check_incremental(events) -> None:
    """The first event was delivered long before the stream ended (not buffered)."""
    first, last = events[0].at, events[-1].at
    spread = last - first
    arrival_times = {round(e.at, 3) for e in events}
    assert spread > 0.05 and first < last / 2, f"first event at {first:.3f} s, last at {last:.3f} s"
    assert len(arrival_times) >= len(events) // 3, sorted(arrival_times)


async def test_v1_completion_stream_is_incremental_sse(http: httpx.AsyncClient, read_sse):
    events = await _stream(http, read_sse, "/v1/completions:stream", {"prompt": "Once upon a time", **LONG})
    final = _check_events(events)
    assert final["usage"]["prompt_tokens"] > 0
    _check_incremental(events)


@pytest.mark.parametrize(("path", "body"), [
    # Seed 001's streaming examples, bodies verbatim but for a token budget.
    ("/completion", {"prompt": "Explain Bayes theorem:", "stream": True}),
    ("/completion", {"prompt": "Write a factorial function in Python:", "stream": True}),
    ("/chat", {"messages": [{"role": "user", "content": "Explain the central limit theorem"}], "stream": True}),
    ("/v1/completions", {"stream": True, "prompt": "Write a poem about mathematics:"}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "stream": True}),
])
async def test_stream_true_in_body_gets_sse(http: httpx.AsyncClient, read_sse, path, body):
    events = await _stream(http, read_sse, path, {**body, **LONG})
    _check_events(events)
    _check_incremental(events)


async def test_stream_true_as_raw_curl_body(http: httpx.AsyncClient, read_sse):
    # The bytes of seed 001's curl -N example (whitespace and newlines included), plus a token budget.
    raw = '{\n    "prompt": "Explain Bayes theorem:",\n    "stream": true,\n    "max_new_tokens": 40\n  }'
    started = time.monotonic()
    async with http.stream("POST", "/completion", content=raw,
                           headers={"content-type": "application/json", "accept": "*/*"}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/event-stream"
        events = await read_sse(resp, started)
    _check_events(events)


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


async def test_chat_stream_path(http: httpx.AsyncClient, read_sse):
    body = {"messages": [{"role": "system", "content": "You are a statistics expert."},
                         {"role": "user", "content": "What is p-value?"}], "max_new_tokens": 24, "do_sample": False}
    for path in ("/v1/chat/completions:stream", "/chat/stream"):
        final = _check_events(await _stream(http, read_sse, path, body))
        assert final["usage"]["prompt_tokens"] > 10  # the chat template was applied
