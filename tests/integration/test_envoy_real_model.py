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
