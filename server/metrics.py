"""Prometheus metrics: the one module that imports prometheus_client.

Three sources feed it. Each engine reports latencies, token counts and batch sizes
through an `EngineObserver` (`models/engine/observer.py`) bound to its model's name; the
observe interceptor (`server/observe.py`) counts every RPC by service, method and code,
and refusals by reason; gauges (queue depth, KV slots, rows per hook, training jobs) are
read from the engines' stats snapshots and the job store when Prometheus scrapes.

Each server owns its registry (several servers share one test process). Labels stay few
and bounded: model, service, method, code, reason, kind, state, and the tenant only when
auth is on; never a prompt or a session id.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from domain.jobs import JobStore
from models.engine.observer import EngineObserver, RequestRecord, StepRecord
from models.manager import ModelManager
from server import call_context
from server.observability_config import MetricsConfig

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
                   80.0, 160.0, 640.0)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
TOKEN_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 256)
JOB_KINDS = ("sae_training", "specialist_training")
JOB_STATES = ("queued", "running", "completed", "failed", "cancelled")


def rejection_reason(subject: str) -> str:
    """A ResourceExhausted subject ("engine queue", "requests_per_minute") as a label value."""
    return subject.strip().lower().replace(" ", "_") or "unknown"


class Metrics:
    """Every llmserve_* metric of one server, on its own registry."""

    def __init__(self, *, tenant_label: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.tenant_label = tenant_label
        rpc_labels = ("service", "method", "code", *(("tenant",) if tenant_label else ()))
        r = self.registry
        self.rpcs = Counter("llmserve_requests", "RPCs finished, by service, method and gRPC status code.",
                            rpc_labels, registry=r)
        self.rpc_seconds = Histogram("llmserve_request_duration_seconds", "RPC wall time in this server.",
                                     ("service", "method"), buckets=LATENCY_BUCKETS, registry=r)
        self.rejections = Counter("llmserve_rejections", "Calls refused with RESOURCE_EXHAUSTED (HTTP 429), by "
                                  "reason (engine_queue, requests_per_minute, concurrent_streams, ...).",
                                  ("reason",), registry=r)
        model = ("model",)
        self.ttft = Histogram("llmserve_time_to_first_token_seconds", "From submission to the first token.",
                              model, buckets=LATENCY_BUCKETS, registry=r)
        self.itl = Histogram("llmserve_inter_token_latency_seconds", "Between consecutive tokens of one row.",
                             model, buckets=ITL_BUCKETS, registry=r)
        self.e2e = Histogram("llmserve_e2e_request_latency_seconds", "From submission to the last event.",
                             model, buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("llmserve_queue_wait_seconds", "From submission to a batch slot.",
                                    model, buckets=LATENCY_BUCKETS, registry=r)
        self.prompt_len = Histogram("llmserve_request_prompt_tokens", "Prompt length of each generation.",
                                    model, buckets=TOKEN_BUCKETS, registry=r)
        self.completion_len = Histogram("llmserve_request_completion_tokens", "Tokens generated per generation.",
                                        model, buckets=TOKEN_BUCKETS, registry=r)
        self.batch = Histogram("llmserve_batch_size_rows", "Rows in each engine step's forward pass.",
                               model, buckets=BATCH_BUCKETS, registry=r)
        self.prefill_tokens = Histogram("llmserve_batch_prefill_tokens", "Prompt tokens prefilled per step.",
                                        model, buckets=TOKEN_BUCKETS, registry=r)
        self.prompt_tokens = Counter("llmserve_prompt_tokens", "Prompt tokens of finished generations.",
                                     model, registry=r)
        self.generation_tokens = Counter("llmserve_generation_tokens", "Tokens generated.", model, registry=r)
        self.finished = Counter("llmserve_generations", "Generations ended, by finish reason.",
                                ("model", "reason"), registry=r)
        self.cancellations = Counter("llmserve_cancellations", "Generations cancelled (client left, deadline, "
                                     "cancel call).", model, registry=r)
        self.hook_rows = Counter("llmserve_hook_rows", "Generations that carried a row hook, by kind "
                                 "(lut, json_grammar, specialist).", ("model", "kind"), registry=r)
        self.hook_firings = Counter("llmserve_hook_firings", "Generations whose hook changed the output "
                                    "(a LUT fact fired).", ("model", "kind"), registry=r)
        self.prefix_lookups = Counter("llmserve_prefix_cache_lookups", "Admitted generations that could use the "
                                      "prefix cache, by result (hit: some prompt KV was reused).",
                                      ("model", "result"), registry=r)
        self.prefix_tokens = Counter("llmserve_prefix_cache_prompt_tokens", "Prompt tokens of those generations, "
                                     "by source (cache: KV reused, prefill: computed).", ("model", "source"),
                                     registry=r)
        self._http: Any = None

    def observer(self, model: str) -> EngineObserver:
        return _ModelObserver(self, model)

    def watch(self, manager: ModelManager, jobs: JobStore | None) -> None:
        """Read gauges from `manager`'s engines and the job store at each scrape."""
        self.registry.register(_SnapshotCollector(manager, jobs))

    def rpc_finished(self, service: str, method: str, code: str, seconds: float, tenant: str) -> None:
        labels = (service, method, code, *((tenant,) if self.tenant_label else ()))
        self.rpcs.labels(*labels).inc()
        self.rpc_seconds.labels(service, method).observe(seconds)

    def rejected(self, subject: str) -> None:
        self.rejections.labels(rejection_reason(subject)).inc()

    def serve(self, config: MetricsConfig, admin_key: str = "") -> int:
        """Start the HTTP endpoint (a daemon thread); returns the bound port, or 0 when the
        port is taken (the server still serves: metrics are not worth an outage). With
        `admin_key`, a scrape must present it (`Authorization: Bearer`, as gRPC calls do)."""
        app = make_wsgi_app(self.registry)
        if admin_key:
            app = _key_required(app, admin_key)
        try:
            server = make_server(config.host, config.port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
        except OSError as exc:
            log.error("metrics endpoint %s:%d not started: %s", config.host, config.port, exc)
            return 0
        thread = threading.Thread(target=server.serve_forever, name="llmserve-metrics", daemon=True)
        thread.start()
        self._http = (server, thread)
        return server.server_port

    def close(self) -> None:
        if self._http is not None:
            server, _thread = self._http
            self._http = None
            threading.Thread(target=server.shutdown, daemon=True).start()
            server.server_close()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None  # a scrape every few seconds is not worth a log line


def _key_required(app: Callable, key: str) -> Callable:
    expected = f"Bearer {key}".encode()

    def guarded(environ: dict, start_response: Callable) -> Any:
        presented = environ.get("HTTP_AUTHORIZATION", "").encode()
        if not hmac.compare_digest(presented, expected):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
            return [b"metrics need the admin key: Authorization: Bearer <key>\n"]
        return app(environ, start_response)
    return guarded


class _ModelObserver:
    """The EngineObserver of one model's engine."""

    def __init__(self, metrics: Metrics, model: str) -> None:
        m = metrics
        self._ttft, self._itl, self._wait = m.ttft.labels(model), m.itl.labels(model), m.queue_wait.labels(model)
        self._e2e, self._batch = m.e2e.labels(model), m.batch.labels(model)
        self._prefill = m.prefill_tokens.labels(model)
        self._prompt_len, self._completion_len = m.prompt_len.labels(model), m.completion_len.labels(model)
        self._prompt_tokens, self._generation_tokens = m.prompt_tokens.labels(model), m.generation_tokens.labels(model)
        self._cancellations = m.cancellations.labels(model)
        self._hits, self._misses = m.prefix_lookups.labels(model, "hit"), m.prefix_lookups.labels(model, "miss")
        self._cached, self._computed = m.prefix_tokens.labels(model, "cache"), m.prefix_tokens.labels(model, "prefill")
        self._metrics, self._model = m, model

    def step(self, record: StepRecord) -> None:
        self._batch.observe(record.batch_rows)
        if record.prefill_tokens:
            self._prefill.observe(record.prefill_tokens)

    def queue_wait(self, seconds: float) -> None:
        self._wait.observe(seconds)

    def prefix_lookup(self, prompt_tokens: int, cached_tokens: int) -> None:
        (self._hits if cached_tokens else self._misses).inc()
        self._cached.inc(cached_tokens)
        self._computed.inc(prompt_tokens - cached_tokens)

    def first_token(self, seconds: float) -> None:
        self._ttft.observe(seconds)

    def inter_token(self, seconds: float) -> None:
        self._itl.observe(seconds)

    def finished(self, record: RequestRecord) -> None:
        # Called in the task of the call that ran the generation: its trace draws it.
        info = call_context.current()
        if info is not None:
            info.generations.append(record)
        self._e2e.observe(record.e2e_s)
        self._prompt_len.observe(record.prompt_tokens)
        self._completion_len.observe(record.completion_tokens)
        self._prompt_tokens.inc(record.prompt_tokens)
        self._generation_tokens.inc(record.completion_tokens)
        self._metrics.finished.labels(self._model, record.reason).inc()
        if record.reason == "cancelled":
            self._cancellations.inc()
        for kind, fired in record.hooks:
            self._metrics.hook_rows.labels(self._model, kind).inc()
            if fired:
                self._metrics.hook_firings.labels(self._model, kind).inc()


class _SnapshotCollector(Collector):
    """Gauges read when Prometheus scrapes (on the metrics thread): engine stats snapshots
    and training jobs from the job store."""

    def __init__(self, manager: ModelManager, jobs: JobStore | None) -> None:
        self._manager = manager
        self._jobs = jobs

    def describe(self) -> list:
        return []  # families are only known at collect time; nothing to check at register

    def collect(self) -> Iterator[Any]:
        yield from self._engines()
        if self._jobs is not None:
            try:
                yield from self._training_jobs()
            except Exception:  # the database may be away; the engine metrics still go out
                log.warning("training job metrics unavailable", exc_info=True)

    def _engines(self) -> Iterator[Any]:
        gauges = {
            "running": GaugeMetricFamily("llmserve_requests_running", "Generations in the batch now.",
                                         labels=["model"]),
            "waiting": GaugeMetricFamily("llmserve_requests_waiting", "Generations queued for a batch slot.",
                                         labels=["model"]),
            "waiting_tokens": GaugeMetricFamily("llmserve_requests_waiting_prompt_tokens",
                                                "Prompt tokens of the queued generations.", labels=["model"]),
            "slots_used": GaugeMetricFamily("llmserve_kv_slots_used", "KV cache rows (batch slots) held.",
                                            labels=["model"]),
            "slots_total": GaugeMetricFamily("llmserve_kv_slots_total", "KV cache rows (max batch rows).",
                                             labels=["model"]),
            "tokens_used": GaugeMetricFamily("llmserve_kv_tokens_reserved", "KV cache columns the running rows "
                                             "reserve.", labels=["model"]),
            "tokens_total": GaugeMetricFamily("llmserve_kv_tokens_total", "KV cache token budget.",
                                              labels=["model"]),
            "bytes": GaugeMetricFamily("llmserve_kv_cache_bytes", "KV cache memory allocated.", labels=["model"]),
            "background": GaugeMetricFamily("llmserve_background_jobs", "Background units queued on the engine "
                                            "(training, activation extraction).", labels=["model"]),
            "prefix_tokens": GaugeMetricFamily("llmserve_prefix_cache_tokens", "Tokens whose KV the prefix cache "
                                               "holds.", labels=["model"]),
            "prefix_total": GaugeMetricFamily("llmserve_prefix_cache_tokens_total", "Prefix cache capacity in "
                                              "tokens (0: off).", labels=["model"]),
            "prefix_bytes": GaugeMetricFamily("llmserve_prefix_cache_bytes", "Prefix cache memory allocated.",
                                              labels=["model"]),
            "hooks": GaugeMetricFamily("llmserve_hook_rows_running", "Generations in flight carrying a row hook, "
                                       "by kind (json_grammar: grammar-constrained rows).", labels=["model", "kind"]),
        }
        steps = CounterMetricFamily("llmserve_engine_steps", "Engine steps that ran the model.", labels=["model"])
        evicted = CounterMetricFamily("llmserve_prefix_cache_evicted_tokens", "Tokens evicted from the prefix "
                                      "cache (least recently used) to make room.", labels=["model"])
        for name in self._manager.registry.names():
            runtime = self._manager.loaded(name)
            if runtime is None:
                continue
            s = runtime.engine.stats()
            for key, value in (("running", s.live_rows), ("waiting", s.queued_requests),
                               ("waiting_tokens", s.queued_tokens), ("slots_used", s.kv_slots_used),
                               ("slots_total", s.kv_slots_total), ("tokens_used", s.kv_tokens_reserved),
                               ("tokens_total", s.kv_tokens_total), ("bytes", s.kv_cache_bytes),
                               ("background", s.background_jobs), ("prefix_tokens", s.prefix_cache_tokens),
                               ("prefix_total", s.prefix_cache_tokens_total), ("prefix_bytes", s.prefix_cache_bytes)):
                gauges[key].add_metric([name], value)
            for kind, rows in s.hook_rows:
                gauges["hooks"].add_metric([name, kind], rows)
            steps.add_metric([name], s.steps)
            evicted.add_metric([name], s.prefix_cache_evicted_tokens)
        yield from gauges.values()
        yield steps
        yield evicted

    def _training_jobs(self) -> Iterator[Any]:
        by_state = GaugeMetricFamily("llmserve_training_jobs", "Training jobs by kind and state (every tenant).",
                                     labels=["kind", "state"])
        progress = GaugeMetricFamily("llmserve_training_job_progress_ratio", "Fraction done of each running job.",
                                     labels=["kind", "job_id"])
        loss = GaugeMetricFamily("llmserve_training_job_loss", "Latest training loss of each running job.",
                                 labels=["kind", "job_id"])
        for kind in JOB_KINDS:
            for state in JOB_STATES:
                by_state.add_metric([kind, state], self._jobs.count(kind=kind, state=state))
        # Only running jobs get a per-job series, so the job-id label stays bounded by the
        # number of workers.
        for record in self._jobs.list(state="running", page_size=100).items:
            progress.add_metric([record.kind.value, record.job_id], record.progress)
            value = (record.details or {}).get("loss")
            if isinstance(value, (int, float)):
                loss.add_metric([record.kind.value, record.job_id], float(value))
        yield from (by_state, progress, loss)
