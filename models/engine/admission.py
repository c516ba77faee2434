"""Admission checks of a GenerationRequest against one engine's limits (context
window, vocabulary, model layers; sampling controls by the one policy), the
context-window rule, and the engine's stats snapshot."""

from __future__ import annotations

from dataclasses import dataclass

from models import sampling_policy
from models.engine.config import EngineConfig
from models.errors import InvalidArgument
from models.types import GenerationRequest


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
    preemptions: int = 0
    """Decoding rows that gave their slot to a tenant below its fair share (recomputed later)."""
    live_rows: int = 0
    """Running rows not yet finished or cancelled (a finished row holds its slot until the next step)."""
    kv_slots_used: int = 0
    """Batch slots (KV rows) held by running rows."""
    kv_slots_total: int = 0
    kv_tokens_reserved: int = 0
    """KV columns the running rows reserve, against `kv_tokens_total` (the cache budget)."""
    kv_tokens_total: int = 0
    hook_rows: tuple[tuple[str, int], ...] = ()
    """(RowHook kind, rows in flight carrying one), e.g. grammar-constrained rows."""
    prefix_cache_tokens: int = 0
    """Tokens whose KV the prefix cache holds now (whole blocks)."""
    prefix_cache_tokens_total: int = 0
    """The prefix cache's capacity in tokens (0: the cache is off)."""
    prefix_cache_bytes: int = 0
    """Memory the prefix cache's blocks take now."""
    prefix_cache_evicted_tokens: int = 0
    """Tokens evicted (least recently used) to make room, since start."""


def context_window(model, config: EngineConfig) -> int:
    """Tokens a row may hold: the model's positions, capped by the config and the KV budget."""
    cfg = model.config
    ctx = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 2048
    if config.max_seq_len is not None:
        ctx = min(ctx, config.max_seq_len)
    return min(ctx, config.kv_cache_tokens)


def check_request(request: GenerationRequest, *, max_seq_len: int, vocab_size: int, num_layers: int) -> None:
    """Raise InvalidArgument for a request this engine cannot run."""
    n = len(request.prompt_ids)
    if n == 0:
        raise InvalidArgument("prompt_ids", "the prompt is empty")
    if n >= max_seq_len:
        raise InvalidArgument("prompt_ids", f"the prompt has {n} tokens; the context window is {max_seq_len}")
    if min(request.prompt_ids) < 0 or max(request.prompt_ids) >= vocab_size:
        raise InvalidArgument("prompt_ids", f"token ids must be in [0, {vocab_size})")
    sampling_policy.check(request.params)
    for hook in request.hooks:
        for layer in hook.layers:
            if not -num_layers <= layer < num_layers:
                raise InvalidArgument("hooks", f"layer {layer} does not exist (the model has {num_layers})")
