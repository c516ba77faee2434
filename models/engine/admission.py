"""Admission checks of a GenerationRequest against one engine's limits (context
window, vocabulary, model layers, sampler preconditions), the context-window rule,
and the engine's stats snapshot. Range policy for client input lives in
`models.validation`; here only what would otherwise break the engine is refused."""

from __future__ import annotations

import math
from dataclasses import dataclass

from models.engine.config import EngineConfig
from models.errors import InvalidArgument
from models.types import GenerationRequest, SamplingParams


@dataclass(frozen=True)
class EngineStats:
    """A snapshot of the engine's load and counters."""

    running_rows: int
    """Rows holding a KV slot (prefilling or decoding)."""
    queued_requests: int
    queued_tokens: int
    """Prompt tokens of the queued requests."""
    steps: int
    """Engine steps that ran the model."""
    tokens_generated: int
    background_jobs: int
    kv_cache_bytes: int


def context_window(model, config: EngineConfig) -> int:
    """Tokens a row may hold: the model's positions, capped by the config and the KV budget."""
    cfg = model.config
    ctx = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 2048
    if config.max_seq_len is not None:
        ctx = min(ctx, config.max_seq_len)
    return min(ctx, config.kv_cache_tokens)


def check_params(p: SamplingParams) -> None:
    """Only what would break the sampler; range policy is `models.validation`'s job."""
    if p.max_new_tokens < 1:
        raise InvalidArgument("max_new_tokens", "must be at least 1")
    if not p.greedy and not (math.isfinite(p.temperature) and p.temperature > 0):
        raise InvalidArgument("temperature", "must be a finite number >= 0")
    if not 0.0 < p.top_p <= 1.0:
        raise InvalidArgument("top_p", "must be in (0, 1]")
    if p.top_k < 0:
        raise InvalidArgument("top_k", "must be >= 0")
    if not (math.isfinite(p.repetition_penalty) and p.repetition_penalty > 0):
        raise InvalidArgument("repetition_penalty", "must be > 0")


def check_request(request: GenerationRequest, *, max_seq_len: int, vocab_size: int, num_layers: int) -> None:
    """Raise InvalidArgument for a request this engine cannot run."""
    n = len(request.prompt_ids)
    if n == 0:
        raise InvalidArgument("prompt_ids", "the prompt is empty")
    if n >= max_seq_len:
        raise InvalidArgument("prompt_ids", f"the prompt has {n} tokens; the context window is {max_seq_len}")
    if min(request.prompt_ids) < 0 or max(request.prompt_ids) >= vocab_size:
        raise InvalidArgument("prompt_ids", f"token ids must be in [0, {vocab_size})")
    check_params(request.params)
    for hook in request.hooks:
        for layer in hook.layers:
            if not -num_layers <= layer < num_layers:
                raise InvalidArgument("hooks", f"layer {layer} does not exist (the model has {num_layers})")
