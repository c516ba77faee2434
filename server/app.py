"""Wiring: build every component from Settings, register servicers, health and
reflection on one grpc.aio server, and stop it gracefully."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from models.generation import TextGenerator
from models.manager import ModelManager
from models.registry import ModelRegistry
from server.services import chat, generation, lut, sae, server_info, specialist
from server.services.binding import ServiceBinding, ServiceContext
from server.settings import Settings
from storage import Database

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

BINDINGS: tuple[ServiceBinding, ...] = (
    generation.BINDING, server_info.BINDING, lut.BINDING, specialist.BINDING, sae.BINDING, chat.BINDING,
)

GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
]


@dataclass
class App:
    """A started server and what it owns."""

    server: grpc.aio.Server
    port: int
    settings: Settings
    manager: ModelManager
    database: Database
    health: health.aio.HealthServicer
    servicers: dict[str, Any] = field(default_factory=dict)
    implemented: dict[str, bool] = field(default_factory=dict)
    """Full service name -> True when it serves once the default model is loaded."""
    states: dict[str, str] = field(default_factory=dict)
    ready: asyncio.Task | None = None

    async def set_serving(self, serving: bool) -> None:
        overall = SERVING if serving else NOT_SERVING
        await self.health.set("", overall)
        self.states[""] = health_pb2.HealthCheckResponse.ServingStatus.Name(overall)
        for name, implemented in self.implemented.items():
            status = SERVING if serving and implemented else NOT_SERVING
            await self.health.set(name, status)
            self.states[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(status)

    async def stop(self, grace: float | None = None) -> None:
        """Mark NOT_SERVING (load balancers drain), let calls finish, then stop engines."""
        await self.set_serving(False)
        if self.ready and not self.ready.done():
            self.ready.cancel()
        await self.server.stop(self.settings.grace_period_s if grace is None else grace)
        for instance in self.servicers.values():
            if hasattr(instance, "close"):
                await instance.close()
        await self.manager.stop()
        self.database.dispose()


async def _become_ready(app: App) -> None:
    try:
        for name in (app.manager.registry.default, *app.settings.preload_models):
            await app.manager.runtime(name)
        for instance in app.servicers.values():
            if hasattr(instance, "start"):
                await instance.start()
    except Exception:  # the server keeps answering health/info; the reason is in the log
        log.exception("start-up failed; services stay NOT_SERVING")
        return
    await app.set_serving(True)
    log.info("serving on port %d", app.port)


async def create_server(settings: Settings, wait_ready: bool = False) -> App:
    """Build and start the server; model loading continues in the background
    unless `wait_ready`. Health is NOT_SERVING until the default model is loaded."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.resolved_database_url)
    await asyncio.to_thread(database.migrate)
    registry = ModelRegistry(settings.models, settings.default_model)
    manager = ModelManager(registry, settings.model_cache_dir, settings.engine)
    server = grpc.aio.server(options=GRPC_OPTIONS)
    app = App(server=server, port=0, settings=settings, manager=manager, database=database,
              health=health.aio.HealthServicer())
    context = ServiceContext(settings, manager, TextGenerator(manager), database, lambda: dict(app.states))

    for binding in BINDINGS:
        instance = binding.build(context)
        binding.add(instance, server)
        app.servicers[binding.full_name] = instance
        app.implemented[binding.full_name] = binding.implemented
    health_pb2_grpc.add_HealthServicer_to_server(app.health, server)
    reflection.enable_server_reflection(
        [*app.implemented, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server)

    app.port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if app.port == 0:
        raise RuntimeError(f"could not bind {settings.host}:{settings.port}")
    await app.set_serving(False)
    await server.start()
    app.ready = asyncio.create_task(_become_ready(app))
    if wait_ready:
        await app.ready
    return app
