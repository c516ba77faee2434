"""The real SmolLM2-135M-Instruct behind ChatService (slow): a seed task answered under
the PipelineAPIRequest grammar is a valid document that uses the message's block ids, and
a free-text reply in the same session still reads like an answer."""

from __future__ import annotations

import json
import uuid

import grpc
import jsonschema
import pytest

from llmserve.chat.v1 import chat_service_pb2 as pb
from llmserve.chat.v1 import chat_service_pb2_grpc as pb_grpc
from llmserve.common.v1 import common_pb2
from domain.structured.schemas import BUILTIN_SCHEMAS

A, B = "3f2b8c1e-0a4d-4c55-9b7e-2d1f6a8e9c01", "7a1d2e3f-4b5c-4d6e-8f90-a1b2c3d4e5f6"


@pytest.mark.slow
async def test_real_model_structured_then_free_text(real_server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{real_server.port}") as channel:
        stub = pb_grpc.ChatServiceStub(channel)
        start = await stub.StartConversation(pb.StartConversationRequest(
            user_id=str(uuid.uuid4()), json_schema_name="PipelineAPIRequest", max_new_tokens=192, temperature=0.0,
            initial_message=f"Build a pipeline named 'daily_sales' with blocks {A} and {B}, connected by a data "
                            "edge from the first to the second."))
        assert start.finish_reason == common_pb2.FINISH_REASON_EOS, start.message
        doc = json.loads(start.message)
        jsonschema.validate(doc, BUILTIN_SCHEMAS["PipelineAPIRequest"][1],
                            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        assert A in start.message  # the grammar fixes the form; the model still reads the ids
        reply = await stub.SendMessage(pb.SendMessageRequest(
            session_id=start.session_id, user_message="What is the capital of France?", temperature=0.0,
            max_new_tokens=24))
        assert "Paris" in reply.response_message and not reply.HasField("response_json")
