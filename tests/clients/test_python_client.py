"""llmserve.Client / llmserve.AsyncClient against a real server (the tiny model, API keys
on): every verb once, streams with their final usage, exceptions carrying the google.rpc
details, retries that honour RetryInfo, deadlines and cancellation."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2

import llmserve
from llmserve import errors
from llmserve.admin.v1 import admin_service_pb2 as admin_pb
from llmserve.common.v1 import common_pb2
from llmserve.specialist.v1 import specialist_service_pb2 as spec_pb
from tests.clients.conftest import new_tenant_key
from tests.forward_gate import ForwardGate

ENDED = {common_pb2.FINISH_REASON_LENGTH, common_pb2.FINISH_REASON_EOS}
SMALL_SCHEMA = {  # closes in a few tokens even on a random model: no free-text strings
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 0, "maximum": 99},
                   "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3}},
    "required": ["ok", "n", "tags"], "additionalProperties": False,
}
CORPUS = "The river runs past the mill and the miller grinds the grain every morning.\n" * 30


def target(app) -> str:
    return f"127.0.0.1:{app.port}"


async def idle_model(app):
    """The tiny model with no row running, so a gate's pass count starts from this request."""
    await llmserve.AsyncClient(target(app), api_key="unused").close()
    engine = app.manager.loaded("tiny").engine
    async with asyncio.timeout(60):
        while (stats := engine.stats()).running_rows or stats.queued_requests or stats.background_jobs:
            await asyncio.sleep(0.01)
    return engine


async def test_complete_chat_and_models(client: llmserve.AsyncClient):
    reply = await client.complete("Hello", max_new_tokens=3, do_sample=False)
    assert reply.model == "tiny" and reply.usage.completion_tokens == 3 and reply.prompt == "Hello"
    chat = await client.chat([{"role": "user", "content": "Hi"}, ("assistant", "Hello"), ("user", "And?")],
                             max_new_tokens=2, do_sample=False)
    assert chat.message.role == "assistant" and chat.usage.completion_tokens == 2
    assert "tiny" in [m.name for m in await client.models()]
    assert (await client.health()).status == "ok"


async def test_stream_complete_yields_text_pieces_then_the_usage(client: llmserve.AsyncClient):
    stream = client.stream_complete("Once upon a time", max_new_tokens=12, do_sample=False)
    pieces = [piece async for piece in stream]
    assert all(isinstance(p, str) for p in pieces) and len(pieces) >= 2
    assert "".join(pieces) == stream.final.text
    assert stream.finish_reason in ENDED and 0 < stream.usage.completion_tokens <= 12
    assert stream.usage.total_tokens == stream.usage.prompt_tokens + stream.usage.completion_tokens
    chat = client.stream_chat([("user", "Tell me a story")], max_new_tokens=5, do_sample=False)
    assert await chat.text() == chat.final.text and chat.usage.completion_tokens <= 5


async def test_the_blocking_client_has_the_same_verbs(client_app, tenant_key: str):
    def run() -> tuple:
        with llmserve.Client(target(client_app), api_key=tenant_key) as client:
            reply = client.complete("Hello", max_new_tokens=3, do_sample=False)
            stream = client.stream_complete("Hello", max_new_tokens=6, do_sample=False)
            pieces = list(stream)
            with pytest.raises(errors.InvalidArgument) as bad:
                client.chat([("user", "Hi")], top_p=0)
            return reply, pieces, stream, bad.value

    # A thread: the server runs on this test's event loop, which must stay free.
    reply, pieces, stream, bad = await asyncio.to_thread(run)
    assert reply.usage.completion_tokens == 3
    assert "".join(pieces) == stream.final.text and stream.usage.completion_tokens <= 6
    assert "top_p" in bad.field_violations and bad.code.name == "INVALID_ARGUMENT"


async def test_a_bad_field_raises_invalid_argument_naming_it(client: llmserve.AsyncClient):
    with pytest.raises(errors.InvalidArgument) as unary:
        await client.complete("Hello", max_new_tokens=0)
    assert "max_new_tokens" in unary.value.field_violations, unary.value.details
    assert unary.value.detail(error_details_pb2.BadRequest) is not None
    with pytest.raises(errors.InvalidArgument) as streamed:
        [p async for p in client.stream_complete("Hello", temperature=5.0)]
    assert "temperature" in streamed.value.field_violations
    assert isinstance(streamed.value, llmserve.LlmserveError) and "temperature" in str(streamed.value)


async def test_not_found_carries_the_resource(client: llmserve.AsyncClient):
    with pytest.raises(errors.NotFound) as err:
        await client.lut.get("no-such-lut")
    info = err.value.detail(error_details_pb2.ResourceInfo)
    assert info is not None and info.resource_type == "lut" and info.resource_name == "tiny/no-such-lut"


async def test_keys_are_sent_and_refusals_are_typed(client_app, client: llmserve.AsyncClient):
    async with llmserve.AsyncClient(target(client_app)) as anonymous:
        with pytest.raises(errors.Unauthenticated):
            await anonymous.lut.list()
        assert (await anonymous.health()).status == "ok"  # health stays open
    with pytest.raises(errors.PermissionDenied):
        await client.specialists.add("not-mine")


async def _hold_one_generation(client_app, client: llmserve.AsyncClient):
    """A generation that holds the tenant's one concurrent slot: its first piece has arrived
    and the model's passes are held."""
    engine = await idle_model(client_app)
    gate = ForwardGate(engine.model, let_through=4, max_hold_s=60).__enter__()
    stream = client.stream_complete("Once upon a time", max_new_tokens=96, do_sample=False)
    await anext(stream)
    return gate, stream


async def test_resource_exhausted_is_retried_after_the_servers_retry_info(client_app, admin):
    tenant, key = await new_tenant_key(admin, "one-slot")
    await admin.call(admin.stubs.admin.SetTenantQuotas, admin_pb.SetTenantQuotasRequest(
        tenant=tenant, quotas=admin_pb.TenantQuotas(concurrent_streams=1)))
    retries: list[tuple[errors.LlmserveError, float]] = []
    refused = asyncio.Event()

    def on_retry(error: errors.LlmserveError, wait: float) -> None:
        retries.append((error, wait))
        refused.set()

    async with llmserve.AsyncClient(target(client_app), api_key=key,
                                    retry=llmserve.RetryPolicy(on_retry=on_retry)) as client:
        gate, held = await _hold_one_generation(client_app, client)
        try:
            second = asyncio.create_task(client.complete("Hello", max_new_tokens=2, do_sample=False))
            async with asyncio.timeout(30):
                await refused.wait()  # refused while the first one holds the slot
            held.cancel()  # frees the slot before the retry's time comes
        finally:
            gate.__exit__(None, None, None)
        reply = await asyncio.wait_for(second, 60)
    assert reply.usage.completion_tokens == 2
    error, wait = retries[0]
    assert isinstance(error, errors.ResourceExhausted) and error.retry_delay == wait == 1.0
    assert error.detail(error_details_pb2.QuotaFailure).violations[0].subject == "concurrent_streams"


async def test_without_retries_the_refusal_carries_its_quota_details(client_app, admin):
    tenant, key = await new_tenant_key(admin, "no-retry")
    await admin.call(admin.stubs.admin.SetTenantQuotas, admin_pb.SetTenantQuotasRequest(
        tenant=tenant, quotas=admin_pb.TenantQuotas(concurrent_streams=1)))
    async with llmserve.AsyncClient(target(client_app), api_key=key, retry=llmserve.NO_RETRY) as client:
        gate, held = await _hold_one_generation(client_app, client)
        try:
            with pytest.raises(errors.ResourceExhausted) as err:
                await client.complete("Hello", max_new_tokens=2)
        finally:
            held.cancel()
            gate.__exit__(None, None, None)
    assert err.value.retry_delay == 1.0 and "concurrent_streams" in err.value.message


async def test_deadline_and_cancel(client_app, client: llmserve.AsyncClient):
    engine = await idle_model(client_app)
    with ForwardGate(engine.model, let_through=4, max_hold_s=60) as gate:
        stream = client.stream_complete("Once upon a time", max_new_tokens=96, do_sample=False)
        first = await anext(stream)
        # Once the engine thread is held, no request can advance: the next call must time out.
        assert await asyncio.to_thread(gate.holding.wait, 30)
        with pytest.raises(errors.DeadlineExceeded):
            await client.complete("Hello", max_new_tokens=2, timeout=0.5)  # queued behind the held passes
        stream.cancel()
        assert isinstance(first, str) and [p async for p in stream] == []
    async with asyncio.timeout(30):  # the server frees the cancelled row at its next step
        while engine.stats().running_rows:
            await asyncio.sleep(0.02)


async def test_lut_train_then_generate(client: llmserve.AsyncClient):
    trained = await client.lut.train("u1", "TLG Capital is an asset management firm.", label_context="Assistant: ")
    assert trained.lut_name == "u1" and trained.entry_count == 1
    reply = await client.lut.generate("User: What is TLG Capital?\nAssistant:", lut_name="u1", max_new_tokens=4)
    assert reply.lut_name == "u1" and reply.full_text.startswith(reply.prompt)
    stream = client.lut.stream_generate("User: What is TLG Capital?\nAssistant:", lut_name="u1", max_new_tokens=4)
    assert await stream.text() == stream.final.text
    assert (await client.lut.get("u1")).entry_count == 1
    assert [lut.lut_name for lut in (await client.lut.list()).luts] == ["u1"]


async def test_chat_session_with_a_json_schema_reply(client: llmserve.AsyncClient):
    started = await client.chat_sessions.start(str(uuid.uuid4()), "Hi", max_new_tokens=1)
    sid = started.session_id
    reply = await client.chat_sessions.send(sid, "Give me JSON.", json_schema=SMALL_SCHEMA, max_new_tokens=300, seed=1)
    document = json.loads(reply.response_message)
    assert set(document) == set(SMALL_SCHEMA["required"])
    assert json_format.MessageToDict(reply.response_json).keys() == document.keys()
    stream = client.chat_sessions.stream(sid, "More?", max_new_tokens=4, seed=2)
    text = await stream.text()
    assert stream.reply is not None and stream.reply.updated_session == sid
    history = (await client.chat_sessions.history(sid)).messages
    assert history[-1].message_id == stream.reply.message_id and history[-1].content == text
    assert (await client.chat_sessions.get(sid)).message_count == len(history)
    assert (await client.chat_sessions.end(sid)).session_id == sid


async def test_sae_job_watched_to_the_end(client: llmserve.AsyncClient):
    uploaded = await client.sae.upload_corpus("mill.txt", CORPUS.encode())
    assert uploaded.size_bytes == len(CORPUS.encode())
    job = await client.sae.start("tiny", "mill.txt", layer_number=1, hidden_dim=128, k=8, max_epochs=2,
                                 max_sequence_length=64, learning_rate=1e-3, min_loss=0)
    watch = client.sae.watch(job.job_id, min_interval_s=0.1)
    events = [event async for event in watch]
    assert events[-1] is watch.final and watch.final.state == common_pb2.JOB_STATE_COMPLETED, watch.final.message
    assert [e.progress for e in events] == sorted(e.progress for e in events)
    result = await client.sae.result(job.job_id)
    assert result.state == common_pb2.JOB_STATE_COMPLETED and result.feature_count == 128


async def test_specialists_added_trained_and_used(client: llmserve.AsyncClient, admin: llmserve.AsyncClient):
    uploaded = await admin.specialists.upload_corpus("rivers", "mill.txt", CORPUS.encode())
    assert uploaded.size_bytes == len(CORPUS.encode())
    added = await admin.specialists.add("rivers")
    final = await admin.specialists.watch(added.training_job_id).wait()
    assert isinstance(final, spec_pb.TrainingJob) and final.state == common_pb2.JOB_STATE_COMPLETED, final.message
    assert (await client.specialists.get("rivers")).state == spec_pb.SPECIALIST_STATE_READY
    assert "rivers" in [s.name for s in await client.specialists.list()]
    reply = await client.specialists.generate("The river", max_new_tokens=3, force_specialist="rivers")
    assert reply.usage.completion_tokens == 3
    stream = client.specialists.stream_generate("The river", max_new_tokens=3)
    assert await stream.text() == stream.final.text


async def test_a_lut_export_past_four_mebibytes_reaches_both_clients(client: llmserve.AsyncClient, client_app,
                                                                    tenant_key: str):
    from domain.lut import codec
    from llmserve.lut.v1 import lut_service_pb2 as lut_pb

    # gRPC's default receive limit is 4 MiB; a LUT of thousands of facts exports more than that.
    entries = [codec.ExportedEntry(f"fact {i}", None, "opaque", bytes([i % 251]) * 30_000) for i in range(160)]
    blob = codec.encode_export("tiny", entries)
    assert len(blob) > 4 * 2**20
    await client.stubs.lut.ImportLut(lut_pb.ImportLutRequest(lut_name="big", model="tiny", data=blob),
                                     metadata=(("authorization", f"Bearer {tenant_key}"),))
    exported = await client.stubs.lut.ExportLut(lut_pb.ExportLutRequest(lut_name="big", model="tiny"),
                                                metadata=(("authorization", f"Bearer {tenant_key}"),))
    assert exported.data == blob

    def blocking() -> bytes:
        with llmserve.Client(target(client_app), api_key=tenant_key) as blocking_client:
            return blocking_client.stubs.lut.ExportLut(lut_pb.ExportLutRequest(lut_name="big", model="tiny"),
                                                       metadata=(("authorization", f"Bearer {tenant_key}"),)).data

    assert await asyncio.to_thread(blocking) == blob
