"""The SAE training loop as background units of the device engine: shuffled epochs
over cached activations, early stop at `min_loss`, checkpoints at epoch ends that a
restarted job resumes from, and the live progress the job runner publishes."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from domain.sae.config import Architecture, SaeConfig, TrainParams
from domain.sae.metrics import Normalizer
from domain.sae.results import LossPoint, Progress
from domain.sae.sae import SparseAutoencoder, aux_loss, fast_select_dtype

MAX_CURVE_POINTS = 1000
KEEP_CHECKPOINTS = 2  # each holds weights plus two Adam moments: the oldest ones are pruned


@dataclass
class TrainSummary:
    final_loss: float
    epochs: int
    convergence_epoch: int
    tokens: int
    seconds: float
    curve: list[LossPoint] = field(default_factory=list)


class Trainer:
    def __init__(self, params: TrainParams, config: SaeConfig, train: torch.Tensor, progress: Progress,
                 checkpoint_dir: Path, resume: Path | None = None, span: tuple[float, float] = (0.0, 1.0),
                 on_checkpoint: Callable[[Path], None] | None = None) -> None:
        self.params, self.config, self.train, self.progress = params, config, train, progress
        self.span = span
        """(offset, share) of the job's progress bar that training fills."""
        self.checkpoint_dir = checkpoint_dir
        self.on_checkpoint = on_checkpoint
        """Told of each checkpoint written (on the engine thread): the job copies it to the store."""
        d_in = train.shape[1]
        self.sae = SparseAutoencoder(d_in, params.width(d_in), params.architecture, params.k, seed=config.seed,
                                     select_dtype=fast_select_dtype())
        self.norm = Normalizer.fit(train[torch.randperm(len(train), generator=self._gen(0))[:65536]])
        self.opt = torch.optim.Adam(self.sae.parameters(), lr=params.learning_rate, fused=True)
        self.since_fired = torch.zeros(self.sae.d_sae, dtype=torch.long)
        self.epoch_losses: list[float] = []
        self.curve: list[LossPoint] = []
        self._last_vals = torch.zeros(0, 0)
        self.seconds = 0.0
        self.checkpoints: list[str] = []
        self.resumed_from_epoch = 0
        if resume is not None:
            self._load(resume)

    def _gen(self, salt: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.config.seed * 1_000_003 + salt)

    @property
    def batch(self) -> int:
        return self.config.train_batch_tokens

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train) / self.batch)

    def lr_at(self, step: int, total: int) -> float:
        """Learning rate of optimizer step `step` (0-based) of `total` planned steps."""
        decay = int(total * self.config.lr_decay_share)
        if decay <= 0 or step < total - decay:
            return self.params.learning_rate
        return self.params.learning_rate * (total - step) / (decay + 1)

    def job(self):
        """Engine job: one optimizer step per unit. Returns a TrainSummary."""
        p, prog = self.params, self.progress
        total = p.max_epochs * self.steps_per_epoch()
        stride = max(1, total // MAX_CURVE_POINTS)
        aux_gen = self._gen(-1)
        start, start_step = time.perf_counter(), prog.step
        self._run_start, base_seconds = start, self.seconds
        prog.phase = "training"
        for epoch in range(len(self.epoch_losses) + 1, p.max_epochs + 1):
            prog.epoch = epoch
            order = torch.randperm(len(self.train), generator=self._gen(epoch))
            loss_sum = 0.0
            for b in range(0, len(order), self.batch):
                for group in self.opt.param_groups:
                    group["lr"] = self.lr_at(prog.step, total)
                loss = self._step(self.train[order[b:b + self.batch]], aux_gen)
                loss_sum += loss
                prog.step += 1
                prog.loss = loss
                if prog.step % stride == 0:
                    self.curve.append(LossPoint(prog.step, epoch, prog.tokens, loss, self._batch_l0()))
                elapsed = time.perf_counter() - start
                prog.fraction = self.span[0] + self.span[1] * prog.step / total
                prog.eta_s = elapsed / max(1, prog.step - start_step) * (total - prog.step)
                yield
            self.epoch_losses.append(loss_sum / self.steps_per_epoch())
            done = epoch == p.max_epochs or (p.min_loss > 0 and self.epoch_losses[-1] < p.min_loss)
            if done or self._checkpoint_due():
                self._save(epoch)
            if done:
                break
        self.seconds = base_seconds + time.perf_counter() - start
        best = min(range(len(self.epoch_losses)), key=self.epoch_losses.__getitem__)
        return TrainSummary(self.epoch_losses[-1], len(self.epoch_losses), best + 1, prog.tokens, self.seconds,
                            self.curve)

    def _step(self, raw: torch.Tensor, aux_gen: torch.Generator) -> float:
        x = self.norm(raw)
        out = self.sae(x)
        d_in = self.sae.d_in
        mse = (out.recon - x).pow(2).sum(-1).mean() / d_in
        loss = mse
        if self.params.architecture is Architecture.L1:
            loss = loss + self.params.sparsity_coeff * out.vals.sum(-1).mean()
        else:
            dead = self.since_fired >= self.config.dead_steps_for_aux * self.batch
            aux = aux_loss(self.sae, x, out, dead, k_aux=d_in // 2, max_latents=2048, gen=aux_gen)
            if aux is not None:
                loss = loss + self.config.aux_k_coeff * aux
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.sae.project_decoder_grad()
        if self.config.max_grad_norm > 0:
            # the loss is per input dimension: d_in times smaller gradients than the summed error
            torch.nn.utils.clip_grad_norm_(self.sae.parameters(), self.config.max_grad_norm / d_in, foreach=True)
        self.opt.step()
        self.sae.normalize_decoder()
        with torch.no_grad():
            fired = torch.zeros(self.sae.d_sae, dtype=torch.bool)
            fired[out.idx.flatten() if out.idx.dtype == torch.long else out.idx.any(0).nonzero().flatten()] = True
            self.since_fired += len(x)
            self.since_fired[fired] = 0
        self.progress.tokens += len(x)
        self._last_vals = out.vals.detach()  # the curve's L0, counted only at its sampled steps
        return float(loss.detach())

    def _batch_l0(self) -> float:
        return float((self._last_vals > 0).sum(-1).float().mean())

    def dead_fraction(self) -> tuple[float, int]:
        """Share of latents that fired on none of the last `window` training tokens."""
        window = min(self.config.dead_window_tokens, max(1, self.progress.tokens))
        return float((self.since_fired >= window).float().mean()), window

    # -- checkpoints ------------------------------------------------------------------

    _last_save = 0.0
    _run_start = 0.0

    def _checkpoint_due(self) -> bool:
        return time.monotonic() - self._last_save >= self.config.checkpoint_interval_s

    def _save(self, epoch: int) -> None:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        path = self.checkpoint_dir / f"checkpoint_{epoch}.pt"
        state = {"sae": self.sae.state_dict(), "opt": self.opt.state_dict(), "since_fired": self.since_fired,
                 "epoch_losses": self.epoch_losses, "curve": [dataclasses.asdict(p) for p in self.curve], "step": self.progress.step,
                 "tokens": self.progress.tokens, "seconds": self.seconds + time.perf_counter() - self._run_start, "checkpoints": self.checkpoints,
                 "norm_mean": self.norm.mean, "norm_scale": self.norm.scale}
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)  # complete or absent: a crash mid-write never leaves a torn checkpoint
        self.checkpoints.append(str(path))
        for old in self.checkpoints[:-KEEP_CHECKPOINTS]:
            Path(old).unlink(missing_ok=True)
        self.checkpoints = self.checkpoints[-KEEP_CHECKPOINTS:]
        self._last_save = time.monotonic()
        if self.on_checkpoint is not None:
            self.on_checkpoint(path)

    def _load(self, path: Path) -> None:
        state = torch.load(path, weights_only=True)
        self.sae.load_state_dict(state["sae"])
        self.opt.load_state_dict(state["opt"])
        self.since_fired = state["since_fired"]
        self.epoch_losses = list(state["epoch_losses"])
        self.curve = [LossPoint(**p) for p in state["curve"]]
        self.seconds = float(state["seconds"])
        self.checkpoints = list(state["checkpoints"])
        self.norm = Normalizer(state["norm_mean"], float(state["norm_scale"]))
        self.progress.step, self.progress.tokens = int(state["step"]), int(state["tokens"])
        self.progress.epoch = self.resumed_from_epoch = len(self.epoch_losses)
