"""The mixture of experts on one generalist: for every decoder layer, one low-rank
residual adapter per specialist and a gate over [base, *specialists].

At a layer's output h (per token t):
    n_t   = rms(h_t)                                  (scale-free view of the token)
    m_t   = mean(n_1..n_t)                            (causal prefix mean: the text so far)
    g_t   = softmax(W [n_t ; m_t] + b)                (weights over base + specialists)
    h'_t  = h_t + sum_i g_t[i] * up_i(down_i(n_t))    (base contributes nothing: it IS h)
The prefix mean lets a gate route on the passage, not on one token, and stays causal, so
decoding (one token at a time, carrying the running sum) equals a full forward pass.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

BASE = "base"
FORMAT = "llmserve-specialist-mixture/1"


class Routing(enum.Enum):
    SOFT = "soft"
    HARD = "hard"


@dataclass
class PrefixState:
    """Running sum and count of normalized hidden states per layer, for one batch of
    sequences fed chunk by chunk (prefill chunks, then one token per decode step)."""

    sums: dict[int, torch.Tensor] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)


def rms(h: torch.Tensor) -> torch.Tensor:
    return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)


class Mixture:
    """Adapters and gates of one trained (or training) mixture; immutable once serving."""

    def __init__(self, experts: tuple[str, ...], num_layers: int, hidden: int, rank: int,
                 tensors: dict[str, torch.Tensor] | None = None, seed: int = 0) -> None:
        if not experts:
            raise ValueError("a mixture needs at least one specialist")
        self.experts = tuple(experts)
        self.num_layers, self.hidden, self.rank = num_layers, hidden, rank
        n = len(experts)
        if tensors is None:
            g = torch.Generator().manual_seed(seed)
            tensors = {
                "down": torch.randn(num_layers, hidden, n * rank, generator=g) / hidden ** 0.5,
                # Zero up-projections: a fresh mixture is exactly the generalist.
                "up": torch.zeros(num_layers, n * rank, hidden),
                "gate_w": torch.randn(num_layers, 2 * hidden, n + 1, generator=g) * 0.01,
                "gate_b": torch.zeros(num_layers, n + 1),
            }
        self.tensors = {k: v.float().contiguous() for k, v in tensors.items()}
        self._check()

    def _check(self) -> None:
        L, H, R, n = self.num_layers, self.hidden, self.rank, len(self.experts)
        want = {"down": (L, H, n * R), "up": (L, n * R, H), "gate_w": (L, 2 * H, n + 1), "gate_b": (L, n + 1)}
        for key, shape in want.items():
            if tuple(self.tensors[key].shape) != shape:
                raise ValueError(f"mixture tensor {key} has shape {tuple(self.tensors[key].shape)}, expected {shape}")

    @property
    def names(self) -> tuple[str, ...]:
        """Gate order: the generalist first, then the specialists."""
        return (BASE, *self.experts)

    def to(self, device: torch.device | str) -> "Mixture":
        return Mixture(self.experts, self.num_layers, self.hidden, self.rank,
                       {k: v.to(device) for k, v in self.tensors.items()})

    def trainable(self) -> list[torch.Tensor]:
        for v in self.tensors.values():
            v.requires_grad_(True)
        return list(self.tensors.values())

    def frozen(self) -> "Mixture":
        """A detached copy for serving (training goes on mutating its own tensors)."""
        return Mixture(self.experts, self.num_layers, self.hidden, self.rank,
                       {k: v.detach().clone() for k, v in self.tensors.items()})

    # ---- the math ---------------------------------------------------------------
    def gate_logits(self, layer: int, h: torch.Tensor, state: PrefixState) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalized h, gate logits) for h [B, T, H]; advances `state` past these tokens."""
        n = rms(h.float())
        prev, seen = state.sums.get(layer), state.counts.get(layer, 0)
        csum = n.cumsum(dim=1) if prev is None else n.cumsum(dim=1) + prev[:, None, :]
        counts = torch.arange(seen + 1, seen + h.shape[1] + 1, device=h.device, dtype=n.dtype)
        m = csum / counts[None, :, None]
        state.sums[layer], state.counts[layer] = csum[:, -1].detach(), seen + h.shape[1]
        logits = torch.cat([n, m], dim=-1) @ self.tensors["gate_w"][layer] + self.tensors["gate_b"][layer]
        return n, logits

    def weights(self, logits: torch.Tensor, routing: Routing = Routing.SOFT, forced: int | None = None) -> torch.Tensor:
        if forced is not None:
            out = torch.zeros_like(logits)
            out[..., forced] = 1.0
            return out
        if routing is Routing.HARD:
            return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
        return torch.softmax(logits, dim=-1)

    def delta(self, layer: int, n: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """sum_i weights[..., 1+i] * up_i(down_i(n)) for n [B, T, H]."""
        B, T, _ = n.shape
        z = (n @ self.tensors["down"][layer]).view(B, T, len(self.experts), self.rank)
        z = (z * weights[..., 1:, None]).view(B, T, -1)
        return z @ self.tensors["up"][layer]

    def apply(self, layer: int, h: torch.Tensor, state: PrefixState, routing: Routing = Routing.SOFT,
              forced: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mixed hidden states, gate logits) of one layer's output h [B, T, H]."""
        n, logits = self.gate_logits(layer, h, state)
        w = self.weights(logits, routing, forced)
        if forced == 0:
            return h, logits  # the generalist alone: exactly the base model
        return (h.float() + self.delta(layer, n, w)).to(h.dtype), logits

    # ---- storage ----------------------------------------------------------------
    def save(self, path: Path) -> None:
        meta = {"format": FORMAT, "experts": json.dumps(list(self.experts)), "rank": str(self.rank),
                "num_layers": str(self.num_layers), "hidden": str(self.hidden)}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in self.tensors.items()}, str(tmp), metadata=meta)
        tmp.replace(path)  # readers never see a half-written file

    @classmethod
    def load(cls, path: Path) -> "Mixture":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a specialist mixture")
        return cls(tuple(json.loads(meta["experts"])), int(meta["num_layers"]), int(meta["hidden"]),
                   int(meta["rank"]), load_file(str(path)))
