"""OpenTelemetry traces, off unless `tracing.otlp_endpoint` is set: one SERVER span per RPC
(joined to the caller's trace when it sends `traceparent`, as Envoy passes it on), with a
child span per generation and, under it, its queue wait, prefill (to the first token) and
decode. The engine's timings arrive after the fact (`RequestRecord`), so the child spans
are written with explicit start and end times when the call ends.

The opentelemetry packages are imported only here and only when tracing is on (the
`tracing` extra)."""

from __future__ import annotations

import time
from typing import Any

from models.engine.observer import RequestRecord
from server.call_context import CallInfo
from server.observability_config import TracingConfig


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class Tracing:
    """Writes the spans of finished calls to an OpenTelemetry tracer provider."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry.trace.propagation.tracecontext import (
            TraceContextTextMapPropagator,
        )

        self._provider = provider
        self._tracer = provider.get_tracer("llmserve")
        self._propagator = TraceContextTextMapPropagator()

    @classmethod
    def from_config(cls, config: TracingConfig) -> Tracing | None:
        if not config.otlp_endpoint:
            return None
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        provider = TracerProvider(resource=Resource.create({"service.name": config.service_name}),
                                  sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=config.otlp_endpoint,
                                                                        insecure=True)))
        return cls(provider)

    def record(self, info: CallInfo, metadata: Any, code: str, started_at: float, ended_at: float) -> None:
        """The spans of one finished call (times from time.time())."""
        from opentelemetry.trace import SpanKind, Status, StatusCode

        carrier = {name: value for name, value in metadata or () if isinstance(value, str)}
        parent = self._propagator.extract(carrier)
        span = self._tracer.start_span(f"{info.service}/{info.method}", context=parent, kind=SpanKind.SERVER,
                                       start_time=_ns(started_at), attributes={
                                           "rpc.system": "grpc", "rpc.service": info.service,
                                           "rpc.method": info.method, "rpc.grpc.status_code_name": code,
                                           "llmserve.request_id": info.request_id,
                                           **({"llmserve.tenant": info.tenant} if info.tenant else {})})
        if code != "OK":
            span.set_status(Status(StatusCode.ERROR, code))
        from opentelemetry import trace

        context = trace.set_span_in_context(span)
        for record in info.generations:
            self._generation(record, context)
        span.end(end_time=_ns(ended_at))

    def _generation(self, record: RequestRecord, context: Any) -> None:
        from opentelemetry import trace

        start, end = record.started_at, record.started_at + record.e2e_s
        span = self._tracer.start_span("generate", context=context, start_time=_ns(start), attributes={
            "llmserve.prompt_tokens": record.prompt_tokens, "llmserve.completion_tokens": record.completion_tokens,
            "llmserve.finish_reason": record.reason})
        inner = trace.set_span_in_context(span)
        admitted = start + record.queue_wait_s if record.queue_wait_s is not None else None
        first = start + record.first_token_s if record.first_token_s is not None else None
        for name, a, b in (("queue wait", start, admitted if admitted is not None else end),
                           ("prefill", admitted, first), ("decode", first, end)):
            if a is not None and b is not None:
                self._tracer.start_span(name, context=inner, start_time=_ns(a)).end(end_time=_ns(max(a, b)))
        span.end(end_time=_ns(end))

    def close(self) -> None:
        shutdown = getattr(self._provider, "shutdown", None)
        if shutdown is not None:
            shutdown()


def now() -> float:
    return time.time()
