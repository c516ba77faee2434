"""Health, reflection-visible services, UNIMPLEMENTED contracts, and the real
entry point's start-up and SIGTERM shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llmserve.sae.v1 import sae_service_pb2, sae_service_pb2_grpc
from llmserve.server.v1 import server_service_pb2, server_service_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]


async def _health(port: int, service: str = "") -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service))
    return reply.status


async def test_health_per_service(tiny_server):
    assert await _health(tiny_server.port) == health_pb2.HealthCheckResponse.SERVING
    assert await _health(tiny_server.port, "llmserve.generation.v1.GenerationService") == \
        health_pb2.HealthCheckResponse.SERVING
    # Contracts whose implementation has not landed do not claim to serve.
    assert await _health(tiny_server.port, "llmserve.sae.v1.SaeTrainingService") == \
        health_pb2.HealthCheckResponse.NOT_SERVING


async def test_unimplemented_service_names_what_is_missing(tiny_server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tiny_server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await sae_service_pb2_grpc.SaeTrainingServiceStub(channel).GetTrainingJob(
                sae_service_pb2.GetTrainingJobRequest(job_id="j1"))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "SaeTrainingService.GetTrainingJob" in err.value.details() and "sparse-autoencoder" in err.value.details()


async def test_health_document_has_every_seeds_fields(tiny_server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tiny_server.port}") as channel:
        reply = await server_service_pb2_grpc.ServerServiceStub(channel).GetHealth(server_service_pb2.GetHealthRequest())
    assert reply.status == "ok" and reply.initialized and reply.model == "tiny" and reply.device == "cpu"
    assert reply.timestamp > 1.7e9 and reply.service == "llmserve"
    assert not reply.gpu_available and reply.memory_status["host"].total_gb > 0
    assert reply.services["llmserve.generation.v1.GenerationService"] == "SERVING"


def test_entry_point_serves_then_stops_on_sigterm(tmp_path: Path, tiny_model_dir: Path):
    config = tmp_path / "llmserve.toml"
    config.write_text(f'default_model = "tiny"\nhost = "127.0.0.1"\nport = 0\ndata_dir = "{tmp_path}"\n'
                      f'[[models]]\nname = "tiny"\nsource = "huggingface"\npath = "{tiny_model_dir}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "server.main", "--config", str(config)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        for line in proc.stdout:  # log lines come first; the address line names the bound port
            seen.append(line)
            if "listening on" in line:
                break
        assert "listening on" in seen[-1], "".join(seen)
        port = int(seen[-1].rsplit(":", 1)[1])
        deadline = time.time() + 60
        status = None
        while time.time() < deadline:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest()).status
            if status == health_pb2.HealthCheckResponse.SERVING:
                break
            time.sleep(0.2)
        assert status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
