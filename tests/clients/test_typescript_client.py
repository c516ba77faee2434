"""The TypeScript package's own tests (`npm test`: build, then node:test) against a live
server: unary calls, server streams and their cancel, error statuses with details, retries,
a LUT (and the export of one past 4 MiB), a chat session with a JSON-schema reply and an SAE job."""

from __future__ import annotations

import asyncio
import os

import grpc

from domain.lut import codec
from llmserve.lut.v1 import lut_service_pb2 as lut_pb
from llmserve.lut.v1 import lut_service_pb2_grpc as lut_grpc
from tests.clients.conftest import ADMIN_KEY
from tests.support import ROOT

PACKAGE = ROOT / "clients" / "typescript"


async def test_npm_test_passes_against_a_live_server(client_app, tenant_key: str):
    assert (PACKAGE / "node_modules").is_dir(), "the TypeScript package's dependencies are missing: run `make npm-install`"
    # A LUT whose export (~4.8 MB) is past grpc-js's default 4 MiB receive limit.
    entries = [codec.ExportedEntry(f"fact {i}", None, "opaque", bytes([i % 251]) * 30_000) for i in range(160)]
    blob = codec.encode_export("tiny", entries)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{client_app.port}",
                                         options=[("grpc.max_send_message_length", 64 * 2**20)]) as channel:
        await lut_grpc.LutServiceStub(channel).ImportLut(
            lut_pb.ImportLutRequest(lut_name="big-export", model="tiny", data=blob),
            metadata=(("authorization", f"Bearer {tenant_key}"),))
    env = {**os.environ, "LLMSERVE_TARGET": f"127.0.0.1:{client_app.port}", "LLMSERVE_API_KEY": tenant_key,
           "LLMSERVE_ADMIN_KEY": ADMIN_KEY, "LLMSERVE_BIG_LUT": "big-export", "LLMSERVE_BIG_LUT_BYTES": str(len(blob))}
    # A subprocess read asynchronously: the server runs on this test's event loop.
    process = await asyncio.create_subprocess_exec("npm", "test", cwd=PACKAGE, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), 300)
    text = out.decode()
    assert process.returncode == 0, text[-6000:]
    assert "# fail 0" in text and "# pass 12" in text, text[-3000:]
