"""The TypeScript package's own tests (`npm test`: build, then node:test) against a live
server: unary calls, server streams and their cancel, error statuses with details, retries,
a LUT, a chat session with a JSON-schema reply and an SAE job."""

from __future__ import annotations

import asyncio
import os

from tests.clients.conftest import ADMIN_KEY
from tests.support import ROOT

PACKAGE = ROOT / "clients" / "typescript"


async def test_npm_test_passes_against_a_live_server(client_app, tenant_key: str):
    assert (PACKAGE / "node_modules").is_dir(), "the TypeScript package's dependencies are missing: run `make npm-install`"
    env = {**os.environ, "LLMSERVE_TARGET": f"127.0.0.1:{client_app.port}", "LLMSERVE_API_KEY": tenant_key,
           "LLMSERVE_ADMIN_KEY": ADMIN_KEY}
    # A subprocess read asynchronously: the server runs on this test's event loop.
    process = await asyncio.create_subprocess_exec("npm", "test", cwd=PACKAGE, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), 300)
    text = out.decode()
    assert process.returncode == 0, text[-6000:]
    assert "# fail 0" in text and "# pass 11" in text, text[-3000:]
