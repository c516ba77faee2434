"""ChatService over real gRPC on the in-process tiny server: the session lifecycle,
ordering under concurrency, structured replies (batched rows with different schemas plus
free-text rows), schema RPCs, and bad input mapped to the right status."""

from __future__ import annotations

import asyncio
import json
import uuid

import grpc
import jsonschema
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from llmserve.chat.v1 import chat_service_pb2 as pb
from llmserve.chat.v1 import chat_service_pb2_grpc as pb_grpc
from llmserve.common.v1 import common_pb2

USER = str(uuid.uuid4())
SMALL = {  # completes in a few tokens even on a random model: no free-text strings
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 0, "maximum": 99},
                   "id": {"type": "string", "format": "uuid"},
                   "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3}},
    "required": ["ok", "n", "id", "tags"], "additionalProperties": False,
}
# EdgeAPIRequest with an enum edge type: a random model's free strings rarely close within
# the tiny model's window, so batched-validity rows avoid them (the real-model eval has them).
EDGE = {
    "type": "object",
    "properties": {"source_block_id": {"type": "string", "format": "uuid"},
                   "target_block_id": {"type": "string", "format": "uuid"},
                   "edge_type": {"enum": ["data", "control"]},
                   "blocks": {"type": "array", "items": {"type": "string", "format": "uuid"}, "maxItems": 2}},
    "required": ["source_block_id", "target_block_id", "edge_type", "blocks"], "additionalProperties": False,
}


@pytest.fixture
async def stub(tiny_server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tiny_server.port}") as channel:
        yield pb_grpc.ChatServiceStub(channel)


def _violations(err: grpc.aio.AioRpcError) -> list[str]:
    fields = []
    for detail in rpc_status.from_call(err).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields


async def _start(stub, text="Hello", **kw) -> pb.StartConversationResponse:
    kw.setdefault("max_new_tokens", 4)
    return await stub.StartConversation(pb.StartConversationRequest(user_id=USER, initial_message=text, **kw))


async def test_session_lifecycle_history_list_and_idempotent_end(stub):
    started = await _start(stub, "Hi there", system_prompt="Be brief.")
    sid = started.session_id
    assert uuid.UUID(sid) and started.message_id and started.usage.completion_tokens <= 4
    sent = await stub.SendMessage(pb.SendMessageRequest(session_id=sid, user_message="And then?", max_new_tokens=3))
    assert sent.updated_session == sid and not sent.HasField("response_json")
    history = (await stub.GetHistory(pb.GetHistoryRequest(session_id=sid))).messages
    assert [m.sender for m in history] == ["user", "llm", "user", "llm"]
    assert [m.content for m in history[::2]] == ["Hi there", "And then?"]
    assert history[1].content == started.message and history[3].message_id == sent.message_id
    page = await stub.GetHistory(pb.GetHistoryRequest(session_id=sid, page_size=3))
    rest = await stub.GetHistory(pb.GetHistoryRequest(session_id=sid, page_token=page.next_page_token))
    assert [m.message_id for m in (*page.messages, *rest.messages)] == [m.message_id for m in history]
    session = (await stub.GetSession(pb.GetSessionRequest(session_id=sid))).session
    assert session.message_count == 4 and session.user_id == USER and session.model == "tiny"
    listed = await stub.ListSessions(pb.ListSessionsRequest(user_id=USER, page_size=100))
    assert sid in [s.session_id for s in listed.sessions]

    ended = await stub.EndConversation(pb.EndConversationRequest(session_id=sid))
    assert not ended.already_ended
    again = await stub.EndConversation(pb.EndConversationRequest(session_id=sid))
    assert again.already_ended
    listed = await stub.ListSessions(pb.ListSessionsRequest(user_id=USER))
    assert sid not in [s.session_id for s in listed.sessions]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SendMessage(pb.SendMessageRequest(session_id=sid, user_message="still there?"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetHistory(pb.GetHistoryRequest(session_id=sid))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_sessions_filters_by_user_and_paginates(stub):
    user = str(uuid.uuid4())
    ids = [(await stub.StartConversation(pb.StartConversationRequest(
        user_id=user, initial_message=f"msg {i}", max_new_tokens=1))).session_id for i in range(3)]
    seen, token = [], ""
    while True:
        page = await stub.ListSessions(pb.ListSessionsRequest(user_id=user, page_size=2, page_token=token))
        assert len(page.sessions) <= 2 and all(s.user_id == user for s in page.sessions)
        seen += [s.session_id for s in page.sessions]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(ids)


async def test_concurrent_messages_to_one_session_are_answered_in_order(stub):
    sid = (await _start(stub, "start")).session_id
    texts = [f"message number {i}" for i in range(6)]
    replies = await asyncio.gather(*(
        stub.SendMessage(pb.SendMessageRequest(session_id=sid, user_message=t, max_new_tokens=2)) for t in texts))
    history = (await stub.GetHistory(pb.GetHistoryRequest(session_id=sid))).messages
    assert len(history) == 2 + 2 * len(texts)  # none lost
    pairs = [(history[i], history[i + 1]) for i in range(2, len(history), 2)]
    # Each user message is immediately followed by its own reply, in the order they were sent.
    assert [u.content for u, _ in pairs] == texts
    assert [r.message_id for _, r in pairs] == [r.message_id for r in replies]
    assert all(u.sender == "user" and r.sender == "llm" for u, r in pairs)


async def test_stream_message_deltas_reply_and_final(stub):
    sid = (await _start(stub)).session_id
    events = [e async for e in stub.StreamMessage(pb.StreamMessageRequest(
        session_id=sid, user_message="stream please", max_new_tokens=5))]
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-2:] == ["reply", "final"] and set(kinds[:-2]) == {"delta"}
    text = "".join(e.delta.text for e in events if e.HasField("delta"))
    assert text == events[-1].final.text
    stored = (await stub.GetHistory(pb.GetHistoryRequest(session_id=sid))).messages[-1]
    assert stored.message_id == events[-2].reply.message_id and stored.content == text


async def test_structured_rows_with_different_schemas_and_free_text_batch_together(stub):
    """A random model under a grammar still writes valid JSON: every constrained reply parses
    and validates, while free-text rows run in the same batches."""
    sids = [(await _start(stub, "hi", max_new_tokens=1)).session_id for _ in range(6)]
    requests = [
        dict(json_schema=json.dumps(SMALL), seed=1), dict(json_schema=json.dumps(EDGE), seed=2),
        dict(json_schema=json.dumps(SMALL), seed=3), dict(seed=4), dict(seed=5),
        dict(json_schema=json.dumps(EDGE), seed=6),
    ]
    replies = await asyncio.gather(*(
        stub.SendMessage(pb.SendMessageRequest(session_id=sid, user_message="Give me JSON.", max_new_tokens=300,
                                               **req)) for sid, req in zip(sids, requests)))
    for req, reply in zip(requests, replies):
        if "seed" in req and len(req) == 1:
            assert not reply.HasField("response_json")
            continue
        schema = json.loads(req["json_schema"])
        assert reply.finish_reason == common_pb2.FINISH_REASON_EOS, reply.response_message
        doc = json.loads(reply.response_message)
        jsonschema.validate(doc, schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        assert json_format.MessageToDict(reply.response_json).keys() == doc.keys()
    history = (await stub.GetHistory(pb.GetHistoryRequest(session_id=sids[0]))).messages
    assert history[-1].HasField("response_json")


async def test_structured_reply_cut_by_max_new_tokens_is_not_claimed_valid(stub):
    sid = (await _start(stub)).session_id
    reply = await stub.SendMessage(pb.SendMessageRequest(session_id=sid, user_message="JSON", max_new_tokens=3,
                                                         json_schema_name="PipelineAPIRequest", seed=0))
    assert reply.finish_reason == common_pb2.FINISH_REASON_LENGTH
    assert not reply.HasField("response_json")


async def test_schema_registry_rpcs(stub):
    listed = await stub.ListSchemas(pb.ListSchemasRequest())
    builtin = {s.name for s in listed.schemas if s.builtin}
    assert {"BlockAPIRequest", "EdgeAPIRequest", "PipelineAPIRequest"} <= builtin
    name = f"Small_{uuid.uuid4().hex[:8]}"
    made = await stub.RegisterSchema(pb.RegisterSchemaRequest(name=name, json_schema=json.dumps(SMALL)))
    assert made.schema.name == name and not made.schema.builtin
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RegisterSchema(pb.RegisterSchemaRequest(name=name, json_schema=json.dumps(SMALL)))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    await stub.RegisterSchema(pb.RegisterSchemaRequest(name=name, json_schema=json.dumps(SMALL), replace=True))
    got = await stub.GetSchema(pb.GetSchemaRequest(name=name))
    assert json.loads(got.schema.json_schema) == SMALL
    for call, code in [
        (stub.RegisterSchema(pb.RegisterSchemaRequest(name="BlockAPIRequest", json_schema=json.dumps(SMALL),
                                                      replace=True)), grpc.StatusCode.FAILED_PRECONDITION),
        (stub.DeleteSchema(pb.DeleteSchemaRequest(name="EdgeAPIRequest")), grpc.StatusCode.FAILED_PRECONDITION),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == code
    await stub.DeleteSchema(pb.DeleteSchemaRequest(name=name))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetSchema(pb.GetSchemaRequest(name=name))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


UNSATISFIABLE = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 5, "maximum": 1}},
                 "required": ["a"]}


@pytest.mark.parametrize("kwargs, code, field", [
    (dict(user_message="   "), grpc.StatusCode.INVALID_ARGUMENT, "user_message"),
    (dict(user_message="x", json_schema="{not json"), grpc.StatusCode.INVALID_ARGUMENT, "json_schema"),
    (dict(user_message="x", json_schema='{"type": "array"}'), grpc.StatusCode.INVALID_ARGUMENT, "json_schema"),
    (dict(user_message="x", json_schema=json.dumps(UNSATISFIABLE)), grpc.StatusCode.INVALID_ARGUMENT,
     "json_schema"),
    (dict(user_message="x", json_schema='{"type":"object","properties":{"a":{"not":{"type":"string"}}}}'),
     grpc.StatusCode.INVALID_ARGUMENT, "json_schema"),
    (dict(user_message="x", json_schema_name="NoSuchSchema"), grpc.StatusCode.NOT_FOUND, None),
    (dict(user_message="x", max_new_tokens=0), grpc.StatusCode.INVALID_ARGUMENT, "max_new_tokens"),
    (dict(user_message="x", temperature=5.0), grpc.StatusCode.INVALID_ARGUMENT, "temperature"),
    (dict(user_message="word " * 600), grpc.StatusCode.INVALID_ARGUMENT, "user_message"),
])
async def test_bad_send_input(stub, kwargs, code, field):
    sid = (await _start(stub)).session_id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SendMessage(pb.SendMessageRequest(session_id=sid, **kwargs))
    assert err.value.code() == code, err.value.details()
    if field:
        assert _violations(err.value) == [field]
    # A refused message is not stored.
    assert len((await stub.GetHistory(pb.GetHistoryRequest(session_id=sid))).messages) == 2


async def test_unknown_session_and_bad_ids(stub):
    missing = str(uuid.uuid4())
    for call in (stub.SendMessage(pb.SendMessageRequest(session_id=missing, user_message="hi")),
                 stub.GetHistory(pb.GetHistoryRequest(session_id=missing)),
                 stub.GetSession(pb.GetSessionRequest(session_id=missing))):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await stub.EndConversation(pb.EndConversationRequest(session_id=missing))).already_ended
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.StartConversation(pb.StartConversationRequest(user_id="not-a-uuid", initial_message="hi"))
    assert _violations(err.value) == ["user_id"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.StartConversation(pb.StartConversationRequest(user_id=USER, initial_message=""))
    assert _violations(err.value) == ["initial_message"]


async def test_long_conversation_drops_oldest_turns_but_keeps_the_newest(stub):
    """The tiny model's window is 512 tokens: a long session keeps answering."""
    sid = (await _start(stub, "first " * 60, max_new_tokens=2)).session_id
    for i in range(6):
        reply = await stub.SendMessage(pb.SendMessageRequest(
            session_id=sid, user_message=f"turn {i} " + "filler " * 60, max_new_tokens=8))
        assert reply.usage.prompt_tokens + 8 <= 512
    assert len((await stub.GetHistory(pb.GetHistoryRequest(session_id=sid))).messages) == 14


async def _first_turn(stub, **fields) -> tuple[list[int], common_pb2.GenerationFinal]:
    ids, final = [], None
    async for event in stub.StreamConversation(pb.StreamConversationRequest(
            user_id=USER, initial_message="Build the pipeline.", **fields)):
        if event.HasField("delta"):
            ids += event.delta.token_ids
        elif event.HasField("final"):
            final = event.final
    return ids, final


@pytest.mark.parametrize("budget", [14, 24, 60])
async def test_structured_reply_with_a_tight_budget_still_ends_as_a_document(stub, budget):
    """A random model keeps the pipeline's name string open until the limit; closing by the
    grammar ends the document within max_new_tokens, greedy or sampled (14 tokens is the
    shortest PipelineAPIRequest document)."""
    for fields in (dict(temperature=0.0), dict(seed=budget)):
        ids, final = await _first_turn(stub, json_schema_name="PipelineAPIRequest", max_new_tokens=budget,
                                       **fields)
        assert final.finish_reason == common_pb2.FINISH_REASON_EOS, final.text
        assert len(ids) == final.usage.completion_tokens <= budget
        doc = json.loads(final.text)
        assert doc.keys() == {"name", "blocks", "edges"}


async def test_greedy_structured_replies_repeat_alone_and_in_any_batch(stub):
    """The same greedy request gives the same tokens every time, whether it runs alone or
    beside other rows (sampled, constrained by another schema, or the same request)."""
    same = dict(json_schema_name="PipelineAPIRequest", max_new_tokens=40, temperature=0.0)
    alone = [(await _first_turn(stub, **same))[0] for _ in range(2)]
    batched = await asyncio.gather(
        _first_turn(stub, **same), _first_turn(stub, max_new_tokens=40, seed=1),
        _first_turn(stub, json_schema=json.dumps(SMALL), max_new_tokens=30, seed=2), _first_turn(stub, **same))
    assert alone[0] and alone[1] == alone[0]
    assert batched[0][0] == alone[0] and batched[3][0] == alone[0]
