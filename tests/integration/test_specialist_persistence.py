"""Trained mixtures survive a restart: the stored weights are loaded (no retraining),
gates answer exactly as before, and the last specialist cannot be deleted."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from llmserve.common.v1 import common_pb2
from llmserve.specialist.v1 import specialist_service_pb2 as pb
from llmserve.specialist.v1 import specialist_service_pb2_grpc as pb_grpc
from domain.specialist.config import SpecialistConfig
from tests.support import make_settings, running, tiny_specs

CONFIG = SpecialistConfig(steps=2, batch_size=2, micro_batch=2, seq_len=16, eval_sequences=1, poll_interval_s=0.05,
                          general_samples=2)


async def _gates(stub) -> list[list[float]]:
    reply = await stub.InspectGates(pb.InspectGatesRequest(prompt="Rivers flow to the sea"))
    return [list(layer.weights) for layer in reply.layers]


async def test_mixture_survives_restart_and_last_specialist_stays(tmp_path: Path, tiny_model_dir: Path):
    (tmp_path / "solo").mkdir()
    (tmp_path / "solo" / "a.txt").write_text("Rivers flow to the sea through valleys. " * 30)
    settings = make_settings(tmp_path, tiny_specs(tiny_model_dir), "tiny", specialist=CONFIG)

    async with running(settings) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.SpecialistServiceStub(channel)
        (job,) = (await stub.ListTrainingJobs(pb.ListTrainingJobsRequest())).jobs
        events = [e async for e in stub.WatchTrainingJob(pb.WatchTrainingJobRequest(job_id=job.job_id))]
        assert events[-1].final.state == common_pb2.JOB_STATE_COMPLETED, events[-1]
        before = await _gates(stub)
        generated = await stub.Generate(pb.GenerateRequest(prompt="Rivers", max_new_tokens=5, temperature=0))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.DeleteSpecialist(pb.DeleteSpecialistRequest(name="solo"))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "last specialist" in err.value.details()
    weights = list((tmp_path / "specialists").glob("*.safetensors"))
    assert [w.name for w in weights] == [f"mixture-{job.job_id}.safetensors"]

    async with running(settings) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.SpecialistServiceStub(channel)
        jobs = (await stub.ListTrainingJobs(pb.ListTrainingJobsRequest())).jobs
        assert [j.job_id for j in jobs] == [job.job_id]  # nothing retrained
        solo = (await stub.GetSpecialist(pb.GetSpecialistRequest(name="solo"))).specialist
        assert solo.state == pb.SPECIALIST_STATE_READY and solo.metrics.train_tokens > 0
        assert await _gates(stub) == before
        again = await stub.Generate(pb.GenerateRequest(prompt="Rivers", max_new_tokens=5, temperature=0))
        assert again.completion == generated.completion and list(again.specialists) == ["solo"]
        assert (tmp_path / "solo" / "a.txt").exists()  # the refused delete removed nothing
