"""Health, reflection-visible services, and the real
entry point's start-up and SIGTERM shutdown."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import grpc
import pytest
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llmserve.generation.v1 import generation_service_pb2, generation_service_pb2_grpc
from llmserve.specialist.v1 import specialist_service_pb2, specialist_service_pb2_grpc
from llmserve.server.v1 import server_service_pb2, server_service_pb2_grpc
from models.engine.config import EngineConfig
from tests.forward_gate import ForwardGate
from tests.support import make_settings, running, start_server_process, tiny_config, tiny_specs, wait_serving


async def _health(port: int, service: str = "") -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service))
    return reply.status


async def test_health_per_service(tiny_server):
    assert await _health(tiny_server.port) == health_pb2.HealthCheckResponse.SERVING
    assert await _health(tiny_server.port, "llmserve.generation.v1.GenerationService") == \
        health_pb2.HealthCheckResponse.SERVING
    assert await _health(tiny_server.port, "llmserve.sae.v1.SaeTrainingService") == \
        health_pb2.HealthCheckResponse.SERVING
    assert await _health(tiny_server.port, "llmserve.specialist.v1.SpecialistService") == \
        health_pb2.HealthCheckResponse.SERVING


async def test_specialist_service_answers_with_real_errors(tiny_server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tiny_server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await specialist_service_pb2_grpc.SpecialistServiceStub(channel).GetSpecialist(
                specialist_service_pb2.GetSpecialistRequest(name="marketing"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "specialist 'marketing' not found" in err.value.details()


async def test_health_document_has_every_seeds_fields(tiny_server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tiny_server.port}") as channel:
        reply = await server_service_pb2_grpc.ServerServiceStub(channel).GetHealth(server_service_pb2.GetHealthRequest())
    assert reply.status == "ok" and reply.initialized and reply.model == "tiny" and reply.device == "cpu"
    assert reply.timestamp > 1.7e9 and reply.service == "llmserve"
    # What the host has, on a CPU-only machine and on a CUDA one alike.
    assert reply.gpu_available is torch.cuda.is_available() and reply.memory_status["host"].total_gb > 0
    assert reply.gpu_count == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert {k for k in reply.memory_status if k.startswith("gpu_")} == {f"gpu_{i}" for i in range(reply.gpu_count)}
    assert reply.services["llmserve.generation.v1.GenerationService"] == "SERVING"


def test_entry_point_serves_then_stops_on_sigterm(tmp_path: Path, tiny_model_dir: Path):
    proc, port = start_server_process(tiny_config(tmp_path, tiny_model_dir))
    try:
        wait_serving(port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


async def _health_becomes(port: int, status: int, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while await _health(port) != status:
            await asyncio.sleep(0.05)


async def test_health_turns_not_serving_while_the_engine_is_stuck_and_recovers(tmp_path: Path, tiny_model_dir: Path):
    settings = make_settings(tmp_path, tiny_specs(tiny_model_dir), "tiny",
                             engine=EngineConfig(stall_after_s=0.5))
    async with running(settings) as app:
        engine = app.manager.loaded("tiny").engine
        assert await _health(app.port) == health_pb2.HealthCheckResponse.SERVING
        with ForwardGate(engine.model, max_hold_s=60.0) as gate:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                call = asyncio.ensure_future(generation_service_pb2_grpc.GenerationServiceStub(channel).Complete(
                    generation_service_pb2.CompleteRequest(prompt="Hello", max_new_tokens=4, temperature=0.0)))
                await asyncio.to_thread(gate.holding.wait, 30)
                # The engine thread is inside a forward that does not return: health says so.
                await _health_becomes(app.port, health_pb2.HealthCheckResponse.NOT_SERVING)
                assert engine.stalled_for() >= 0.5
                gate.open()
                reply = await call
            await _health_becomes(app.port, health_pb2.HealthCheckResponse.SERVING)
        assert reply.usage.completion_tokens == 4 and not gate.timed_out
