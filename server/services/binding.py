"""How a service module plugs into the server: what it needs (`ServiceContext`)
and how it registers (`ServiceBinding`), so wiring a service never edits app.py
beyond listing its binding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import grpc

from models.generation import TextGenerator
from models.manager import ModelManager
from server.settings import Settings
from storage import Database


@dataclass
class ServiceContext:
    """Shared components built once at start-up and handed to every service."""

    settings: Settings
    manager: ModelManager
    generator: TextGenerator
    database: Database
    service_states: Callable[[], dict[str, str]]
    """Current health status per service name (for health documents)."""
    components: dict[str, Any] = field(default_factory=dict)
    """Domain services a binding offers to others, by name (e.g. "specialists", which the
    seed-shared POST /generate reaches); read at call time, so build order does not matter."""


@dataclass(frozen=True)
class ServiceBinding:
    """One gRPC service: its full name, generated `add_..._to_server`, and a factory.

    A servicer may define `async start()` (run once the default model is loaded)
    and `async close()` (run at shutdown after the server stopped taking calls).
    """

    full_name: str
    add: Callable[[Any, grpc.aio.Server], None]
    build: Callable[[ServiceContext], Any]
    implemented: bool = True


def full_name(pb_module: Any, service: str) -> str:
    return pb_module.DESCRIPTOR.services_by_name[service].full_name
