"""OpenAIService: OpenAI's /v1/models, /v1/chat/completions and /v1/completions.

Bodies come raw (HttpBody) and go to `domain.openai_api`; replies go back as OpenAI's JSON
or Server-Sent Events ending with `data: [DONE]`. Errors before the reply starts are gRPC
statuses from the one error table (Envoy turns them into OpenAI's error shape on these
paths); an error after a stream started is its last event, `data: {"error": ...}`."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.api import httpbody_pb2
from google.rpc import code_pb2, error_details_pb2
from llmserve.openai.v1 import openai_service_pb2 as pb
from llmserve.openai.v1 import openai_service_pb2_grpc as pb_grpc

from domain.openai_api import params, render
from domain.openai_api.service import OpenAICompletions
from server import call_context
from server.errors import servicer, to_status
from server.services.binding import ServiceBinding, full_name
from server.services.convert import finished

JSON = "application/json"
EVENT_STREAM = "text/event-stream"
DONE = b"data: [DONE]\n\n"

ERROR_TYPES = {code_pb2.INVALID_ARGUMENT: "invalid_request_error", code_pb2.FAILED_PRECONDITION: "invalid_request_error",
               code_pb2.NOT_FOUND: "not_found_error", code_pb2.UNAUTHENTICATED: "authentication_error",
               code_pb2.PERMISSION_DENIED: "permission_error", code_pb2.RESOURCE_EXHAUSTED: "rate_limit_error"}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _event(obj: Any) -> bytes:
    return b"data: " + _dumps(obj) + b"\n\n"


def error_object(exc: BaseException) -> dict[str, Any]:
    """OpenAI's error object for `exc`, from the one error table (a failed stream's last event)."""
    status = to_status(exc)
    param = None
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad) and bad.field_violations:
            param = bad.field_violations[0].field
    return render.error(status.message, ERROR_TYPES.get(status.code, "server_error"), param)


@servicer
class OpenAIServicer(pb_grpc.OpenAIServiceServicer):
    def __init__(self, completions: OpenAICompletions) -> None:
        self._completions = completions
        self._started = int(time.time())

    async def ListModels(self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
                         ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(object="list", data=[
            pb.Model(id=m.id, object="model", created=self._started, owned_by="llmserve")
            for m in self._completions.models()])

    async def CreateChatCompletion(self, request: pb.CreateChatCompletionRequest, context: grpc.aio.ServicerContext
                                   ) -> AsyncIterator[pb.CreateChatCompletionResponse]:
        parsed = params.parse_chat(params.parse_body(request.http_body.data))
        async for body in self._answer(parsed):
            yield pb.CreateChatCompletionResponse(body=body)

    async def CreateCompletion(self, request: pb.CreateCompletionRequest, context: grpc.aio.ServicerContext
                               ) -> AsyncIterator[pb.CreateCompletionResponse]:
        parsed = params.parse_completion(params.parse_body(request.http_body.data))
        async for body in self._answer(parsed):
            yield pb.CreateCompletionResponse(body=body)

    async def _answer(self, request: params.OpenAIRequest) -> AsyncIterator[httpbody_pb2.HttpBody]:
        prepared = await self._completions.prepare(request, call_context.tenant())
        if not request.stream:
            reply = await self._completions.complete(prepared, finished)
            yield httpbody_pb2.HttpBody(content_type=JSON, data=_dumps(reply))
            return
        try:
            async for chunk in self._completions.stream(prepared, finished):
                yield httpbody_pb2.HttpBody(content_type=EVENT_STREAM, data=_event(chunk))
        except Exception as exc:  # noqa: BLE001 - the HTTP status is sent: the error is the last event
            yield httpbody_pb2.HttpBody(content_type=EVENT_STREAM, data=_event(error_object(exc)))
        yield httpbody_pb2.HttpBody(content_type=EVENT_STREAM, data=DONE)


BINDING = ServiceBinding(full_name(pb, "OpenAIService"), pb_grpc.add_OpenAIServiceServicer_to_server,
                         lambda ctx: OpenAIServicer(ctx.features.openai))
