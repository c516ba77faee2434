"""Conversions shared by servicers: a request message's sampling controls, engine
events -> stream responses (with the in-band final/error contract), usage and finish
reasons."""

from __future__ import annotations

import dataclasses
from typing import Any, AsyncIterator, Callable, Mapping, TypeVar

from google.protobuf.message import Message

from llmserve.common.v1 import common_pb2
from models.errors import InvalidArgument
from models.sampling_policy import ALIASES, CONTROLS
from models.types import FinishEvent, FinishReason, GenerationEvent, TokenEvent
from server.call_context import record_generation
from server.streams import in_band_errors

M = TypeVar("M", bound=Message)
V = TypeVar("V")

FINISH_REASONS = {
    FinishReason.STOP_SEQUENCE: common_pb2.FINISH_REASON_STOP_SEQUENCE,
    FinishReason.EOS: common_pb2.FINISH_REASON_EOS,
    FinishReason.LENGTH: common_pb2.FINISH_REASON_LENGTH,
    FinishReason.CANCELLED: common_pb2.FINISH_REASON_CANCELLED,
    FinishReason.ERROR: common_pb2.FINISH_REASON_ERROR,
}


def enum_choice(table: Mapping[int, V], request: Message, field: str) -> V:
    """What `table` maps the request's enum `field` to. Proto3 enums are open: any int32
    arrives, so a number the table does not know is the caller's error, not a KeyError."""
    number = getattr(request, field)
    if number not in table:
        raise InvalidArgument(field, f"unknown value {number}; known values are {sorted(table)}")
    return table[number]


def sampling_overrides(request: Message) -> dict[str, Any]:
    """The sampling controls the client set on `request`, by name: every field named like
    a control of the policy (or one of its aliases) is copied when present. Fields with
    presence count when set, repeated fields when non-empty."""
    fields = request.DESCRIPTOR.fields_by_name
    out: dict[str, Any] = {}
    for name in (*CONTROLS, *ALIASES):
        field = fields.get(name)
        if field is None:
            continue
        if field.is_repeated:
            value = getattr(request, name)
            if value:
                out[name] = tuple(value)
        elif field.has_presence and request.HasField(name):
            out[name] = getattr(request, name)
    return out


def usage(event: FinishEvent) -> common_pb2.Usage:
    return common_pb2.Usage(prompt_tokens=event.prompt_tokens, completion_tokens=event.completion_tokens,
                            total_tokens=event.total_tokens)


def final(event: FinishEvent) -> common_pb2.GenerationFinal:
    return common_pb2.GenerationFinal(finish_reason=FINISH_REASONS[event.reason], usage=usage(event), text=event.text)


def delta(event: TokenEvent) -> common_pb2.TokenDelta:
    return common_pb2.TokenDelta(text=event.text, token_ids=list(event.token_ids))


def finished(event: FinishEvent) -> FinishEvent:
    """Count a finished generation against the current call (its tenant's token quota)."""
    record_generation(event.prompt_tokens, event.completion_tokens, event.reason.value)
    return event


async def collect(events: AsyncIterator[GenerationEvent]) -> FinishEvent:
    """Drain a stream for a unary reply; engine failures become exceptions."""
    async for event in events:
        if isinstance(event, FinishEvent):
            if event.reason is FinishReason.ERROR:
                raise RuntimeError(event.error or "generation failed")
            return finished(event)
    raise RuntimeError("engine stream ended without a finish event")


def token_stream(events: AsyncIterator[GenerationEvent], response: Callable[..., Message]) -> AsyncIterator[Message]:
    """Map engine events to `response(delta=...)`, then exactly one `final` or `error`."""

    async def messages() -> AsyncIterator[Message]:
        async for event in events:
            if isinstance(event, TokenEvent):
                yield response(delta=delta(event))
            elif event.reason is FinishReason.ERROR:
                raise RuntimeError(event.error or "generation failed")
            else:
                yield response(final=final(finished(event)))
                return

    return in_band_errors(messages(), response)


def mirror(value: Any, message_cls: type[M]) -> M:
    """The message of a domain dataclass that mirrors it field for field (same names).
    A field the message lacks is a drift between domain and proto: it raises."""
    names = message_cls.DESCRIPTOR.fields_by_name
    values = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    missing = set(values) - set(names)
    if missing:
        raise TypeError(f"{message_cls.__name__} has no field {sorted(missing)}")
    return message_cls(**values)
