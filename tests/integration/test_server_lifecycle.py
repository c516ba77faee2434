"""Health, reflection-visible services, and the real
entry point's start-up and SIGTERM shutdown."""

from __future__ import annotations

import signal
from pathlib import Path

import grpc
import pytest
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llmserve.specialist.v1 import specialist_service_pb2, specialist_service_pb2_grpc
from llmserve.server.v1 import server_service_pb2, server_service_pb2_grpc
from tests.support import start_server_process, tiny_config, wait_serving


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

