"""How a service module plugs into the server: what it is built from
(`ServiceContext`) and how it registers (`ServiceBinding`), so wiring a service never
edits app.py beyond listing its binding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import grpc

from server.settings import Settings
from server.wiring import Features


@dataclass(frozen=True)
class ServiceContext:
    """What servicers are built from: the settings, the domain services, and the
    server's health per service name (for health documents)."""

    settings: Settings
    features: Features
    service_states: Callable[[], dict[str, str]]


@dataclass(frozen=True)
class ServiceBinding:
    """One gRPC service: its full name, generated `add_..._to_server`, and a factory."""

    full_name: str
    add: Callable[[Any, grpc.aio.Server], None]
    build: Callable[[ServiceContext], Any]


def full_name(pb_module: Any, service: str) -> str:
    return pb_module.DESCRIPTOR.services_by_name[service].full_name
