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

from models.manager import ModelManager
from server.auth import Authenticator, AuthInterceptor
from server.metrics import Metrics
from server.observe import ObserveInterceptor
from server.replica import ReplicaInterceptor
from server.services import admin, chat, generation, lut, openai, sae, server_info, specialist
from server.services.binding import ServiceBinding, ServiceContext
from server.settings import Settings
from server.tracing import Tracing
from server.wiring import Features, build_features
from storage import Database

log = logging.getLogger(__name__)

LIVENESS = "liveness"
"""Health service name that answers SERVING while the process and its event loop answer
(Kubernetes' liveness probe); the overall "" status is readiness."""
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

BINDINGS: tuple[ServiceBinding, ...] = (
    generation.BINDING, server_info.BINDING, lut.BINDING, specialist.BINDING, sae.BINDING, chat.BINDING,
    admin.BINDING, openai.BINDING,
)

GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
    # Above Envoy's 16 KiB header limit, so a request Envoy lets through is never refused
    # here with an error that lists internal header names.
    ("grpc.max_metadata_size", 64 * 1024),
]


@dataclass
class App:
    """A started server and what it owns."""

    server: grpc.aio.Server
    port: int
    settings: Settings
    features: Features
    database: Database
    health: health.aio.HealthServicer
    servicers: dict[str, Any] = field(default_factory=dict)
    """Full service name -> its servicer."""
    states: dict[str, str] = field(default_factory=dict)
    ready: asyncio.Task | None = None
    watchdog: asyncio.Task | None = None
    """Turns readiness off while an engine is stalled (`_watch_engines`)."""
    replica: str = ""
    """This server's name in `x-llmserve-replica`."""
    metrics: Metrics | None = None
    tracing: Tracing | None = None
    metrics_port: int = 0
    """Port of this server's `GET /metrics` (0: metrics off)."""

    async def set_serving(self, serving: bool) -> None:
        overall = SERVING if serving else NOT_SERVING
        await self.health.set("", overall)
        self.states[""] = health_pb2.HealthCheckResponse.ServingStatus.Name(overall)
        for name in self.servicers:
            status = SERVING if serving else NOT_SERVING
            await self.health.set(name, status)
            self.states[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(status)

    async def stop(self, grace: float | None = None) -> None:
        """Mark NOT_SERVING (load balancers drain), let calls finish, then stop engines."""
        for task in (self.watchdog, self.ready):
            if task and not task.done():
                task.cancel()
        await self.set_serving(False)
        await self.server.stop(self.settings.grace_period_s if grace is None else grace)
        await self.features.close()
        await self.manager.stop()
        if self.metrics is not None:
            self.metrics.close()
        if self.tracing is not None:
            self.tracing.close()
        self.database.dispose()

    @property
    def manager(self) -> ModelManager:
        return self.features.manager


async def _become_ready(app: App) -> None:
    try:
        for name in (app.manager.registry.default, *app.settings.preload_models):
            await app.manager.runtime(name)
        await app.features.start()
    except Exception:  # the server keeps answering health/info; the reason is in the log
        log.exception("start-up failed; services stay NOT_SERVING")
        return
    await app.set_serving(True)
    log.info("serving on port %d", app.port)
    app.watchdog = asyncio.create_task(_watch_engines(app))


async def _watch_engines(app: App) -> None:
    """Readiness follows the engines: NOT_SERVING while one is stalled, SERVING once it steps."""
    config = app.settings.health
    serving = True
    while True:
        await asyncio.sleep(config.check_interval_s)
        reasons = [f"{name}: {why}" for name in app.manager.registry.names()
                   if (runtime := app.manager.loaded(name)) and (why := runtime.engine.stalled(config.stall_after_s))]
        if bool(reasons) == serving:
            serving = not reasons
            await app.set_serving(serving)
            if reasons:
                log.error("NOT_SERVING: %s", "; ".join(reasons))
            else:
                log.warning("engines step again: SERVING")


async def create_server(settings: Settings, wait_ready: bool = False, tracing: Tracing | None = None) -> App:
    """Build and start the server; model loading continues in the background
    unless `wait_ready`. Health is NOT_SERVING until the default model is loaded.
    `tracing`: where spans go (default: per `settings.tracing`, off without an endpoint)."""
    settings.replica.check(settings.resolved_database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.resolved_database_url)
    await asyncio.to_thread(database.migrate)
    # Always built (the engines' observer also hands timings to traces); `metrics.enabled`
    # decides whether the HTTP endpoint runs.
    metrics = Metrics(tenant_label=settings.auth.mode != "off")
    tracing = tracing or Tracing.from_config(settings.tracing)
    features = build_features(settings, database, metrics.observer)
    if settings.auth.mode == "off":
        log.warning("auth.mode is \"off\": every caller is the one default tenant with admin rights; "
                    "set LLMSERVE_AUTH__MODE=api_key (and LLMSERVE_AUTH__ADMIN_KEY) before exposing this server")
    authenticator = Authenticator(settings.auth, features.api_keys)
    # The observer is outermost, so it times and counts every call and its request id is in
    # every response; the replica stamp comes next, so refusals by the authenticator carry it too.
    replica = ReplicaInterceptor(settings.replica.resolved_name())
    observe = ObserveInterceptor(metrics, settings.log.access, tracing)
    server = grpc.aio.server(options=GRPC_OPTIONS,
                             interceptors=[observe, replica, AuthInterceptor(authenticator, features.quotas)])
    app = App(server=server, port=0, settings=settings, features=features, database=database,
              health=health.aio.HealthServicer(), replica=replica.name, metrics=metrics,
              tracing=tracing)
    context = ServiceContext(settings, features, lambda: dict(app.states))

    for binding in BINDINGS:
        instance = binding.build(context)
        binding.add(instance, server)
        app.servicers[binding.full_name] = instance
    health_pb2_grpc.add_HealthServicer_to_server(app.health, server)
    reflection.enable_server_reflection(
        [*app.servicers, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server)

    app.port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if app.port == 0:
        raise RuntimeError(f"could not bind {settings.host}:{settings.port}")
    metrics.watch(features.manager, features.jobs)
    if settings.metrics.enabled:
        private = settings.auth.mode == "api_key" and not settings.auth.metrics_public
        app.metrics_port = metrics.serve(settings.metrics, settings.auth.admin_key.value if private else "")
    await app.set_serving(False)
    await app.health.set(LIVENESS, SERVING)
    await server.start()
    app.ready = asyncio.create_task(_become_ready(app))
    if wait_ready:
        await app.ready
    return app
