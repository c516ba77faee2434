"""One end-to-end quality check through Envoy on the real embedded model."""

from __future__ import annotations

import httpx
import pytest

import envoy_config


@pytest.mark.slow
async def test_seed_chat_capital_of_france_through_envoy(real_envoy: envoy_config.Envoy):
    body = {"messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_new_tokens": 32, "do_sample": False}
    async with httpx.AsyncClient(base_url=real_envoy.base_url, timeout=300.0) as http:
        resp = await http.post("/chat", json=body, headers={"accept": "*/*"})
    assert resp.status_code == 200, resp.text
    reply = resp.json()
    assert reply["message"]["role"] == "assistant"
    assert "Paris" in reply["message"]["content"], reply
    assert reply["model"] == "smollm2"


@pytest.mark.slow
async def test_openai_sdk_on_the_real_model(real_envoy: envoy_config.Envoy):
    import json

    import openai

    async with openai.AsyncOpenAI(base_url=f"{real_envoy.base_url}/v1", api_key="unused", timeout=300.0,
                                  max_retries=0) as client:
        question = [{"role": "user", "content": "What is the capital of France?"}]
        reply = await client.chat.completions.create(model="smollm2", messages=question, max_tokens=32,
                                                     temperature=0)
        assert "Paris" in reply.choices[0].message.content, reply
        stream = await client.chat.completions.create(model="smollm2", messages=question, max_tokens=32,
                                                      temperature=0, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == reply.choices[0].message.content
        schema = {"type": "object", "properties": {"capital": {"type": "string"}}, "required": ["capital"],
                  "additionalProperties": False}
        structured = await client.chat.completions.create(
            model="smollm2", messages=question, max_tokens=48, temperature=0,
            response_format={"type": "json_schema", "json_schema": {"name": "capital", "schema": schema}})
        assert "Paris" in json.loads(structured.choices[0].message.content)["capital"]
