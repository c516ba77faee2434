"""Conversions shared by servicers: protobuf fields -> sampling overrides, and
engine events -> stream responses with the in-band final/error contract."""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable, Iterable

from google.protobuf.message import Message

from llmserve.common.v1 import common_pb2
from models.types import FinishEvent, FinishReason, GenerationEvent, TokenEvent
from server.errors import to_status

SAMPLING_FIELDS = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "do_sample", "seed")

FINISH_REASONS = {
    FinishReason.STOP_SEQUENCE: common_pb2.FINISH_REASON_STOP_SEQUENCE,
    FinishReason.EOS: common_pb2.FINISH_REASON_EOS,
    FinishReason.LENGTH: common_pb2.FINISH_REASON_LENGTH,
    FinishReason.CANCELLED: common_pb2.FINISH_REASON_CANCELLED,
    FinishReason.ERROR: common_pb2.FINISH_REASON_ERROR,
}


def sampling_overrides(request: Message, fields: Iterable[str] = SAMPLING_FIELDS) -> dict[str, Any]:
    """Only the controls the client set; the domain fills the rest with defaults."""
    out: dict[str, Any] = {name: getattr(request, name) for name in fields if request.HasField(name)}
    stops = getattr(request, "stop_sequences", None)
    if stops:
        out["stop_sequences"] = tuple(stops)
    return out


def usage(event: FinishEvent) -> common_pb2.Usage:
    return common_pb2.Usage(prompt_tokens=event.prompt_tokens, completion_tokens=event.completion_tokens,
                            total_tokens=event.total_tokens)


def final(event: FinishEvent) -> common_pb2.GenerationFinal:
    return common_pb2.GenerationFinal(finish_reason=FINISH_REASONS[event.reason], usage=usage(event), text=event.text)


async def collect(events: AsyncIterator[GenerationEvent]) -> FinishEvent:
    """Drain a stream for a unary reply; engine failures become exceptions."""
    async for event in events:
        if isinstance(event, FinishEvent):
            if event.reason is FinishReason.ERROR:
                raise RuntimeError(event.error or "generation failed")
            return event
    raise RuntimeError("engine stream ended without a finish event")


async def token_stream(events: AsyncIterator[GenerationEvent], response: Callable[..., Message]) -> AsyncIterator[Message]:
    """Map engine events to `response(delta=...)`, then exactly one `final` or `error`.

    An error before the first event propagates (the client gets a real status,
    REST an HTTP error); after it, the status is sent in-band because the HTTP
    status line has already gone out.
    """
    started = False
    try:
        async for event in events:
            if isinstance(event, TokenEvent):
                started = True
                yield response(delta=common_pb2.TokenDelta(text=event.text, token_ids=list(event.token_ids)))
            elif event.reason is FinishReason.ERROR:
                raise RuntimeError(event.error or "generation failed")
            else:
                yield response(final=final(event))
                return
    except Exception as exc:  # noqa: BLE001 - reported in-band once streaming started
        if not started:
            raise
        yield response(error=common_pb2.StreamError(status=to_status(exc)))
