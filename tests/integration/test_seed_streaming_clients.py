"""Seed 001's streaming clients, verbatim (only the server address is replaced), against
Envoy: the Python (requests) and JavaScript (Node fetch) examples print the completion and
stop at `data: [DONE]`.

The server here samples greedily by default (settings `[sampling.completion]`), because
the seed's bodies set no temperature: so the streamed text can be compared with the
non-streaming call's. The seed clients read the stream line by line and print each
line's text, so a line break inside the text is not printed by them; the comparison
drops line breaks (how SSE carries them is tested in test_envoy_streaming.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shutil
import sys
from pathlib import Path

import httpx
import pytest_asyncio

from models.sampling_policy import SamplingDefaults, SamplingParams
from tests.support import make_settings, running, start_envoy_for, tiny_specs

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import envoy_config

SEED_URL = "http://localhost:8000"

PYTHON_CLIENT = '''
import requests

response = requests.post(
    "http://localhost:8000/completion",
    json={
        "prompt": "Write a factorial function in Python:",
        "stream": True,
    },
    stream=True,
)

for line in response.iter_lines():
    if line:
        line = line.decode('utf-8')
        if line.startswith('data: '):
            token = line[6:]
            if token == '[DONE]':
                break
            print(token, end='', flush=True)
'''

JAVASCRIPT_CLIENT = '''
const response = await fetch('http://localhost:8000/completion', {
  method: 'POST',
  headers: {'Content-Type': 'application/json'},
  body: JSON.stringify({
    prompt: 'Write a poem about mathematics:',
    stream: true,
  })
});

const reader = response.body.getReader();
const decoder = new TextDecoder();

while (true) {
  const {done, value} = await reader.read();
  if (done) break;

  const chunk = decoder.decode(value);
  const lines = chunk.split('\\n');

  for (const line of lines) {
    if (line.startsWith('data: ')) {
      const token = line.slice(6);
      if (token === '[DONE]') break;
      process.stdout.write(token);
    }
  }
}
'''

GREEDY = SamplingParams(max_new_tokens=48, temperature=0.0, top_p=0.9, top_k=50, repetition_penalty=1.1)


@pytest_asyncio.fixture(scope="module")
async def greedy_envoy(tmp_path_factory, tiny_model_dir, descriptor):
    settings = make_settings(tmp_path_factory.mktemp("greedy-server"), tiny_specs(tiny_model_dir), "tiny",
                             sampling=dataclasses.replace(SamplingDefaults(), completion=GREEDY))
    async with running(settings) as app:
        proxy = await start_envoy_for(app.port, descriptor, tmp_path_factory.mktemp("greedy-envoy"))
        try:
            yield proxy
        finally:
            await asyncio.to_thread(envoy_config.stop_envoy, proxy)


async def _run(argv: list[str], cwd: Path) -> str:
    proc = await asyncio.create_subprocess_exec(*argv, cwd=cwd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def _unary(base_url: str, prompt: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        reply = await http.post("/completion", json={"prompt": prompt})
    assert reply.status_code == 200, reply.text
    return reply.json()["text"]


def _printed_by_a_line_reader(text: str) -> str:
    return re.sub(r"[\r\n]", "", text)


async def test_seed_python_streaming_client(greedy_envoy, tmp_path):
    script = tmp_path / "client.py"
    script.write_text(PYTHON_CLIENT.replace(SEED_URL, greedy_envoy.base_url))
    printed = await _run([sys.executable, str(script)], tmp_path)
    text = await _unary(greedy_envoy.base_url, "Write a factorial function in Python:")
    assert printed and printed == _printed_by_a_line_reader(text)


async def test_seed_javascript_streaming_client(greedy_envoy, tmp_path):
    assert shutil.which("node"), "Node.js (18 or later, for fetch) is needed: apt-get install nodejs"
    script = tmp_path / "client.mjs"  # top-level await: an ES module
    script.write_text(JAVASCRIPT_CLIENT.replace(SEED_URL, greedy_envoy.base_url))
    printed = await _run(["node", str(script)], tmp_path)
    text = await _unary(greedy_envoy.base_url, "Write a poem about mathematics:")
    assert printed and printed == _printed_by_a_line_reader(text)
