"""Training and evaluating a mixture on the engine thread, as small background units
(one micro-batch each) so decoding goes on between them. Base weights stay frozen:
only the mixture's adapters and gates get gradients."""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn.functional as F

from domain.specialist.config import SpecialistConfig
from domain.specialist.hook import attached, reset
from domain.specialist.mixture import Mixture, Routing


@dataclass
class Domain:
    """Token sequences of one corpus ([n, seq_len] int64), split for training and held-out use."""

    name: str
    train: torch.Tensor
    heldout: torch.Tensor


@dataclass
class Progress:
    """Written by the engine thread, read by the job runner (plain attribute writes)."""

    step: int = 0
    total: int = 0
    loss: float | None = None
    phase: str = "queued"
    train_seconds: float = 0.0


@dataclass(frozen=True)
class DomainEval:
    """Held-out figures of one corpus under one model variant."""

    loss: float
    tokens: int
    gate_means: list[list[float]] = field(default_factory=list)
    """Per held-out sequence: gate weights over the experts averaged over layers and tokens."""

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)


def sequences(ids: list[int], seq_len: int) -> torch.Tensor:
    """Consecutive non-overlapping windows of `seq_len` tokens (a short tail is dropped);
    a corpus shorter than one window is repeated to fill it, so batches stay rectangular."""
    if not ids:
        return torch.empty(0, seq_len, dtype=torch.long)
    if len(ids) < seq_len:
        ids = (ids * (seq_len // len(ids) + 1))[:seq_len]
    n = len(ids) // seq_len
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)


def split(name: str, seqs: torch.Tensor, heldout_fraction: float) -> Domain:
    """Every k-th sequence is held out (k = 1/fraction), spread over the whole corpus;
    a corpus of one sequence trains on it and holds nothing out."""
    if len(seqs) < 2 or heldout_fraction <= 0:
        return Domain(name, seqs, seqs[:0])
    every = max(2, round(1 / heldout_fraction))
    mask = torch.zeros(len(seqs), dtype=torch.bool)
    mask[every - 1::every] = True
    if not mask.any():
        mask[-1] = True
    return Domain(name, seqs[~mask], seqs[mask])


@contextlib.contextmanager
def frozen_base(model):
    """No parameter of the base model gets a gradient (saves the weight-gradient half of
    the backward pass); restored afterwards."""
    params = list(model.parameters())
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, before):
            p.requires_grad_(flag)


def _batch_plan(sources: list[Domain], steps: int, batch: int, rng: random.Random) -> list[list[tuple[int, int]]]:
    """Per step, `batch` (source index, sequence index) pairs taking sources in turn."""
    plan, turn = [], 0
    for _ in range(steps):
        rows = []
        for _ in range(batch):
            src = turn % len(sources)
            turn += 1
            rows.append((src, rng.randrange(len(sources[src].train))))
        plan.append(rows)
    return plan


def train_units(model, mixture: Mixture, general: Domain | None, specialists: list[Domain], steps: int,
                config: SpecialistConfig, progress: Progress) -> Iterator[None]:
    """Engine job: trains `mixture` in place; one unit per micro-batch. Targets of the
    routing loss: 0 (base) for general text, 1 + i for specialist i."""
    device = next(model.parameters()).device
    sources = ([general] if general is not None and len(general.train) else []) + specialists
    targets = ([0] if sources and sources[0] is general else []) + [1 + i for i in range(len(specialists))]
    if any(len(s.train) == 0 for s in sources):
        raise ValueError("every corpus needs at least one training sequence")
    plan = _batch_plan(sources, steps, config.batch_size, random.Random(config.seed))
    optimizer = torch.optim.AdamW(mixture.trainable(), lr=config.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, steps // 10)) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    progress.total, progress.phase = steps, "training specialists"
    for step, rows in enumerate(plan):
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for start in range(0, len(rows), config.micro_batch):
            part = rows[start:start + config.micro_batch]
            ids = torch.stack([sources[s].train[i] for s, i in part]).to(device)
            target = torch.tensor([targets[s] for s, _ in part], device=device)
            t0 = time.perf_counter()
            with frozen_base(model):
                loss = _loss(model, mixture, ids, target, config.route_weight) * (len(part) / len(rows))
                loss.backward()
            total += float(loss.detach())
            progress.train_seconds += time.perf_counter() - t0
            yield
        optimizer.step()
        schedule.step()
        progress.step, progress.loss = step + 1, total
    for t in mixture.tensors.values():
        t.requires_grad_(False)
    progress.phase = "evaluating"


def _loss(model, mixture: Mixture, ids: torch.Tensor, target: torch.Tensor, route_weight: float) -> torch.Tensor:
    gate_logits: list[torch.Tensor] = []
    with attached(model, mixture, logits_out=gate_logits):
        logits = model(input_ids=ids, use_cache=False).logits
    lm = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    stacked = torch.stack(gate_logits)  # [layers, B, T, experts]
    want = target[None, :, None].expand(stacked.shape[:3])
    route = F.cross_entropy(stacked.reshape(-1, stacked.shape[-1]), want.reshape(-1))
    return lm + route_weight * route


@torch.no_grad()
def eval_units(model, mixture: Mixture | None, domains: list[Domain], max_sequences: int, *,
               routing: Routing = Routing.SOFT, forced: int | None = None,
               out: dict[str, DomainEval] | None = None) -> Iterator[None]:
    """Engine job: held-out cross-entropy per domain (nats/token) under the mixture
    (None: the base model), one unit per sequence; fills and returns `out`."""
    out = {} if out is None else out
    device = next(model.parameters()).device
    for domain in domains:
        nll, count, gates = 0.0, 0, []
        for seq in domain.heldout[:max_sequences]:
            ids = seq[None].to(device)
            gate_logits: list[torch.Tensor] = []
            if mixture is None:
                logits = model(input_ids=ids, use_cache=False).logits
            else:
                with attached(model, mixture, routing=routing, forced=forced, logits_out=gate_logits) as state:
                    reset(state)
                    logits = model(input_ids=ids, use_cache=False).logits
            nll += float(F.cross_entropy(logits[0, :-1].float(), ids[0, 1:], reduction="sum"))
            count += ids.shape[1] - 1
            if gate_logits:
                weights = torch.softmax(torch.stack(gate_logits).float(), dim=-1)  # [L, 1, T, E]
                gates.append(weights.mean(dim=(0, 1, 2)).tolist())
            yield
        if count:
            out[domain.name] = DomainEval(nll / count, count, gates)
    return out


@torch.no_grad()
def gate_trace(model, mixture: Mixture, ids: list[int]) -> torch.Tensor:
    """Soft gate weights [layers, tokens, experts] of one prompt (one forward pass)."""
    device = next(model.parameters()).device
    gate_logits: list[torch.Tensor] = []
    with attached(model, mixture, logits_out=gate_logits):
        model(input_ids=torch.tensor([ids], device=device), use_cache=False)
    return torch.softmax(torch.stack(gate_logits)[:, 0].float(), dim=-1).cpu()
