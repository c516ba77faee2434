"""Long jobs survive `kill -9` of their server: at the next start every job the dead
process was running is requeued and runs again, never lost, duplicated or stuck running.
An SAE job resumes from its last checkpoint (no new extraction); a specialist training
job (which keeps no checkpoint) runs again from the start under the same id.

One kill interrupts both kinds of job, so the two tests share one scenario."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from llmserve.common.v1 import common_pb2
from llmserve.sae.v1 import sae_service_pb2 as sae_pb
from llmserve.sae.v1 import sae_service_pb2_grpc as sae_grpc
from llmserve.specialist.v1 import specialist_service_pb2 as spec_pb
from llmserve.specialist.v1 import specialist_service_pb2_grpc as spec_grpc
from storage import Database, JobRecord, JobRepository, JobState, sqlite_url
from tests.support import start_server_process, tiny_config, wait_serving

SAE = "[sae]\ntrain_batch_tokens = 64\ncheckpoint_interval_s = 0.0\nprogress_interval_s = 0.1\nce_eval_sequences = 1\n"
# Enough steps that the job is still training when the server is killed right after its first step.
SPECIALIST = ("[specialist]\nsteps = 60\nbatch_size = 2\nmicro_batch = 2\nseq_len = 16\neval_sequences = 1\n"
              "poll_interval_s = 0.05\ngeneral_samples = 2\n")
CORPUS = ("The river begins as a thin stream high in the mountains, fed by snow that melts in spring.\n" * 40).encode()
TERMS = ("Invoices are due within thirty days of receipt. " * 30).encode()
TERMINAL = {common_pb2.JOB_STATE_COMPLETED, common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_CANCELLED}


def _poll(get, done, timeout: float = 120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = get()
        if done(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job did not get there: {job}")


@dataclass
class Scenario:
    sae_job: str
    sae_killed_at: sae_pb.GetTrainingJobResponse
    sae_result: sae_pb.GetTrainingResultResponse
    extracted_before: int
    extracted_after: int
    specialist_job: str
    specialist_killed: JobRecord
    """The specialist job as the dead process left it in the database."""
    specialist_jobs_at_restart: list[str]
    specialist_final: spec_pb.TrainingJob
    specialist: spec_pb.Specialist
    weights: list[str]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, tiny_model_dir: Path) -> Scenario:
    data = tmp_path_factory.mktemp("job-durability")
    config = tiny_config(data, tiny_model_dir, SAE + SPECIALIST)
    proc, port = start_server_process(config)
    try:
        wait_serving(port)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            sae = sae_grpc.SaeTrainingServiceStub(channel)
            sae.UploadCorpus(iter([sae_pb.UploadCorpusRequest(filename="river.txt"),
                                   sae_pb.UploadCorpusRequest(chunk=CORPUS)]))
            sae_job = sae.CreateTrainingJob(sae_pb.CreateTrainingJobRequest(
                model_name="tiny", corpus_file="river.txt", layer_number=0, hidden_dim=128, k=4, max_epochs=60,
                max_sequence_length=32, min_loss=0)).job_id
            sae_killed_at = _poll(lambda: sae.GetTrainingJob(sae_pb.GetTrainingJobRequest(job_id=sae_job)),
                                  lambda j: j.current_epoch >= 3 and j.last_checkpoint)
            spec = spec_grpc.SpecialistServiceStub(channel)
            spec.UploadSpecialistCorpus(iter([spec_pb.UploadSpecialistCorpusRequest(name="law", file_name="t.txt"),
                                              spec_pb.UploadSpecialistCorpusRequest(chunk={"data": TERMS})]))
            specialist_job = spec.AddSpecialist(spec_pb.AddSpecialistRequest(name="law")).training_job_id
            _poll(lambda: spec.GetTrainingJob(spec_pb.GetTrainingJobRequest(job_id=specialist_job)).job,
                  lambda j: j.state == common_pb2.JOB_STATE_RUNNING and j.step >= 1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    activations = data / "sae" / sae_job / "activations.pt"
    extracted_before = activations.stat().st_mtime_ns
    database = Database(sqlite_url(data))
    try:
        specialist_killed = JobRepository(database).get(specialist_job)
    finally:
        database.dispose()

    proc, port = start_server_process(config)
    try:
        wait_serving(port)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            spec = spec_grpc.SpecialistServiceStub(channel)
            at_restart = [j.job_id for j in spec.ListTrainingJobs(spec_pb.ListTrainingJobsRequest()).jobs]
            specialist_final = _poll(lambda: spec.GetTrainingJob(spec_pb.GetTrainingJobRequest(
                job_id=specialist_job)).job, lambda j: j.state in TERMINAL)
            specialist = spec.GetSpecialist(spec_pb.GetSpecialistRequest(name="law")).specialist
            sae = sae_grpc.SaeTrainingServiceStub(channel)
            sae_final = _poll(lambda: sae.GetTrainingJob(sae_pb.GetTrainingJobRequest(job_id=sae_job)),
                              lambda j: j.state in TERMINAL, timeout=300)
            assert sae_final.state == common_pb2.JOB_STATE_COMPLETED, sae_final.message
            sae_result = sae.GetTrainingResult(sae_pb.GetTrainingResultRequest(job_id=sae_job))
    finally:
        proc.kill()
        proc.wait(timeout=30)
    return Scenario(sae_job, sae_killed_at, sae_result, extracted_before, activations.stat().st_mtime_ns,
                    specialist_job, specialist_killed, at_restart, specialist_final, specialist,
                    sorted(p.name for p in (data / "specialists").glob("*.safetensors")))


def test_sae_job_resumes_from_checkpoint_after_kill_9(scenario: Scenario):
    stats = scenario.sae_result.training_stats
    assert stats.resumed_from_epoch >= 1 and stats.resumed_from_epoch >= scenario.sae_killed_at.current_epoch - 1
    assert stats.total_epochs == 60
    assert scenario.extracted_after == scenario.extracted_before  # cached activations reused, not re-extracted


def test_specialist_job_is_requeued_and_runs_again_after_kill_9(scenario: Scenario):
    killed = scenario.specialist_killed
    assert killed.state is JobState.RUNNING and 1 <= killed.details["step"] < killed.details["total_steps"] == 60
    # The same job, alone: requeued at start, not replaced by a new one, and run to its end.
    assert scenario.specialist_jobs_at_restart == [scenario.specialist_job]
    final = scenario.specialist_final
    assert final.state == common_pb2.JOB_STATE_COMPLETED, final.message
    assert final.step == final.total_steps == 60 and list(final.specialists) == ["law"]
    assert scenario.specialist.state == spec_pb.SPECIALIST_STATE_READY
    assert scenario.specialist.training_job_id == scenario.specialist_job
    assert scenario.weights == [f"mixture-{scenario.specialist_job}.safetensors"]
