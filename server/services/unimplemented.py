"""A servicer for a contract whose implementation has not landed: every RPC
answers UNIMPLEMENTED with a message naming what is missing."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from models.errors import Unimplemented
from server.errors import servicer


def unimplemented_servicer(base: type, service: ServiceDescriptor, missing: str) -> type:
    """Subclass `base` (a generated Servicer) so each RPC raises Unimplemented."""

    def make(method_name: str, server_streaming: bool) -> Any:
        message = f"{service.name}.{method_name} is not implemented yet: {missing}"
        if server_streaming:
            async def stream(self: Any, request: Any, context: grpc.aio.ServicerContext):
                raise Unimplemented(message)
                yield  # pragma: no cover - makes this an async generator
            return stream

        async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext):
            raise Unimplemented(message)
        return unary

    methods = {m.name: make(m.name, m.server_streaming) for m in service.methods}
    return servicer(type(f"Unimplemented{service.name}", (base,), methods))
