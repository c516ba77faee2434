"""The sparse autoencoder: TopK (default) or ReLU + L1, trained on normalised
activations x' = (x - mean) * scale (mean-centred, mean norm sqrt(d_in)).

TopK training never builds the dense decoder product or its gradient: the k
chosen latents are recomputed through autograd from gathered encoder rows and
decoded with `embedding_bag`, so a step costs one dense no-grad encoder matmul
plus O(batch * k * d_in). The dense matmul only *selects* latents, so it may run
in bfloat16 where the CPU has fast bf16 units; the kept values are exact fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from domain.sae.config import Architecture


@dataclass
class Forward:
    recon: torch.Tensor
    """Reconstruction of the (normalised) input, [batch, d_in]."""
    idx: torch.Tensor
    """TopK: chosen latents [batch, k]. L1: active latents as a [batch, d_sae] mask."""
    vals: torch.Tensor
    """TopK: their activations [batch, k]. L1: all activations [batch, d_sae]."""
    pre: torch.Tensor | None
    """Dense pre-activations without grad, in the selection dtype (TopK only; the
    auxiliary loss reuses them to choose dead latents)."""


class SparseAutoencoder(nn.Module):
    """W_enc_t [d_sae, d_in] (the encoder, stored row-per-latent for cheap gathers),
    b_enc [d_sae], W_dec [d_sae, d_in] with unit-norm rows, b_dec [d_in]."""

    def __init__(self, d_in: int, d_sae: int, architecture: Architecture, k: int, seed: int = 0,
                 select_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        w_dec = torch.randn(d_sae, d_in, generator=gen)
        w_dec /= w_dec.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)
        self.W_enc_t = nn.Parameter(w_dec.clone())  # tied initialisation
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.architecture = architecture
        self.k = k
        self.select_dtype = select_dtype

    @property
    def d_in(self) -> int:
        return self.W_dec.shape[1]

    @property
    def d_sae(self) -> int:
        return self.W_dec.shape[0]

    def forward(self, x: torch.Tensor) -> Forward:
        xc = x - self.b_dec
        if self.architecture is Architecture.L1:
            acts = F.relu(xc @ self.W_enc_t.t() + self.b_enc)
            return Forward(acts @ self.W_dec + self.b_dec, acts > 0, acts, None)
        with torch.no_grad():
            w = self.W_enc_t.detach()
            dt = self.select_dtype
            pre = torch.addmm(self.b_enc.detach().to(dt), xc.detach().to(dt), w.to(dt).t())
            idx = pre.topk(self.k, dim=-1, sorted=False).indices
        vals = self.sparse_pre(xc, idx).relu()
        recon = F.embedding_bag(idx, self.W_dec, per_sample_weights=vals, mode="sum") + self.b_dec
        return Forward(recon, idx, vals, pre)

    def sparse_pre(self, xc: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Pre-activations of the latents `idx` [batch, n], with grad (see `_SparseEncode`)."""
        return _SparseEncode.apply(xc, self.W_enc_t, self.b_enc, idx)

    @torch.no_grad()
    def encode_dense(self, x: torch.Tensor) -> torch.Tensor:
        """Latent activations [batch, d_sae] (evaluation; zeros where inactive)."""
        out = self(x)
        if self.architecture is Architecture.L1:
            return out.vals
        dense = torch.zeros(x.shape[0], self.d_sae, dtype=out.vals.dtype)
        return dense.scatter_(1, out.idx, out.vals)

    @torch.no_grad()
    def decode_dense(self, acts: torch.Tensor) -> torch.Tensor:
        return acts @ self.W_dec + self.b_dec

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Drop the gradient component along each decoder row: with rows renormalised after
        every step, that component only changes the norm and would be thrown away."""
        grad = self.W_dec.grad
        if grad is not None:
            grad -= (grad * self.W_dec).sum(-1, keepdim=True) * self.W_dec


class _SparseEncode(torch.autograd.Function):
    """pre[b, j] = W_enc_t[idx[b, j]] . xc[b] + b_enc[idx[b, j]], with a backward that
    touches only the chosen rows: grad_xc as one fused embedding_bag, grad_W as a sparse
    (latent x batch) product, instead of autograd's dense gather/bmm backward."""

    @staticmethod
    def forward(ctx, xc, w_enc_t, b_enc, idx):
        ctx.save_for_backward(xc, w_enc_t, idx)
        ctx.d_sae = w_enc_t.shape[0]
        rows = F.embedding(idx, w_enc_t)  # [batch, n, d_in]
        return torch.bmm(rows, xc.unsqueeze(-1)).squeeze(-1) + b_enc[idx]

    @staticmethod
    def backward(ctx, grad):
        xc, w_enc_t, idx = ctx.saved_tensors
        grad = grad.contiguous()
        grad_xc = F.embedding_bag(idx, w_enc_t, per_sample_weights=grad, mode="sum")
        batch, n = idx.shape
        cols = torch.arange(batch, device=idx.device).repeat_interleave(n)
        sparse = torch.sparse_coo_tensor(torch.stack([idx.flatten(), cols]), grad.flatten(), (ctx.d_sae, batch),
                                         check_invariants=False)
        grad_w = torch.sparse.mm(sparse, xc)
        grad_b = torch.zeros(ctx.d_sae, dtype=grad.dtype, device=grad.device).index_add_(0, idx.flatten(),
                                                                                           grad.flatten())
        return grad_xc, grad_w, grad_b, None


def aux_loss(sae: SparseAutoencoder, x: torch.Tensor, out: Forward, dead: torch.Tensor, k_aux: int,
             max_latents: int, gen: torch.Generator) -> torch.Tensor | None:
    """TopK auxiliary loss (Gao et al. 2024): the top `k_aux` dead latents reconstruct the
    residual error, which gives dead latents a gradient again. None when none is dead."""
    dead_idx = dead.nonzero().squeeze(-1)
    if dead_idx.numel() == 0 or out.pre is None:
        return None
    if dead_idx.numel() > max_latents:  # bounds the cost while many latents are dead
        dead_idx = dead_idx[torch.randperm(dead_idx.numel(), generator=gen)[:max_latents]]
    k = min(k_aux, dead_idx.numel())
    with torch.no_grad():
        chosen = dead_idx[out.pre[:, dead_idx].topk(k, dim=-1, sorted=False).indices]
    xc = x - sae.b_dec.detach()
    vals = sae.sparse_pre(xc, chosen).relu()
    err = (x - out.recon).detach()
    err_hat = F.embedding_bag(chosen, sae.W_dec, per_sample_weights=vals, mode="sum")
    scale = (err - err.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-8)
    return (err_hat - err).pow(2).sum(-1).mean() / scale


def fast_select_dtype() -> torch.dtype:
    """bfloat16 for latent selection where the CPU has native bf16 matmul (AMX/AVX512-BF16);
    fp32 elsewhere, where bf16 is emulated and slower."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return torch.float32
    return torch.bfloat16 if ("amx_bf16" in flags or "avx512_bf16" in flags) else torch.float32
