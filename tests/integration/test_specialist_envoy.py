"""Seed 003's flow through the real Envoy with REST (health, list, add after placing a
corpus, generate, delete), corpus upload as a raw body, and bad inputs' HTTP codes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest_asyncio

from domain.specialist.config import SpecialistConfig
from tests.integration.conftest import _start_envoy
from tests.support import make_settings, running, tiny_specs

import envoy_config  # noqa: E402  (tools/ is on the path via the integration conftest)

CONFIG = SpecialistConfig(steps=2, batch_size=2, micro_batch=2, seq_len=16, eval_sequences=1, poll_interval_s=0.05,
                          general_samples=2)


@pytest_asyncio.fixture(scope="module")
async def served(tmp_path_factory, tiny_model_dir: Path, descriptor: Path):
    data = tmp_path_factory.mktemp("specialist-envoy")
    async with running(make_settings(data, tiny_specs(tiny_model_dir), "tiny", specialist=CONFIG)) as app:
        proxy = await _start_envoy(app.port, descriptor, tmp_path_factory.mktemp("specialist-envoy-proxy"))
        try:
            yield data, proxy
        finally:
            await asyncio.to_thread(envoy_config.stop_envoy, proxy)


@pytest_asyncio.fixture
async def rest(served):
    async with httpx.AsyncClient(base_url=served[1].base_url, timeout=60.0) as client:
        yield client


async def _completed(rest: httpx.AsyncClient, job_id: str) -> dict:
    """Wait for the job's end on its Watch stream (SSE through Envoy)."""
    async with rest.stream("GET", f"/v1/specialists/trainingJobs/{job_id}:watch") as resp:
        assert resp.status_code == 200
        body = (await resp.aread()).decode()
    assert '"final"' in body, body
    job = (await rest.get(f"/v1/specialists/trainingJobs/{job_id}")).json()["job"]
    assert job["state"] == "JOB_STATE_COMPLETED", job
    return job


async def test_seed_003_flow_with_curl_paths(rest: httpx.AsyncClient, served):
    data, _ = served
    assert (await rest.get("/health")).json()["status"] == "ok"
    assert (await rest.get("/specialists")).json() == []
    resp = await rest.post("/v1/specialists:generate", json={"prompt": "Hello"})
    assert resp.status_code == 503, resp.text  # nothing trained yet
    resp = await rest.post("/v1/completions", json={"model": "tiny", "prompt": "Hello", "specialists": True})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "specialists", resp.text

    (data / "marketing").mkdir()
    (data / "marketing" / "m1.txt").write_text("Brand campaigns reach customers through channels. " * 30)
    added = await rest.post("/specialists", json={"name": "marketing"})
    assert added.status_code == 200, added.text
    body = added.json()
    assert body["specialists"] == ["marketing"] and body["specialist"]["state"] == "SPECIALIST_STATE_TRAINING"
    await _completed(rest, body["training_job_id"])
    assert (await rest.get("/specialists")).json() == ["marketing"]
    assert (await rest.get("/health")).json()["specialists"] == ["marketing"]  # seed 003's health field

    gen = await rest.post("/v1/specialists:generate",
                          json={"prompt": "Act as a marketing advisor:", "max_new_tokens": 8, "temperature": 0.9,
                                "top_k": 50})
    assert gen.status_code == 200, gen.text
    out = gen.json()
    assert out["full_text"] == out["prompt"] + out["completion"] and out["specialists"] == ["marketing"]
    # The same mixture through OpenAI's completions (greedy on both: the same text).
    greedy = {"prompt": "Act as a marketing advisor:", "max_new_tokens": 8, "temperature": 0}
    mixture_text = (await rest.post("/v1/specialists:generate", json=greedy)).json()["completion"]
    openai_body = {"model": "tiny", "prompt": greedy["prompt"], "max_tokens": 8, "temperature": 0, "specialists": True}
    reply = await rest.post("/v1/completions", json=openai_body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["text"] == mixture_text
    mixture = (await rest.post("/generate", json={"prompt": "Act as a marketing advisor:", "max_new_tokens": 8})).json()
    assert mixture["specialists"] == ["marketing"] and mixture["full_text"] == mixture["prompt"] + mixture["completion"]
    with_lut = (await rest.post("/generate", json={"prompt": "Hi", "max_new_tokens": 2, "lut_name": "u1"})).json()
    assert with_lut["specialists"] == []  # a LUT request keeps seed 000's meaning
    async with rest.stream("POST", "/v1/specialists:streamGenerate", json={"prompt": "Brand", "max_new_tokens": 4}) as s:
        events = (await s.aread()).decode()
    assert s.headers["content-type"].startswith("text/event-stream") and '"final"' in events
    gates = (await rest.post("/inspect_gates", json={"prompt": "Brand campaigns"})).json()
    assert gates["experts"] == ["base", "marketing"] and len(gates["layers"]) == 2

    last = await rest.delete("/specialists/marketing")
    assert last.status_code == 400 and "last specialist" in last.json()["message"]

    upload = await rest.post("/v1/specialists/sales/corpus/s1.txt", content="Quarterly sales grew. " * 30,
                             headers={"content-type": "text/plain"})
    assert upload.status_code == 200, upload.text
    assert upload.json()["specialist"]["state"] == "SPECIALIST_STATE_UPLOADED"
    second = (await rest.post("/specialists", json={"name": "sales"})).json()
    await _completed(rest, second["training_job_id"])
    deleted = await rest.delete("/specialists/marketing")
    assert deleted.status_code == 200 and deleted.json()["specialists"] == ["sales"]
    assert "deleted" in deleted.json()["message"]
    assert not (data / "marketing").exists()
    await _completed(rest, deleted.json()["training_job_id"])
    assert (await rest.get("/specialists")).json() == ["sales"]


async def test_bad_inputs_map_to_http_codes(rest: httpx.AsyncClient):
    assert (await rest.get("/v1/specialists/nobody")).status_code == 404
    assert (await rest.delete("/specialists/nobody")).status_code == 404
    bad = await rest.post("/specialists", json={"name": "no/t..safe"})
    assert bad.status_code == 400 and bad.json()["details"][0]["field_violations"][0]["field"] == "name", bad.text
    bad = await rest.post("/specialists", json={"name": "not safe!"})
    assert bad.status_code == 400 and bad.json()["details"][0]["field_violations"][0]["field"] == "name"
    missing = await rest.post("/specialists", json={"name": "ghost"})
    assert missing.status_code == 400 and "no corpus" in missing.json()["message"]
    latin = await rest.post("/v1/specialists/latin/corpus/a.txt", content=b"caf\xe9",
                            headers={"content-type": "text/plain"})
    assert latin.status_code == 400 and "UTF-8" in latin.json()["message"]
    empty = await rest.post("/v1/specialists/latin/corpus/a.txt", content=b"", headers={"content-type": "text/plain"})
    assert empty.status_code == 400 and "empty" in empty.json()["message"]
    upload = await rest.post("/v1/specialists/dup/corpus/a.txt", content=b"Some text here.",
                             headers={"content-type": "text/plain"})
    assert upload.status_code == 200
    again = await rest.post("/v1/specialists/dup/corpus/a.txt", content=b"Other text.",
                            headers={"content-type": "text/plain"})
    assert again.status_code == 409
    first = await rest.post("/specialists", json={"name": "dup"})
    assert first.status_code == 200
    assert (await rest.post("/specialists", json={"name": "dup"})).status_code == 409
    await _completed(rest, first.json()["training_job_id"])


async def test_grpcurl_through_envoy(grpcurl, served, rest: httpx.AsyncClient):
    target = served[1].grpc_target
    upload = await rest.post("/v1/specialists/viagrpcurl/corpus/g.txt", content=b"Reached through grpcurl.",
                             headers={"content-type": "text/plain"})
    assert upload.status_code == 200, upload.text
    listed = await grpcurl(target, "llmserve.specialist.v1.SpecialistService/ListSpecialists", data={})
    assert listed.returncode == 0, listed.stderr
    by_name = {s["name"]: s for s in json.loads(listed.stdout)["specialists"]}
    assert by_name["viagrpcurl"]["state"] == "SPECIALIST_STATE_UPLOADED", listed.stdout
    assert by_name["viagrpcurl"]["corpus_size_bytes"] == str(len(b"Reached through grpcurl."))  # int64 as a string
    names = await grpcurl(target, "llmserve.specialist.v1.SpecialistService/ListSpecialistNames", data={})
    assert names.returncode == 0, names.stderr
    assert json.loads(names.stdout).get("names", []) == (await rest.get("/specialists")).json()
    bad = await grpcurl(target, "llmserve.specialist.v1.SpecialistService/AddSpecialist", data={"name": "a b"})
    assert bad.returncode == 64 + 3 and "name" in bad.stderr, (bad.returncode, bad.stderr)  # INVALID_ARGUMENT
