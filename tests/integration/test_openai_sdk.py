"""The official `openai` Python SDK, unchanged, against Envoy in front of the tiny server:
models, chat completions (plain, streamed, n, stop, JSON schema), completions, usage, and
errors that the SDK raises as its own exceptions."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

MODEL = "tiny"


@pytest.fixture
async def client(envoy):
    async with openai.AsyncOpenAI(base_url=f"{envoy.base_url}/v1", api_key="unused", max_retries=0,
                                  timeout=60.0) as sdk:
        yield sdk


def _chat(**extra):
    return {"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8, **extra}


async def test_models_list(client):
    models = await client.models.list()
    ids = [m.id for m in models.data]
    assert ids[0] == MODEL  # the default first
    assert all(m.object == "model" and m.owned_by == "llmserve" and m.created > 0 for m in models.data)


async def test_chat_completion(client):
    reply = await client.chat.completions.create(**_chat(temperature=0))
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-") and reply.model == MODEL
    [choice] = reply.choices
    assert choice.index == 0 and choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in {"stop", "length"}
    assert reply.usage.prompt_tokens > 3 and 1 <= reply.usage.completion_tokens <= 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


async def test_max_tokens_is_honoured(client):
    for budget in ("max_tokens", "max_completion_tokens"):
        body = {k: v for k, v in _chat().items() if k != "max_tokens"}
        reply = await client.chat.completions.create(**body, **{budget: 3}, temperature=0,
                                                     frequency_penalty=0, presence_penalty=0)
        assert reply.usage.completion_tokens <= 3, budget


async def test_content_parts_and_system_roles(client):
    parts = [{"type": "text", "text": "Say "}, {"type": "text", "text": "hi"}]
    reply = await client.chat.completions.create(
        model=MODEL, max_tokens=4, temperature=0,
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": parts}])
    plain = await client.chat.completions.create(
        model=MODEL, max_tokens=4, temperature=0,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}])
    assert reply.choices[0].message.content == plain.choices[0].message.content
    assert reply.usage.prompt_tokens == plain.usage.prompt_tokens


async def test_n_choices_with_a_seed(client):
    reply = await client.chat.completions.create(**_chat(n=2, seed=7, temperature=1.0))
    assert [c.index for c in reply.choices] == [0, 1]
    again = await client.chat.completions.create(**_chat(n=2, seed=7, temperature=1.0))
    assert [c.message.content for c in again.choices] == [c.message.content for c in reply.choices]
    one = await client.chat.completions.create(**_chat(seed=7, temperature=1.0))
    assert reply.usage.prompt_tokens == one.usage.prompt_tokens  # the prompt counts once for n choices


async def test_stop_ends_the_text_before_the_stop_string(client):
    free = await client.chat.completions.create(**_chat(temperature=0, max_tokens=12))
    text = free.choices[0].message.content
    stop = text[len(text) // 2:][:3]
    assert stop.strip(), text
    reply = await client.chat.completions.create(**_chat(temperature=0, max_tokens=12, stop=[stop]))
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content == text[:text.index(stop)]


async def test_response_format_json_schema(client):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"],
              "additionalProperties": False}
    reply = await client.chat.completions.create(
        **_chat(max_tokens=40, temperature=0),
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}})
    doc = json.loads(reply.choices[0].message.content)
    assert set(doc) == {"answer"} and isinstance(doc["answer"], int)
    reply = await client.chat.completions.create(**_chat(max_tokens=40, temperature=0),
                                                 response_format={"type": "json_object"})
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


async def test_chat_stream_with_usage(client):
    plain = await client.chat.completions.create(**_chat(temperature=0, max_tokens=10))
    stream = await client.chat.completions.create(**_chat(temperature=0, max_tokens=10), stream=True,
                                                  stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == plain.choices[0].finish_reason and not any(finishes[:-1])
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == plain.usage.model_dump()


async def test_chat_stream_of_two_choices(client):
    stream = await client.chat.completions.create(**_chat(n=2, seed=3), stream=True)
    texts = {0: "", 1: ""}
    ends = []
    async for c in stream:
        assert c.usage is None
        for choice in c.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                ends.append(choice.index)
    assert sorted(ends) == [0, 1]
    reply = await client.chat.completions.create(**_chat(n=2, seed=3))
    assert [texts[0], texts[1]] == [c.message.content for c in reply.choices]


async def test_completions(client):
    reply = await client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=6, temperature=0)
    assert reply.object == "text_completion" and reply.id.startswith("cmpl-")
    assert reply.choices[0].text and reply.usage.completion_tokens <= 6
    echoed = await client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=6, temperature=0,
                                             echo=True)
    assert echoed.choices[0].text == "Once upon a time" + reply.choices[0].text
    stream = await client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=6, temperature=0,
                                             stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == reply.choices[0].text
    assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens
    two = await client.completions.create(model=MODEL, prompt=["A", "B"], max_tokens=2, n=2)
    assert [c.index for c in two.choices] == [0, 1, 2, 3]


async def test_completions_default_budget_is_openais(client):
    reply = await client.completions.create(model=MODEL, prompt="Once upon a time", temperature=0)
    assert reply.usage.completion_tokens <= 16


async def test_unknown_parameter_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(**_chat(), extra_body={"frobnicate": 1})
    error = caught.value.body
    assert error["param"] == "frobnicate" and error["type"] == "invalid_request_error"
    assert "frobnicate" in error["message"]
    with pytest.raises(openai.BadRequestError):
        await client.completions.create(model=MODEL, prompt="x", logit_bias={"1": 5})


@pytest.mark.parametrize(("extra", "param"), [
    ({"temperature": 3}, "temperature"),
    ({"presence_penalty": 2.5}, "presence_penalty"),
    ({"n": 0}, "n"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 100_000}, "max_tokens"),
    ({"stop": ["ok", ""]}, "stop[1]"),
    ({"logprobs": True}, "logprobs"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),
])
async def test_bad_values_name_the_parameter(client, extra, param):
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(**{**_chat(), **extra})
    assert caught.value.body["param"] == param
    assert caught.value.status_code == 400


async def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(**{**_chat(), "model": "gpt-17"})
    assert caught.value.body["type"] == "not_found_error" and "gpt-17" in caught.value.body["message"]


async def test_error_shape_on_the_wire(envoy):
    async with httpx.AsyncClient(base_url=envoy.base_url, timeout=60.0) as http:
        resp = await http.post("/v1/completions", json={"model": MODEL, "prompt": "x", "best_of": 3})
        assert resp.status_code == 400 and resp.headers["content-type"] == "application/json"
        assert resp.json() == {"error": {"message": resp.json()["error"]["message"], "type": "invalid_request_error",
                                         "param": "best_of", "code": None}}
        raw = await http.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
        assert raw.status_code == 400 and raw.json()["error"]["param"] == "body"
        big = await http.post("/v1/completions", json={"model": MODEL, "prompt": "x" * (2 << 20)})
        assert big.status_code == 413 and big.json()["error"]["type"] == "invalid_request_error", big.text
        # Other paths keep the gRPC status shape.
        other = await http.post("/completion", json={"prompt": ""})
        assert other.status_code == 400 and set(other.json()) >= {"code", "message"}


async def test_stream_on_the_wire_ends_with_done(envoy):
    body = {**_chat(), "stream": True}
    async with (httpx.AsyncClient(base_url=envoy.base_url, timeout=60.0) as http,
                http.stream("POST", "/v1/chat/completions", json=body) as resp):
        assert resp.status_code == 200 and resp.headers["content-type"] == "text/event-stream"
        lines = [line async for line in resp.aiter_lines() if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: {") for line in lines[:-1])


async def test_completions_with_a_lut_match_the_lut_path(client, envoy):
    async with httpx.AsyncClient(base_url=envoy.base_url, timeout=60.0) as http:
        taught = await http.post("/train_lut", json={"label": "Pimbleton is a cat.", "lut_name": "sdk-notes"})
        assert taught.status_code == 200, taught.text
        prompt = {"prompt": "What is Pimbleton?", "length": 8, "threshold": 0.0}
        with_lut = (await http.post("/generate", json={**prompt, "lut_name": "sdk-notes"})).json()["completion"]
        base = (await http.post("/generate", json=prompt)).json()["completion"]
    assert with_lut != base  # the LUT steers this prompt
    # The same generation through the SDK: greedy, and the LUT path's penalty and top-k.
    same = {"model": MODEL, "prompt": "What is Pimbleton?", "max_tokens": 8, "temperature": 0}
    extra = {"top_k": 50, "repetition_penalty": 1.1, "threshold": 0.0}
    reply = await client.completions.create(**same, extra_body={**extra, "lut_name": "sdk-notes"})
    assert reply.choices[0].text == with_lut
    plain = await client.completions.create(**same, extra_body={"top_k": 50, "repetition_penalty": 1.1})
    assert plain.choices[0].text == base
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(**_chat(), extra_body={"lut_name": "sdk-notes"})
    assert caught.value.body["param"] == "lut_name"
