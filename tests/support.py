"""Helpers for tests that build their own servers (imported as `tests.support`)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import AsyncIterator, Iterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from models.registry import ModelSpec, default_specs
from server.app import App, create_server
from server.observability_config import MetricsConfig
from server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
# Shared with `make run` so the one-time GGUF conversion happens once per machine.
MODEL_CACHE = ROOT / "data" / "models"


def make_settings(tmp: Path, models: tuple[ModelSpec, ...], default: str, **overrides) -> Settings:
    base = Settings(host="127.0.0.1", port=0, data_dir=tmp, default_model=default, models=models,
                    grace_period_s=1.0, metrics=MetricsConfig(port=0))
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
    config.write_text(f'default_model = "tiny"\nhost = "127.0.0.1"\nport = 0\ndata_dir = "{tmp}"\nmetrics.port = 0\n{extra}\n'
                      f'[[models]]\nname = "tiny"\nsource = "huggingface"\npath = "{tiny_model_dir}"\n')
    return config


def start_server_process(config: Path, env: dict[str, str] | None = None,
                         output: list[str] | None = None) -> tuple[subprocess.Popen, int]:
    """`python -m server.main --config FILE` in a child process, and the port it bound.
    `output` collects every line the child prints (stdout and stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "server.main", "--config", str(config)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = output if output is not None else []
    for line in proc.stdout:  # log lines come first; the address line names the bound port
        seen.append(line)
        if "listening on" in line:
            break
    if not seen or "listening on" not in seen[-1]:
        proc.kill()
        raise AssertionError("server did not start:\n" + "".join(seen))
    port = address_line_port(seen[-1])
    # Keep draining its output so a chatty child never blocks on a full pipe.
    threading.Thread(target=lambda: [seen.append(line) for line in proc.stdout], daemon=True).start()
    return proc, port


def address_line_port(line: str) -> int:
    """The port in the server's "listening on" line (a JSON log line off a terminal)."""
    if line.lstrip().startswith("{"):
        return int(json.loads(line)["port"])
    return int(line.rsplit(":", 1)[1])


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


def pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=2) as conn:
        conn.execute(sql)


@contextlib.contextmanager
def pg_schema_url() -> Iterator[str]:
    """The URL of a fresh, uniquely named PostgreSQL schema, dropped afterwards, so tests
    running at the same time never see each other's rows."""
    import uuid

    schema = f"test_{uuid.uuid4().hex[:20]}"
    pg_admin(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        pg_admin(f'DROP SCHEMA "{schema}" CASCADE')


async def start_envoy_for(grpc_port: int, descriptor: Path, folder: Path, metrics_port: int | None = None):
    """A real Envoy on free ports in front of the gRPC server on `grpc_port` (and its
    metrics endpoint on `metrics_port`, for `GET /metrics`); stop it with
    `envoy_config.stop_envoy` in a thread."""
    import asyncio

    sys.path.insert(0, str(ROOT / "tools"))
    import envoy_config

    http_port, admin_port = envoy_config.free_port(), envoy_config.free_port()
    config = envoy_config.render(grpc_port, http_port, admin_port, descriptor, folder / "envoy.yaml",
                                 http_host="127.0.0.1",
                                 metrics=[("127.0.0.1", metrics_port)] if metrics_port else None)
    # A thread: Envoy's first health check reaches the in-process server, which needs the
    # test's event loop to stay free.
    return await asyncio.to_thread(envoy_config.start_envoy, config, http_port, admin_port,
                                   log_path=folder / "envoy.log", log_level="warn")
