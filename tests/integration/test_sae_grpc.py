"""SaeTrainingService over real gRPC on an in-process server with the tiny random
model: upload, train, status, result, list, watch, cancel, and each bad input."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
import torch
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from safetensors.torch import load_file

from llmserve.common.v1 import common_pb2
from llmserve.sae.v1 import sae_service_pb2 as pb
from llmserve.sae.v1 import sae_service_pb2_grpc as pb_grpc
from domain.sae.config import SaeConfig
from storage.artifacts import ArtifactRepository
from tests.support import make_settings, running, tiny_specs

CORPUS = "\n".join(inspect.getdoc(m) or "" for m in (json, os.path, asyncio, inspect, Path)) + "\n"
SMALL = SaeConfig(train_batch_tokens=256, checkpoint_interval_s=0.0, progress_interval_s=0.1,
                  dead_steps_for_aux=5, ce_eval_sequences=2)


def _settings(tmp: Path, tiny_model_dir: Path, **sae):
    return make_settings(tmp, tiny_specs(tiny_model_dir), "tiny", sae=SaeConfig(**{**vars(SMALL), **sae}))


@pytest_asyncio.fixture(scope="module")
async def sae_app(tmp_path_factory, tiny_model_dir):
    async with running(_settings(tmp_path_factory.mktemp("sae"), tiny_model_dir)) as app:
        yield app


@pytest_asyncio.fixture
async def stub(sae_app):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sae_app.port}") as channel:
        yield pb_grpc.SaeTrainingServiceStub(channel)


async def upload(stub, name: str, data: bytes, chunk: int = 1000) -> pb.UploadCorpusResponse:
    messages = [pb.UploadCorpusRequest(filename=name)]
    messages += [pb.UploadCorpusRequest(chunk=data[i:i + chunk]) for i in range(0, len(data), chunk)]
    return await stub.UploadCorpus(iter(messages))


def job_request(**overrides) -> pb.CreateTrainingJobRequest:
    values = dict(model_name="tiny", corpus_file="docs.txt", layer_number=1, hidden_dim=256, k=8, max_epochs=3,
                  max_sequence_length=64, learning_rate=1e-3, min_loss=0)
    values.update(overrides)
    return pb.CreateTrainingJobRequest(**values)


async def wait_state(stub, job_id: str, states: set[int], timeout: float = 120.0) -> pb.GetTrainingJobResponse:
    async with asyncio.timeout(timeout):
        while True:
            job = await stub.GetTrainingJob(pb.GetTrainingJobRequest(job_id=job_id))
            if job.state in states:
                return job
            await asyncio.sleep(0.05)


TERMINAL = {common_pb2.JOB_STATE_COMPLETED, common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_CANCELLED}


def violation(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return bad.field_violations[0].field
    return ""


async def test_upload_train_and_result(stub, sae_app):
    up = await upload(stub, "docs.txt", CORPUS.encode())
    assert (up.filename, up.size_bytes, up.lines_count) == ("docs.txt", len(CORPUS.encode()), CORPUS.count("\n"))
    store = ArtifactRepository(sae_app.database)
    assert up.path == "artifact://sae/corpora/docs.txt" and store.get("default", "sae/corpora/docs.txt").decode() == CORPUS

    created = await stub.CreateTrainingJob(job_request())
    assert created.status == "queued" and created.job_id.startswith("train_")
    assert created.memory_check == "passed"
    job = await wait_state(stub, created.job_id, TERMINAL)
    assert job.state == common_pb2.JOB_STATE_COMPLETED, job.message
    assert job.progress == 1.0 and job.current_epoch == 3 and job.tokens_processed > 0
    assert job.model_info.total_layers == 2 and job.model_info.selected_layer == 1

    result = await stub.GetTrainingResult(pb.GetTrainingResultRequest(job_id=created.job_id))
    m = result.metrics
    assert result.feature_count == 256 and result.training_stats.total_epochs == 3
    assert m.l0 == pytest.approx(8, abs=0.01)  # TopK keeps exactly k latents per token
    assert 0 <= m.fvu < 1  # better than predicting the mean
    assert m.dead_window_tokens == job.tokens_processed
    assert m.HasField("ce_loss_score") and m.eval_tokens > 0
    assert [p.step for p in m.loss_curve] == sorted(p.step for p in m.loss_curve) and m.loss_curve
    assert all(0 < p.l0 <= 8 for p in m.loss_curve)  # latents firing per token, at most k
    stats = result.training_stats.feature_statistics
    assert stats.total_features == 256 and stats.active_features + stats.dead_features == 256
    weights = load_file(result.artifacts.weights_path)
    assert weights["W_enc"].shape == (64, 256) and weights["W_dec"].shape == (256, 64)
    assert json.loads(Path(result.artifacts.config_path).read_text())["k"] == 8
    assert Path(result.model_path).exists() and Path(result.activations_path).exists()
    assert all(Path(c).exists() for c in result.checkpoints) and result.checkpoints
    stored = {i.key.rsplit("/", 1)[1]: i for i in store.list("default", f"sae/jobs/{created.job_id}/")}
    assert {"sae_weights.safetensors", "sae.pt", "cfg.json", "checkpoint_3.pt"} <= set(stored)
    assert stored["sae_weights.safetensors"].size_bytes == Path(result.artifacts.weights_path).stat().st_size

    listed = await stub.ListTrainingJobs(pb.ListTrainingJobsRequest())
    assert created.job_id in [j.job_id for j in listed.jobs] and listed.total_jobs >= 1


async def test_watch_streams_progress_then_one_final(stub):
    await upload(stub, "docs.txt", CORPUS.encode())
    created = await stub.CreateTrainingJob(job_request(max_epochs=4))
    events = [e async for e in stub.WatchTrainingJob(
        pb.WatchTrainingJobRequest(job_id=created.job_id, min_interval_seconds=0.1))]
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "final" and kinds.count("final") == 1 and "error" not in kinds
    assert events[-1].final.state == common_pb2.JOB_STATE_COMPLETED
    progress = [e.progress.progress for e in events if e.WhichOneof("event") == "progress"]
    assert progress == sorted(progress)


async def test_cancel_running_job(stub):
    await upload(stub, "docs.txt", CORPUS.encode())
    created = await stub.CreateTrainingJob(job_request(max_epochs=10_000))
    await wait_state(stub, created.job_id, {common_pb2.JOB_STATE_RUNNING})
    await stub.CancelTrainingJob(pb.CancelTrainingJobRequest(job_id=created.job_id))
    job = await wait_state(stub, created.job_id, TERMINAL)
    assert job.state == common_pb2.JOB_STATE_CANCELLED
    again = await stub.CancelTrainingJob(pb.CancelTrainingJobRequest(job_id=created.job_id))
    assert again.state == common_pb2.JOB_STATE_CANCELLED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetTrainingResult(pb.GetTrainingResultRequest(job_id=created.job_id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "cancelled" in err.value.details()


@pytest.mark.parametrize(("overrides", "code", "field"), [
    ({"model_name": "nope/model"}, grpc.StatusCode.NOT_FOUND, ""),
    ({"model_name": ""}, grpc.StatusCode.INVALID_ARGUMENT, "model_name"),
    ({"layer_number": 2}, grpc.StatusCode.INVALID_ARGUMENT, "layer_number"),
    ({"corpus_file": "missing.txt"}, grpc.StatusCode.INVALID_ARGUMENT, "corpus_file"),
    ({"corpus_file": "../etc/passwd"}, grpc.StatusCode.INVALID_ARGUMENT, "corpus_file"),
    ({"batch_size": 0}, grpc.StatusCode.INVALID_ARGUMENT, "batch_size"),
    ({"batch_size": 129}, grpc.StatusCode.INVALID_ARGUMENT, "batch_size"),
    ({"k": 300}, grpc.StatusCode.INVALID_ARGUMENT, "k"),
    ({"learning_rate": 0}, grpc.StatusCode.INVALID_ARGUMENT, "learning_rate"),
])
async def test_bad_training_requests(stub, overrides, code, field):
    await upload(stub, "docs.txt", CORPUS.encode())
    before = (await stub.ListTrainingJobs(pb.ListTrainingJobsRequest())).total_jobs
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateTrainingJob(job_request(**overrides))
    assert err.value.code() == code, err.value.details()
    assert violation(err.value) == field
    assert (await stub.ListTrainingJobs(pb.ListTrainingJobsRequest())).total_jobs == before  # nothing queued


@pytest.mark.parametrize(("name", "data", "field"), [
    ("empty.txt", b"", "file"),
    ("latin1.txt", "café au lait\n".encode("latin-1"), "file"),
    ("a/b.txt", b"text\n", "filename"),
    (".hidden", b"text\n", "filename"),
])
async def test_bad_uploads_store_nothing(stub, sae_app, name, data, field):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await upload(stub, name, data)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and violation(err.value) == field
    spool = sae_app.settings.data_dir / "samples" / ".spool"
    stored = ArtifactRepository(sae_app.database).list("default", "sae/corpora/")
    assert all(not i.key.endswith("/" + name) for i in stored)
    assert not list(spool.glob(".upload-*"))


async def test_unknown_job_is_not_found(stub):
    for call, request in ((stub.GetTrainingJob, pb.GetTrainingJobRequest(job_id="train_invalid_job_id")),
                          (stub.GetTrainingResult, pb.GetTrainingResultRequest(job_id="train_invalid_job_id")),
                          (stub.CancelTrainingJob, pb.CancelTrainingJobRequest(job_id="train_invalid_job_id"))):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(request)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "train_invalid_job_id" in err.value.details()


async def test_model_facts_and_host_status(stub):
    valid = await stub.ValidateModel(pb.ValidateModelRequest(model_name="tiny"))
    assert valid.valid and valid.model_info.total_layers == 2 and valid.model_info.hidden_size == 64
    unknown = await stub.ValidateModel(pb.ValidateModelRequest(model_name="nope/model"))
    assert not unknown.valid and "nope/model" in unknown.message
    memory = await stub.CheckMemory(pb.CheckMemoryRequest(model_name="tiny"))
    assert memory.memory_check.required_gb > 0 and memory.memory_check.sufficient
    gpu = await stub.GetGpuStatus(pb.GetGpuStatusRequest())
    assert gpu.host_memory.total_gb > 0
    assert gpu.cuda_available is torch.cuda.is_available()
    count = torch.cuda.device_count() if gpu.cuda_available else 0
    assert gpu.device_count == len(gpu.gpus) == count and gpu.HasField("current_device") == (count > 0)
    assert sorted(gpu.gpus) == [str(i) for i in range(count)]


async def test_the_last_checkpoint_is_recorded_when_the_job_ends_between_progress_writes(tmp_path, tiny_model_dir):
    # No progress write while the job runs: only the final one can record where the checkpoint went.
    async with running(_settings(tmp_path, tiny_model_dir, progress_interval_s=3600.0)) as app:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = pb_grpc.SaeTrainingServiceStub(channel)
            await upload(stub, "docs.txt", CORPUS.encode())
            created = await stub.CreateTrainingJob(job_request(max_epochs=2))
            job = await wait_state(stub, created.job_id, TERMINAL)
    assert job.state == common_pb2.JOB_STATE_COMPLETED, job.message
    assert job.last_checkpoint == f"artifact://sae/jobs/{created.job_id}/checkpoints/checkpoint_2.pt"
