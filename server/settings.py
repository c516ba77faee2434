"""The one typed settings object, built once at start-up from defaults, a TOML file,
environment variables (`LLMSERVE_<SECTION>__<KEY>`) and command-line flags, then passed
down. Nothing else reads the environment (`server/config_source.py` says how)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from domain.chat.config import ChatConfig
from domain.lut.config import LutConfig
from domain.replica import ReplicaConfig
from domain.sae.config import SaeConfig
from domain.specialist.config import SpecialistConfig
from domain.tenancy.config import AuthConfig
from models.engine.config import EngineConfig
from models.registry import ModelSpec, default_specs
from models.sampling_policy import SamplingDefaults
from server import config_source
from server.observability_config import HealthConfig, LogConfig, MetricsConfig, TracingConfig


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to start; every field has a safe default."""

    host: str = "127.0.0.1"
    """Interface the gRPC server binds. Loopback by default: Envoy in front is the public
    door (with its body and header limits); set "0.0.0.0" (LLMSERVE_HOST) where clients or a
    proxy on other hosts must reach the gRPC port directly."""
    port: int = 50051
    """gRPC port; 0 picks a free port (tests)."""
    data_dir: Path = Path("data")
    """Root of local state: SQLite database, converted model cache, corpora, artifacts."""
    database_url: str = ""
    """SQLAlchemy URL; empty means SQLite at <data_dir>/llmserve.db. PostgreSQL: postgresql+psycopg://..."""
    redis_url: str = ""
    """Optional Redis URL for hot-state caches; empty disables Redis."""
    default_model: str = "smollm2"
    """Model used when a request names none."""
    models: tuple[ModelSpec, ...] = field(default_factory=default_specs)
    """The model registry."""
    preload_models: tuple[str, ...] = ()
    """Models loaded at start-up besides the default (others load on first use)."""
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)
    """Where each kind of request's sampling controls start (`[sampling.completion]`, ...)."""
    engine: EngineConfig = field(default_factory=EngineConfig)
    """Batching, queue bounds and background-work share of each device engine."""
    chat: ChatConfig = field(default_factory=ChatConfig)
    """Chat sessions: reply provider, OpenAI-compatible API, Redis history cache."""
    lut: LutConfig = field(default_factory=LutConfig)
    """Per-user LUT keying, matching and default threshold."""
    specialist: SpecialistConfig = field(default_factory=SpecialistConfig)
    """Specialist experts: corpus and weights folders, adapter shape, training schedule."""
    sae: SaeConfig = field(default_factory=SaeConfig)
    """SAE training: token batch, activation cap, metric windows, checkpoints, uploads."""
    auth: AuthConfig = field(default_factory=AuthConfig)
    """Authentication mode, the admin key and default per-tenant quotas."""
    replica: ReplicaConfig = field(default_factory=ReplicaConfig)
    """This server's name among replicas, how many share the database, job leases."""
    grace_period_s: float = 10.0
    """On SIGTERM, how long in-flight calls may finish before the server stops."""
    log_level: str = "INFO"
    """Python logging level name."""
    log: LogConfig = field(default_factory=LogConfig)
    """Log format (JSON or text) and the per-RPC access line."""
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    """The Prometheus metrics endpoint."""
    tracing: TracingConfig = field(default_factory=TracingConfig)
    """OpenTelemetry traces over OTLP (off by default)."""
    health: HealthConfig = field(default_factory=HealthConfig)
    """Readiness: when a stalled engine takes the server out of rotation."""

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'llmserve.db').resolve()}"

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "models"


def _model_specs(raw: Any, base: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
    """Entries in the file (or LLMSERVE_MODELS as JSON) replace or add to the defaults by name."""
    if isinstance(raw, str):
        raw = config_source.coerce(list[dict[str, Any]], raw, "models")
    specs = {s.name: s for s in base}
    for entry in raw:
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise ValueError(f"model entry {entry!r}: needs 'name'")
        specs[entry["name"]] = config_source.build(ModelSpec, entry, "models.")
    return tuple(specs.values())


def from_mapping(data: Mapping[str, Any]) -> Settings:
    """Settings from one merged mapping (TOML tables and environment values)."""
    data = dict(data)
    models = data.pop("models", None)
    settings = config_source.build(Settings, data)
    if models is not None:
        settings = dataclasses.replace(settings, models=_model_specs(models, default_specs()))
    return settings


def load_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `--config FILE` (TOML), then the environment, then explicit flags."""
    parser = argparse.ArgumentParser(prog="llmserve", description="llmserve gRPC server")
    parser.add_argument("--config", type=Path, help="TOML settings file")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--default-model", help="model used when a request names none")
    parser.add_argument("--device", help="device for every model: auto, cpu, cuda, cuda:N")
    parser.add_argument("--log-level")
    args = parser.parse_args(argv)
    data: dict[str, Any] = tomllib.loads(args.config.read_text()) if args.config else {}
    env = config_source.from_environ(os.environ if environ is None else environ)
    settings = from_mapping(config_source.merge(data, env))
    overrides = {k: v for k, v in vars(args).items() if v is not None and k not in ("config", "device")}
    if overrides:
        settings = dataclasses.replace(settings, **overrides)
    if args.device:
        settings = dataclasses.replace(
            settings, models=tuple(dataclasses.replace(m, device=args.device) for m in settings.models))
    if settings.default_model not in {m.name for m in settings.models}:
        parser.error(f"--default-model {settings.default_model!r} is not a configured model")
    if settings.auth.mode == "api_key" and not settings.auth.admin_key:
        parser.error("auth.mode = \"api_key\" needs an admin key: set LLMSERVE_AUTH__ADMIN_KEY")
    try:
        settings.replica.check(settings.resolved_database_url)
    except ValueError as exc:
        parser.error(str(exc))
    return settings
