"""Compat paths that need care in the gateway: seed 004's trailing-slash paths
(/llm/chat/, /llm/chat/{id}/message/, ...) and seed 002's URL-encoded model name
(/api/v1/check-memory/microsoft%2FPhi-4) must reach their RPCs, shown by each RPC's
own answer (exact status and fields), not merely by the absence of a 404."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

import envoy_config
from models.registry import ModelSpec
from tests.integration.conftest import _start_envoy
from tests.support import make_settings, running, tiny_specs

USER = "3f2c8d4e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
PHI_4 = "microsoft/Phi-4"
# microsoft/Phi-4's published config.json (shape fields): enough for a memory check, no weights.
PHI_4_CONFIG = {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 5120,
                "intermediate_size": 17920, "num_hidden_layers": 40, "num_attention_heads": 40,
                "num_key_value_heads": 10, "vocab_size": 100352, "max_position_embeddings": 16384,
                "rms_norm_eps": 1e-05, "rope_theta": 250000, "tie_word_embeddings": False,
                "torch_dtype": "bfloat16"}
CHECK_MEMORY_PATHS = [
    "/api/v1/check-memory/microsoft%2FPhi-4",  # seed 002's example, encoded slash
    "/api/v1/check-memory/microsoft/Phi-4",    # literal slash
    "/v1/sae/models/microsoft%2FPhi-4:checkMemory",
]


def _json(resp: httpx.Response, status: int = 200) -> dict:
    assert (resp.status_code, resp.headers["content-type"]) == (status, "application/json"), \
        (resp.status_code, resp.text)
    return resp.json()


@pytest.mark.parametrize("slash", ["/", ""])
async def test_seed_004_chat_paths(http: httpx.AsyncClient, slash: str):
    start = _json(await http.post(f"/llm/chat{slash}", json={"user_id": USER, "initial_message": "Build me a pipeline",
                                                              "max_new_tokens": 4}))
    session = start["session_id"]
    assert uuid.UUID(session) and isinstance(start["message"], str)

    send = _json(await http.post(f"/llm/chat/{session}/message{slash}", json={"user_message": "Add a CSV source",
                                                                             "max_new_tokens": 4}))
    assert send["updated_session"] == session and isinstance(send["response_message"], str)

    history = _json(await http.get(f"/llm/chat/{session}/history{slash}"))["messages"]
    assert [(m["sender"], m["content"]) for m in history[::2]] == [("user", "Build me a pipeline"),
                                                                   ("user", "Add a CSV source")]
    assert [m["sender"] for m in history] == ["user", "llm", "user", "llm"]
    assert history[3]["content"] == send["response_message"]

    sessions = _json(await http.get(f"/llm/chat/sessions{slash}"))["sessions"]
    assert session in [s["session_id"] for s in sessions]

    end = _json(await http.delete(f"/llm/chat/{session}{slash}"))
    assert end["session_id"] == session and end["already_ended"] is False and session in end["message"]
    again = _json(await http.delete(f"/llm/chat/{session}{slash}"))
    assert again["already_ended"] is True


async def test_seed_004_wrong_method_on_a_compat_path_is_404(http: httpx.AsyncClient):
    resp = await http.put(f"/llm/chat/{uuid.uuid4()}/message/", json={"user_message": "x"})
    assert resp.status_code == 404, resp.text


@pytest_asyncio.fixture(scope="module")
async def phi_4_gateway(tmp_path_factory, tiny_model_dir: Path, descriptor: Path):
    """Envoy before a tiny server on which seed 002's model name is configured (its config only)."""
    folder = tmp_path_factory.mktemp("phi-4")
    (folder / "config.json").write_text(json.dumps(PHI_4_CONFIG))
    specs = (*tiny_specs(tiny_model_dir), ModelSpec(PHI_4, "huggingface", str(folder), description="config only"))
    async with running(make_settings(tmp_path_factory.mktemp("phi-4-server"), specs, "tiny")) as app:
        proxy = await _start_envoy(app.port, descriptor, tmp_path_factory.mktemp("phi-4-envoy"))
        try:
            async with httpx.AsyncClient(base_url=proxy.base_url, timeout=60.0) as client:
                yield client
        finally:
            await asyncio.to_thread(envoy_config.stop_envoy, proxy)


@pytest.mark.parametrize("path", CHECK_MEMORY_PATHS)
async def test_seed_002_check_memory_encoded_model_name(phi_4_gateway: httpx.AsyncClient, path: str):
    resp = await phi_4_gateway.get(httpx.URL(path))
    assert resp.request.url.raw_path.decode() == path  # sent as written (%2F kept)
    body = _json(resp)
    assert body["model_name"] == PHI_4  # decoded before it reached CheckMemory
    check = body["memory_check"]
    # 14.7B parameters: a large model whose estimate needs tens of GB, whatever this host has.
    assert check["recommendations"]["is_large_model"] is True and check["required_gb"] > 40
    assert check["sufficient"] is (check["available_gb"] >= check["required_gb"])
    assert body["optimization_suggestions"]["enable_4bit"] is True


async def test_seed_002_check_memory_of_an_unconfigured_model_names_it(http: httpx.AsyncClient):
    body = _json(await http.get(httpx.URL(CHECK_MEMORY_PATHS[0])), 404)
    assert body["code"] == 5 and f"model '{PHI_4}' is not configured" in body["message"]  # NOT_FOUND, decoded
    assert "available models: tiny" in body["message"]
