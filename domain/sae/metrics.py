"""SAE quality metrics, computed on held-out activations and sequences:
centred FVU, L0, dead / dense fractions, mean firing activation, per-latent
statistics, and the CE-loss score (LM loss with the layer replaced by the SAE's
reconstruction, relative to zero-ablating the layer)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.forward import layer_output_replaced
from domain.sae.sae import SparseAutoencoder


@dataclass
class Normalizer:
    """x' = (x - mean) * scale, with scale making the mean norm of x' sqrt(d_in)."""

    mean: torch.Tensor
    scale: float

    @classmethod
    def fit(cls, sample: torch.Tensor) -> Normalizer:
        sample = sample.float()
        mean = sample.mean(0)
        norm = (sample - mean).norm(dim=-1).mean().clamp_min(1e-8)
        return cls(mean, float(sample.shape[1] ** 0.5 / norm))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean.to(x.device)) * self.scale

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.scale + self.mean.to(x.device)


@dataclass
class ActivationMetrics:
    fvu: float
    l0: float
    dense_fraction: float
    mean_activation: float
    """Mean of non-zero activations."""
    mean_activation_all: float
    """Mean over all tokens and latents, zeros included (the seed's mean_activation)."""
    eval_tokens: int
    fire_frequency: torch.Tensor
    """Per latent: share of evaluation tokens on which it fired."""
    latent_mean: torch.Tensor
    """Per latent: mean activation when it fired (0 if never)."""


@torch.no_grad()
def activation_metrics(sae: SparseAutoencoder, norm: Normalizer, acts: torch.Tensor, dense_threshold: float,
                       batch: int = 4096) -> ActivationMetrics:
    """Metrics over `acts` (raw layer outputs) in batches."""
    d_sae = sae.d_sae
    err = total = l0 = act_sum = 0.0
    fires = torch.zeros(d_sae)
    sums = torch.zeros(d_sae)
    mean = norm(acts[: min(len(acts), 65536)]).mean(0)  # centring for FVU: the eval data's own mean
    for start in range(0, len(acts), batch):
        x = norm(acts[start:start + batch])
        latents = sae.encode_dense(x)
        recon = sae.decode_dense(latents)
        err += float((x - recon).pow(2).sum())
        total += float((x - mean).pow(2).sum())
        active = latents > 0
        l0 += float(active.sum())
        act_sum += float(latents.sum())
        fires += active.sum(0)
        sums += latents.sum(0)
    n = len(acts)
    fired = fires.sum()
    return ActivationMetrics(
        fvu=err / max(total, 1e-12), l0=l0 / n, dense_fraction=float((fires / n > dense_threshold).float().mean()),
        mean_activation=float(sums.sum() / fired) if fired > 0 else 0.0,
        mean_activation_all=act_sum / (n * d_sae), eval_tokens=n,
        fire_frequency=fires / n, latent_mean=torch.where(fires > 0, sums / fires.clamp_min(1), 0.0))


@dataclass
class CeLoss:
    clean: float
    sae: float
    zero: float

    @property
    def score(self) -> float:
        """(CE_zero - CE_sae) / (CE_zero - CE_clean): 1 perfect, 0 no better than zero ablation."""
        gap = self.zero - self.clean
        return (self.zero - self.sae) / gap if abs(gap) > 1e-9 else 0.0


def _lm_loss(model, ids: torch.Tensor) -> float:
    logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
    return float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)))


def ce_loss_job(engine, layer: int, sae: SparseAutoencoder, norm: Normalizer, sequences: list[list[int]]):
    """Engine job (one sequence per unit): mean LM loss over `sequences` clean, with layer
    `layer`'s output replaced by the SAE reconstruction, and with it zeroed. Position 0
    keeps its clean value in the patched runs, as it was never trained on."""
    model = engine.model
    device = next(model.parameters()).device
    totals = [0.0, 0.0, 0.0]

    def reconstruct(h: torch.Tensor) -> torch.Tensor:
        x = h[0, 1:].float().cpu()
        recon = norm.invert(sae.decode_dense(sae.encode_dense(norm(x))))
        out = h.clone()
        out[0, 1:] = recon.to(h.device, h.dtype)
        return out

    def zero(h: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(h)
        out[:, 0] = h[:, 0]
        return out

    for seq in sequences:
        ids = torch.tensor([seq], device=device)
        with torch.inference_mode():
            totals[0] += _lm_loss(model, ids)
            with layer_output_replaced(model, layer, reconstruct):
                totals[1] += _lm_loss(model, ids)
            with layer_output_replaced(model, layer, zero):
                totals[2] += _lm_loss(model, ids)
        yield
    n = max(1, len(sequences))
    return CeLoss(totals[0] / n, totals[1] / n, totals[2] / n)
