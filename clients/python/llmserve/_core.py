"""What the blocking and the asyncio client share: the retry rule, channel options,
call metadata, request building and the reading of a stream's events."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import message as _message

from llmserve import errors
from llmserve.common.v1 import common_pb2

DEFAULT_TIMEOUT_S = 60.0
"""Deadline of a unary call, retries included, unless the client or the call sets another."""


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a failed call again.

    UNAVAILABLE is retried with exponential backoff (jittered). RESOURCE_EXHAUSTED is retried
    only when the server said when (a `google.rpc.RetryInfo` with a positive delay, as a
    rate or concurrency quota does), after that delay; a refusal without one (a storage
    quota) cannot get better by waiting. No retry is made that would end past the deadline.
    Streams are retried only while no message has arrived."""

    max_attempts: int = 4
    """Tries in all, the first included (1: never retry)."""
    initial_backoff_s: float = 0.2
    """Wait before the second try of an UNAVAILABLE call."""
    max_backoff_s: float = 5.0
    """Longest backoff between tries."""
    multiplier: float = 2.0
    """Growth of the backoff per try."""
    max_retry_delay_s: float = 60.0
    """Longest server-requested wait honoured; a longer RetryInfo ends the call at once."""
    codes: frozenset[grpc.StatusCode] = field(default_factory=lambda: frozenset(
        {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}))
    """Status codes that may be retried."""
    on_retry: Callable[[errors.LlmserveError, float], None] | None = None
    """Called with the error and the wait before each retry (to log or count them)."""

    def delay(self, attempt: int, error: errors.LlmserveError, remaining_s: float | None) -> float | None:
        """Seconds to wait before try `attempt + 1` after `error`, or None to give up."""
        if attempt >= self.max_attempts or error.code not in self.codes:
            return None
        asked = error.retry_delay
        if error.code == grpc.StatusCode.RESOURCE_EXHAUSTED and not asked:
            return None
        if asked:
            if asked > self.max_retry_delay_s:
                return None
            wait = asked
        else:
            backoff = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (attempt - 1))
            wait = random.uniform(backoff / 2, backoff)
        if remaining_s is not None and wait >= remaining_s:
            return None
        if self.on_retry is not None:
            self.on_retry(error, wait)
        return wait


NO_RETRY = RetryPolicy(max_attempts=1)
DEFAULT_RETRY = RetryPolicy()


class Deadline:
    """An absolute deadline over all tries of one call (None: no deadline)."""

    def __init__(self, timeout_s: float | None) -> None:
        self._end = None if timeout_s is None else time.monotonic() + timeout_s

    def remaining(self) -> float | None:
        return None if self._end is None else max(0.0, self._end - time.monotonic())


MESSAGE_LIMIT_BYTES = 64 * 1024 * 1024
"""The server's own limit on a message each way: a LUT export of thousands of entries is
past gRPC's default of 4 MiB for what a client receives."""


def channel_options(given: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The caller's channel options, with message limits matching the server's unless given."""
    named = {name for name, _ in given}
    limits = [(name, MESSAGE_LIMIT_BYTES) for name in ("grpc.max_receive_message_length",
                                                        "grpc.max_send_message_length") if name not in named]
    return [*limits, *given]


def credentials(tls: bool | grpc.ChannelCredentials) -> grpc.ChannelCredentials | None:
    """None for plaintext; the system roots for `tls=True`; or the credentials given."""
    if tls is True:
        return grpc.ssl_channel_credentials()
    if tls is False or tls is None:
        return None
    return tls


def call_metadata(api_key: str | None, extra: Mapping[str, str] | Sequence[tuple[str, str]] | None
                  ) -> tuple[tuple[str, str], ...]:
    pairs = list(extra.items() if isinstance(extra, Mapping) else extra or ())
    if api_key:
        pairs.append(("authorization", f"Bearer {api_key}"))
    return tuple(pairs)


def fields(**values: Any) -> dict[str, Any]:
    """The keyword arguments that were given (None means: leave the field unset)."""
    return {k: v for k, v in values.items() if v is not None}


def sampling(max_new_tokens: int | None, temperature: float | None, top_p: float | None, top_k: int | None,
             repetition_penalty: float | None, do_sample: bool | None, stop: Sequence[str] | None,
             seed: int | None) -> dict[str, Any]:
    return fields(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                  repetition_penalty=repetition_penalty, do_sample=do_sample,
                  stop_sequences=list(stop) if stop is not None else None, seed=seed)


def messages(turns: Sequence[Mapping[str, str] | tuple[str, str] | Any], message_type: type) -> list[Any]:
    """Chat turns given as {"role", "content"} dicts, (role, content) pairs or messages."""
    out = []
    for turn in turns:
        if isinstance(turn, message_type):
            out.append(turn)
        elif isinstance(turn, Mapping):
            out.append(message_type(role=turn["role"], content=turn["content"]))
        else:
            role, content = turn
            out.append(message_type(role=role, content=content))
    return out


def structured_reply(json_schema: str | Mapping[str, Any] | None, json_schema_name: str | None) -> dict[str, str]:
    """The reply-schema oneof: a registered schema's name, or a schema (dict or JSON text)."""
    if json_schema is not None and json_schema_name is not None:
        raise ValueError("give json_schema or json_schema_name, not both")
    if json_schema_name is not None:
        return {"json_schema_name": json_schema_name}
    if json_schema is not None:
        return {"json_schema": json_schema if isinstance(json_schema, str) else json.dumps(json_schema)}
    return {}


class StreamState:
    """What a generation stream has told so far: its final event and, for a chat stream,
    the stored reply. Every stream ends with one `final` or one `error` event."""

    def __init__(self) -> None:
        self.final: common_pb2.GenerationFinal | None = None
        self.reply: _message.Message | None = None

    def text_of(self, event: _message.Message) -> str | None:
        """The text piece of one event (None for a non-text event); raises for an error."""
        kind = event.WhichOneof("event")
        if kind == "delta":
            return event.delta.text
        if kind == "final":
            self.final = event.final
        elif kind == "reply":
            self.reply = event.reply
        elif kind == "error":
            raise errors.from_status(event.error.status)
        return None

    @property
    def usage(self) -> common_pb2.Usage | None:
        return self.final.usage if self.final is not None else None

    @property
    def finish_reason(self) -> int | None:
        return self.final.finish_reason if self.final is not None else None


class WatchState:
    """What a job watch has told so far: the final event, once the job has ended."""

    def __init__(self) -> None:
        self.final: Any = None

    def progress_of(self, event: _message.Message) -> Any:
        kind = event.WhichOneof("event")
        if kind == "error":
            raise errors.from_status(event.error.status)
        if kind == "final":
            self.final = event.final
        return getattr(event, kind)
