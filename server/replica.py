"""Which replica answered: every response carries this server's name in the
`x-llmserve-replica` header (gRPC initial metadata, which Envoy passes on as an HTTP
header) and in the gRPC trailing metadata, errors included."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from server import call_context
from server.handlers import wrap_handler

REPLICA_HEADER = "x-llmserve-replica"


class ReplicaInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, name: str) -> None:
        self.name = name
        self._metadata = ((REPLICA_HEADER, name),)

    async def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        return wrap_handler(handler, self._stamp, self._header)

    @contextlib.asynccontextmanager
    async def _stamp(self, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        # The trailer of a normal end; `errors.abort` adds the same to an error's trailers,
        # which replace these. What an outer interceptor already set (x-request-id) stays.
        metadata = (*call_context.response_metadata(), *self._metadata)
        context.set_trailing_metadata(metadata)
        with call_context.response_metadata_set(metadata):
            yield

    async def _header(self, context: grpc.aio.ServicerContext) -> None:
        await context.send_initial_metadata(call_context.response_metadata())
