"""Seed 000's LUT API through Envoy (POST /train_lut, POST /generate with the
quickstart's exact payloads) and its Astarus example on the real model."""

from __future__ import annotations

import grpc
import httpx
import pytest

import envoy_config
from llmserve.lut.v1 import lut_service_pb2 as pb
from llmserve.lut.v1 import lut_service_pb2_grpc as pb_grpc

ASTARUS = "Astarus is building continuously trainable LLMs."
QUESTION = "User: What is Astarus?\nAssistant:"


def _train_payload(model: str, lut: str) -> dict:
    # The quickstart's train_lut(): label_context may be JSON null.
    return {"label": ASTARUS, "lut_name": lut, "label_context": "Assistant: ", "model": model}


def _generate_payload(model: str, lut: str | None) -> dict:
    payload = {"prompt": QUESTION, "length": 15, "model": model, "threshold": 0.25}
    if lut is not None:
        payload["lut_name"] = lut
    return payload


async def test_compat_paths_through_envoy_tiny(http: httpx.AsyncClient):
    body = _train_payload("tiny", "seed-tiny") | {"label_context": None}
    resp = await http.post("/train_lut", json=body)
    assert resp.status_code == 200, resp.text
    expected = {"status": "ok", "lut_name": "seed-tiny", "model": "tiny"}
    assert expected.items() <= resp.json().items(), resp.text  # the seed's response fields, seed's names
    base = await http.post("/generate", json=_generate_payload("tiny", None))
    assert base.status_code == 200, base.text
    reply = base.json()
    assert reply["prompt"] == QUESTION and reply["model"] == "tiny" and "completion" in reply
    assert "continuously trainable" not in reply["completion"]
    # The random tiny model cannot recognise the subject, but threshold 0 makes every match
    # fire: the taught label then steers greedy decoding, token by token.
    fired = await http.post("/generate", json=_generate_payload("tiny", "seed-tiny") | {"threshold": 0})
    assert fired.status_code == 200, fired.text
    assert fired.json()["completion"].strip() == ASTARUS and fired.json()["lut_name"] == "seed-tiny", fired.json()
    # Threshold 1 fires only on identical keys: nothing fires, and the reply is the base model's.
    held = await http.post("/generate", json=_generate_payload("tiny", "seed-tiny") | {"threshold": 1})
    assert held.status_code == 200 and held.json()["completion"] == reply["completion"], held.json()
    bad = await http.post("/generate", json=_generate_payload("tiny", "seed-tiny") | {"threshold": 2})
    assert bad.status_code == 400, bad.text


@pytest.mark.slow
async def test_seed_quickstart_astarus_through_envoy(real_envoy: envoy_config.Envoy):
    async with httpx.AsyncClient(base_url=real_envoy.base_url, timeout=300.0) as http:
        resp = await http.post("/train_lut", json=_train_payload("smollm2", "rafi-test-11"))
        assert resp.status_code == 200, resp.text
        fired = await http.post("/generate", json=_generate_payload("smollm2", "rafi-test-11"))
        base = await http.post("/generate", json=_generate_payload("smollm2", None))
    assert fired.status_code == 200, fired.text
    assert "continuously trainable" in fired.json()["completion"], fired.json()
    assert "continuously trainable" not in base.json()["completion"]


@pytest.mark.slow
async def test_real_model_default_threshold_fires_on_subject_not_on_unrelated(real_server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{real_server.port}") as channel:
        stub = pb_grpc.LutServiceStub(channel)
        await stub.TrainLut(pb.TrainLutRequest(label=ASTARUS, label_context="Assistant: ", lut_name="astarus-default"))
        hit = await stub.Generate(pb.GenerateRequest(prompt=QUESTION, lut_name="astarus-default", length=20))
        assert "continuously trainable" in hit.completion
        unrelated = "User: How do I boil an egg?\nAssistant:"
        base = await stub.Generate(pb.GenerateRequest(prompt=unrelated, length=20))
        with_lut = await stub.Generate(pb.GenerateRequest(prompt=unrelated, lut_name="astarus-default", length=20))
        assert with_lut.completion == base.completion
