"""GenerationService over real gRPC on an in-process server (tiny model),
plus the real-model answer check."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from llmserve.common.v1 import common_pb2
from llmserve.generation.v1 import generation_service_pb2 as pb
from llmserve.generation.v1 import generation_service_pb2_grpc as pb_grpc

GREEDY = dict(do_sample=False)


@pytest.fixture
async def stub(tiny_server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tiny_server.port}") as channel:
        yield pb_grpc.GenerationServiceStub(channel)


def _violations(err: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(err)
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields


async def test_complete_returns_text_usage_and_reason(stub):
    reply = await stub.Complete(pb.CompleteRequest(prompt="Hello there", max_new_tokens=5, **GREEDY))
    assert reply.model == "tiny" and reply.prompt == "Hello there"
    assert reply.usage.completion_tokens == 5 and reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 5
    assert reply.finish_reason == common_pb2.FINISH_REASON_LENGTH


async def test_stream_ends_with_exactly_one_final_matching_unary(stub):
    request = dict(prompt="Once upon a time", max_new_tokens=8, **GREEDY)
    events = [e async for e in stub.StreamComplete(pb.StreamCompleteRequest(**request))]
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "final" and kinds.count("final") == 1 and "error" not in kinds
    assert kinds.count("delta") >= 2
    streamed = "".join(e.delta.text for e in events if e.HasField("delta"))
    unary = await stub.Complete(pb.CompleteRequest(**request))
    assert streamed == events[-1].final.text == unary.text
    assert events[-1].final.usage.completion_tokens == 8


async def test_chat_uses_template_and_returns_assistant_message(stub):
    reply = await stub.Chat(pb.ChatRequest(messages=[pb.ChatMessage(role="system", content="Be brief."),
                                                     pb.ChatMessage(role="user", content="Hi")],
                                           max_new_tokens=4, **GREEDY))
    assert reply.message.role == "assistant" and reply.usage.completion_tokens <= 4
    # The template wraps each turn, so the prompt is longer than the raw words.
    assert reply.usage.prompt_tokens > 10


@pytest.mark.parametrize("request_kwargs, field", [
    (dict(prompt=""), "prompt"),
    (dict(prompt="   "), "prompt"),
    (dict(prompt="hi", max_new_tokens=0), "max_new_tokens"),
    (dict(prompt="hi", max_new_tokens=-1), "max_new_tokens"),
    (dict(prompt="hi", max_new_tokens=100000), "max_new_tokens"),
    (dict(prompt="hi", temperature=-0.5), "temperature"),
    (dict(prompt="hi", top_p=0.0), "top_p"),
    (dict(prompt="hi", top_p=1.5), "top_p"),
    (dict(prompt="hi", top_k=-2), "top_k"),
    (dict(prompt="hi", stop_sequences=[""]), "stop_sequences[0]"),
    (dict(prompt="hi", stream=True), "stream"),
])
async def test_bad_completion_input_is_invalid_argument_naming_the_field(stub, request_kwargs, field):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Complete(pb.CompleteRequest(**request_kwargs))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(err.value) == [field]


async def test_bad_stream_input_fails_before_any_event(stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.StreamComplete(pb.StreamCompleteRequest(prompt="hi", top_p=2.0)):
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and _violations(err.value) == ["top_p"]


@pytest.mark.parametrize("messages, field", [
    ([], "messages"),
    ([pb.ChatMessage(role="robot", content="x")], "messages[0].role"),
    ([pb.ChatMessage(role="user", content="ok"), pb.ChatMessage(role="user", content="")], "messages[1].content"),
])
async def test_bad_chat_input(stub, messages, field):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Chat(pb.ChatRequest(messages=messages))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and _violations(err.value) == [field]


async def test_unknown_model_is_not_found_naming_available_models(stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Complete(pb.CompleteRequest(prompt="hi", model="llama-9000"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "llama-9000" in err.value.details() and "tiny" in err.value.details()


async def test_configured_model_without_weights_is_failed_precondition(stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Complete(pb.CompleteRequest(prompt="hi", model="mistral"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "mistral" in err.value.details() and "available models" in err.value.details()


async def test_list_models(stub):
    models = {m.name: m for m in (await stub.ListModels(pb.ListModelsRequest())).models}
    assert models["tiny"].is_default and models["tiny"].loaded and models["tiny"].device == "cpu"
    assert models["tiny"].context_window == 512
    assert models["smollm2"].available and not models["smollm2"].loaded
    assert not models["mistral"].available and models["mistral"].unavailable_reason


@pytest.mark.slow
async def test_real_model_answers_paris(real_server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{real_server.port}") as channel:
        stub = pb_grpc.GenerationServiceStub(channel)
        reply = await stub.Chat(pb.ChatRequest(
            messages=[pb.ChatMessage(role="user", content="What is the capital of France?")],
            max_new_tokens=20, do_sample=False))
    assert "Paris" in reply.message.content
    assert reply.finish_reason == common_pb2.FINISH_REASON_EOS
