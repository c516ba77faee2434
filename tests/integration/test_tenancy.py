"""Tenants with auth on, over gRPC and REST through a real Envoy, on SQLite and PostgreSQL:
keys created by the admin, 401 for no/bad/revoked keys, 403 for admin-only calls, isolation
of LUTs, chat sessions and SAE jobs, quotas with 429 + Retry-After, open health."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import openai
import pytest
import pytest_asyncio

from domain.secret import Secret
from domain.tenancy.config import AuthConfig
from llmserve.lut.v1 import lut_service_pb2 as lut_pb
from llmserve.lut.v1 import lut_service_pb2_grpc as lut_grpc
from models.engine.config import EngineConfig
from tests.support import ROOT, make_settings, pg_schema_url, running, start_envoy_for, tiny_specs

sys.path.insert(0, str(ROOT / "tools"))
import envoy_config  # noqa: E402

ADMIN = "admin-key-for-tests-0123456789"


@dataclasses.dataclass
class Stack:
    rest: httpx.AsyncClient
    grpc_port: int
    database_url: str

    def as_admin(self) -> dict[str, str]:
        return {"authorization": f"Bearer {ADMIN}"}

    async def new_key(self, tenant: str) -> str:
        resp = await self.rest.post("/v1/admin/apiKeys", json={"tenant": tenant, "description": "tests"},
                                    headers=self.as_admin())
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["api_key"]["tenant"] == tenant and body["key"].startswith("llms_")
        return body["key"]


@pytest_asyncio.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def stack(request, tmp_path_factory, tiny_model_dir: Path, descriptor: Path) -> AsyncIterator[Stack]:
    folder = tmp_path_factory.mktemp(f"tenancy-{request.param}")
    with contextlib_pg(request.param) as database_url:
        settings = make_settings(folder, tiny_specs(tiny_model_dir), "tiny", database_url=database_url,
                                 engine=EngineConfig(max_queued_requests=32),
                                 auth=AuthConfig(mode="api_key", admin_key=Secret(ADMIN)))
        async with running(settings) as app:
            proxy = await start_envoy_for(app.port, descriptor, folder)
            try:
                async with httpx.AsyncClient(base_url=proxy.base_url, timeout=60.0) as rest:
                    yield Stack(rest, app.port, settings.resolved_database_url)
            finally:
                await asyncio.to_thread(envoy_config.stop_envoy, proxy)


class contextlib_pg:
    """A fresh PostgreSQL schema for "postgresql", nothing (SQLite in the data folder) otherwise."""

    def __init__(self, kind: str) -> None:
        self._cm = pg_schema_url() if kind == "postgresql" else None

    def __enter__(self) -> str:
        return self._cm.__enter__() if self._cm else ""

    def __exit__(self, *exc) -> None:
        if self._cm:
            self._cm.__exit__(*exc)


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_keys_are_required_and_bad_or_revoked_keys_get_the_same_401(stack: Stack):
    rest = stack.rest
    key = await stack.new_key("alice")
    assert (await rest.get("/v1/luts", headers=bearer(key))).status_code == 200
    assert (await rest.get("/v1/luts", headers={"x-api-key": key})).status_code == 200
    missing = await rest.get("/v1/luts")
    wrong = await rest.get("/v1/luts", headers=bearer(key[:-4] + "abcd"))
    garbage = await rest.get("/v1/luts", headers=bearer("not-a-key"))
    listed = (await rest.get("/v1/admin/apiKeys?tenant=alice", headers=stack.as_admin())).json()["api_keys"]
    key_id = next(k["key_id"] for k in listed if key.startswith(f"llms_{k['key_id']}_"))
    revoked = await rest.post(f"/v1/admin/apiKeys/{key_id}:revoke", json={}, headers=stack.as_admin())
    assert revoked.status_code == 200 and revoked.json()["api_key"]["revoked"] is True
    after = await rest.get("/v1/luts", headers=bearer(key))  # the very next request
    for resp in (missing, wrong, garbage, after):
        assert resp.status_code == 401, resp.text
        assert resp.json()["code"] == 16 and resp.json()["message"] == missing.json()["message"]
    assert key not in str(listed) and "secret" not in str(listed)


async def test_grpc_takes_the_key_in_metadata(stack: Stack):
    key = await stack.new_key("grpc-user")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.grpc_port}") as channel:
        stub = lut_grpc.LutServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListLuts(lut_pb.ListLutsRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = await stub.ListLuts(lut_pb.ListLutsRequest(), metadata=(("authorization", f"Bearer {key}"),))
        assert list(reply.luts) == []


async def test_health_and_info_stay_open(stack: Stack):
    assert (await stack.rest.get("/health")).json()["status"] == "ok"
    assert (await stack.rest.get("/")).status_code == 200


async def test_admin_only_calls_refuse_tenant_keys(stack: Stack):
    key = await stack.new_key("mallory")
    for method, path, body in (("POST", "/v1/admin/apiKeys", {"tenant": "mallory"}),
                               ("GET", "/v1/admin/apiKeys", None),
                               ("POST", "/specialists", {"name": "evil"}),
                               ("DELETE", "/specialists/anything", None)):
        resp = await stack.rest.request(method, path, json=body, headers=bearer(key))
        assert resp.status_code == 403, (path, resp.text)
        assert resp.json()["code"] == 7


async def _teach(stack: Stack, key: str, lut: str, fact: str) -> None:
    resp = await stack.rest.post("/train_lut", json={"label": fact, "lut_name": lut}, headers=bearer(key))
    assert resp.status_code == 200, resp.text


async def test_luts_are_private_to_their_tenant(stack: Stack):
    alice, bob = await stack.new_key("alice2"), await stack.new_key("bob2")
    await _teach(stack, alice, "notes", "Zorblat Capital manages Veltrona bridge bonds.")
    await _teach(stack, bob, "notes", "Quenwick runs the Mirelda ferry on Tuesdays.")
    await _teach(stack, alice, "alice-only", "Alice's cat is called Pimbleton.")

    def labels(resp: httpx.Response) -> list[str]:
        assert resp.status_code == 200, resp.text
        return resp.json()["lut"]["labels"]

    assert labels(await stack.rest.get("/v1/luts/notes", headers=bearer(alice))) == [
        "Zorblat Capital manages Veltrona bridge bonds."]
    assert labels(await stack.rest.get("/v1/luts/notes", headers=bearer(bob))) == [
        "Quenwick runs the Mirelda ferry on Tuesdays."]
    bob_sees = [lut["lut_name"] for lut in (await stack.rest.get("/v1/luts", headers=bearer(bob))).json()["luts"]]
    assert bob_sees == ["notes"]

    for method, path in (("GET", "/v1/luts/{}"), ("GET", "/v1/luts/{}:export"),
                         ("GET", "/v1/luts/{}/entries"), ("DELETE", "/v1/luts/{}")):
        resp = await stack.rest.request(method, path.format("alice-only"), headers=bearer(bob))
        missing = await stack.rest.request(method, path.format("no-such-lut"), headers=bearer(bob))
        assert resp.status_code == missing.status_code == 404, (path, resp.text)
        assert resp.json()["message"] == missing.json()["message"].replace("no-such-lut", "alice-only")

    prompt = {"prompt": "What is Alice's cat called?", "length": 8, "threshold": 0.0}
    bob_with = (await stack.rest.post("/generate", json={**prompt, "lut_name": "alice-only"},
                                      headers=bearer(bob))).json()
    bob_base = (await stack.rest.post("/generate", json=prompt, headers=bearer(bob))).json()
    alice_with = (await stack.rest.post("/generate", json={**prompt, "lut_name": "alice-only"},
                                        headers=bearer(alice))).json()
    assert bob_with["completion"] == bob_base["completion"]  # an unknown LUT: the base model, exactly
    assert alice_with["completion"] != bob_base["completion"]  # alice's fact steers her generation
    # Bob training the same name makes his own LUT; alice's keeps its one entry.
    await _teach(stack, bob, "alice-only", "Bob has no cat.")
    assert labels(await stack.rest.get("/v1/luts/alice-only", headers=bearer(alice))) == [
        "Alice's cat is called Pimbleton."]


async def test_chat_sessions_are_private_to_their_tenant(stack: Stack):
    alice, bob = await stack.new_key("alice3"), await stack.new_key("bob3")
    started = await stack.rest.post("/llm/chat/", json={"user_id": str(uuid.uuid4()), "initial_message": "Hi!",
                                                        "max_new_tokens": 4}, headers=bearer(alice))
    assert started.status_code == 200, started.text
    session = started.json()["session_id"]
    other = str(uuid.uuid4())
    missing = await stack.rest.get(f"/llm/chat/{other}/history/", headers=bearer(bob))
    for method, path, body in (("GET", f"/llm/chat/{session}/history/", None),
                               ("POST", f"/llm/chat/{session}/message/", {"user_message": "hello"})):
        resp = await stack.rest.request(method, path, json=body, headers=bearer(bob))
        assert resp.status_code == 404, resp.text
        assert resp.json()["message"] == missing.json()["message"].replace(other, session)
    assert (await stack.rest.get("/llm/chat/sessions/", headers=bearer(bob))).json()["sessions"] == []
    mine = (await stack.rest.get("/llm/chat/sessions/", headers=bearer(alice))).json()["sessions"]
    assert [s["session_id"] for s in mine] == [session]
    history = (await stack.rest.get(f"/llm/chat/{session}/history/", headers=bearer(alice))).json()["messages"]
    assert len(history) == 2  # bob's message was refused and wrote nothing


async def test_sae_jobs_and_corpora_are_private_to_their_tenant(stack: Stack):
    alice, bob = await stack.new_key("alice4"), await stack.new_key("bob4")
    files = {"file": ("reviews.txt", b"good product\nbad service\n" * 20, "text/plain")}
    assert (await stack.rest.post("/api/v1/upload", files=files, headers=bearer(alice))).status_code == 200
    refused = await stack.rest.post("/api/v1/train", headers=bearer(bob),
                                    json={"model_name": "tiny", "corpus_file": "reviews.txt", "layer_number": 1})
    assert refused.status_code == 400 and "not found" in refused.json()["message"]  # bob has no such corpus
    created = await stack.rest.post("/api/v1/train", headers=bearer(alice), json={
        "model_name": "tiny", "corpus_file": "reviews.txt", "layer_number": 1, "max_epochs": 1})
    assert created.status_code == 200, created.text
    job = created.json()["job_id"]
    for method, path in (("GET", f"/api/v1/train/{job}/status"), ("GET", f"/api/v1/train/{job}/result"),
                         ("POST", f"/v1/sae/jobs/{job}:cancel")):
        resp = await stack.rest.request(method, path, headers=bearer(bob), json={} if method == "POST" else None)
        assert resp.status_code == 404, (path, resp.text)
    assert (await stack.rest.get("/api/v1/jobs", headers=bearer(bob))).json()["total_jobs"] == 0
    assert [j["job_id"] for j in (await stack.rest.get("/api/v1/jobs", headers=bearer(alice))).json()["jobs"]] == [job]
    await stack.rest.post(f"/v1/sae/jobs/{job}:cancel", json={}, headers=bearer(alice))


async def test_a_tenant_over_its_request_quota_gets_429_with_retry_after(stack: Stack):
    key = await stack.new_key("limited")
    set_ = await stack.rest.post("/v1/admin/tenants/limited/quotas", json={"requests_per_minute": 3},
                                 headers=stack.as_admin())
    assert set_.status_code == 200 and set_.json()["quotas"]["requests_per_minute"] == "3"
    codes = [(await stack.rest.get("/v1/luts", headers=bearer(key))).status_code for _ in range(3)]
    over = await stack.rest.get("/v1/luts", headers=bearer(key))
    assert codes == [200, 200, 200] and over.status_code == 429, over.text
    assert 1 <= int(over.headers["retry-after"]) <= 60
    details = {d["@type"].rsplit(".", 1)[1] for d in over.json()["details"]}
    assert {"RetryInfo", "QuotaFailure"} <= details
    other = await stack.new_key("unlimited")
    assert (await stack.rest.get("/v1/luts", headers=bearer(other))).status_code == 200  # others are unaffected


async def test_the_admin_command_line_makes_keys_the_server_accepts(stack: Stack, tmp_path: Path):
    async def admin(*args: str) -> dict:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.admin", "--database-url", stack.database_url, *args, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        return json.loads(out)

    created = await admin("create-key", "--tenant", "carol", "--description", "from the shell")
    quotas = await admin("set-quotas", "carol", "--lut-entries", "1")
    assert quotas["quotas"]["lut_entries"] == 1
    assert (await stack.rest.get("/v1/luts", headers=bearer(created["key"]))).status_code == 200
    listed = await admin("list-keys", "--tenant", "carol")
    assert [k["key_id"] for k in listed["api_keys"]] == [created["key_id"]]
    assert created["key"] not in json.dumps(listed)
    await _teach(stack, created["key"], "n", "Carol likes tea.")
    over = await stack.rest.post("/train_lut", json={"label": "Carol likes coffee.", "lut_name": "n"},
                                 headers=bearer(created["key"]))
    assert over.status_code == 429 and "lut_entries" in over.json()["message"]
    await admin("revoke-key", created["key_id"])
    assert (await stack.rest.get("/v1/luts", headers=bearer(created["key"]))).status_code == 401


async def test_openai_paths_take_keys_and_count_generated_tokens(stack: Stack):
    # The OpenAI SDK sends its api_key as `Authorization: Bearer`; errors arrive as its exceptions.
    key = await stack.new_key("sdk-user")
    base = str(stack.rest.base_url).rstrip("/") + "/v1"
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "temperature": 0}
    async with openai.AsyncOpenAI(base_url=base, api_key="not-a-key", max_retries=0) as anonymous:
        with pytest.raises(openai.AuthenticationError) as caught:
            await anonymous.chat.completions.create(**body)
        assert caught.value.body["type"] == "authentication_error"
    set_ = await stack.rest.post("/v1/admin/tenants/sdk-user/quotas", json={"generated_tokens_per_minute": 4},
                                 headers=stack.as_admin())
    assert set_.status_code == 200, set_.text
    async with openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0) as client:
        assert (await client.models.list()).data[0].id == "tiny"
        first = await client.chat.completions.create(**body)
        assert first.usage.completion_tokens > 4  # counted against the budget once it finished
        with pytest.raises(openai.RateLimitError) as caught:
            await client.completions.create(model="tiny", prompt="Hi", max_tokens=2)
        assert caught.value.body["type"] == "rate_limit_error" and caught.value.body["code"] == "rate_limit_exceeded"
