"""GenerationService: completion and chat, unary and streaming."""

from __future__ import annotations

from typing import Any, AsyncIterator

import grpc

from llmserve.generation.v1 import generation_service_pb2 as pb
from llmserve.generation.v1 import generation_service_pb2_grpc as pb_grpc
from models.errors import InvalidArgument
from models.generation import ChatTurn, PreparedRequest, TextGenerator
from models.manager import ModelManager
from server.errors import servicer
from server.services.binding import ServiceBinding, full_name
from server.services.convert import FINISH_REASONS, collect, sampling_overrides, token_stream, usage
from server.services.http_compat import body_decides_stream


def _reject_stream_flag(request: Any, stream_rpc: str) -> None:
    if request.stream:
        raise InvalidArgument("stream", f"this RPC answers with one reply; {stream_rpc} streams tokens")


def _turns(request: Any) -> list[ChatTurn]:
    return [ChatTurn(m.role, m.content) for m in request.messages]


@servicer
class GenerationServicer(pb_grpc.GenerationServiceServicer):
    def __init__(self, generator: TextGenerator, manager: ModelManager) -> None:
        self._generator = generator
        self._manager = manager

    async def _completion(self, request: Any) -> PreparedRequest:
        return await self._generator.prepare_completion(request.prompt, request.model, sampling_overrides(request))

    async def _chat(self, request: Any) -> PreparedRequest:
        return await self._generator.prepare_chat(_turns(request), request.model, sampling_overrides(request))

    async def Complete(self, request: pb.CompleteRequest, context: grpc.aio.ServicerContext) -> pb.CompleteResponse:
        _reject_stream_flag(request, "StreamComplete")
        prepared = await self._completion(request)
        done = await collect(prepared.events())
        return pb.CompleteResponse(text=done.text, prompt=request.prompt, model=prepared.model_name,
                                   usage=usage(done), finish_reason=FINISH_REASONS[done.reason])

    async def CompleteCompat(self, request: pb.CompleteCompatRequest,
                             context: grpc.aio.ServicerContext) -> AsyncIterator[pb.CompleteCompatResponse]:
        async for piece in body_decides_stream(
                request.http_body, pb.CompleteRequest, pb.StreamCompleteRequest, lambda r: self.Complete(r, context),
                lambda r: self.StreamComplete(r, context), pb.CompleteCompatResponse):
            yield piece

    async def StreamComplete(self, request: pb.StreamCompleteRequest,
                             context: grpc.aio.ServicerContext) -> AsyncIterator[pb.StreamCompleteResponse]:
        prepared = await self._completion(request)
        async for message in token_stream(prepared.events(), pb.StreamCompleteResponse):
            yield message

    async def Chat(self, request: pb.ChatRequest, context: grpc.aio.ServicerContext) -> pb.ChatResponse:
        _reject_stream_flag(request, "StreamChat")
        prepared = await self._chat(request)
        done = await collect(prepared.events())
        return pb.ChatResponse(message=pb.ChatMessage(role="assistant", content=done.text), model=prepared.model_name,
                               usage=usage(done), finish_reason=FINISH_REASONS[done.reason])

    async def ChatCompat(self, request: pb.ChatCompatRequest,
                         context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ChatCompatResponse]:
        async for piece in body_decides_stream(
                request.http_body, pb.ChatRequest, pb.StreamChatRequest, lambda r: self.Chat(r, context),
                lambda r: self.StreamChat(r, context), pb.ChatCompatResponse):
            yield piece

    async def StreamChat(self, request: pb.StreamChatRequest,
                         context: grpc.aio.ServicerContext) -> AsyncIterator[pb.StreamChatResponse]:
        prepared = await self._chat(request)
        async for message in token_stream(prepared.events(), pb.StreamChatResponse):
            yield message

    async def ListModels(self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
        models = []
        for status in self._manager.statuses():
            loaded = status.loaded
            models.append(pb.Model(
                name=status.spec.name, description=status.spec.description,
                available=status.unavailable_reason is None, unavailable_reason=status.unavailable_reason or "",
                is_default=status.is_default, loaded=loaded is not None,
                device=str(loaded.device) if loaded else "", context_window=loaded.context_window if loaded else 0))
        return pb.ListModelsResponse(models=models)


BINDING = ServiceBinding(full_name(pb, "GenerationService"), pb_grpc.add_GenerationServiceServicer_to_server,
                         lambda ctx: GenerationServicer(ctx.features.generator, ctx.features.manager))
