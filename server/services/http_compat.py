"""REST adapters for paths whose one URL answers either one JSON reply or a stream,
depending on a field of the JSON body (`"stream": true`). Envoy hands such a request
over as raw bytes (`google.api.HttpBody`); the adapter parses it into the typed request,
calls the typed RPC, and renders the reply: one JSON document the way Envoy's transcoder
renders typed replies (proto field names, every field printed), or seed 001's stream:
one `data: <text>` event per piece of text, then `data: [DONE]`."""

from __future__ import annotations

import json
import re
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


DONE = "[DONE]"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def text_event(text: str, event: str = "") -> bytes:
    """One Server-Sent Event carrying `text`: text with line breaks goes the way SSE
    carries multi-line data (one `data:` line per line; a parser joins them with "\n", so
    CR and CRLF, which are line ends in SSE too, arrive as LF)."""
    head = f"event: {event}\n" if event else ""
    lines = "".join(f"data: {line}\n" for line in _LINE_BREAK.split(text))
    return (head + lines + "\n").encode()


async def text_stream(messages: AsyncIterator[Message]) -> AsyncIterator[httpbody_pb2.HttpBody]:
    """Seed 001's stream from a delta/final/error event stream: `data: <text>` per delta,
    `data: [DONE]` at the end. A failure after the start is an `event: error` whose data
    is the message, before the `[DONE]` (the JSON-event streams on the `:stream` paths
    carry the full status, usage and finish reason)."""
    async for message in messages:
        kind = message.WhichOneof("event")
        if kind == "delta":
            if message.delta.text:
                yield httpbody_pb2.HttpBody(content_type=EVENT_STREAM, data=text_event(message.delta.text))
            continue
        if kind == "error":
            data = text_event(message.error.status.message or "generation failed", event="error")
            yield httpbody_pb2.HttpBody(content_type=EVENT_STREAM, data=data)
        yield httpbody_pb2.HttpBody(content_type=EVENT_STREAM, data=text_event(DONE))
        return


async def body_decides_stream(http_body: httpbody_pb2.HttpBody, request_cls: type[M], stream_request_cls: type[Message],
                              unary: Callable[[M], Awaitable[Message]],
                              stream: Callable[[Any], AsyncIterator[Message]],
                              response_cls: Callable[..., Message]) -> AsyncIterator[Message]:
    """Parse the body as `request_cls`; with `"stream": true` reply with `stream`'s text in
    seed 001's format (the stream request shares the unary one's field numbers), else with
    `unary`'s reply as one JSON document."""
    typed = parse_json_body(http_body, request_cls)
    if getattr(typed, "stream", False):
        events = stream(stream_request_cls.FromString(typed.SerializeToString()))
        async for body in text_stream(events):
            yield response_cls(body=body)
    else:
        yield response_cls(body=json_reply(await unary(typed)))
