"""REST through Envoy's transcoder: the seeds' curl examples, `GET /` for curl
and for browsers, /health, gRPC clients on the REST port, and Envoy's health
check of the backend."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import httpx

import envoy_config

# Seed 001's curl examples, verbatim bodies (the last one capped: its default is 512 tokens).
HAVOC_COMPLETION = {"prompt": "What is the derivative of x^2?", "max_new_tokens": 100, "temperature": 0.7}
HAVOC_CHAT = {"messages": [{"role": "user", "content": "Explain the central limit theorem"}], "max_new_tokens": 200}
HAVOC_CHAT_SYSTEM = {"messages": [{"role": "system", "content": "You are a statistics expert."},
                                 {"role": "user", "content": "What is p-value?"}], "temperature": 0.5,
                    "max_new_tokens": 32}
CURL_HEADERS = {"accept": "*/*", "user-agent": "curl/8.5.0", "content-type": "application/json"}


def _usage_ok(usage: dict) -> None:
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_seed_completion_example(http: httpx.AsyncClient):
    resp = await http.post("/completion", json=HAVOC_COMPLETION, headers=CURL_HEADERS)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) >= {"text", "prompt", "model", "usage"}
    assert isinstance(body["text"], str)
    assert body["prompt"] == HAVOC_COMPLETION["prompt"]
    assert body["model"] == "tiny"
    _usage_ok(body["usage"])
    assert body["usage"]["completion_tokens"] <= 100


async def test_v1_completion_matches_compat_path(http: httpx.AsyncClient):
    request = {"prompt": "The capital of France is", "max_new_tokens": 8, "do_sample": False}
    compat, v1 = await asyncio.gather(http.post("/completion", json=request),
                                      http.post("/v1/generation/completions", json=request))
    assert compat.status_code == v1.status_code == 200
    assert compat.json()["text"] == v1.json()["text"]  # greedy: the same RPC behind both paths


async def test_seed_chat_examples(http: httpx.AsyncClient):
    for request in (HAVOC_CHAT, HAVOC_CHAT_SYSTEM):
        resp = await http.post("/chat", json=request, headers=CURL_HEADERS)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert set(body) >= {"message", "model", "usage"}
        assert body["message"]["role"] == "assistant"
        assert isinstance(body["message"]["content"], str)
        assert body["model"] == "tiny"
        _usage_ok(body["usage"])
    v1 = await http.post("/v1/generation/chat", json={**HAVOC_CHAT, "max_new_tokens": 4})
    assert v1.status_code == 200 and v1.json()["message"]["role"] == "assistant"


async def test_root_is_info_json_for_curl(http: httpx.AsyncClient):
    for headers in ({"accept": "*/*"}, {"accept": "application/json"}, {}):
        resp = await http.get("/", headers=headers)
        assert resp.status_code == 200, (headers, resp.text)
        assert resp.headers["content-type"] == "application/json"
        body = resp.json()
        assert body["message"] and body["version"]
        assert body["endpoints"]["completion"] == "/completion"
        assert body["endpoints"]["chat"] == "/chat"
        assert body["endpoints"]["health"] == "/health"
        assert "tiny" in body["models"]
    info = await http.get("/v1/info")
    assert info.status_code == 200 and info.json() == body


async def test_root_is_web_page_for_browsers(http: httpx.AsyncClient):
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
    resp = await http.get("/", headers={"accept": browser})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert "<title>llmserve</title>" in resp.text
    assert '<script type="module" src="/web/main.js">' in resp.text
    page = await http.get("/index.html")
    assert page.status_code == 200 and page.text == resp.text
    # Its modules and stylesheet, with the content types browsers insist on for modules.
    for path, kind in (("/web/main.js", "text/javascript"), ("/web/chat.js", "text/javascript"),
                       ("/web/app.css", "text/css")):
        asset = await http.get(path)
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind), path


async def test_health_has_union_fields(http: httpx.AsyncClient):
    resp = await http.get("/health")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    # Every seed's documented fields are present (zero values included).
    assert set(body) >= {"status", "model", "device", "timestamp", "initialized", "specialists", "service",
                         "version", "gpu_available", "gpu_count", "memory_status", "tokenizer_path",
                         "generalist_ckpt_path", "shiftable_ckpt_path"}
    assert body["status"] == "ok"
    assert body["model"] == "tiny"
    assert body["initialized"] is True
    assert body["timestamp"] > 1.7e9
    assert isinstance(body["specialists"], list)
    assert body["services"].get("llmserve.generation.v1.GenerationService") == "SERVING"
    assert (await http.get("/v1/health")).json()["status"] == "ok"


async def test_list_models(http: httpx.AsyncClient):
    resp = await http.get("/v1/generation/models")
    assert resp.status_code == 200
    models = {m["name"]: m for m in resp.json()["models"]}
    assert models["tiny"]["is_default"] is True and models["tiny"]["available"] is True
    assert "smollm2" in models


async def test_known_query_parameter_is_transcoded(http: httpx.AsyncClient):
    # Known fields may come as query parameters: page_size and page_token reach ListSessions.
    user = str(uuid.uuid4())
    started = set()
    for i in range(3):
        reply = await http.post("/v1/chat/sessions", json={"user_id": user, "initial_message": f"hello {i}",
                                                           "max_new_tokens": 1})
        assert reply.status_code == 200, reply.text
        started.add(reply.json()["session_id"])
    first = await http.get("/v1/chat/sessions", params={"user_id": user, "page_size": 2})
    assert first.status_code == 200, first.text
    assert len(first.json()["sessions"]) == 2 and first.json()["next_page_token"]
    rest = await http.get("/v1/chat/sessions", params={"user_id": user, "page_size": 2,
                                                       "page_token": first.json()["next_page_token"]})
    assert rest.status_code == 200, rest.text
    assert len(rest.json()["sessions"]) == 1 and not rest.json()["next_page_token"]
    assert {s["session_id"] for s in first.json()["sessions"] + rest.json()["sessions"]} == started
    everything = await http.get("/v1/chat/sessions", params={"user_id": user})
    assert len(everything.json()["sessions"]) == 3  # the default page holds them all


async def test_grpc_client_through_envoy(envoy: envoy_config.Envoy):
    from llmserve.generation.v1 import generation_service_pb2 as gen_pb, generation_service_pb2_grpc as gen_grpc
    from llmserve.server.v1 import server_service_pb2 as srv_pb, server_service_pb2_grpc as srv_grpc

    async with grpc.aio.insecure_channel(envoy.grpc_target) as channel:
        info = await srv_grpc.ServerServiceStub(channel).GetInfo(srv_pb.GetInfoRequest(), timeout=10)
        assert "tiny" in info.models
        events = [e async for e in gen_grpc.GenerationServiceStub(channel).StreamComplete(
            gen_pb.StreamCompleteRequest(prompt="Hello", max_new_tokens=5, do_sample=False), timeout=30)]
        assert events[-1].WhichOneof("event") == "final"
        assert all(e.WhichOneof("event") == "delta" for e in events[:-1])
        try:
            await gen_grpc.GenerationServiceStub(channel).Complete(gen_pb.CompleteRequest(prompt=""), timeout=10)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
        else:
            raise AssertionError("empty prompt accepted through Envoy")


async def test_envoy_health_checks_the_backend(envoy: envoy_config.Envoy):
    # The cluster's grpc_health_check (service "") sees the tiny server SERVING.
    await asyncio.to_thread(envoy_config.wait_backend_healthy, envoy, 15.0)
    status, body = await asyncio.to_thread(envoy.admin_get, "/clusters")
    assert status == 200
    assert "llmserve_grpc::127.0.0.1:" in body
    _, stats = await asyncio.to_thread(envoy.admin_get, "/stats?filter=cluster.llmserve_grpc.health_check.success")
    assert int(stats.split(":")[-1]) >= 1
