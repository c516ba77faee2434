"""One way to wrap a gRPC method handler of any of the four shapes, for the interceptors:
the behaviour runs inside `guard(context)`, and `before_response(context)`, when given, is
awaited just before the first response message leaves (never on a call that fails first,
so an error still goes out as a trailers-only response). Request bytes that are not a valid
message (a `%ff` in a REST path decodes to invalid UTF-8 in a string field) are refused as
INVALID_ARGUMENT instead of failing in the deserializer as INTERNAL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from models.errors import InvalidArgument
from server.errors import abort

Guard = Callable[[grpc.aio.ServicerContext], AbstractAsyncContextManager[Any]]
Hook = Callable[[grpc.aio.ServicerContext], Awaitable[None]]


async def _nothing(_context: grpc.aio.ServicerContext) -> None:
    return None


class _Undecodable:
    def __init__(self, error: Exception) -> None:
        self.error = error


UNDECODABLE = InvalidArgument("request", "is not a valid message: a string field holds bytes that are not UTF-8 "
                                         "(check the URL's percent-escapes)")


def _decoding(deserialize: Callable | None) -> Callable | None:
    if deserialize is None:
        return None

    def safe(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as exc:
            return _Undecodable(exc)
    return safe


async def _checked_stream(requests: Any) -> Any:
    async for request in requests:
        if isinstance(request, _Undecodable):
            raise UNDECODABLE
        yield request


def wrap_handler(handler: grpc.RpcMethodHandler, guard: Guard, before_response: Hook | None = None
                 ) -> grpc.RpcMethodHandler:
    """The same handler, its behaviour run inside `guard(context)`."""
    first = before_response or _nothing
    types = (_decoding(handler.request_deserializer), handler.response_serializer)
    client_streams = bool(handler.stream_unary or handler.stream_stream)

    async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if client_streams:
            return _checked_stream(request)
        if isinstance(request, _Undecodable):
            await abort(context, UNDECODABLE)
        return request

    if handler.unary_unary or handler.stream_unary:
        inner = handler.unary_unary or handler.stream_unary

        async def unary(request, context):
            request = await checked(request, context)
            async with guard(context):
                response = await inner(request, context)
                await first(context)
                return response
        make = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
        return make(unary, *types)
    inner = handler.unary_stream or handler.stream_stream

    async def stream(request, context):
        request = await checked(request, context)
        async with guard(context):
            started = False
            async for response in inner(request, context):
                if not started:
                    started = True
                    await first(context)
                yield response
    make = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
    return make(stream, *types)
