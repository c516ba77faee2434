"""SpecialistService over gRPC on the tiny model: first start trains the corpora present,
generation (unary, streaming, hard and forced routing), gate inspection, upload + add +
delete with background retraining, the atomic swap while a generation runs, job
cancellation, and every bad input's status code."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
import torch
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from llmserve.common.v1 import common_pb2
from llmserve.generation.v1.generation_service_pb2 import CompleteRequest
from llmserve.generation.v1.generation_service_pb2_grpc import GenerationServiceStub
from llmserve.specialist.v1 import specialist_service_pb2 as pb
from llmserve.specialist.v1 import specialist_service_pb2_grpc as pb_grpc
from domain.specialist.config import SpecialistConfig
from domain.specialist.hook import attached, reset
from tests.forward_gate import ForwardGate, decode_step
from tests.support import make_settings, running, tiny_specs

CONFIG = SpecialistConfig(steps=3, batch_size=2, micro_batch=2, seq_len=16, eval_sequences=2, poll_interval_s=0.05,
                          general_samples=2)
TEXTS = {"alpha": "The cat sat on the mat and looked at the garden. " * 40,
         "beta": "def add(x, y):\n    return x + y\n\nclass Point:\n    pass\n" * 40,
         "general": "People walked to the market in the morning to buy bread. " * 40}
# Tokens of the swap test's stream: several times what a braked stream needs to outlast a training job.
LONG_STREAM = 200


@pytest_asyncio.fixture(scope="module")
async def app(tmp_path_factory, tiny_model_dir: Path):
    data = tmp_path_factory.mktemp("specialists")
    for name, text in TEXTS.items():
        (data / name).mkdir()
        (data / name / "corpus.txt").write_text(text)
    async with running(make_settings(data, tiny_specs(tiny_model_dir), "tiny", specialist=CONFIG)) as server:
        yield server


@pytest_asyncio.fixture
async def stub(app):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        yield pb_grpc.SpecialistServiceStub(channel)


async def finish(stub, job_id: str) -> pb.TrainingJob:
    """Watch a job to its end; progress events come first, then exactly one final."""
    events = [e async for e in stub.WatchTrainingJob(pb.WatchTrainingJobRequest(job_id=job_id))]
    assert all(e.WhichOneof("event") == "progress" for e in events[:-1])
    assert events[-1].WhichOneof("event") == "final", events[-1]
    return events[-1].final


async def startup_done(stub) -> pb.TrainingJob:
    jobs = (await stub.ListTrainingJobs(pb.ListTrainingJobsRequest())).jobs
    first = [j for j in jobs if j.trigger == pb.TRAINING_JOB_TRIGGER_STARTUP]
    assert len(first) == 1
    return await finish(stub, first[0].job_id)


async def error_of(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


def violations(err: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(err)
    out = []
    for detail in status.details if status else []:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            out += [v.field for v in bad.field_violations]
    return out


async def test_first_start_trains_the_corpora_present(stub):
    job = await startup_done(stub)
    assert job.state == common_pb2.JOB_STATE_COMPLETED, job.message
    assert list(job.specialists) == ["alpha", "beta"] and job.step == job.total_steps == 3 and job.progress == 1.0
    listed = {s.name: s for s in (await stub.ListSpecialists(pb.ListSpecialistsRequest())).specialists}
    assert set(listed) == {"alpha", "beta"}  # "general" is the general corpus, not a specialist
    for s in listed.values():
        assert s.state == pb.SPECIALIST_STATE_READY and s.training_job_id == job.job_id
        assert s.corpus_file_count == 1 and s.corpus_size_bytes > 0
        assert s.metrics.heldout_perplexity > 1 and s.metrics.train_tokens > 0 and s.HasField("train_time")
    names = await stub.ListSpecialistNames(pb.ListSpecialistNamesRequest())
    assert list(names.names) == ["alpha", "beta"] and names.body.data == b'["alpha", "beta"]'


async def forced_reference(app, prompt: str, expert: str, new_tokens: int) -> str:
    """Greedy text with only `expert` applied, computed apart from the serving path: whole
    sequences through the model with the serving mixture attached (no engine row, no cache)."""
    runtime = app.manager.loaded("tiny")
    mixture, model, tokenizer = app.features.specialists.serving.mixture, runtime.engine.model, runtime.loaded.tokenizer
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]

    def unit():
        ids = list(prompt_ids)
        with torch.no_grad(), attached(model, mixture, forced=mixture.names.index(expert)) as state:
            for _ in range(new_tokens):
                reset(state)
                ids.append(int(model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].argmax()))
        return tokenizer.decode(ids[len(prompt_ids):])
        yield  # a generator: the engine runs it as one background unit

    return await runtime.engine.run_background(unit())


async def test_generate_stream_and_routing_options(app, stub):
    await startup_done(stub)
    greedy = {"prompt": "The cat", "max_new_tokens": 6, "temperature": 0}
    reply = await stub.Generate(pb.GenerateRequest(**greedy))
    assert reply.full_text == "The cat" + reply.completion and list(reply.specialists) == ["alpha", "beta"]
    assert reply.usage.completion_tokens == 6
    events = [e async for e in stub.StreamGenerate(pb.StreamGenerateRequest(**greedy))]
    assert events[-1].WhichOneof("event") == "final" and events[-1].final.text == reply.completion

    forced = {expert: (await stub.Generate(pb.GenerateRequest(**greedy, force_specialist=expert))).completion
              for expert in ("base", "alpha", "beta")}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        plain = await GenerationServiceStub(channel).Complete(CompleteRequest(
            prompt="The cat", max_new_tokens=6, do_sample=False, repetition_penalty=1.0))
    assert forced["base"] == plain.text  # the generalist alone is exactly the base model
    for expert in ("alpha", "beta"):  # one expert's adapter at every layer, whatever the gates say
        assert forced[expert] == await forced_reference(app, "The cat", expert, 6), expert
    assert len(set(forced.values())) == 3, forced  # each expert steers the output its own way
    forced_hard = await stub.Generate(pb.GenerateRequest(**greedy, force_specialist="beta",
                                                         routing_mode=pb.ROUTING_MODE_HARD))
    assert forced_hard.completion == forced["beta"]  # forcing overrides the routing mode

    hard = await stub.Generate(pb.GenerateRequest(**greedy, routing_mode=pb.ROUTING_MODE_HARD))
    assert hard.usage.completion_tokens == 6
    err = await error_of(stub.Generate(pb.GenerateRequest(prompt="x", force_specialist="gamma")))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "base, alpha, beta" in err.details()


async def test_inspect_gates(stub):
    await startup_done(stub)
    mean = await stub.InspectGates(pb.InspectGatesRequest(prompt="The cat sat"))
    assert list(mean.experts) == ["base", "alpha", "beta"] and len(mean.layers) == 2
    assert not mean.tokens and not mean.layers[0].token_weights
    for layer in mean.layers:
        assert sum(layer.weights) == pytest.approx(1.0, abs=1e-5) and len(layer.weights) == 3
    per = await stub.InspectGates(pb.InspectGatesRequest(prompt="The cat sat",
                                                         granularity=pb.GATE_GRANULARITY_PER_TOKEN))
    assert "".join(per.tokens) == "The cat sat" and len(per.layers[1].token_weights) == len(per.token_ids)
    assert list(per.layers[1].weights) == pytest.approx(list(mean.layers[1].weights), abs=1e-6)


async def _upload(stub, name: str, file_name: str, chunks: list[bytes], overwrite: bool = False):
    def messages():
        yield pb.UploadSpecialistCorpusRequest(name=name, file_name=file_name, overwrite=overwrite)
        for chunk in chunks:
            yield pb.UploadSpecialistCorpusRequest(chunk={"data": chunk})
    return await stub.UploadSpecialistCorpus(messages())


async def test_add_swaps_atomically_while_a_generation_runs_then_delete(app, stub):
    await startup_done(stub)
    service, engine = app.features.specialists, app.manager.loaded("tiny").engine
    request = pb.StreamGenerateRequest(prompt="Once upon a time", max_new_tokens=LONG_STREAM, temperature=0)
    before = [e async for e in stub.StreamGenerate(request)][-1].final.text

    text = ("Invoices are due within thirty days of receipt. " * 30).encode()
    up = await _upload(stub, "gamma", "terms.txt", [text[:500], text[500:]])
    assert up.size_bytes == len(text) and up.specialist.state == pb.SPECIALIST_STATE_UPLOADED
    assert (await stub.GetSpecialist(pb.GetSpecialistRequest(name="gamma"))).specialist.corpus_size_bytes == len(text)

    old_job = service.serving.job_id
    at_swap: dict[str, int] = {}

    async def watch_swap(brake: ForwardGate) -> None:
        while service.serving.job_id == old_job:
            await asyncio.sleep(0.005)
        at_swap.update(running_rows=engine.stats().running_rows, received=len(received))
        brake.open()

    # Until the swap, each decode step waits a little (the brake), so the stream cannot run
    # out of tokens while the new mixture trains, evaluates and is stored.
    with ForwardGate(engine.model, max_hold_s=0.03, when=decode_step) as brake:
        running_call = stub.StreamGenerate(request)  # started on the old mixture ...
        received = [await running_call.read()]
        assert received[0].WhichOneof("event") == "delta"
        added = await stub.AddSpecialist(pb.AddSpecialistRequest(name="gamma"))
        assert list(added.specialists) == ["alpha", "beta", "gamma"]
        assert added.specialist.state == pb.SPECIALIST_STATE_TRAINING
        swapped = asyncio.ensure_future(watch_swap(brake))
        while (event := await running_call.read()) != grpc.aio.EOF:
            received.append(event)
        await asyncio.wait_for(swapped, 120)
    job = await finish(stub, added.training_job_id)  # ... the swap happened meanwhile ...
    assert job.state == common_pb2.JOB_STATE_COMPLETED and list(job.specialists) == ["alpha", "beta", "gamma"]
    assert service.serving.job_id == job.job_id
    # The row was still generating when the new mixture went in, and tokens came on both sides of it.
    assert at_swap["running_rows"] == 1 and 1 <= at_swap["received"] < len(received) - 1, (at_swap, len(received))
    assert received[-1].WhichOneof("event") == "final"
    assert received[-1].final.text == before  # ... and the generation kept the mixture it started with

    after = await stub.Generate(pb.GenerateRequest(prompt="Once upon a time", max_new_tokens=40, temperature=0))
    assert list(after.specialists) == ["alpha", "beta", "gamma"]
    assert not before.startswith(after.completion)  # the new mixture answers differently
    forced = {e: (await stub.Generate(pb.GenerateRequest(prompt="Invoices", max_new_tokens=6, temperature=0,
                                                         force_specialist=e))).completion for e in ("base", "gamma")}
    assert forced["gamma"] != forced["base"]
    gamma = (await stub.GetSpecialist(pb.GetSpecialistRequest(name="gamma"))).specialist
    assert gamma.state == pb.SPECIALIST_STATE_READY and gamma.training_job_id == job.job_id

    deleted = await stub.DeleteSpecialist(pb.DeleteSpecialistRequest(name="gamma"))
    assert list(deleted.specialists) == ["alpha", "beta"] and "deleted" in deleted.message
    assert (await error_of(stub.GetSpecialist(pb.GetSpecialistRequest(name="gamma")))).code() == \
        grpc.StatusCode.NOT_FOUND
    assert (await finish(stub, deleted.training_job_id)).state == common_pb2.JOB_STATE_COMPLETED
    assert list((await stub.InspectGates(pb.InspectGatesRequest(prompt="x"))).experts) == ["base", "alpha", "beta"]


async def test_cancel_leaves_the_serving_mixture(stub):
    await startup_done(stub)
    created = (await stub.CreateTrainingJob(pb.CreateTrainingJobRequest(steps=100000))).job
    assert created.trigger == pb.TRAINING_JOB_TRIGGER_MANUAL
    async for event in stub.WatchTrainingJob(pb.WatchTrainingJobRequest(job_id=created.job_id)):
        if event.WhichOneof("event") == "progress" and event.progress.step >= 1:
            break  # it is running, and generation still answers meanwhile:
    assert (await stub.Generate(pb.GenerateRequest(prompt="The cat", max_new_tokens=2))).usage.completion_tokens == 2
    cancelled = (await stub.CancelTrainingJob(pb.CancelTrainingJobRequest(job_id=created.job_id))).job
    final = await finish(stub, cancelled.job_id)
    assert final.state == common_pb2.JOB_STATE_CANCELLED
    again = (await stub.CancelTrainingJob(pb.CancelTrainingJobRequest(job_id=created.job_id))).job
    assert again.state == common_pb2.JOB_STATE_CANCELLED  # a no-op on a finished job
    listed = (await stub.ListSpecialists(pb.ListSpecialistsRequest())).specialists
    assert all(s.state == pb.SPECIALIST_STATE_READY for s in listed)
    cancelled_jobs = await stub.ListTrainingJobs(pb.ListTrainingJobsRequest(state=common_pb2.JOB_STATE_CANCELLED))
    assert [j.job_id for j in cancelled_jobs.jobs] == [created.job_id]


async def test_bad_inputs_have_clear_errors(stub):
    await startup_done(stub)
    cases = [
        (stub.GetSpecialist(pb.GetSpecialistRequest(name="nobody")), grpc.StatusCode.NOT_FOUND, "nobody"),
        (stub.DeleteSpecialist(pb.DeleteSpecialistRequest(name="nobody")), grpc.StatusCode.NOT_FOUND, "nobody"),
        (stub.AddSpecialist(pb.AddSpecialistRequest(name="alpha")), grpc.StatusCode.ALREADY_EXISTS, "alpha"),
        (stub.AddSpecialist(pb.AddSpecialistRequest(name="../etc")), grpc.StatusCode.INVALID_ARGUMENT, "name"),
        (stub.AddSpecialist(pb.AddSpecialistRequest(name="base")), grpc.StatusCode.INVALID_ARGUMENT, "reserved"),
        (stub.AddSpecialist(pb.AddSpecialistRequest(name="nocorpus")), grpc.StatusCode.FAILED_PRECONDITION,
         "no corpus"),
        (_upload(stub, "delta", "a.txt", [b""]), grpc.StatusCode.INVALID_ARGUMENT, "empty"),
        (_upload(stub, "delta", "a.txt", [b"caf\xe9 au lait"]), grpc.StatusCode.INVALID_ARGUMENT, "not UTF-8"),
        (_upload(stub, "delta", "../a.txt", [b"text"]), grpc.StatusCode.INVALID_ARGUMENT, "file_name"),
        (_upload(stub, "alpha", "corpus.txt", [b"text"]), grpc.StatusCode.ALREADY_EXISTS, "corpus.txt"),
        (stub.Generate(pb.GenerateRequest(prompt="")), grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
        (stub.Generate(pb.GenerateRequest(prompt="x", temperature=5)), grpc.StatusCode.INVALID_ARGUMENT, "temperature"),
        (stub.CreateTrainingJob(pb.CreateTrainingJobRequest(steps=0)), grpc.StatusCode.INVALID_ARGUMENT, "steps"),
        (stub.GetTrainingJob(pb.GetTrainingJobRequest(job_id="nope")), grpc.StatusCode.NOT_FOUND, "nope"),
    ]
    for call, code, words in cases:
        err = await error_of(call)
        assert err.code() == code and words in err.details(), (code, err.code(), err.details())
    err = await error_of(stub.AddSpecialist(pb.AddSpecialistRequest(name="a b")))
    assert violations(err) == ["name"]
    err = await error_of(_upload(stub, "delta", "a.txt", [b"\xff\xfe"]))
    assert violations(err) == ["chunk"]
    with pytest.raises(grpc.aio.AioRpcError) as watch_err:
        async for _ in stub.WatchTrainingJob(pb.WatchTrainingJobRequest(job_id="nope")):
            pass
    assert watch_err.value.code() == grpc.StatusCode.NOT_FOUND
