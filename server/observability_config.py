"""Settings of what the server tells operators: log format, the metrics port, traces."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LogConfig:
    """How log lines are written (`[log]`, LLMSERVE_LOG__FORMAT)."""

    format: str = "auto"
    """"json": one JSON object per line; "text": human lines for a terminal; "auto": text when
    stderr is a terminal, JSON otherwise (a container, a pipe, `make run` under a supervisor)."""
    access: bool = True
    """One INFO line per RPC (service, method, code, duration, tokens, tenant, request id).
    Prompts and completions are never logged."""

    def __post_init__(self) -> None:
        if self.format not in ("auto", "json", "text"):
            raise ValueError(f"log.format: {self.format!r} is not one of auto, json, text")


@dataclass(frozen=True)
class TracingConfig:
    """OpenTelemetry traces (`[tracing]`), off unless an OTLP endpoint is set. Needs the
    `tracing` extra: `pip install -e '.[tracing]'`."""

    otlp_endpoint: str = ""
    """OTLP/gRPC collector, e.g. "http://127.0.0.1:4317"; empty: no traces."""
    service_name: str = "llmserve"
    sample_ratio: float = 1.0
    """Share of new traces kept (a caller's sampled `traceparent` is always followed)."""


@dataclass(frozen=True)
class HealthConfig:
    """When the overall health (readiness) turns NOT_SERVING by itself (`[health]`)."""

    stall_after_s: float = 120.0
    """A model step running longer than this (or an engine loop that died) makes the server
    NOT_SERVING until it steps again, so Envoy and Kubernetes take the replica out."""
    check_interval_s: float = 2.0


@dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus endpoint (`[metrics]`, LLMSERVE_METRICS__PORT)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    """Interface of the metrics HTTP server. Loopback by default: Envoy serves it as
    `GET /metrics`; set "0.0.0.0" where Prometheus scrapes each replica directly."""
    port: int = 9464
    """Port of `GET /metrics` (Prometheus text format); 0 picks a free port (tests)."""
