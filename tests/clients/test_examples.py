"""The examples of both client packages run against a live server (the tiny model) and end well."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from tests.support import ROOT

PYTHON = ROOT / "clients" / "python" / "examples"
TYPESCRIPT = ROOT / "clients" / "typescript"
EXAMPLES = ["stream_completion", "lut", "chat_json", "sae_job"]
LAST_LINE = {"stream_completion": "tokens]", "sae_job": "weights in", "chat_json": "}", "lut": ""}
"""What each example's last line of output contains (the LUT example prints a random model's text)."""


async def _run(argv: list[str], cwd, env: dict[str, str]) -> str:
    # A subprocess read asynchronously: the server runs on this test's event loop.
    process = await asyncio.create_subprocess_exec(*argv, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode == 0, out.decode()[-4000:]
    return out.decode()


_built: list[bool] = []


async def typescript_built() -> None:
    """`npm run build` once per session, so the examples import the current dist/."""
    if not _built:
        assert (TYPESCRIPT / "node_modules").is_dir(), "run `make npm-install`"
        await _run(["npm", "run", "build"], TYPESCRIPT, dict(os.environ))
        _built.append(True)


@pytest.mark.parametrize("language", ["python", "typescript"])
@pytest.mark.parametrize("example", EXAMPLES)
async def test_example_runs(example: str, language: str, client_app, tenant_key: str):
    env = {**os.environ, "LLMSERVE_TARGET": f"127.0.0.1:{client_app.port}", "LLMSERVE_API_KEY": tenant_key,
           "LLMSERVE_MODEL": "tiny"}
    if language == "python":
        out = await _run([sys.executable, str(PYTHON / f"{example}.py")], PYTHON, env)
    else:
        await typescript_built()
        out = await _run(["node", f"examples/{example}.mjs"], TYPESCRIPT, env)
    lines = out.strip().splitlines() or [""]
    assert LAST_LINE[example] in lines[-1], out
