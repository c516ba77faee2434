"""The one typed settings object, built once at start-up from a TOML file and
command-line flags, then passed down. Nothing else reads the environment."""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from models.chat.config import ChatConfig
from models.engine.config import EngineConfig
from models.lut.config import LutConfig
from models.specialist.config import SpecialistConfig
from models.sae.config import SaeConfig
from models.registry import ModelSpec, default_specs


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to start; every field has a safe default."""

    host: str = "0.0.0.0"
    """Interface the gRPC server binds."""
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
    grace_period_s: float = 10.0
    """On SIGTERM, how long in-flight calls may finish before the server stops."""
    log_level: str = "INFO"
    """Python logging level name."""

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'llmserve.db').resolve()}"

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "models"


def _model_specs(raw: list[dict[str, Any]], base: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
    """Entries in the file replace or add to the defaults by name."""
    specs = {s.name: s for s in base}
    known = {f.name for f in dataclasses.fields(ModelSpec)}
    for entry in raw:
        unknown = set(entry) - known
        if unknown or "name" not in entry:
            raise ValueError(f"model entry {entry!r}: needs 'name'; unknown keys {sorted(unknown)}")
        specs[entry["name"]] = ModelSpec(**entry)
    return tuple(specs.values())


# TOML tables that map one-to-one onto a config dataclass.
SECTIONS: dict[str, type] = {"engine": EngineConfig, "chat": ChatConfig, "lut": LutConfig, "sae": SaeConfig,
                            "specialist": SpecialistConfig}


def _from_mapping(data: dict[str, Any]) -> Settings:
    kwargs: dict[str, Any] = {}
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; known: {sorted(known)}")
    for key, value in data.items():
        if key == "models":
            kwargs[key] = _model_specs(value, default_specs())
        elif key in SECTIONS:
            kwargs[key] = SECTIONS[key](**value)
        elif key == "data_dir":
            kwargs[key] = Path(value)
        elif key == "preload_models":
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    return Settings(**kwargs)


def load_settings(argv: Sequence[str] | None = None) -> Settings:
    """Settings from `--config FILE` (TOML) overridden by explicit flags."""
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
    settings = _from_mapping(data)
    overrides = {k: v for k, v in vars(args).items() if v is not None and k not in ("config", "device")}
    if overrides:
        settings = dataclasses.replace(settings, **overrides)
    if args.device:
        settings = dataclasses.replace(
            settings, models=tuple(dataclasses.replace(m, device=args.device) for m in settings.models))
    if settings.default_model not in {m.name for m in settings.models}:
        parser.error(f"--default-model {settings.default_model!r} is not a configured model")
    return settings
