"""A TrainLut that returned is never lost and a half-written one never appears, even
when the server is killed with SIGKILL while TrainLut calls are in flight."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import grpc

from llmserve.lut.v1 import lut_service_pb2 as pb
from llmserve.lut.v1 import lut_service_pb2_grpc as pb_grpc
from tests.support import start_server_process, tiny_config, wait_serving


def test_acknowledged_facts_survive_kill_9(tmp_path: Path, tiny_model_dir: Path):
    config = tiny_config(tmp_path, tiny_model_dir)
    proc, port = start_server_process(config)
    acknowledged: list[str] = []
    try:
        wait_serving(port)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = pb_grpc.LutServiceStub(channel)

        def teach(i: int) -> None:
            try:
                reply = stub.TrainLut(pb.TrainLutRequest(label=f"Fact number {i} about Quenford harbour.",
                                                         lut_name="user_7"), timeout=60)
            except grpc.RpcError:
                return  # in flight when the server died: may or may not have landed
            acknowledged.append(reply.entry_id)
            if len(acknowledged) == 8:
                os.kill(proc.pid, signal.SIGKILL)  # with other TrainLut calls still running

        threads = [threading.Thread(target=teach, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        channel.close()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(acknowledged) >= 8

    proc, port = start_server_process(config)
    try:
        wait_serving(port)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.LutServiceStub(channel)
            lut = stub.GetLut(pb.GetLutRequest(lut_name="user_7")).lut
            entries = stub.ListLutEntries(pb.ListLutEntriesRequest(lut_name="user_7", page_size=100)).entries
            # Threshold 0: the best-matching fact fires, so its stored payload must decode and steer.
            reply = stub.Generate(pb.GenerateRequest(prompt="Tell me about Quenford harbour.", lut_name="user_7",
                                                     max_new_tokens=24, threshold=0, temperature=0))
    finally:
        proc.kill()
        proc.wait(timeout=30)
    stored = {e.entry_id for e in entries}
    assert set(acknowledged) <= stored  # nothing acknowledged is lost
    assert lut.entry_count == len(entries) == lut.version  # every version bump has its entry, nothing torn
    assert all(e.label.startswith("Fact number ") and e.size_bytes > 0 for e in entries)
    assert reply.lut_name == "user_7" and reply.completion.strip() in {e.label for e in entries}, reply.completion
