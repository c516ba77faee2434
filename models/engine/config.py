"""Settings of one inference engine (one per device): batch size, queue bounds,
per-step budgets and KV-cache limits. Built once by the caller and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class EngineConfig:
    """Limits and knobs of the continuous-batching engine."""

    max_batch_rows: int = 32
    """Most rows (requests) decoding together in one step; also the KV cache's row capacity."""

    max_queued_requests: int = 256
    """Most requests waiting for admission; `submit` beyond this raises ResourceExhausted."""

    max_queued_tokens: int = 65536
    """Most prompt tokens summed over waiting requests; beyond this `submit` raises
    ResourceExhausted (a lone request larger than this is still accepted into an empty queue)."""

    prefill_token_budget: int = 512
    """Most prompt tokens prefilled per step, so a long prompt is split into chunks and
    cannot stall the decoding rows for more than one chunk's time."""

    background_slice_every: int = 4
    """While interactive rows are running, run at most one background unit every N steps."""

    retry_after_s: float = 1.0
    """Back-off suggested to callers refused with ResourceExhausted, in seconds (> 0)."""

    max_seq_len: int | None = None
    """Context window in tokens (prompt + generated); None uses the model config's
    `max_position_embeddings` / `n_positions`. A row reaching it finishes with LENGTH."""

    kv_cache_tokens: int = 65536
    """KV-cache budget in token slots (rows x columns). A request reserves prompt +
    max_new_tokens columns; a request is admitted only while running rows x longest
    reservation stays within this budget. About 46 KB per token for SmolLM2-135M fp32."""

    kv_initial_len: int = 256
    """Columns allocated per row at start; the cache doubles as longer rows arrive."""

    prefix_cache: bool = True
    """Keep the KV of prompts and replies after their rows leave, so a prompt that starts
    with a cached prefix (a chat's history, a shared system prompt) prefills only the rest
    (`models/engine/prefix_cache.py`). Rows whose hooks edit hidden states share only KV
    computed under the same hook state, or none. False: every prompt is prefilled whole."""

    prefix_cache_tokens: int = 8192
    """Most tokens the prefix cache holds (least recently used blocks are evicted beyond);
    allocated as used. About 46 KB per token for SmolLM2-135M fp32 (8192: ~380 MB)."""

    prefix_block_tokens: int = 16
    """Tokens per prefix-cache block: only whole blocks are cached and matched."""

    weight_format: Literal["fp32", "bf16", "int8"] = "fp32"
    """Precision of the linear layers' products (CPU only for the others; refused on CPUs
    whose oneDNN lacks bfloat16 products, i.e. without AVX-512 or AVX-NE-CONVERT).
    "bf16" runs them on bfloat16 copies of the weights through oneDNN. "int8" is
    weight-only: per-channel symmetric int8 weights, bfloat16 activations into the
    product, fp32 sums scaled per channel and rounded to bfloat16 (a quarter of the weight bytes per step; torch's
    `_weight_int8pack_mm` at the few rows of a decode step where it is faster).
    Activations, norms, attention and the KV cache stay fp32 in both. Quality by SmolLM2
    perplexity on held-out text is in `bench/perplexity.md`; a format more than 2% above
    fp32 is not offered as a default. (Torch's dynamic int8, which quantized the
    activations with one scale per tensor, raised that perplexity by 219% and is gone.)"""

    cpu_linear: Literal["auto", "onednn", "torch"] = "auto"
    """CPU kernels of the fp32/bf16 linear layers. "auto": per batch-row bucket, the faster
    of torch's default (MKL) and oneDNN on weights reordered once (`models/engine/packed.py`),
    measured at start-up and cached beside the model copy (`models/engine/kernels.py`);
    "onednn" or "torch" forces one for every batch size (oneDNN gives a row the same bits
    whatever shares its batch)."""

    kernel_cache_max_other_cpu: float = 0.25
    """Highest share of the CPU (0-1) that other processes may use while the kernel choice
    (`cpu_linear = "auto"`) is measured for it to be cached for later starts. Other work
    stalls OpenMP barriers and the measurement then favours single-threaded kernels, right
    for that moment only; such a choice is used but measured again at the next start."""

    fast_forward: bool = True
    """Run Llama-family models (Llama, Mistral, SmolLM2) through the engine's own forward
    (`models/engine/fast_forward.py`: the same weights and kernels, fewer operations per
    step); False, or any other architecture: transformers' forward."""

    num_threads: int | None = None
    """torch intra-op threads for the engine thread; None leaves torch's setting."""

    fair_share: bool = True
    """Share the batch between tenants by weight: admit from the tenant holding the fewest
    slots, and let a tenant below its share preempt (by recompute) a hook-less decoding
    row of the tenant furthest above its own. False: one FIFO per priority class."""

    tenant_weights: dict[str, float] = field(default_factory=dict)
    """Share weight per tenant id (> 0); tenants not listed weigh 1."""

    def __post_init__(self) -> None:
        for tenant, weight in self.tenant_weights.items():
            if not weight > 0:
                raise ValueError(f"engine.tenant_weights[{tenant!r}] must be > 0, got {weight}")
        for name in ("max_batch_rows", "max_queued_requests", "max_queued_tokens",
                     "prefill_token_budget", "background_slice_every", "kv_cache_tokens",
                     "kv_initial_len", "prefix_cache_tokens", "prefix_block_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"EngineConfig.{name} must be >= 1")
        if not self.kernel_cache_max_other_cpu >= 0:
            raise ValueError("EngineConfig.kernel_cache_max_other_cpu must be >= 0")
        if self.retry_after_s <= 0:
            raise ValueError("EngineConfig.retry_after_s must be > 0")
        if self.weight_format not in ("fp32", "bf16", "int8"):
            raise ValueError(f"engine.weight_format must be 'fp32', 'bf16' or 'int8', got {self.weight_format!r}")
        if self.cpu_linear not in ("auto", "onednn", "torch"):
            raise ValueError("EngineConfig.cpu_linear must be 'auto', 'onednn' or 'torch'")
