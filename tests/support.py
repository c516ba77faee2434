"""Helpers for tests that build their own servers (imported as `tests.support`)."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import AsyncIterator

from models.registry import ModelSpec, default_specs
from server.app import App, create_server
from server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# Shared with `make run` so the one-time GGUF conversion happens once per machine.
MODEL_CACHE = ROOT / "data" / "models"


def make_settings(tmp: Path, models: tuple[ModelSpec, ...], default: str, **overrides) -> Settings:
    base = Settings(host="127.0.0.1", port=0, data_dir=tmp, default_model=default, models=models,
                    grace_period_s=1.0)
    return dataclasses.replace(base, **overrides)


def tiny_specs(tiny_model_dir: Path) -> tuple[ModelSpec, ...]:
    return (ModelSpec("tiny", "huggingface", str(tiny_model_dir), device="cpu", description="tiny random llama"),
            *default_specs())


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[App]:
    app = await create_server(settings, wait_ready=True)
    try:
        yield app
    finally:
        await app.stop(grace=0.5)


