"""The client package alone: installed into a fresh virtual environment from clients/python
(no server, no torch), it imports, ships its type information and talks to a live server:
a unary call, a stream, an error with details, a cancelled stream, retries."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from envoy_config import free_port  # noqa: E402

SCRIPT = textwrap.dedent('''
    import sys
    import llmserve
    from llmserve import errors

    assert "torch" not in sys.modules
    target, key = sys.argv[1], sys.argv[2]
    with llmserve.Client(target, api_key=key) as client:
        reply = client.complete("Hello", max_new_tokens=3, do_sample=False)
        assert reply.usage.completion_tokens == 3, reply
        stream = client.stream_complete("Hello", max_new_tokens=4, do_sample=False)
        assert "".join(stream) == stream.final.text and stream.usage.completion_tokens <= 4
        try:
            client.complete("Hello", max_new_tokens=0)
        except errors.InvalidArgument as exc:
            assert "max_new_tokens" in exc.field_violations, exc.details
        else:
            raise AssertionError("max_new_tokens=0 was accepted")
        stream = client.stream_complete("Once upon a time", max_new_tokens=200, do_sample=False)
        first = next(stream)
        stream.cancel()
        assert isinstance(first, str) and list(stream) == [] and stream.final is None
    waits = []
    policy = llmserve.RetryPolicy(max_attempts=3, initial_backoff_s=0.01, on_retry=lambda e, w: waits.append(e.code))
    with llmserve.Client(f"127.0.0.1:{sys.argv[3]}", retry=policy) as nowhere:
        try:
            nowhere.complete("Hello")
        except errors.Unavailable:
            assert len(waits) == 2, waits
        else:
            raise AssertionError("a call to a closed port succeeded")
    print("client ok", llmserve.__version__)
''')


def _run(*args: object, cwd: Path) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


async def test_the_client_installs_alone_and_calls_a_live_server(tmp_path: Path, client_app, tenant_key: str):
    venv = tmp_path / "venv"
    # Threads: the server runs on this test's event loop, which must stay free.
    await asyncio.to_thread(_run, sys.executable, "-m", "venv", venv, cwd=tmp_path)
    pip = venv / "bin" / "pip"
    # From a copy: building in place would leave build/ and *.egg-info in the checkout.
    source = tmp_path / "llmserve-client"
    shutil.copytree(ROOT / "clients" / "python", source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "examples"))
    await asyncio.to_thread(_run, pip, "install", "-q", source, cwd=tmp_path)
    installed = {line.split("==")[0].lower() for line in
                 (await asyncio.to_thread(_run, pip, "list", "--format=freeze", cwd=tmp_path)).split()}
    assert {"llmserve-client", "grpcio", "protobuf", "googleapis-common-protos"} <= installed
    assert not installed & {"torch", "transformers", "llmserve", "grpcio-tools"}, installed

    python = venv / "bin" / "python"
    where = "import llmserve, os; print(os.path.dirname(llmserve.__file__))"
    site = Path((await asyncio.to_thread(_run, python, "-c", where, cwd=tmp_path)).strip())
    assert site.is_relative_to(venv) and (site / "py.typed").exists()
    assert (site / "generation" / "v1" / "generation_service_pb2.pyi").exists()

    # Run from the temporary folder so only the installed package can be imported.
    script = tmp_path / "use_client.py"
    script.write_text(SCRIPT)
    closed_port = free_port()  # nobody listens there: the retry check's target
    process = await asyncio.create_subprocess_exec(python, script, f"127.0.0.1:{client_app.port}", tenant_key,
                                                   str(closed_port),
                                                   cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, out.decode()
    assert out.decode().strip() == "client ok 1.0.0"
