"""All torch work of a device runs on its engine thread. A second thread that opens an
OpenMP parallel region keeps a thread team of its own, and two teams on the same cores
make every product several times slower. A small LD_PRELOAD probe names each thread that
opens a parallel region while the real server loads the model and serves completion,
chat with a JSON schema, and a LUT train and generate."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import grpc
import pytest

from llmserve.chat.v1 import chat_service_pb2 as chat_pb
from llmserve.chat.v1 import chat_service_pb2_grpc as chat_grpc
from llmserve.generation.v1 import generation_service_pb2 as gen_pb
from llmserve.generation.v1 import generation_service_pb2_grpc as gen_grpc
from llmserve.lut.v1 import lut_service_pb2 as lut_pb
from llmserve.lut.v1 import lut_service_pb2_grpc as lut_grpc
from tests.support import start_server_process, wait_serving

pytestmark = pytest.mark.slow
PROBE = Path(__file__).resolve().parent.parent / "probes" / "omp_teams.c"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probe") / "omp_teams.so"
    subprocess.run([shutil.which("gcc") or "gcc", "-shared", "-fPIC", "-O2", "-o", str(out), str(PROBE), "-ldl"],
                   check=True)
    return out


def test_only_the_engine_thread_runs_torch_parallel_regions(tmp_path: Path, probe: Path, embedded_model_dir: Path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "smollm2").symlink_to(embedded_model_dir, target_is_directory=True)
    config = tmp_path / "llmserve.toml"
    config.write_text(f'host = "127.0.0.1"\nport = 0\ndata_dir = "{tmp_path}"\n[metrics]\nport = 0\n')
    lines: list[str] = []
    proc, port = start_server_process(config, env={**os.environ, "LD_PRELOAD": str(probe)}, output=lines)
    try:
        wait_serving(port, timeout=180)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            gen_grpc.GenerationServiceStub(channel).Complete(
                gen_pb.CompleteRequest(prompt="The capital of France is", max_new_tokens=8, temperature=0.0))
            chat = chat_grpc.ChatServiceStub(channel)
            sid = chat.StartConversation(chat_pb.StartConversationRequest(
                user_id=str(uuid.uuid4()), initial_message="hi", max_new_tokens=2)).session_id
            reply = chat.SendMessage(chat_pb.SendMessageRequest(
                session_id=sid, user_message="Name a city as JSON.", json_schema=json.dumps(SCHEMA), max_new_tokens=40))
            luts = lut_grpc.LutServiceStub(channel)
            luts.TrainLut(lut_pb.TrainLutRequest(label="The moon base is called Tranquility.", lut_name="probe"))
            luts.Generate(lut_pb.GenerateRequest(prompt="What is the moon base called?", lut_name="probe", length=8))
        assert reply.response_message  # the structured path really ran
    finally:
        proc.terminate()
        proc.wait(30)
    teams = {m.group(1) for m in map(re.compile(r"\[omp-teams\] (.+)").search, lines) if m}
    assert teams == {"llmserve-engine-smollm2"}, "".join(line for line in lines if "[omp-teams]" in line)
