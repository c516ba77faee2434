"""What the server knows about the call being served, for the code that serves it: the
call's request id, the caller (tenant, key, admin or not), the tokens the call generated,
the error it ended with, and the metadata every response of it carries. Set by the
interceptors (`server/observe.py`, `server/auth.py`, `server/replica.py`); read by
servicers, the error helper and the log formatter."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from domain.tenancy.config import DEFAULT_TENANT
from models.types import request_tenant


@dataclass(frozen=True)
class Caller:
    tenant: str = DEFAULT_TENANT
    key_id: str | None = None
    """The API key used; None with auth off or the admin key."""
    admin: bool = False


@dataclass
class CallUsage:
    """Completion tokens generated for this call, summed over its generations."""

    completion_tokens: int = 0
    prompt_tokens: int = 0
    finished: list[str] = field(default_factory=list)
    """Finish reasons of the generations, in order."""


@dataclass
class CallInfo:
    """One RPC as the logs and metrics see it."""

    request_id: str
    service: str
    method: str
    tenant: str = ""
    usage: CallUsage | None = None
    error: BaseException | None = None
    """The error sent to the client (a status, or in-band in a stream), if any."""
    generations: list[Any] = field(default_factory=list)
    """The engine's RequestRecord of each generation the call ran (traces draw them)."""


_call: contextvars.ContextVar[CallInfo | None] = contextvars.ContextVar("llmserve_call", default=None)
_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("llmserve_caller", default=Caller(admin=True))
_usage: contextvars.ContextVar[CallUsage | None] = contextvars.ContextVar("llmserve_usage", default=None)
_response_metadata: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "llmserve_response_metadata", default=())


def caller() -> Caller:
    return _caller.get()


def tenant() -> str:
    """The tenant the current call acts for (the default tenant when auth is off)."""
    return _caller.get().tenant


def record_generation(prompt_tokens: int, completion_tokens: int, finish_reason: str) -> None:
    """Count one finished generation against the current call (quotas and metrics read it)."""
    usage = _usage.get()
    if usage is not None:
        usage.prompt_tokens += prompt_tokens
        usage.completion_tokens += completion_tokens
        usage.finished.append(finish_reason)


def begin(who: Caller) -> tuple[CallUsage, tuple[contextvars.Token, ...]]:
    usage = CallUsage()
    info = _call.get()
    if info is not None:
        info.tenant, info.usage = who.tenant, usage
    return usage, (_caller.set(who), _usage.set(usage), request_tenant.set(who.tenant))


def current() -> CallInfo | None:
    return _call.get()


def request_id() -> str:
    """The current call's request id (Envoy's x-request-id, or one made here); "" outside a call."""
    info = _call.get()
    return info.request_id if info is not None else ""


def note_error(exc: BaseException) -> None:
    """Remember the error the current call ends with (the access log and metrics read it)."""
    info = _call.get()
    if info is not None:
        info.error = exc


@contextlib.contextmanager
def observing(info: CallInfo) -> Iterator[CallInfo]:
    token = _call.set(info)
    try:
        yield info
    finally:
        _call.reset(token)


def end(tokens: tuple[contextvars.Token, ...]) -> None:
    _caller.reset(tokens[0])
    _usage.reset(tokens[1])
    request_tenant.reset(tokens[2])


def response_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata every response of the current call carries (the replica's name), which an
    error's trailers must repeat."""
    return _response_metadata.get()


@contextlib.contextmanager
def response_metadata_set(metadata: tuple[tuple[str, str], ...]) -> Iterator[None]:
    token = _response_metadata.set(metadata)
    try:
        yield
    finally:
        _response_metadata.reset(token)
