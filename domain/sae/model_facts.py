"""Which configured model an SAE request names (by registry name or Hugging Face id),
and what is known of its shape without loading it when possible."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from transformers import AutoConfig

from domain.sae import hardware
from models.errors import InvalidArgument, ModelNotFound
from models.loading import weights_unavailable
from models.manager import ModelManager
from models.registry import ModelRegistry, ModelSpec


@dataclass(frozen=True)
class ModelFacts:
    spec: ModelSpec
    shape: hardware.ModelShape | None
    """None when the config could not be read."""
    unavailable: str | None
    """Why the model cannot be used here; None when it can."""


MAX_MODEL_NAME = 256


def resolve_model(registry: ModelRegistry, model_name: str) -> ModelSpec:
    """A configured model by its name or by its Hugging Face id."""
    if len(model_name) > MAX_MODEL_NAME:
        raise InvalidArgument("model_name", f"must be at most {MAX_MODEL_NAME} characters")
    if model_name in registry.names():
        return registry.resolve(model_name)
    for name in registry.names():
        if registry.resolve(name).path == model_name:
            return registry.resolve(name)
    raise ModelNotFound(model_name, registry.names())


async def model_facts(manager: ModelManager, model_name: str) -> ModelFacts:
    spec = resolve_model(manager.registry, model_name)
    runtime = manager.loaded(spec.name)
    if runtime is not None:
        model = runtime.loaded.model
        return ModelFacts(spec, hardware.shape_of(model.config, sum(p.numel() for p in model.parameters())), None)
    reason = weights_unavailable(spec)
    if reason:
        return ModelFacts(spec, None, reason)
    if spec.source != "huggingface":  # no config without loading (embedded GGUF)
        await manager.runtime(spec.name)
        return await model_facts(manager, spec.name)
    config = await asyncio.to_thread(AutoConfig.from_pretrained, spec.path)
    return ModelFacts(spec, hardware.shape_of(config), None)
