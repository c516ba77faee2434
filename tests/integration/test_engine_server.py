"""The engine seen through the server: a full queue answers RESOURCE_EXHAUSTED
with RetryInfo (HTTP 429 through Envoy), and a client whose deadline passes
leaves the batch."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from llmserve.generation.v1 import generation_service_pb2 as pb
from llmserve.generation.v1 import generation_service_pb2_grpc as pb_grpc
from llmserve.server.v1 import server_service_pb2, server_service_pb2_grpc

from models.engine.config import EngineConfig
from tests.support import make_settings, running, tiny_specs
from tools import envoy_config

LONG = dict(prompt="Count with me:", max_new_tokens=480, do_sample=False)


async def _wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def one_slot_server(tmp_path: Path, tiny_model_dir: Path):
    settings = make_settings(tmp_path, tiny_specs(tiny_model_dir), "tiny",
                             engine=EngineConfig(max_batch_rows=1, max_queued_requests=1, retry_after_s=2.0))
    async with running(settings) as app:
        yield app


async def test_full_queue_is_resource_exhausted_over_grpc_and_429_over_rest(one_slot_server, descriptor, tmp_path):
    engine = one_slot_server.manager.loaded("tiny").engine
    async with grpc.aio.insecure_channel(f"127.0.0.1:{one_slot_server.port}") as channel:
        stub = pb_grpc.GenerationServiceStub(channel)
        running_call = stub.StreamComplete(pb.StreamCompleteRequest(**LONG))
        await running_call.read()  # first delta: the only row slot is taken
        queued = asyncio.ensure_future(stub.Complete(pb.CompleteRequest(**LONG)))
        await _wait_for(lambda: engine.stats().queued_requests == 1)

        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Complete(pb.CompleteRequest(prompt="one more", max_new_tokens=4))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        retry = [d for d in rpc_status.from_call(err.value).details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
        assert retry, "RESOURCE_EXHAUSTED must carry RetryInfo"
        info = error_details_pb2.RetryInfo()
        retry[0].Unpack(info)
        assert info.retry_delay.seconds == 2

        http_port, admin_port = envoy_config.free_port(), envoy_config.free_port()
        config = envoy_config.render(one_slot_server.port, http_port, admin_port, descriptor, tmp_path / "envoy.yaml",
                                     http_host="127.0.0.1")
        proxy = await asyncio.to_thread(envoy_config.start_envoy, config, http_port, admin_port,
                                        log_path=tmp_path / "envoy.log", log_level="warn")
        try:
            async with httpx.AsyncClient(base_url=proxy.base_url, timeout=30) as http:
                reply = await http.post("/v1/generation/completions", json={"prompt": "one more", "max_new_tokens": 4})
        finally:
            await asyncio.to_thread(envoy_config.stop_envoy, proxy)
        assert reply.status_code == 429
        assert reply.json()["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]

        running_call.cancel()
        done = await queued  # the queued request was not lost: it runs once the slot frees
        assert done.usage.completion_tokens == 480


@pytest.fixture
def slow_tiny(tiny_server):
    """The shared tiny server with each forward pass slowed to 10 ms, so a 480-token
    stream outlasts the deadlines below on any machine (the tiny model alone can
    finish it in well under a second)."""
    model = tiny_server.manager.loaded("tiny").loaded.model
    handle = model.register_forward_pre_hook(lambda module, args: time.sleep(0.01))
    try:
        yield tiny_server
    finally:
        handle.remove()


async def test_deadline_frees_the_row(slow_tiny):
    tiny_server = slow_tiny
    engine = tiny_server.manager.loaded("tiny").engine
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tiny_server.port}") as channel:
        stub = pb_grpc.GenerationServiceStub(channel)
        call = stub.StreamComplete(pb.StreamCompleteRequest(**LONG), timeout=1.0)
        await call.read()
        assert engine.stats().running_rows >= 1
        with pytest.raises(grpc.aio.AioRpcError) as err:
            while await call.read() is not grpc.aio.EOF:
                pass
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await _wait_for(lambda: engine.stats().running_rows == 0, timeout=5.0)


async def test_cancelled_client_frees_the_row(slow_tiny):
    tiny_server = slow_tiny
    engine = tiny_server.manager.loaded("tiny").engine
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tiny_server.port}") as channel:
        stub = pb_grpc.GenerationServiceStub(channel)
        call = stub.StreamComplete(pb.StreamCompleteRequest(**LONG))
        await call.read()
        before = engine.stats().tokens_generated
        call.cancel()
    await _wait_for(lambda: engine.stats().running_rows == 0, timeout=5.0)
    # It left early: far fewer than the 480 tokens it asked for were generated.
    assert engine.stats().tokens_generated - before < 400


async def _health(port: int) -> server_service_pb2.GetHealthResponse:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        return await server_service_pb2_grpc.ServerServiceStub(channel).GetHealth(server_service_pb2.GetHealthRequest())


async def test_health_shows_the_kernel_choice_measured_at_the_first_start_and_read_at_the_next(
        tmp_path: Path, tiny_model_dir: Path):
    # Cached whatever the load: this test is about the cache, not about a quiet machine.
    settings = make_settings(tmp_path, tiny_specs(tiny_model_dir), "tiny",
                             engine=EngineConfig(kernel_cache_max_other_cpu=1.0))
    async with running(settings) as app:
        engine = app.manager.loaded("tiny").engine
        # SERVING comes first; the measurement runs between the engine's steps after it.
        await _wait_for(lambda: engine.kernels.source == "measured", timeout=60)
        first = await _health(app.port)
        plan = engine.kernels
    assert first.linear_kernels_source == "measured"
    assert [(k.min_rows, k.max_rows, k.kernel) for k in first.linear_kernels] == [
        (b.min_rows, b.max_rows or 0, b.kernel) for b in plan.buckets]
    assert first.linear_kernels[0].min_rows == 1 and first.linear_kernels[-1].max_rows == 0
    assert all(set(k.measured_ms) == {"torch", "onednn"} for k in first.linear_kernels)
    assert list((tmp_path / "models" / "tiny" / "kernels").glob("kernels-*.json"))

    async with running(settings) as app:
        second = await _health(app.port)
    assert second.linear_kernels_source == "cache"
    assert list(second.linear_kernels) == list(first.linear_kernels)
