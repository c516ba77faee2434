"""ChatService: durable chat sessions whose replies can be constrained to a JSON Schema.

A thin servicer: protobuf -> `domain.chat` domain calls -> protobuf. Domain and storage
errors become statuses through the one error table (`@servicer`).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, AsyncIterator

import grpc
from google.protobuf import struct_pb2, timestamp_pb2

from llmserve.chat.v1 import chat_service_pb2 as pb
from llmserve.chat.v1 import chat_service_pb2_grpc as pb_grpc
from domain.chat.sessions import ChatReply, ChatSessions, ReplyOptions
from domain.chat.store import ChatMessageRecord, ChatSessionRecord, Sender
from models.errors import InvalidArgument
from models.types import TokenEvent
from server.call_context import tenant
from server.errors import servicer
from server.services.binding import ServiceBinding, full_name
from server.services.convert import FINISH_REASONS, delta, final, finished, sampling_overrides, usage
from server.streams import in_band_errors

# The seed calls the model's side "llm"; storage calls it "assistant".
WIRE_SENDER = {Sender.USER: "user", Sender.ASSISTANT: "llm", Sender.SYSTEM: "system"}
MAX_PAGE_SIZE = 1000


def _ts(value: Any) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out


def _struct(value: Any) -> struct_pb2.Struct | None:
    if not isinstance(value, dict):
        return None
    out = struct_pb2.Struct()
    out.update(value)
    return out


def _message(m: ChatMessageRecord, parsed: Any = None) -> pb.ChatMessage:
    if parsed is None and m.content_json:
        parsed = json.loads(m.content_json)
    return pb.ChatMessage(message_id=m.message_id, session_id=m.session_id, sender=WIRE_SENDER[m.sender],
                          content=m.content, timestamp=_ts(m.timestamp), response_json=_struct(parsed))


def _session(s: ChatSessionRecord, count: int) -> pb.ChatSession:
    return pb.ChatSession(session_id=s.session_id, user_id=s.user_id, created_at=_ts(s.created_at),
                          last_active=_ts(s.last_active), model=s.model, message_count=count)


def _options(request: Any) -> ReplyOptions:
    which = request.WhichOneof("structured_reply")
    return ReplyOptions(json_schema_name=request.json_schema_name if which == "json_schema_name" else None,
                        json_schema=request.json_schema if which == "json_schema" else None,
                        sampling=sampling_overrides(request))


def _page_size(value: int) -> int:
    if not 0 <= value <= MAX_PAGE_SIZE:
        raise InvalidArgument("page_size", f"must be 0 to {MAX_PAGE_SIZE}, got {value}")
    return value


def _encode_token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def _decode_token(token: str, prefix: str) -> str:
    try:
        value = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = ""
    if not value.startswith(prefix):
        raise InvalidArgument("page_token", "is malformed")
    return value[len(prefix):]


def _seq_token(token: str) -> int:
    value = _decode_token(token, "h:")
    if not value.isdigit():
        raise InvalidArgument("page_token", "is malformed")
    return int(value)


def _reply_fields(reply: ChatReply) -> dict[str, Any]:
    finished(reply.finish)
    return dict(response_json=_struct(reply.parsed), message_id=reply.message.message_id,
                finish_reason=FINISH_REASONS[reply.finish.reason], usage=usage(reply.finish))


def _closing(reply: ChatReply, response: Any) -> list[Any]:
    """The last two events of a streamed reply: the stored reply's ids, then `final`."""
    stored = pb.StreamedReply(message_id=reply.message.message_id, updated_session=reply.session_id,
                              response_json=_struct(reply.parsed))
    return [response(reply=stored), response(final=final(finished(reply.finish)))]


def _schema(info: Any) -> pb.JsonSchema:
    return pb.JsonSchema(name=info.name, description=info.description, json_schema=info.text,
                         builtin=info.builtin, created_at=_ts(info.created_at))


@servicer
class ChatServicer(pb_grpc.ChatServiceServicer):
    def __init__(self, sessions: ChatSessions) -> None:
        self._sessions = sessions

    async def StartConversation(self, request: pb.StartConversationRequest,
                                context: grpc.aio.ServicerContext) -> pb.StartConversationResponse:
        reply = await self._sessions.start_conversation(
            tenant(), request.user_id, request.initial_message,
            system_prompt=request.system_prompt if request.HasField("system_prompt") else None,
            model=request.model if request.HasField("model") else None, options=_options(request))
        return pb.StartConversationResponse(session_id=reply.session_id, message=reply.message.content,
                                            **_reply_fields(reply))

    async def StreamConversation(self, request: pb.StreamConversationRequest,
                                 context: grpc.aio.ServicerContext) -> AsyncIterator[pb.StreamConversationResponse]:
        async def messages() -> AsyncIterator[pb.StreamConversationResponse]:
            async for event in self._sessions.stream_conversation(
                    tenant(), request.user_id, request.initial_message,
                    system_prompt=request.system_prompt if request.HasField("system_prompt") else None,
                    model=request.model if request.HasField("model") else None, options=_options(request)):
                if isinstance(event, ChatSessionRecord):
                    yield pb.StreamConversationResponse(session_id=event.session_id)
                elif isinstance(event, TokenEvent):
                    yield pb.StreamConversationResponse(delta=delta(event))
                else:
                    for message in _closing(event, pb.StreamConversationResponse):
                        yield message

        async for message in in_band_errors(messages(), pb.StreamConversationResponse):
            yield message

    async def SendMessage(self, request: pb.SendMessageRequest,
                          context: grpc.aio.ServicerContext) -> pb.SendMessageResponse:
        reply = None
        async for event in self._sessions.send(tenant(), request.session_id, request.user_message,
                                               _options(request)):
            if isinstance(event, ChatReply):
                reply = event
        assert reply is not None
        return pb.SendMessageResponse(response_message=reply.message.content, updated_session=reply.session_id,
                                      **_reply_fields(reply))

    async def StreamMessage(self, request: pb.StreamMessageRequest,
                            context: grpc.aio.ServicerContext) -> AsyncIterator[pb.StreamMessageResponse]:
        async def messages() -> AsyncIterator[pb.StreamMessageResponse]:
            async for event in self._sessions.send(tenant(), request.session_id, request.user_message,
                                                   _options(request)):
                if isinstance(event, TokenEvent):
                    yield pb.StreamMessageResponse(delta=delta(event))
                else:
                    for message in _closing(event, pb.StreamMessageResponse):
                        yield message

        async for message in in_band_errors(messages(), pb.StreamMessageResponse):
            yield message

    async def GetHistory(self, request: pb.GetHistoryRequest,
                         context: grpc.aio.ServicerContext) -> pb.GetHistoryResponse:
        size = _page_size(request.page_size)
        after = _seq_token(request.page_token) if request.page_token else 0
        messages = [m for m in await self._sessions.history(tenant(), request.session_id) if m.seq > after]
        page, rest = (messages[:size], messages[size:]) if size else (messages, [])
        token = _encode_token(f"h:{page[-1].seq}") if rest else ""
        return pb.GetHistoryResponse(messages=[_message(m) for m in page], next_page_token=token)

    async def EndConversation(self, request: pb.EndConversationRequest,
                              context: grpc.aio.ServicerContext) -> pb.EndConversationResponse:
        already = await self._sessions.end(tenant(), request.session_id)
        note = "was already ended" if already else "ended"
        return pb.EndConversationResponse(message=f"Session {request.session_id} {note}",
                                          session_id=request.session_id, already_ended=already)

    async def ListSessions(self, request: pb.ListSessionsRequest,
                           context: grpc.aio.ServicerContext) -> pb.ListSessionsResponse:
        rows, token = await self._sessions.list_sessions(
            tenant(), request.user_id if request.HasField("user_id") else None, _page_size(request.page_size),
            request.page_token)
        return pb.ListSessionsResponse(sessions=[_session(s, n) for s, n in rows], next_page_token=token)

    async def GetSession(self, request: pb.GetSessionRequest,
                         context: grpc.aio.ServicerContext) -> pb.GetSessionResponse:
        session = await self._sessions.active_session(tenant(), request.session_id)
        return pb.GetSessionResponse(session=_session(*await self._sessions.session_with_count(tenant(), session)))

    async def RegisterSchema(self, request: pb.RegisterSchemaRequest,
                             context: grpc.aio.ServicerContext) -> pb.RegisterSchemaResponse:
        info = await self._sessions.schemas.register(tenant(), request.name, request.json_schema, request.description,
                                                     request.replace)
        return pb.RegisterSchemaResponse(schema=_schema(info))

    async def ListSchemas(self, request: pb.ListSchemasRequest,
                          context: grpc.aio.ServicerContext) -> pb.ListSchemasResponse:
        size = _page_size(request.page_size) or 100
        after = _decode_token(request.page_token, "s:") if request.page_token else ""
        infos = [i for i in await self._sessions.schemas.list(tenant()) if i.name > after]
        page, rest = infos[:size], infos[size:]
        token = _encode_token(f"s:{page[-1].name}") if rest else ""
        return pb.ListSchemasResponse(schemas=[_schema(i) for i in page], next_page_token=token)

    async def GetSchema(self, request: pb.GetSchemaRequest,
                        context: grpc.aio.ServicerContext) -> pb.GetSchemaResponse:
        return pb.GetSchemaResponse(schema=_schema(await self._sessions.schemas.get(tenant(), request.name)))

    async def DeleteSchema(self, request: pb.DeleteSchemaRequest,
                           context: grpc.aio.ServicerContext) -> pb.DeleteSchemaResponse:
        await self._sessions.schemas.delete(tenant(), request.name)
        return pb.DeleteSchemaResponse(name=request.name)


BINDING = ServiceBinding(full_name(pb, "ChatService"), pb_grpc.add_ChatServiceServicer_to_server,
                         lambda ctx: ChatServicer(ctx.features.chat))
