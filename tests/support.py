"""Helpers for tests that build their own servers (imported as `tests.support`)."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from models.registry import ModelSpec, default_specs
from server.app import App, create_server
from server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# Shared with `make run` so the one-time GGUF conversion happens once per machine.
MODEL_CACHE = ROOT / "data" / "models"


def make_settings(tmp: Path, models: tuple[ModelSpec, ...], default: str, **overrides) -> Settings:
    base = Settings(host="127.0.0.1", port=0, data_dir=tmp, default_model=default, models=models,
                    grace_period_s=1.0)
    return dataclasses.replace(base, **overrides)


def tiny_specs(tiny_model_dir: Path) -> tuple[ModelSpec, ...]:
    return (ModelSpec("tiny", "huggingface", str(tiny_model_dir), device="cpu", description="tiny random llama"),
            *default_specs())


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[App]:
    app = await create_server(settings, wait_ready=True)
    try:
        yield app
    finally:
        await app.stop(grace=0.5)




def tiny_config(tmp: Path, tiny_model_dir: Path, extra: str = "") -> Path:
    """A TOML settings file serving the tiny model from `tmp` on a free port."""
    config = tmp / "llmserve.toml"
    config.write_text(f'default_model = "tiny"\nhost = "127.0.0.1"\nport = 0\ndata_dir = "{tmp}"\n{extra}\n'
                      f'[[models]]\nname = "tiny"\nsource = "huggingface"\npath = "{tiny_model_dir}"\n')
    return config


def start_server_process(config: Path) -> tuple[subprocess.Popen, int]:
    """`python -m server.main --config FILE` in a child process, and the port it bound."""
    proc = subprocess.Popen([sys.executable, "-m", "server.main", "--config", str(config)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:  # log lines come first; the address line names the bound port
        seen.append(line)
        if "listening on" in line:
            break
    if not seen or "listening on" not in seen[-1]:
        proc.kill()
        raise AssertionError("server did not start:\n" + "".join(seen))
    # Keep draining its output so a chatty child never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, int(seen[-1].rsplit(":", 1)[1])


def wait_serving(port: int, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest()).status
            except grpc.RpcError:
                status = None
        if status == health_pb2.HealthCheckResponse.SERVING:
            return
        time.sleep(0.2)
    raise AssertionError(f"server on port {port} not SERVING after {timeout} s")
