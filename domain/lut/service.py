"""LutService (domain side): TrainLut and LUT-biased generation over a LUT store, with an
in-memory cache of compiled LUTs keyed by (lut_name, model) and invalidated by the
store's version (so changes made by another server process are seen)."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import unicodedata
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from models.errors import InvalidArgument, ModelNotFound
from models.generation import PreparedRequest, TextGenerator
from domain.lut import codec
from domain.lut.config import LutConfig
from domain.lut.hook import LutHook
from domain.lut.store import LutStore
from domain.tenancy.quotas import Quotas
from domain.lut.keys import CompiledLut, compile_lut, content_positions, first_person, keyed_layer, prompt_words
from domain.lut.learn import baseline_job, learn_job
from domain.lut.updates import superseded_by
from models.manager import ModelManager, ModelRuntime
from models.sampling_policy import SamplingParams


@dataclass(frozen=True)
class Trained:
    """Result of one TrainLut."""

    lut_name: str
    model: str
    entry_id: int
    version: int
    entry_count: int
    superseded: tuple[int, ...] = ()
    """Entries this fact superseded (see domain.lut.updates)."""


@dataclass(frozen=True)
class LutGeneration:
    """A prepared generation and the LUT hook on it (None: plain base model)."""

    prepared: PreparedRequest
    hook: LutHook | None


def check_lut_name(lut_name: str, config: LutConfig, field: str = "lut_name") -> str:
    if not lut_name:
        raise InvalidArgument(field, "must not be empty")
    if len(lut_name) > config.max_lut_name_length:
        raise InvalidArgument(field, f"must be at most {config.max_lut_name_length} characters")
    if "/" in lut_name or any(unicodedata.category(c) in ("Cc", "Cf") for c in lut_name):
        raise InvalidArgument(field, "must not contain '/' or control characters")
    return lut_name


def check_threshold(threshold: float | None, config: LutConfig) -> float:
    if threshold is None:
        return config.default_threshold
    if math.isnan(threshold) or not 0.0 <= threshold <= 1.0:
        raise InvalidArgument("threshold", "must be in [0, 1]")
    return float(threshold)


class LutService:
    """Teaches facts to LUTs and applies them to generations."""

    def __init__(self, manager: ModelManager, generator: TextGenerator, store: LutStore, config: LutConfig,
                 quotas: Quotas | None = None) -> None:
        self._manager = manager
        self._generator = generator
        self._store = store
        self.config = config
        self._quotas = quotas
        self._means: dict[str, torch.Tensor] = {}
        self._cache: dict[tuple[str, str, str], tuple[Any, CompiledLut | None]] = {}

    def resolve_model(self, model: str) -> str:
        """Registry name of `model` (default when empty); unknown -> InvalidArgument("model")."""
        try:
            return self._manager.registry.resolve(model).name
        except ModelNotFound as exc:
            raise InvalidArgument("model", exc.message) from None

    def configured_models(self) -> list[str]:
        """Every model of the registry, loaded or not."""
        return self._manager.registry.names()

    async def check_entry_quota(self, tenant: str, adding: int, replacing: tuple[str, str] | None = None) -> None:
        """Refuse `adding` entries that would take the tenant over its lut_entries quota
        (`replacing`: a LUT whose entries the new ones replace)."""
        if self._quotas is None:
            return
        held = await asyncio.to_thread(self._store.count_entries, tenant)
        if replacing is not None:
            version = await asyncio.to_thread(self._store.get_version, tenant, *replacing)
            if version is not None:
                held -= (await asyncio.to_thread(self._store.get_lut, tenant, *replacing)).entry_count
        await self._quotas.check_stored(tenant, "lut_entries", held, adding)

    async def _runtime(self, model: str) -> ModelRuntime:
        return await self._manager.runtime(self.resolve_model(model))

    def _layer(self, runtime: ModelRuntime) -> int:
        return keyed_layer(runtime.engine.model.config.num_hidden_layers, self.config.layer_fraction)

    async def _mean(self, runtime: ModelRuntime) -> torch.Tensor:
        mean = self._means.get(runtime.name)
        if mean is None:
            job = baseline_job(runtime.engine, runtime.loaded.tokenizer, self._layer(runtime))
            mean = self._means[runtime.name] = await runtime.engine.run_background(job)
        return mean

    # ---- learning ---------------------------------------------------------------
    async def train(self, tenant: str, label: str, label_context: str, lut_name: str, model: str) -> Trained:
        if not label or not label.strip():
            raise InvalidArgument("label", "must not be empty")
        if len(label) + len(label_context) > self.config.max_label_chars:
            raise InvalidArgument("label", f"label and label_context must total at most {self.config.max_label_chars} characters")
        check_lut_name(lut_name, self.config)
        runtime = await self._runtime(model)
        await self.check_entry_quota(tenant, 1)
        job = learn_job(runtime.engine, runtime.loaded.tokenizer, self._layer(runtime), label, label_context,
                        self.config.max_keys_per_entry, self.config.novelty_share)
        payload = codec.encode_entry(await runtime.engine.run_background(job))
        added = await asyncio.to_thread(self._store.add_entry, tenant, lut_name, runtime.name, label, payload,
                                        payload_format=codec.PAYLOAD_FORMAT, label_context=label_context or None)
        record = await asyncio.to_thread(self._store.get_lut, tenant, lut_name, runtime.name)
        labels = await asyncio.to_thread(self._store.entry_labels, tenant, lut_name, runtime.name)
        newer = superseded_by(labels)
        superseded = tuple(old for old, new in newer.items() if new == added.entry.id)
        return Trained(lut_name, runtime.name, added.entry.id, added.version.version, record.entry_count, superseded)

    # ---- generation -------------------------------------------------------------
    async def compiled(self, tenant: str, lut_name: str, runtime: ModelRuntime) -> CompiledLut | None:
        """The LUT's compiled form, reloaded only when its stored version moved."""
        key = (tenant, lut_name, runtime.name)
        version = await asyncio.to_thread(self._store.get_version, tenant, lut_name, runtime.name)
        if version is None:
            self._cache.pop(key, None)
            return None
        cached = self._cache.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        snapshot = await asyncio.to_thread(self._store.load_entries, tenant, lut_name, runtime.name)
        if snapshot is None:
            self._cache.pop(key, None)
            return None
        mean = await self._mean(runtime)
        # Superseded entries stay stored (and listed) but are left out of matching.
        newer = superseded_by((e.id, e.label) for e in snapshot.entries)
        kept = [e for e in snapshot.entries if e.payload_format == codec.PAYLOAD_FORMAT and e.id not in newer]
        lut = compile_lut([codec.decode_entry(e.payload) for e in kept], mean, self._layer(runtime),
                          self.config.min_keys,
                          [self.config.person_scope and first_person(e.label) for e in kept])
        self._cache[key] = (snapshot.version, lut)
        return lut

    def forget(self, tenant: str, lut_name: str, model: str | None = None) -> None:
        """Drop cached LUTs of this name (all models when None) after a local change."""
        for key in [k for k in self._cache if k[:2] == (tenant, lut_name) and (model is None or k[2] == model)]:
            self._cache.pop(key, None)

    async def prepare(self, tenant: str, prompt: str, lut_name: str, model: str, threshold: float | None,
                      overrides: Mapping[str, Any], defaults: SamplingParams | None = None) -> LutGeneration:
        """`defaults`: where the sampling controls start (the LUT defaults, greedy, when None;
        OpenAI's completions pass theirs)."""
        if lut_name:
            check_lut_name(lut_name, self.config)
        thr = check_threshold(threshold, self.config)
        prepared = await self._generator.prepare_completion(prompt, self.resolve_model(model), overrides,
                                                            defaults or self._generator.defaults.lut)
        lut = await self.compiled(tenant, lut_name, prepared.runtime) if lut_name else None
        if lut is None:
            return LutGeneration(prepared, None)  # cold start / empty LUT: no hook, base model exactly
        request = prepared.request
        tokenizer = prepared.runtime.loaded.tokenizer
        content = content_positions(tokenizer, request.prompt_ids)
        personal = first_person(prompt)
        words = prompt_words(tokenizer, request.prompt_ids, content) if self.config.adaptive_keys and personal else None
        hook = LutHook(lut, await self._mean(prepared.runtime), len(request.prompt_ids), content, thr,
                       min(self.config.interpolation, 1 - 1e-6), self.config.stop_after_label,
                       prompt[-1:].isspace(), words, personal)
        request = dataclasses.replace(request, hooks=(*request.hooks, hook))
        return LutGeneration(PreparedRequest(prepared.runtime, request), hook)
