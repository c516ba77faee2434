"""Fixtures for the gateway tests: a real Envoy (rendered from the committed
envoy.yaml on free ports) in front of the in-process tiny server, httpx
clients, and an asyncio grpcurl runner.

The gRPC servers run in this test session's event loop, so everything here
that talks to them is async (httpx.AsyncClient, asyncio subprocesses): a
blocking call would stall the server it is waiting for.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest
import pytest_asyncio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import envoy_config  # noqa: E402
import protogen  # noqa: E402


@pytest.fixture(scope="session")
def descriptor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The transcoder's descriptor set, built from proto/ into a temporary folder."""
    return protogen.generate_descriptor(tmp_path_factory.mktemp("descriptor") / "llmserve.pb")


async def _start_envoy(grpc_port: int, descriptor: Path, folder: Path) -> envoy_config.Envoy:
    http_port, admin_port = envoy_config.free_port(), envoy_config.free_port()
    config = envoy_config.render(grpc_port, http_port, admin_port, descriptor, folder / "envoy.yaml",
                                 http_host="127.0.0.1")
    # Threads: Envoy's first health check reaches the in-process server, which
    # needs this event loop to stay free.
    envoy = await asyncio.to_thread(envoy_config.start_envoy, config, http_port, admin_port,
                                    log_path=folder / "envoy.log", log_level="warn")
    return envoy


@pytest_asyncio.fixture(scope="session")
async def envoy(tiny_server, descriptor: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[envoy_config.Envoy]:
    """Envoy on free ports, proxying to `tiny_server`."""
    proxy = await _start_envoy(tiny_server.port, descriptor, tmp_path_factory.mktemp("envoy"))
    try:
        yield proxy
    finally:
        await asyncio.to_thread(envoy_config.stop_envoy, proxy)


@pytest_asyncio.fixture(scope="session")
async def real_envoy(real_server, descriptor: Path, tmp_path_factory: pytest.TempPathFactory
                     ) -> AsyncIterator[envoy_config.Envoy]:
    """Envoy on free ports, proxying to `real_server` (SmolLM2)."""
    proxy = await _start_envoy(real_server.port, descriptor, tmp_path_factory.mktemp("real-envoy"))
    try:
        yield proxy
    finally:
        await asyncio.to_thread(envoy_config.stop_envoy, proxy)


@pytest_asyncio.fixture
async def http(envoy: envoy_config.Envoy) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP/1.1 client on Envoy's REST port (what curl and browsers use)."""
    async with httpx.AsyncClient(base_url=envoy.base_url, timeout=60.0) as client:
        yield client


@dataclass
class GrpcurlResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def grpcurl(grpcurl_path: str):
    """`await grpcurl(*args)` runs the real grpcurl without blocking the server's loop."""

    async def run(*args: str, data: Any = None, timeout: float = 60.0) -> GrpcurlResult:
        argv = [grpcurl_path, "-plaintext"]
        if data is not None:
            argv += ["-d", data if isinstance(data, str) else json.dumps(data)]
        argv += list(args)
        process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            raise
        return GrpcurlResult(process.returncode, out.decode(), err.decode())

    return run


@dataclass
class SseEvent:
    """One server-sent event and when its last line arrived (seconds since the request was sent)."""

    data: dict[str, Any]
    at: float


async def read_sse(response: httpx.Response, started: float) -> list[SseEvent]:
    """Parse `data: {...}` events from a streaming response as they arrive."""
    events: list[SseEvent] = []
    lines: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if lines:
                events.append(SseEvent(json.loads("\n".join(lines)), time.monotonic() - started))
                lines = []
            continue
        assert line.startswith("data:"), f"not an SSE data line: {line!r}"
        lines.append(line[len("data:"):].lstrip())
    if lines:
        events.append(SseEvent(json.loads("\n".join(lines)), time.monotonic() - started))
    return events


def field_violations(body: dict[str, Any]) -> list[str]:
    """Fields named by google.rpc.BadRequest details in a converted gRPC status body."""
    fields = []
    for detail in body.get("details", []):
        if detail.get("@type", "").endswith("google.rpc.BadRequest"):
            fields += [v["field"] for v in detail.get("field_violations", detail.get("fieldViolations", []))]
    return fields


@pytest.fixture(name="read_sse", scope="session")
def read_sse_fixture():
    """`await read_sse(response, started)` -> [SseEvent] (see read_sse)."""
    return read_sse


@pytest.fixture(name="field_violations", scope="session")
def field_violations_fixture():
    """`field_violations(body)` -> fields named by BadRequest details."""
    return field_violations
