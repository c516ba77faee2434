"""An SAE job survives `kill -9` of its server: after a restart it is requeued and
resumes from its last checkpoint (no new extraction), never lost or stuck running."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import grpc

from llmserve.common.v1 import common_pb2
from llmserve.sae.v1 import sae_service_pb2 as pb
from llmserve.sae.v1 import sae_service_pb2_grpc as pb_grpc
from tests.support import start_server_process, tiny_config, wait_serving

SAE = "[sae]\ntrain_batch_tokens = 64\ncheckpoint_interval_s = 0.0\nprogress_interval_s = 0.1\nce_eval_sequences = 1\n"
CORPUS = ("The river begins as a thin stream high in the mountains, fed by snow that melts in spring.\n" * 40).encode()
TERMINAL = {common_pb2.JOB_STATE_COMPLETED, common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_CANCELLED}


def _poll(stub, job_id: str, done, timeout: float = 120.0) -> pb.GetTrainingJobResponse:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = stub.GetTrainingJob(pb.GetTrainingJobRequest(job_id=job_id))
        if done(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not get there: {job}")


def test_job_resumes_from_checkpoint_after_kill_9(tmp_path: Path, tiny_model_dir: Path):
    config = tiny_config(tmp_path, tiny_model_dir, SAE)
    proc, port = start_server_process(config)
    try:
        wait_serving(port)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.SaeTrainingServiceStub(channel)
            stub.UploadCorpus(iter([pb.UploadCorpusRequest(filename="river.txt"), pb.UploadCorpusRequest(chunk=CORPUS)]))
            job_id = stub.CreateTrainingJob(pb.CreateTrainingJobRequest(
                model_name="tiny", corpus_file="river.txt", layer_number=0, hidden_dim=128, k=4, max_epochs=60,
                max_sequence_length=32, min_loss=0)).job_id
            killed_at = _poll(stub, job_id, lambda j: j.current_epoch >= 3 and j.last_checkpoint)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    activations = tmp_path / "sae" / job_id / "activations.pt"
    extracted_at = activations.stat().st_mtime_ns

    proc, port = start_server_process(config)
    try:
        wait_serving(port)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.SaeTrainingServiceStub(channel)
            job = _poll(stub, job_id, lambda j: j.state in TERMINAL, timeout=300)
            assert job.state == common_pb2.JOB_STATE_COMPLETED, job.message
            result = stub.GetTrainingResult(pb.GetTrainingResultRequest(job_id=job_id))
    finally:
        proc.kill()
        proc.wait(timeout=30)
    stats = result.training_stats
    assert stats.resumed_from_epoch >= 1 and stats.resumed_from_epoch >= killed_at.current_epoch - 1
    assert stats.total_epochs == 60
    assert activations.stat().st_mtime_ns == extracted_at  # cached activations reused, not re-extracted
