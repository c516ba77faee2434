"""The outermost interceptor: gives each call its request id, then counts it and writes
its one access line when it ends.

The request id is the `x-request-id` Envoy generates (or passes on from the client) or
one a gRPC client sent; a call without one gets a fresh id. It goes back in the response
metadata, into every log line written while the call is served (`server/logs.py`) and
into the call's error details (`server/errors.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from models.errors import ResourceExhausted
from server import call_context
from server.call_context import CallInfo
from server.errors import code_of
from server.handlers import wrap_handler
from server.metrics import Metrics
from server.tracing import Tracing

log = logging.getLogger("llmserve.access")

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_CHARS = 128
QUIET_SERVICES = frozenset({"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                            "grpc.reflection.v1.ServerReflection"})
"""Counted, but no access line: Envoy health-checks every replica every 2 s."""


def request_id_of(metadata: Any) -> str:
    """The caller's x-request-id when it is a sane token, else a new one."""
    for name, value in metadata or ():
        if name == REQUEST_ID_HEADER and isinstance(value, str):
            value = value.strip()
            if 0 < len(value) <= MAX_REQUEST_ID_CHARS and value.isprintable():
                return value
    return uuid.uuid4().hex


def _code(context: grpc.aio.ServicerContext, failure: BaseException | None) -> str:
    if isinstance(failure, asyncio.CancelledError):
        return "CANCELLED"
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
    return "UNKNOWN" if failure is not None else "OK"


class ObserveInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: Metrics | None, access_log: bool = True, tracing: Tracing | None = None) -> None:
        self._metrics = metrics
        self._access = access_log
        self._tracing = tracing

    async def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        _, service, method = details.method.split("/", 2)
        return wrap_handler(handler, lambda context: self._observe(service, method, details.invocation_metadata,
                                                                   context))

    @contextlib.asynccontextmanager
    async def _observe(self, service: str, method: str, metadata: Any,
                       context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        info = CallInfo(request_id_of(metadata), service, method)
        started, wall = time.monotonic(), time.time()
        failure: BaseException | None = None
        with call_context.observing(info), call_context.response_metadata_set(((REQUEST_ID_HEADER,
                                                                                info.request_id),)):
            try:
                yield
            except BaseException as exc:
                failure = exc
                raise
            finally:
                code = self._finished(info, _code(context, failure), time.monotonic() - started)
                if self._tracing is not None:
                    self._tracing.record(info, metadata, code, wall, time.time())

    def _finished(self, info: CallInfo, code: str, seconds: float) -> str:
        """Count and log the call; returns its code (an in-band stream error's, if any)."""
        error = info.error
        if code == "OK" and error is not None:  # an error sent in-band, inside a stream
            code = code_of(error).name
        if self._metrics is not None:
            self._metrics.rpc_finished(info.service, info.method, code, seconds, info.tenant)
            if isinstance(error, ResourceExhausted):
                self._metrics.rejected(error.subject)
        if not self._access or info.service in QUIET_SERVICES:
            return code
        usage = info.usage
        log.info("%s/%s %s %.1f ms", info.service, info.method, code, seconds * 1000, extra={
            "code": code, "duration_ms": round(seconds * 1000, 3),
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            **({"error": type(error).__name__} if error is not None else {})})
        return code
