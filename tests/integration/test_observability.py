"""Metrics, request ids and logs, seen from outside: real requests through the real Envoy,
then `GET /metrics` through the same Envoy, the server's JSON log lines and Envoy's JSON
access log."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import pytest_asyncio
from llmserve.generation.v1 import generation_service_pb2 as pb
from llmserve.generation.v1 import generation_service_pb2_grpc as pb_grpc
from prometheus_client.parser import text_string_to_metric_families

from domain.tenancy.config import AuthConfig, QuotaLimits
from server import logs
from server.app import create_server
from server.observability_config import LogConfig
from tests.integration.conftest import envoy_config, read_sse
from tests.support import (
    ROOT,
    make_settings,
    running,
    start_envoy_for,
    tiny_config,
    tiny_specs,
)

GENERATION = "llmserve.generation.v1.GenerationService"
Page = dict[tuple[str, frozenset], float]


def parse(text: str) -> Page:
    """Every sample of a Prometheus text page: (name, labels) -> value."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(page: Page, name: str, **labels: str) -> float:
    return page.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> Page:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


@contextlib.contextmanager
def server_log() -> Iterator[io.StringIO]:
    """The server's log lines, as `make run` writes them off a terminal (JSON), while the
    block runs."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.CallFilter())
    root, access = logging.getLogger(), logging.getLogger("llmserve.access")
    old_level = access.level
    access.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        access.setLevel(old_level)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def access_lines(out: io.StringIO, *request_ids: str) -> list[dict]:
    """The server's access-log lines once each of `request_ids` has one: a call is logged as its
    handler unwinds, which can be just after the client has the reply."""
    for _ in range(100):
        lines = [line for line in json_lines(out.getvalue()) if line.get("logger") == "llmserve.access"]
        if all(any(line.get("request_id") == rid for line in lines) for rid in request_ids):
            break
        await asyncio.sleep(0.05)
    return lines


async def access_entry(envoy: envoy_config.Envoy, request_id: str) -> dict:
    """Envoy's JSON access-log entry for `request_id` (Envoy flushes its log about once a second)."""
    async with asyncio.timeout(20):
        while True:
            for line in envoy.log_text().splitlines():
                if line.startswith("{") and request_id in line:
                    return json.loads(line)
            await asyncio.sleep(0.2)


async def test_streamed_completion_moves_the_metrics_through_envoy(tiny_server, envoy, http):
    before = await scrape(http)
    async with http.stream("POST", "/v1/completions:stream",
                           json={"prompt": "Once upon a time", "max_new_tokens": 7, "do_sample": False}) as resp:
        assert resp.status_code == 200
        events = await read_sse(resp)
    completion_tokens = int(events[-1]["final"]["usage"]["completion_tokens"])
    prompt_tokens = int(events[-1]["final"]["usage"]["prompt_tokens"])
    assert completion_tokens > 0
    after = await scrape(http)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("llmserve_time_to_first_token_seconds_count", model="tiny") == 1
    assert grew("llmserve_e2e_request_latency_seconds_count", model="tiny") == 1
    assert grew("llmserve_queue_wait_seconds_count", model="tiny") == 1
    assert grew("llmserve_inter_token_latency_seconds_count", model="tiny") == completion_tokens - 1
    assert grew("llmserve_generation_tokens_total", model="tiny") == completion_tokens
    assert grew("llmserve_prompt_tokens_total", model="tiny") == prompt_tokens
    assert grew("llmserve_request_completion_tokens_sum", model="tiny") == completion_tokens
    assert grew("llmserve_request_prompt_tokens_count", model="tiny") == 1
    assert grew("llmserve_batch_size_rows_count", model="tiny") >= completion_tokens
    assert grew("llmserve_requests_total", service=GENERATION, method="StreamComplete", code="OK") == 1
    assert grew("llmserve_request_duration_seconds_count", service=GENERATION, method="StreamComplete") == 1
    assert value(after, "llmserve_requests_running", model="tiny") == 0
    assert value(after, "llmserve_requests_waiting", model="tiny") == 0
    assert value(after, "llmserve_kv_slots_total", model="tiny") > 0
    assert value(after, "llmserve_kv_tokens_total", model="tiny") > 0
    assert value(after, "llmserve_training_jobs", kind="sae_training", state="running") == 0
    lookups = sum(grew("llmserve_prefix_cache_lookups_total", model="tiny", result=r) for r in ("hit", "miss"))
    assert lookups == 1
    assert sum(grew("llmserve_prefix_cache_prompt_tokens_total", model="tiny", source=s)
               for s in ("cache", "prefill")) == prompt_tokens
    assert value(after, "llmserve_prefix_cache_tokens_total", model="tiny") > 0
    # The server's own port answers the same page.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{tiny_server.metrics_port}") as direct:
        assert ("llmserve_generation_tokens_total", frozenset({("model", "tiny")})) in await scrape(direct)


async def test_bad_request_is_counted_with_its_code(http):
    before = await scrape(http)
    bad = await http.post("/completion", json={"prompt": "Hi", "temperature": -1})
    assert bad.status_code == 400
    after = await scrape(http)
    labels = {"service": GENERATION, "method": "CompleteCompat", "code": "INVALID_ARGUMENT"}
    assert value(after, "llmserve_requests_total", **labels) - value(before, "llmserve_requests_total", **labels) == 1


@pytest_asyncio.fixture
async def limited(tmp_path: Path, tiny_model_dir: Path, descriptor: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A server whose one tenant may make one call a minute, behind its own Envoy."""
    settings = make_settings(tmp_path, tiny_specs(tiny_model_dir), "tiny",
                             auth=AuthConfig(quotas=QuotaLimits(requests_per_minute=1)))
    async with running(settings) as app:
        proxy = await start_envoy_for(app.port, descriptor, tmp_path, app.metrics_port)
        try:
            async with httpx.AsyncClient(base_url=proxy.base_url, timeout=60.0) as client:
                yield client
        finally:
            await asyncio.to_thread(envoy_config.stop_envoy, proxy)


async def test_a_refused_call_raises_the_rejection_counter_with_its_reason(limited):
    assert (await limited.get("/v1/generation/models")).status_code == 200
    refused = await limited.get("/v1/generation/models")
    assert refused.status_code == 429, refused.text
    # The server counts a call as its handler unwinds, which can be just after the client has
    # the reply: wait for the count instead of racing it.
    for _ in range(100):
        page = await scrape(limited)
        if value(page, "llmserve_rejections_total", reason="requests_per_minute"):
            break
        await asyncio.sleep(0.05)
    assert value(page, "llmserve_rejections_total", reason="requests_per_minute") == 1
    assert value(page, "llmserve_requests_total", service=GENERATION, method="ListModels",
                 code="RESOURCE_EXHAUSTED") == 1
    rid = refused.headers["x-request-id"]
    assert {"@type": "type.googleapis.com/google.rpc.RequestInfo", "request_id": rid,
            "serving_data": ""} in refused.json()["details"]


async def test_envoy_request_id_reaches_the_server_log_and_the_access_log(envoy, http):
    with server_log() as out:
        resp = await http.post("/completion", json={"prompt": "Hi", "max_new_tokens": 2})
        rid = resp.headers["x-request-id"]  # made by Envoy: the client sent none
        lines = await access_lines(out, rid)
    assert resp.status_code == 200
    access = [line for line in lines if line.get("request_id") == rid]
    assert len(access) == 1, lines
    line = access[0]
    assert line["service"] == GENERATION and line["method"] == "CompleteCompat" and line["code"] == "OK"
    assert line["level"] == "INFO" and line["completion_tokens"] == 2 and line["duration_ms"] > 0
    assert "Hi" not in line["message"]  # prompts are not logged
    assert {"timestamp", "tenant", "prompt_tokens"} <= set(line)
    entry = await access_entry(envoy, rid)
    assert entry["request_id"] == rid and entry["status"] == 200 and entry["path"] == "/completion"


async def test_a_client_sent_request_id_is_kept_end_to_end(envoy, http):
    rid = "client-chosen-id-0001"
    with server_log() as out:
        resp = await http.get("/v1/generation/models", headers={"x-request-id": rid})
        bad = await http.post("/completion", json={"prompt": "Hi", "top_p": 7},
                              headers={"x-request-id": rid + "-bad"})
        lines = await access_lines(out, rid, rid + "-bad")
    assert resp.status_code == 200 and resp.headers["x-request-id"] == rid
    assert bad.status_code == 400 and bad.headers["x-request-id"] == rid + "-bad"
    assert any(d.get("request_id") == rid + "-bad" for d in bad.json()["details"])
    assert [line["method"] for line in lines if line.get("request_id") == rid] == ["ListModels"]
    assert [line["code"] for line in lines if line.get("request_id") == rid + "-bad"] == ["INVALID_ARGUMENT"]
    assert (await access_entry(envoy, rid))["path"] == "/v1/generation/models"


async def test_grpc_client_request_id_in_log_and_response_metadata(tiny_server):
    rid = "grpc-client-id-42"
    with server_log() as out:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{tiny_server.port}") as channel:
            call = pb_grpc.GenerationServiceStub(channel).Complete(
                pb.CompleteRequest(prompt="Hello", max_new_tokens=2), metadata=(("x-request-id", rid),))
            await call
            header = dict(await call.initial_metadata())
    assert header["x-request-id"] == rid and "x-llmserve-replica" in header
    access = [line for line in json_lines(out.getvalue()) if line.get("request_id") == rid]
    assert [(line["method"], line["code"]) for line in access] == [("Complete", "OK")]


def test_log_format_follows_the_setting_and_the_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert logs.use_json(LogConfig(), io.StringIO())
    assert not logs.use_json(LogConfig(), Tty())
    assert logs.use_json(LogConfig(format="json"), Tty())
    assert not logs.use_json(LogConfig(format="text"), io.StringIO())
    with pytest.raises(ValueError, match="log.format"):
        dataclasses.replace(LogConfig(), format="xml")


async def test_a_stream_the_client_leaves_counts_as_cancelled(tiny_server):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{tiny_server.metrics_port}") as direct:
        before = value(await scrape(direct), "llmserve_cancellations_total", model="tiny")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{tiny_server.port}") as channel:
            call = pb_grpc.GenerationServiceStub(channel).StreamComplete(
                pb.StreamCompleteRequest(prompt="Once upon a time", max_new_tokens=400, do_sample=False))
            await call.read()
            call.cancel()
        # The server learns of the cancellation asynchronously: wait for the row to leave.
        async with asyncio.timeout(30):
            while (page := await scrape(direct)) and value(page, "llmserve_requests_running", model="tiny"):
                await asyncio.sleep(0.05)
        assert value(page, "llmserve_cancellations_total", model="tiny") - before == 1


async def test_the_server_process_logs_json_lines_off_a_terminal(tmp_path: Path, tiny_model_dir: Path):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.main", "--config", str(tiny_config(tmp_path, tiny_model_dir)), cwd=ROOT,
        # stderr keeps what libraries print themselves (transformers' progress bars).
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    lines: list[dict] = []

    async def until(predicate) -> dict:
        while True:
            raw = await process.stdout.readline()
            assert raw, f"server exited: {lines}"
            lines.append(json.loads(raw))  # every line is one JSON object
            if predicate(lines[-1]):
                return lines[-1]

    try:
        async with asyncio.timeout(120):
            port = (await until(lambda line: "listening on" in line["message"]))["port"]
            await until(lambda line: line["message"].startswith("serving on port"))
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await pb_grpc.GenerationServiceStub(channel).Complete(
                    pb.CompleteRequest(prompt="Hello", max_new_tokens=2), metadata=(("x-request-id", "proc-1"),))
            access = await until(lambda line: line.get("request_id") == "proc-1")
    finally:
        process.terminate()
        await process.wait()
    assert access["logger"] == "llmserve.access" and access["code"] == "OK" and access["method"] == "Complete"
    assert all({"timestamp", "level", "logger", "message"} <= set(line) for line in lines)


async def test_a_traced_call_has_queue_prefill_and_decode_spans_in_the_callers_trace(tmp_path, tiny_model_dir):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )

    from server.tracing import Tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    settings = make_settings(tmp_path, tiny_specs(tiny_model_dir), "tiny")
    app = await create_server(settings, wait_ready=True, tracing=Tracing(provider))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            reply = await pb_grpc.GenerationServiceStub(channel).Complete(
                pb.CompleteRequest(prompt="Hello", max_new_tokens=3),
                metadata=(("traceparent", f"00-{trace_id}-{parent_id}-01"), ("x-request-id", "traced-1")))
    finally:
        await app.stop(grace=0.5)
    assert reply.usage.completion_tokens == 3
    spans = {s.name: s for s in exporter.get_finished_spans() if s.context.trace_id == int(trace_id, 16)}
    rpc, generate = spans[f"{GENERATION}/Complete"], spans["generate"]
    assert rpc.parent.span_id == int(parent_id, 16) and rpc.attributes["llmserve.request_id"] == "traced-1"
    assert rpc.attributes["rpc.grpc.status_code_name"] == "OK"
    assert generate.parent.span_id == rpc.context.span_id and generate.attributes["llmserve.completion_tokens"] == 3
    stages = [spans[name] for name in ("queue wait", "prefill", "decode")]
    assert all(s.parent.span_id == generate.context.span_id for s in stages)
    assert [s.start_time for s in stages] == sorted(s.start_time for s in stages)
    assert rpc.start_time <= generate.start_time and generate.end_time <= rpc.end_time


async def test_a_stalled_engine_takes_readiness_away_but_not_liveness(tmp_path, tiny_model_dir):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from server.observability_config import HealthConfig
    from tests.forward_gate import ForwardGate

    settings = make_settings(tmp_path, tiny_specs(tiny_model_dir), "tiny",
                             health=HealthConfig(stall_after_s=0.3, check_interval_s=0.05))
    async with running(settings) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def status(service: str = "") -> str:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

        async def until(wanted: str) -> None:
            async with asyncio.timeout(30):
                while await status() != wanted:
                    await asyncio.sleep(0.05)

        with ForwardGate(app.manager.loaded("tiny").engine.model, let_through=0, max_hold_s=60) as gate:
            call = pb_grpc.GenerationServiceStub(channel).Complete(pb.CompleteRequest(prompt="Hi", max_new_tokens=2))
            try:
                await until("NOT_SERVING")
                assert await status("liveness") == "SERVING"
            finally:
                gate.open()
            assert (await call).usage.completion_tokens == 2
        await until("SERVING")
        assert not gate.timed_out
