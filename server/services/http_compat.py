"""REST adapters for paths whose one URL answers either one JSON reply or a stream,
depending on a field of the JSON body (`"stream": true`). Envoy hands such a request
over as raw bytes (`google.api.HttpBody`); the adapter parses it into the typed request,
calls the typed RPC, and renders the reply the way Envoy's transcoder renders typed
replies (proto field names, every field printed, SSE `data:` events for streams)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from google.api import httpbody_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

from models.errors import InvalidArgument

M = TypeVar("M", bound=Message)

JSON = "application/json"
EVENT_STREAM = "text/event-stream"


def parse_json_body(body: httpbody_pb2.HttpBody, message_cls: type[M]) -> M:
    """The typed request in a JSON body. An unknown field is refused, naming it: a parameter
    the server does not have (`n`, `best_of`, a typo) must not be dropped silently."""
    try:
        data = json.loads(body.data or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument("body", f"is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("body", "must be a JSON object")
    fields = message_cls.DESCRIPTOR.fields
    known = {f.name for f in fields} | {f.json_name for f in fields}
    for key in data:
        if key not in known:
            raise InvalidArgument(str(key)[:64], f"is not a parameter of this call; parameters: "
                                                 f"{', '.join(sorted(f.name for f in fields))}")
    try:
        return json_format.ParseDict(data, message_cls())
    except json_format.ParseError as exc:
        raise InvalidArgument("body", str(exc)) from None


def _json(message: Message) -> bytes:
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=None,
                                     always_print_fields_with_no_presence=True).encode()


def json_reply(message: Message) -> httpbody_pb2.HttpBody:
    return httpbody_pb2.HttpBody(content_type=JSON, data=_json(message))


async def event_stream(messages: AsyncIterator[Message]) -> AsyncIterator[httpbody_pb2.HttpBody]:
    """Each message as one Server-Sent Event."""
    async for message in messages:
        yield httpbody_pb2.HttpBody(content_type=EVENT_STREAM, data=b"data: " + _json(message) + b"\n\n")


async def body_decides_stream(http_body: httpbody_pb2.HttpBody, request_cls: type[M], stream_request_cls: type[Message],
                              unary: Callable[[M], Awaitable[Message]],
                              stream: Callable[[Any], AsyncIterator[Message]],
                              response_cls: Callable[..., Message]) -> AsyncIterator[Message]:
    """Parse the body as `request_cls`; with `"stream": true` reply with `stream`'s events
    as SSE (the stream request shares the unary one's field numbers), else with `unary`'s
    reply as one JSON document."""
    typed = parse_json_body(http_body, request_cls)
    if getattr(typed, "stream", False):
        events = stream(stream_request_cls.FromString(typed.SerializeToString()))
        async for body in event_stream(events):
            yield response_cls(body=body)
    else:
        yield response_cls(body=json_reply(await unary(typed)))
