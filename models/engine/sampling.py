"""Vectorised per-row sampling: each row of a batch keeps its own SamplingParams and
its own seeded torch.Generator, and one call turns a [rows, vocab] logits tensor into
one token per row without Python loops over the vocabulary.

Order of processing per row: repetition penalty, then presence and frequency penalties
(greedy rows too), then for sampled rows temperature, top-k, top-p. Greedy rows (temperature 0 or do_sample=False) take the
argmax.

Reproducibility: a sampled row draws exactly one uniform number from its own generator
per generated token and picks the token by inverse-CDF (over its top-k candidates when
top_k > 0, else over the vocabulary in natural order). So the same seed and prompt give
the same tokens whether the row runs alone or in any batch (other rows never touch its
generator, and its method depends only on its own params), up to float rounding of
the logits themselves.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from models.sampling_policy import SamplingParams

_sys_random = random.SystemRandom()


class RowSampling:
    """Sampling state of one row: its params, its generator, the token ids it has seen
    (for the repetition penalty) and how often it generated each (for the presence and
    frequency penalties)."""

    __slots__ = ("params", "generator", "seen_ids", "output_counts")

    def __init__(self, params: SamplingParams, prompt_ids: list[int]) -> None:
        self.params = params
        self.generator: torch.Generator | None = None
        if not params.greedy:
            self.generator = torch.Generator()  # CPU: one scalar draw per token is cheap there
            seed = params.seed if params.seed is not None else _sys_random.getrandbits(63)
            self.generator.manual_seed(seed)
        # Kept only when a penalty applies; a set is enough to rebuild the batch mask.
        self.seen_ids: set[int] | None = set(prompt_ids) if params.repetition_penalty != 1.0 else None
        additive = params.presence_penalty != 0.0 or params.frequency_penalty != 0.0
        self.output_counts: dict[int, int] | None = {} if additive else None

    def observe(self, token_id: int) -> None:
        if self.seen_ids is not None:
            self.seen_ids.add(token_id)
        if self.output_counts is not None:
            self.output_counts[token_id] = self.output_counts.get(token_id, 0) + 1


@dataclass
class _Group:
    """Sampled (non-greedy) rows that share one sampling method."""

    rows: torch.Tensor  # indices into the batch
    generators: list[torch.Generator]
    inv_temperature: torch.Tensor  # [n, 1]
    top_p: torch.Tensor | None  # [n, 1], None when every row has top_p == 1
    top_k: torch.Tensor | None = None  # [n] (top-k group only)
    kmax: int = 0

    @classmethod
    def of(cls, indices: list[int], rows: list[RowSampling], device: torch.device, top_k: bool) -> "_Group | None":
        if not indices:
            return None
        params = [rows[i].params for i in indices]
        top_p = None
        if any(p.top_p < 1.0 for p in params):
            top_p = torch.tensor([[p.top_p] for p in params], device=device)
        group = cls(torch.tensor(indices, device=device), [rows[i].generator for i in indices],
                    torch.tensor([[1.0 / p.temperature] for p in params], device=device), top_p)
        if top_k:
            group.top_k = torch.tensor([p.top_k for p in params], device=device)
            group.kmax = max(p.top_k for p in params)
        return group

    def uniforms(self, device: torch.device) -> torch.Tensor:
        # One draw per row per token from the row's own generator: batch-independent.
        return torch.cat([torch.rand(1, generator=g) for g in self.generators]).to(device).unsqueeze(1)


@dataclass
class SamplingBatch:
    """Per-row parameters stacked as tensors for a fixed list of rows.

    Built when the set of rows changes (not every step); `observe` keeps the
    repetition-penalty mask current as tokens are generated. Sampled rows are split by
    method, and a row's method depends only on its own params (never on its batch):
    rows with top_k > 0 sample among their top-k candidates (sorted; top-p applied
    inside them, so no full-vocabulary sort), others over the whole vocabulary.
    """

    rows: list[RowSampling]
    all_greedy: bool
    penalty: torch.Tensor | None  # [B, 1]
    seen: torch.Tensor | None  # [B, V] bool
    presence: torch.Tensor | None  # [B, 1]
    frequency: torch.Tensor | None  # [B, 1]
    counts: torch.Tensor | None  # [B, V] float: times each token was generated
    topk_group: _Group | None
    full_group: _Group | None

    @classmethod
    def build(cls, rows: list[RowSampling], vocab_size: int, device: torch.device) -> "SamplingBatch":
        params = [r.params for r in rows]
        penalty = seen = None
        if any(p.repetition_penalty != 1.0 for p in params):
            penalty = torch.tensor([[p.repetition_penalty] for p in params], device=device)
            seen = torch.zeros((len(rows), vocab_size), dtype=torch.bool, device=device)
            for i, r in enumerate(rows):
                ids = [t for t in (r.seen_ids or ()) if 0 <= t < vocab_size]
                if ids:
                    seen[i, torch.tensor(ids, device=device)] = True
        presence = frequency = counts = None
        if any(p.presence_penalty != 0.0 or p.frequency_penalty != 0.0 for p in params):
            presence = torch.tensor([[p.presence_penalty] for p in params], device=device)
            frequency = torch.tensor([[p.frequency_penalty] for p in params], device=device)
            counts = torch.zeros((len(rows), vocab_size), dtype=torch.float32, device=device)
            for i, r in enumerate(rows):
                for token, n in (r.output_counts or {}).items():
                    if 0 <= token < vocab_size:
                        counts[i, token] = float(n)
        sampled = [i for i, p in enumerate(params) if not p.greedy]
        topk_rows = [i for i in sampled if 0 < params[i].top_k < vocab_size]
        full_rows = [i for i in sampled if not 0 < params[i].top_k < vocab_size]
        return cls(rows, not sampled, penalty, seen, presence, frequency, counts,
                   _Group.of(topk_rows, rows, device, top_k=True),
                   _Group.of(full_rows, rows, device, top_k=False))

    def observe(self, tokens: torch.Tensor) -> None:
        """Record this step's tokens ([B] long, on device) in the penalty mask."""
        if self.seen is not None:
            self.seen[torch.arange(len(self.rows), device=tokens.device), tokens] = True
        if self.counts is not None:
            self.counts[torch.arange(len(self.rows), device=tokens.device), tokens] += 1.0

    def sample(self, logits: torch.Tensor) -> torch.Tensor:
        """logits: [B, V] float. Returns [B] long token ids."""
        if self.penalty is not None:
            # CTRL penalty: divide positive logits, multiply negative ones, on seen tokens only.
            penalised = torch.where(logits > 0, logits / self.penalty, logits * self.penalty)
            logits = torch.where(self.seen, penalised, logits)
        if self.counts is not None:
            # OpenAI's definition: logit - frequency * count - presence * (count > 0).
            logits = logits - self.frequency * self.counts - self.presence * (self.counts > 0).to(self.counts.dtype)
        tokens = logits.argmax(dim=-1)
        if self.all_greedy:
            return tokens
        for group, fn in ((self.topk_group, _sample_top_k), (self.full_group, _sample_full)):
            if group is not None:
                sub = logits.index_select(0, group.rows).float() * group.inv_temperature
                tokens[group.rows] = fn(sub, group)
        return tokens


def _nucleus_mask(sorted_logits: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """True where a token (in descending order) falls outside the top-p nucleus."""
    probs = torch.softmax(sorted_logits, dim=-1)
    # Drop a token when the mass strictly before it already reaches top_p (keeps >= 1 token).
    return (probs.cumsum(dim=-1) - probs) >= top_p


def _draw(logits: torch.Tensor, group: _Group) -> torch.Tensor:
    """Inverse-CDF draw of one index per row, using one uniform from each row's generator."""
    cdf = torch.softmax(logits, dim=-1).cumsum(dim=-1)
    target = group.uniforms(cdf.device).to(cdf.dtype) * cdf[:, -1:]
    # right=True: the first token whose cumulative mass exceeds the draw, so
    # zero-probability tokens are never chosen.
    return torch.searchsorted(cdf, target, right=True).squeeze(1).clamp_(max=cdf.shape[-1] - 1)


def _sample_top_k(scaled: torch.Tensor, group: _Group) -> torch.Tensor:
    vals, idx = torch.topk(scaled, group.kmax, dim=-1)  # sorted, descending
    beyond_k = torch.arange(group.kmax, device=scaled.device)[None, :] >= group.top_k[:, None]
    vals = vals.masked_fill(beyond_k, float("-inf"))
    if group.top_p is not None:
        vals = vals.masked_fill(_nucleus_mask(vals, group.top_p), float("-inf"))
    choice = _draw(vals, group)
    return idx.gather(1, choice.unsqueeze(1)).squeeze(1)


def _sample_full(scaled: torch.Tensor, group: _Group) -> torch.Tensor:
    if group.top_p is not None:
        sorted_vals, sorted_idx = torch.sort(scaled, dim=-1, descending=True)
        drop = torch.zeros_like(scaled, dtype=torch.bool).scatter_(1, sorted_idx, _nucleus_mask(sorted_vals, group.top_p))
        scaled = scaled.masked_fill(drop, float("-inf"))
    return _draw(scaled, group)
