"""Owns loaded models and their device engines: loads the default at start-up,
others on first use, one engine per loaded model on its device."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.engine.config import EngineConfig
from models.engine.device_thread import DeviceThread
from models.engine.engine import Engine
from models.engine.kernels import KernelCache
from models.engine.observer import NULL_OBSERVER, EngineObserver
from models.errors import FailedPrecondition, ModelUnavailable, Unavailable
from models.loading import LoadedModel, load_model, weights_unavailable
from models.registry import ModelRegistry, ModelSpec

log = logging.getLogger(__name__)


@dataclass
class ModelRuntime:
    """A loaded model and the engine that serves it."""

    loaded: LoadedModel
    engine: Engine

    @property
    def name(self) -> str:
        return self.loaded.spec.name


@dataclass(frozen=True)
class ModelStatus:
    """What a client may know about one configured model."""

    spec: ModelSpec
    is_default: bool
    unavailable_reason: str | None
    loaded: LoadedModel | None


class ModelManager:
    """Loads models lazily (the default eagerly) and hands out their runtimes."""

    def __init__(self, registry: ModelRegistry, cache_dir: Path, engine_config: EngineConfig,
                 observer: Callable[[str], EngineObserver] | None = None) -> None:
        self.registry = registry
        self._observer = observer
        """Model name -> the observer of its engine (metrics); none by default."""
        self._cache_dir = cache_dir
        self._engine_config = engine_config
        self._runtimes: dict[str, ModelRuntime] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._stopping = False
        self._measuring: set[asyncio.Task] = set()

    async def runtime(self, name: str | None) -> ModelRuntime:
        """The runtime of `name` (default when empty), loading it on first use."""
        spec = self.registry.resolve(name)
        runtime = self._runtimes.get(spec.name)
        if runtime is not None:
            return runtime
        if self._stopping:
            raise Unavailable("server is shutting down")
        lock = self._locks.setdefault(spec.name, asyncio.Lock())
        async with lock:
            if spec.name not in self._runtimes:
                self._runtimes[spec.name] = await self._load(spec)
        return self._runtimes[spec.name]

    async def _load(self, spec: ModelSpec) -> ModelRuntime:
        reason = weights_unavailable(spec)
        if reason:
            raise ModelUnavailable(spec.name, reason, self.available_names())
        log.info("loading model %s", spec.name)
        # Loading, packing and the step loop share one thread: one OpenMP team per engine.
        device_thread = DeviceThread(f"llmserve-engine-{spec.name}")
        try:
            loaded = await device_thread.run(load_model, spec, self._cache_dir)
            observer = self._observer(spec.name) if self._observer else NULL_OBSERVER
            # The kernel choice is measured once per machine and kept beside the model copy.
            kernels = KernelCache(self._cache_dir / spec.name / "kernels", spec.name,
                                  self._engine_config.kernel_cache_max_other_cpu)
            engine = await device_thread.run(
                lambda: Engine(loaded.model, loaded.tokenizer, self._engine_config, device=loaded.device,
                               observer=observer, kernel_cache=kernels))
        except FailedPrecondition:
            device_thread.close()
            raise
        except Exception as exc:  # weights present but unloadable: say so, keep serving others
            device_thread.close()
            log.exception("model %s failed to load", spec.name)
            raise ModelUnavailable(spec.name, f"loading failed: {type(exc).__name__}", self.available_names()) from exc
        engine.start(device_thread)
        self._measuring.add(asyncio.create_task(self._choose_kernels(spec.name, engine)))
        log.info("model %s ready on %s (context %d)", spec.name, loaded.device, loaded.context_window)
        return ModelRuntime(loaded, engine)

    async def _choose_kernels(self, name: str, engine: Engine) -> None:
        """Without a cached kernel choice, measure one after the engine serves: a first
        start on a new machine is not held up by it."""
        try:
            await engine.choose_kernels()
        except Unavailable:  # stopped meanwhile
            pass
        except Exception:
            log.exception("choosing the linear kernels of %s failed; oneDNN serves every batch size", name)

    def loaded(self, name: str) -> ModelRuntime | None:
        return self._runtimes.get(name)

    def available_names(self) -> list[str]:
        return [n for n in self.registry.names() if weights_unavailable(self.registry.resolve(n)) is None]

    def statuses(self) -> list[ModelStatus]:
        out = []
        for name in self.registry.names():
            spec = self.registry.resolve(name)
            runtime = self._runtimes.get(name)
            out.append(ModelStatus(spec, name == self.registry.default, weights_unavailable(spec),
                                   runtime.loaded if runtime else None))
        return out

    async def stop(self) -> None:
        self._stopping = True
        for task in self._measuring:
            task.cancel()
        for runtime in self._runtimes.values():
            await asyncio.to_thread(runtime.engine.stop)
