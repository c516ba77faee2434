"""Starts llmserve as its own process (`python -m server.main`, as deployed) on a free
port with a chosen engine configuration, waits until health says SERVING, stops it.

A separate process keeps the load generator's Python work off the server's GIL.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
STARTUP_FAILED = ("start-up failed", "default model failed to load")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml_value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, bool) else ("true" if value else "false")


def write_config(path: Path, engine: dict[str, Any]) -> Path:
    lines = ['default_model = "smollm2"', "", "[engine]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in engine.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class ServerProcess:
    """One llmserve server process; use as a context manager."""

    def __init__(self, work_dir: Path, engine: dict[str, Any] | None = None, label: str = "server",
                 poll_s: float = 0.5, extra_args: tuple[str, ...] = ()) -> None:
        self.work_dir = work_dir
        self.poll_s = poll_s
        """Seconds between health checks while waiting for SERVING (bounds ready_s's resolution)."""
        self.extra_args = extra_args
        self.engine = dict(engine or {})
        self.label = label
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = work_dir / f"{label}.log"
        self.ready_s: float | None = None

    def _prepare_data_dir(self) -> Path:
        from models.loading import _embedded_cache
        from models.registry import default_specs

        cache = _embedded_cache(next(s for s in default_specs() if s.name == "smollm2"), ROOT / "data" / "models")
        data = self.work_dir / f"{self.label}-data"
        (data / "models").mkdir(parents=True, exist_ok=True)
        link = data / "models" / "smollm2"
        if not link.exists():
            link.symlink_to(cache.resolve(), target_is_directory=True)
        return data

    def start(self, timeout_s: float = 240.0) -> "ServerProcess":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        data = self._prepare_data_dir()
        config = write_config(self.work_dir / f"{self.label}.toml", self.engine)
        cmd = [sys.executable, "-m", "server.main", "--config", str(config), "--host", "127.0.0.1",
               "--port", str(self.port), "--data-dir", str(data), "--log-level", "WARNING", *self.extra_args]
        t0 = time.perf_counter()
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     env=self._env())
        log.close()
        self._wait_serving(timeout_s)
        self.ready_s = time.perf_counter() - t0
        return self

    def settle_kernels(self, timeout_s: float = 300.0) -> str:
        """Wait until the engine's linear-kernel choice is no longer pending (without a cached
        choice the engine measures between its first steps, which slows them): what is
        measured afterwards is the steady state. Returns the choice's source."""
        from llmserve.server.v1 import server_service_pb2 as pb
        from llmserve.server.v1 import server_service_pb2_grpc as pb_grpc

        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = pb_grpc.ServerServiceStub(channel)
            while True:
                source = stub.GetHealth(pb.GetHealthRequest(), timeout=10).linear_kernels_source
                if source != "pending" or time.monotonic() > deadline:
                    return source
                time.sleep(self.poll_s)

    @staticmethod
    def _env() -> dict[str, str]:
        from bench import SOURCE_PATHS

        paths = [*SOURCE_PATHS, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(paths)}

    def _wait_serving(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.label} exited with {self.proc.returncode}: {self.log_tail()}")
                if self._startup_failed():
                    self.stop()
                    raise RuntimeError(f"{self.label} start-up failed: {self.log_tail(4)}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(self.poll_s)
        self.stop()
        raise RuntimeError(f"{self.label} not SERVING after {timeout_s:.0f} s: {self.log_tail()}")

    def _startup_failed(self) -> bool:
        """The server logs these (server/app.py) and stays up NOT_SERVING: no point waiting."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return False
        return any(marker in text for marker in STARTUP_FAILED)

    def log_tail(self, lines: int = 8) -> str:
        try:
            return " | ".join(self.log_path.read_text().strip().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
