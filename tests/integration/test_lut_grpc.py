"""LutService over real gRPC on in-process servers with two tiny random models:
training, generation equal to the base model unless a fact fires, isolation between
LUT names and models, bad input, management, export/import, and persistence."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from llmserve.lut.v1 import lut_service_pb2 as pb
from llmserve.lut.v1 import lut_service_pb2_grpc as pb_grpc
from models.registry import ModelSpec
from tests.conftest import make_settings, running

FACT = "Zorblat the lizard lives in Quenford."
PROMPT = "User: Where does Zorblat the lizard live?\nAssistant:"
OTHER = "User: Tell me something about oceans.\nAssistant:"


def _settings(tmp, tiny_model_dir):
    specs = tuple(ModelSpec(n, "huggingface", str(tiny_model_dir), device="cpu") for n in ("tiny", "tiny2"))
    return make_settings(tmp, specs, "tiny", preload_models=("tiny2",))


@pytest_asyncio.fixture(scope="module")
async def lut_app(tmp_path_factory, tiny_model_dir):
    async with running(_settings(tmp_path_factory.mktemp("lut"), tiny_model_dir)) as app:
        yield app


@pytest_asyncio.fixture
async def stub(lut_app):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{lut_app.port}") as channel:
        yield pb_grpc.LutServiceStub(channel)


async def _gen(stub, prompt=PROMPT, lut="", model="", threshold=None, length=12) -> pb.GenerateResponse:
    req = pb.GenerateRequest(prompt=prompt, lut_name=lut, model=model, length=length)
    if threshold is not None:
        req.threshold = threshold
    return await stub.Generate(req)


def _bad_field(err: grpc.aio.AioRpcError) -> list[str]:
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    fields = []
    for detail in rpc_status.from_call(err).details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            fields += [v.field for v in bad.field_violations]
    return fields


async def test_train_then_low_threshold_fires_and_high_one_equals_base(stub):
    base = await _gen(stub)
    trained = await stub.TrainLut(pb.TrainLutRequest(label=FACT, label_context="Assistant: ", lut_name="u-fire"))
    assert (trained.status, trained.model, trained.entry_count, trained.version) == ("ok", "tiny", 1, 1)
    fired = await _gen(stub, lut="u-fire", threshold=0.0, length=30)
    assert fired.completion.strip() == FACT and fired.completion != base.completion
    assert (await _gen(stub, lut="u-fire", threshold=1.0)).completion == base.completion
    assert fired.full_text == PROMPT + fired.completion and fired.lut_name == "u-fire"


async def test_empty_unknown_and_other_users_luts_equal_base_token_for_token(stub):
    await stub.TrainLut(pb.TrainLutRequest(label=FACT, lut_name="u-owner"))
    base = await _gen(stub, OTHER)
    for lut in ("", "u-nobody", "u-owner-2"):
        assert (await _gen(stub, OTHER, lut=lut, threshold=0.0)).completion == base.completion
    # the owner's fact only reaches the owner's generations
    assert (await _gen(stub, OTHER, lut="u-owner", threshold=0.0)).completion != base.completion


async def test_luts_are_model_specific(stub):
    await stub.TrainLut(pb.TrainLutRequest(label=FACT, lut_name="u-models", model="tiny2"))
    base1, base2 = await _gen(stub, model="tiny"), await _gen(stub, model="tiny2")
    assert (await _gen(stub, lut="u-models", model="tiny", threshold=0.0)).completion == base1.completion
    assert (await _gen(stub, lut="u-models", model="tiny2", threshold=0.0, length=30)).completion.strip() == FACT
    assert base2.completion == base1.completion  # same weights: the difference above is the LUT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetLut(pb.GetLutRequest(lut_name="u-models", model="tiny"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("request_, field", [
    (pb.TrainLutRequest(label="", lut_name="u"), "label"),
    (pb.TrainLutRequest(label="  ", lut_name="u"), "label"),
    (pb.TrainLutRequest(label=FACT, lut_name="x" * 129), "lut_name"),
    (pb.TrainLutRequest(label=FACT, lut_name="bad\nname"), "lut_name"),
    (pb.TrainLutRequest(label=FACT, lut_name=""), "lut_name"),
    (pb.TrainLutRequest(label=FACT, lut_name="u", model="no-such-model"), "model"),
])
async def test_train_bad_input_names_the_field(stub, request_, field):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.TrainLut(request_)
    assert _bad_field(err.value) == [field]


@pytest.mark.parametrize("kwargs, field", [
    (dict(threshold=1.5), "threshold"), (dict(threshold=-0.1), "threshold"),
    (dict(model="no-such-model"), "model"), (dict(lut="y" * 129), "lut_name"), (dict(lut="a\x00b"), "lut_name"),
])
async def test_generate_bad_input_names_the_field(stub, kwargs, field):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _gen(stub, **kwargs)
    assert _bad_field(err.value) == [field]


async def test_manage_entries_and_forget(stub):
    base = await _gen(stub)
    first = await stub.TrainLut(pb.TrainLutRequest(label=FACT, label_context="Assistant: ", lut_name="u-manage"))
    second = await stub.TrainLut(pb.TrainLutRequest(label="Quenford is rainy.", lut_name="u-manage"))
    got = (await stub.GetLut(pb.GetLutRequest(lut_name="u-manage"))).lut
    assert (got.entry_count, got.version, list(got.labels)) == (2, 2, [FACT, "Quenford is rainy."])
    assert got.size_bytes > 0
    entries = (await stub.ListLutEntries(pb.ListLutEntriesRequest(lut_name="u-manage"))).entries
    assert [e.entry_id for e in entries] == [first.entry_id, second.entry_id]
    assert entries[0].label_context == "Assistant: "
    listed = await stub.ListLuts(pb.ListLutsRequest(model="tiny"))
    assert "u-manage" in [lut.lut_name for lut in listed.luts]
    gone = await stub.DeleteLutEntry(pb.DeleteLutEntryRequest(lut_name="u-manage", entry_id=first.entry_id))
    assert (gone.entry_count, gone.version) == (1, 3)
    assert (await _gen(stub, lut="u-manage", threshold=0.0, length=30)).completion.strip() == "Quenford is rainy."
    deleted = await stub.DeleteLut(pb.DeleteLutRequest(lut_name="u-manage"))
    assert list(deleted.models) == ["tiny"] and deleted.deleted_entry_count == 1
    # right to be forgotten: afterwards the name generates exactly like the base model
    assert (await _gen(stub, lut="u-manage", threshold=0.0)).completion == base.completion
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DeleteLut(pb.DeleteLutRequest(lut_name="u-manage"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    await stub.DeleteLut(pb.DeleteLutRequest(lut_name="u-manage", allow_missing=True))


async def test_update_supersedes_and_deleting_takes_effect_on_the_next_request(stub):
    old_label, new_label = "My dog is called Biscuit.", "My dog is called Rex now."
    base = await _gen(stub, prompt="User: What is my dog called?\nAssistant:", length=30)
    ask = lambda: _gen(stub, prompt="User: What is my dog called?\nAssistant:", lut="u-update",  # noqa: E731
                       threshold=0.0, length=30)
    old = await stub.TrainLut(pb.TrainLutRequest(label=old_label, lut_name="u-update"))
    assert list(old.superseded_entry_ids) == []
    assert (await ask()).completion.strip() == old_label
    other = await stub.TrainLut(pb.TrainLutRequest(label="My cat is called Tom.", lut_name="u-update"))
    new = await stub.TrainLut(pb.TrainLutRequest(label=new_label, lut_name="u-update"))
    assert list(new.superseded_entry_ids) == [old.entry_id] and new.entry_count == 3
    entries = (await stub.ListLutEntries(pb.ListLutEntriesRequest(lut_name="u-update"))).entries
    # both stay listed; only the older one is marked
    assert [(e.label, e.superseded_by_entry_id) for e in entries] == [
        (old_label, new.entry_id), ("My cat is called Tom.", ""), (new_label, "")]
    one_page = await stub.ListLutEntries(pb.ListLutEntriesRequest(lut_name="u-update", page_size=1))
    assert one_page.entries[0].superseded_by_entry_id == new.entry_id  # marked from entries on later pages
    # threshold 0 fires the best-scoring active fact: never the superseded one
    assert (await ask()).completion.strip() in (new_label, "My cat is called Tom.")
    await stub.DeleteLutEntry(pb.DeleteLutEntryRequest(lut_name="u-update", entry_id=other.entry_id))
    assert (await ask()).completion.strip() == new_label
    # deleting the newer entry: the next request already sees the older fact again
    await stub.DeleteLutEntry(pb.DeleteLutEntryRequest(lut_name="u-update", entry_id=new.entry_id))
    assert (await ask()).completion.strip() == old_label
    entries = (await stub.ListLutEntries(pb.ListLutEntriesRequest(lut_name="u-update"))).entries
    assert [(e.label, e.superseded_by_entry_id) for e in entries] == [(old_label, "")]
    await stub.DeleteLutEntry(pb.DeleteLutEntryRequest(lut_name="u-update", entry_id=old.entry_id))
    assert (await ask()).completion == base.completion
    await stub.DeleteLut(pb.DeleteLutRequest(lut_name="u-update", allow_missing=True))


async def test_export_import_roundtrip(stub):
    await stub.TrainLut(pb.TrainLutRequest(label=FACT, label_context="Assistant: ", lut_name="u-export"))
    out = await stub.ExportLut(pb.ExportLutRequest(lut_name="u-export"))
    assert (out.model, out.entry_count, out.format_version) == ("tiny", 1, 1)
    imported = (await stub.ImportLut(pb.ImportLutRequest(lut_name="u-imported", data=out.data))).lut
    assert (imported.entry_count, list(imported.labels)) == (1, [FACT])
    a = await _gen(stub, lut="u-export", threshold=0.0, length=30)
    assert (await _gen(stub, lut="u-imported", threshold=0.0, length=30)).completion == a.completion
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ImportLut(pb.ImportLutRequest(lut_name="u-imported", data=out.data))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    for bad in (pb.ImportLutRequest(lut_name="u-x", data=out.data[:-3]),
                pb.ImportLutRequest(lut_name="u-x", data=out.data, model="tiny2")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ImportLut(bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_stream_generate_matches_unary(stub):
    await stub.TrainLut(pb.TrainLutRequest(label=FACT, lut_name="u-stream"))
    unary = await _gen(stub, lut="u-stream", threshold=0.0, length=30)
    req = pb.StreamGenerateRequest(prompt=PROMPT, lut_name="u-stream", length=30, threshold=0.0)
    events = [e async for e in stub.StreamGenerate(req)]
    assert "".join(e.delta.text for e in events if e.HasField("delta")) == unary.completion
    assert events[-1].HasField("final") and events[-1].final.text == unary.completion


async def test_luts_survive_restart_and_are_seen_by_another_process(tmp_path, tiny_model_dir):
    settings = _settings(tmp_path, tiny_model_dir)
    async with running(settings) as first, running(settings) as second:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as c1, \
                grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as c2:
            s1, s2 = pb_grpc.LutServiceStub(c1), pb_grpc.LutServiceStub(c2)
            base = await _gen(s2, lut="u-shared", threshold=0.0)  # caches "no LUT" in the second server
            await s1.TrainLut(pb.TrainLutRequest(label=FACT, lut_name="u-shared"))
            fired = await _gen(s2, lut="u-shared", threshold=0.0, length=30)
            assert fired.completion.strip() == FACT  # the version check saw the other server's write
            await s1.DeleteLut(pb.DeleteLutRequest(lut_name="u-shared"))
            assert (await _gen(s2, lut="u-shared", threshold=0.0)).completion == base.completion
            await s1.TrainLut(pb.TrainLutRequest(label=FACT, lut_name="u-kept"))
    async with running(settings) as again:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{again.port}") as channel:
            s = pb_grpc.LutServiceStub(channel)
            assert (await s.GetLut(pb.GetLutRequest(lut_name="u-kept"))).lut.entry_count == 1
            assert (await _gen(s, lut="u-kept", threshold=0.0, length=30)).completion.strip() == FACT


async def test_concurrent_train_calls_on_one_lut_all_land(stub):
    labels = [f"Fact number {i} is about Quenford." for i in range(6)]
    replies = await asyncio.gather(*(stub.TrainLut(pb.TrainLutRequest(label=l, lut_name="u-race")) for l in labels))
    assert sorted(r.version for r in replies) == list(range(1, 7))
    got = (await stub.GetLut(pb.GetLutRequest(lut_name="u-race"))).lut
    assert got.entry_count == 6 and sorted(got.labels) == sorted(labels)
