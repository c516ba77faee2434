"""Fixtures for the gateway tests: a real Envoy (rendered from the committed
envoy.yaml on free ports) in front of the in-process tiny server, httpx
clients, and an asyncio grpcurl runner.

The gRPC servers run in this test session's event loop, so everything here
that talks to them is async (httpx.AsyncClient, asyncio subprocesses): a
blocking call would stall the server it is waiting for.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Self

import httpx
import pytest
import pytest_asyncio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import envoy_config  # noqa: E402
import protogen  # noqa: E402

from tests.support import start_envoy_for  # noqa: E402


@pytest.fixture(scope="session")
def descriptor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The transcoder's descriptor set, built from proto/ into a temporary folder."""
    return protogen.generate_descriptor(tmp_path_factory.mktemp("descriptor") / "llmserve.pb")


async def _start_envoy(grpc_port: int, descriptor: Path, folder: Path, metrics_port: int | None = None
                       ) -> envoy_config.Envoy:
    return await start_envoy_for(grpc_port, descriptor, folder, metrics_port)


@pytest_asyncio.fixture(scope="session")
async def envoy(tiny_server, descriptor: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[envoy_config.Envoy]:
    """Envoy on free ports, proxying to `tiny_server`."""
    proxy = await _start_envoy(tiny_server.port, descriptor, tmp_path_factory.mktemp("envoy"), tiny_server.metrics_port)
    try:
        yield proxy
    finally:
        await asyncio.to_thread(envoy_config.stop_envoy, proxy)


@pytest_asyncio.fixture(scope="session")
async def real_envoy(real_server, descriptor: Path, tmp_path_factory: pytest.TempPathFactory
                     ) -> AsyncIterator[envoy_config.Envoy]:
    """Envoy on free ports, proxying to `real_server` (SmolLM2)."""
    proxy = await _start_envoy(real_server.port, descriptor, tmp_path_factory.mktemp("real-envoy"),
                               real_server.metrics_port)
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


def _grpcurl_argv(grpcurl_path: str, args: tuple[str, ...], data: Any) -> list[str]:
    request = [] if data is None else ["-d", data if isinstance(data, str) else json.dumps(data)]
    return [grpcurl_path, "-plaintext", *request, *args]


@pytest.fixture(scope="session")
def grpcurl(grpcurl_path: str):
    """`await grpcurl(*args)` runs the real grpcurl without blocking the server's loop."""

    async def run(*args: str, data: Any = None, timeout: float = 60.0) -> GrpcurlResult:
        process = await asyncio.create_subprocess_exec(*_grpcurl_argv(grpcurl_path, args, data),
                                                       stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            raise
        return GrpcurlResult(process.returncode, out.decode(), err.decode())

    return run


class GrpcurlStream:
    """The messages grpcurl prints for a server stream, parsed one by one as they arrive."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._text = ""
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._json = json.JSONDecoder()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while True:
            self._text = self._text.lstrip()
            if self._text:
                try:
                    message, end = self._json.raw_decode(self._text)
                except json.JSONDecodeError:
                    pass  # the rest of this message has not arrived yet
                else:
                    self._text = self._text[end:]
                    return message
            chunk = await self.process.stdout.read(65536)
            if not chunk:
                assert not self._text.strip(), f"grpcurl ended inside a message: {self._text!r}"
                raise StopAsyncIteration
            self._text += self._utf8.decode(chunk)


@pytest.fixture(scope="session")
def grpcurl_stream(grpcurl_path: str):
    """`async with grpcurl_stream(*args, data=...) as (stream, process):` a server stream
    through the real grpcurl, read while it runs; `process.returncode` is set on exit."""

    @contextlib.asynccontextmanager
    async def run(*args: str, data: Any = None) -> AsyncIterator[tuple[GrpcurlStream, asyncio.subprocess.Process]]:
        process = await asyncio.create_subprocess_exec(*_grpcurl_argv(grpcurl_path, args, data),
                                                       stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
        try:
            yield GrpcurlStream(process), process
        finally:
            if process.returncode is None:
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()

    return run


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Yield the `data: {...}` events of a streaming response one by one, as they arrive."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if lines:
                yield json.loads("\n".join(lines))
                lines = []
            continue
        assert line.startswith("data:"), f"not an SSE data line: {line!r}"
        lines.append(line[len("data:"):].lstrip())
    if lines:
        yield json.loads("\n".join(lines))


async def read_sse(response: httpx.Response) -> list[dict[str, Any]]:
    """Every `data: {...}` event of a streaming response, to its end."""
    return [event async for event in sse_events(response)]


def field_violations(body: dict[str, Any]) -> list[str]:
    """Fields named by google.rpc.BadRequest details in a converted gRPC status body."""
    fields = []
    for detail in body.get("details", []):
        if detail.get("@type", "").endswith("google.rpc.BadRequest"):
            fields += [v["field"] for v in detail.get("field_violations", detail.get("fieldViolations", []))]
    return fields


@pytest.fixture(name="read_sse", scope="session")
def read_sse_fixture():
    """`await read_sse(response)` -> [event dict] (see read_sse)."""
    return read_sse


@pytest.fixture(name="field_violations", scope="session")
def field_violations_fixture():
    """`field_violations(body)` -> fields named by BadRequest details."""
    return field_violations
