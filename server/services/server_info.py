"""ServerService: the `GET /` info document and the `GET /health` document."""

from __future__ import annotations

import time
from typing import Awaitable, Callable

import grpc

from llmserve.server.v1 import server_service_pb2 as pb
from llmserve.server.v1 import server_service_pb2_grpc as pb_grpc
from models.devices import GB, gpu_memory, host_memory
from models.manager import ModelManager
from server.errors import servicer
from server.services.binding import ServiceBinding, full_name

VERSION = "0.1.0"

ENDPOINTS = {
    "completion": "/completion",
    "chat": "/chat",
    "health": "/health",
    "completions": "/v1/completions",
    "chat_completions": "/v1/chat/completions",
    "models": "/v1/models",
    "generation": "/v1/generation/completions",
    "openapi": "/openapi.json",
    "docs": "/docs",
    "redoc": "/redoc",
    "train_lut": "/train_lut",
    "generate": "/generate",
    "specialists": "/specialists",
    "sae_train": "/api/v1/train",
    "chat_sessions": "/llm/chat/",
}


@servicer
class ServerServicer(pb_grpc.ServerServiceServicer):
    def __init__(self, manager: ModelManager, service_states: Callable[[], dict[str, str]],
                 specialists: Callable[[], Awaitable[list[str]]]) -> None:
        self._manager = manager
        self._service_states = service_states
        self._specialists = specialists

    async def GetInfo(self, request: pb.GetInfoRequest, context: grpc.aio.ServicerContext) -> pb.GetInfoResponse:
        return pb.GetInfoResponse(message="llmserve", version=VERSION, endpoints=ENDPOINTS,
                                  models=self._manager.registry.names())

    async def GetHealth(self, request: pb.GetHealthRequest, context: grpc.aio.ServicerContext) -> pb.GetHealthResponse:
        default = self._manager.registry.default
        runtime = self._manager.loaded(default)
        gpus = gpu_memory()
        memory = {m.name: pb.MemoryStatus(free_gb=round(m.free_bytes / GB, 3), total_gb=round(m.total_bytes / GB, 3))
                  for m in [*gpus, host_memory()]}
        states = self._service_states()
        status = "ok" if runtime is not None and states.get("", "") == "SERVING" else "starting"
        weights = str(getattr(runtime.loaded.model, "name_or_path", "")) if runtime else ""
        plan = runtime.engine.kernels if runtime else None
        kernels = [pb.LinearKernel(min_rows=b.min_rows, max_rows=b.max_rows or 0, kernel=b.kernel,
                                   measured_ms=b.measured_ms) for b in plan.buckets] if plan else []
        return pb.GetHealthResponse(
            status=status, model=default, device=str(runtime.loaded.device) if runtime else "",
            timestamp=time.time(), initialized=runtime is not None, specialists=await self._specialists(),
            service="llmserve", version=VERSION, gpu_available=bool(gpus), gpu_count=len(gpus),
            memory_status=memory, services=states, tokenizer_path=weights, generalist_ckpt_path=weights,
            linear_kernels=kernels, linear_kernels_source=plan.source if plan else "")


BINDING = ServiceBinding(full_name(pb, "ServerService"), pb_grpc.add_ServerServiceServicer_to_server,
                         lambda ctx: ServerServicer(ctx.features.manager, ctx.service_states,
                                                    ctx.features.specialists.names))
