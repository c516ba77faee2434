"""Bad input over REST: the server's gRPC status becomes an HTTP status with a
JSON body carrying google.rpc details (convert_grpc_status); Envoy itself
rejects malformed JSON, unknown paths and unknown query parameters."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(("path", "request_body", "field"), [
    ("/completion", {"prompt": ""}, "prompt"),
    ("/v1/generation/completions", {"prompt": "Hi", "max_new_tokens": 0}, "max_new_tokens"),
    ("/completion", {"prompt": "Hi", "temperature": -1}, "temperature"),
    ("/v1/generation/completions", {"prompt": "Hi", "top_p": 1.5}, "top_p"),
    ("/v1/generation/chat", {"messages": [{"role": "user", "content": "Hi"}], "top_k": -1}, "top_k"),
    ("/chat", {"messages": []}, "messages"),
    ("/completion", {"prompt": "Hi", "presence_penalty": 2.5}, "presence_penalty"),
    ("/v1/generation/completions:stream", {"prompt": "Hi", "frequency_penalty": -3}, "frequency_penalty"),
])
async def test_invalid_argument_is_400_with_field_violation(http: httpx.AsyncClient, field_violations,
                                                            path, request_body, field):
    resp = await http.post(path, json=request_body)
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["code"] == 3  # INVALID_ARGUMENT
    assert field in body["message"]
    assert field_violations(body) == [field], body


async def test_invalid_argument_on_a_stream_is_400_before_any_event(http: httpx.AsyncClient, field_violations):
    resp = await http.post("/v1/generation/completions:stream", json={"prompt": ""})
    assert resp.status_code == 400, resp.text
    assert field_violations(resp.json()) == ["prompt"]


async def test_unknown_model_is_404_naming_available_models(http: httpx.AsyncClient):
    resp = await http.post("/completion", json={"prompt": "Hi", "model": "gpt-17"})
    assert resp.status_code == 404, resp.text
    body = resp.json()
    assert body["code"] == 5  # NOT_FOUND
    assert "gpt-17" in body["message"]
    assert "tiny" in body["message"] and "smollm2" in body["message"]
    info = [d for d in body["details"] if d["@type"].endswith("google.rpc.ResourceInfo")]
    assert info and info[0]["resource_name"] == "gpt-17"


BAD_BODIES = ['{"prompt": ', '{"prompt": "Hi"', '{"prompt": "Hi"} extra', "prompt=Hi", "[]", '{"prompt": 5}',
              '{"max_new_tokens": "many", "prompt": "Hi"}']


@pytest.mark.parametrize("payload", BAD_BODIES)
async def test_malformed_or_mistyped_json_on_a_typed_path_is_400_from_envoy(http: httpx.AsyncClient, payload: str):
    resp = await http.post("/completion/stream", content=payload, headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    # Envoy says what it could not parse (the request never reached the server), in the
    # same JSON shape as the server's own errors.
    assert resp.headers["content-type"] == "application/json"
    assert resp.json()["code"] == 3 and resp.json()["message"]


@pytest.mark.parametrize("payload", BAD_BODIES)
async def test_malformed_or_mistyped_json_on_a_compat_path_is_400_naming_the_body(
        http: httpx.AsyncClient, field_violations, payload: str):
    resp = await http.post("/completion", content=payload, headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert resp.json()["code"] == 3
    assert field_violations(resp.json()) == ["body"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("POST", "/v1/completion"), ("GET", "/completion"),
                                              ("DELETE", "/v1/models"), ("GET", "/v2/models"),
                                              ("GET", "/v1/generation/completions")])
async def test_unknown_path_or_method_is_404(http: httpx.AsyncClient, method: str, path: str):
    resp = await http.request(method, path)
    assert resp.status_code == 404, resp.text
    assert "Could not resolve" in resp.text


async def test_unknown_query_parameter_is_400(http: httpx.AsyncClient):
    resp = await http.get("/v1/generation/models", params={"verbose": "1"})
    assert resp.status_code == 400, resp.text
    assert "verbose" in resp.text
    resp = await http.get("/health?foo=bar")
    assert resp.status_code == 400 and "foo" in resp.text
