"""oneDNN-packed weights for the linear layers of a model on the CPU.

torch's default CPU linear (MKL sgemm) re-packs the weight matrix on every call. With
the few rows of a decode step and weights that no longer sit in the CPU caches, that
packing is most of the cost: on a 2-core AMD EPYC, a 32x576 @ 576x1536 product with a
cold fp32 weight took 635 us through `F.linear` and 212 us through oneDNN with the
weight reordered once (94 vs 240 us for one row). oneDNN's packed product also gives a
row the same bits whatever other rows share the batch, which MKL does not guarantee.

`pack_linears` swaps each `nn.Linear` (and GPT-2's `Conv1D`) for a `PackedLinear` that
keeps the original parameters (state dicts, tied embeddings and autograd still see
them) and adds the packed copy (so the linear weights take twice their memory). Calls
that need gradients through the layer (specialist training backpropagates into adapters
across frozen base layers) take the plain path.
"""

from __future__ import annotations

import functools
import logging

import torch
from torch import nn
from torch.nn import functional as F

log = logging.getLogger(__name__)

_PACK_ROWS_HINT = 32
"""Batch rows oneDNN picks its packed layout for; any row count runs on it."""


def onednn_available() -> bool:
    return (torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


@functools.cache
def packing_supported(dtype: torch.dtype) -> bool:
    """Whether this CPU's oneDNN packs and multiplies weights of `dtype` (bfloat16 needs
    AVX-512 (BW/VL/DQ) or AVX-NE-CONVERT: an AVX2-only EPYC has neither)."""
    if not onednn_available():
        return False
    try:
        packed = torch.ops.mkldnn._reorder_linear_weight(torch.ones(8, 8, dtype=dtype), 1)
        torch.ops.mkldnn._linear_pointwise(torch.ones(1, 8, dtype=dtype), packed, None, "none", [], "")
    except RuntimeError:
        return False
    return True


class PackedLinear(nn.Linear):
    """`nn.Linear` whose inference forward runs on a oneDNN-reordered weight."""

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None, transposed: bool = False,
                 compute_dtype: torch.dtype | None = None) -> None:
        nn.Module.__init__(self)
        # The original parameters stay as they are (shape included), so state dicts,
        # tied embeddings and the autograd path see the same tensors as before.
        self.weight = weight
        self.bias = bias
        self.transposed = transposed
        self.out_features, self.in_features = weight.shape[::-1] if transposed else weight.shape
        self.compute_dtype = compute_dtype or weight.dtype
        with torch.no_grad():
            w = weight.detach().to(self.compute_dtype)
            w = w.t().contiguous() if transposed else w
            self._packed = torch.ops.mkldnn._reorder_linear_weight(w, _PACK_ROWS_HINT)
            self._bias = None if bias is None else bias.detach().to(self.compute_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
        if needs_grad or x.dtype != self.weight.dtype:
            weight = self.weight.t() if self.transposed else self.weight
            return F.linear(x, weight, self.bias)
        if self.compute_dtype == x.dtype:
            return torch.ops.mkldnn._linear_pointwise(x, self._packed, self._bias, "none", [], "")
        # Lower-precision products only: activations, norms, attention and the KV cache
        # around them keep the model's dtype.
        y = torch.ops.mkldnn._linear_pointwise(x.to(self.compute_dtype), self._packed, self._bias, "none", [], "")
        return y.to(x.dtype)


def _replacement(module: nn.Module, compute_dtype: torch.dtype | None) -> PackedLinear | None:
    if type(module) is nn.Linear:  # exact type: a PackedLinear is never packed again
        return PackedLinear(module.weight, module.bias, compute_dtype=compute_dtype)
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf"):
        # transformers' Conv1D keeps the weight as [in, out]: x @ W + b.
        return PackedLinear(module.weight, module.bias, transposed=True, compute_dtype=compute_dtype)
    return None


def pack_linears(model: nn.Module, compute_dtype: torch.dtype | None = None) -> int:
    """Replace the model's CPU float linears in place; returns how many were packed.
    `compute_dtype` (e.g. bfloat16) runs the products in that precision, on weights
    converted once; None keeps each weight's own dtype."""
    if not onednn_available():
        log.info("oneDNN packed linears unavailable in this torch build; using torch's default")
        return 0
    targets = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if (weight is not None and weight.device.type == "cpu"
                and weight.dtype in (torch.float32, torch.bfloat16)
                and packing_supported(compute_dtype or weight.dtype)):
            new = _replacement(module, compute_dtype)
            if new is not None:
                targets.append((name, new))
    for name, new in targets:
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)
    return len(targets)


def pack_bf16(model: nn.Module, device: torch.device) -> int:
    """weight_format "bf16": bfloat16 products on packed weights; CPU only."""
    if device.type != "cpu":
        raise ValueError("weight_format='bf16' is only supported on CPU (set the model's dtype instead)")
    if not packing_supported(torch.bfloat16):
        raise ValueError("weight_format='bf16' needs bfloat16 products in oneDNN, which this CPU lacks "
                         "(they need AVX-512 or AVX-NE-CONVERT); use weight_format='fp32'")
    return pack_linears(model, torch.bfloat16)
