"""The one rule for errors inside a server stream, and the stream shapes built on it.

An error before the first message propagates, so the client gets a real status (REST:
an HTTP error). Once a message has gone out, the HTTP status line has been sent too, so
the error travels in-band as the stream's last message: the response's `error` field,
a `google.rpc.Status` from the one error table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from google.protobuf.message import Message

from llmserve.common.v1 import common_pb2
from server.call_context import note_error
from server.errors import to_status

M = TypeVar("M", bound=Message)
T = TypeVar("T")


async def in_band_errors(messages: AsyncIterator[M], response: Callable[..., M]) -> AsyncIterator[M]:
    """Pass `messages` through; an exception after the first one ends the stream with
    `response(error=StreamError(status))` instead of failing the call."""
    started = False
    try:
        async for message in messages:
            started = True
            yield message
    except Exception as exc:  # noqa: BLE001 - reported in-band once the stream has started
        if not started:
            raise
        note_error(exc)
        yield response(error=common_pb2.StreamError(status=to_status(exc)))


def watch_stream(updates: AsyncIterator[T], is_terminal: Callable[[T], bool], response: Callable[..., M],
                 progress: Callable[[T], Message], final: Callable[[T], Message]) -> AsyncIterator[M]:
    """A long job watched to its end: `response(progress=...)` per change, then one
    `response(final=...)` for the terminal state (or one `error`)."""

    async def messages() -> AsyncIterator[M]:
        async for item in updates:
            if is_terminal(item):
                yield response(final=final(item))
                return
            yield response(progress=progress(item))

    return in_band_errors(messages(), response)
