"""oneDNN-packed weights for the linear layers of a model on the CPU, beside torch's own
linear, with the path chosen per call by the number of rows.

torch's default CPU linear (MKL sgemm) re-packs the weight matrix on every call. With
the few rows of a decode step and weights that no longer sit in the CPU caches, that
packing can be most of the cost: on a 2-core AMD EPYC, a 32x576 @ 576x1536 product with a
cold fp32 weight took 635 us through `F.linear` and 212 us through oneDNN with the
weight reordered once (94 vs 240 us for one row). On a 2-core Xeon (AVX-512, AMX) MKL won
at one row and oneDNN at 16, so which path is faster depends on the machine and on the
row count: `models/engine/kernels.py` measures it at start-up and hands each layer a
`RowDispatch`. oneDNN's packed product gives a row the same bits whatever other rows
share the batch, which MKL does not guarantee.

`pack_linears` swaps each `nn.Linear` (and GPT-2's `Conv1D`) for a `PackedLinear` that
keeps the original parameters (state dicts, tied embeddings and autograd still see
them) and adds the packed copy (so the linear weights take twice their memory while
the packed path is in use). Calls that need gradients through the layer (specialist
training backpropagates into adapters across frozen base layers) take the plain path.

Weight format "int8" is weight-only: each output channel's weights are rounded to int8
with one bfloat16 scale, activations go into the product as bfloat16, the fp32 sums are
scaled per channel and rounded to bfloat16. Its two paths compute the same numbers up
to the order of the fp32 sums: torch's `_weight_int8pack_mm` (fast at a few rows on CPUs
with AVX512-BF16, and on AVX2 ones, 2.3-3.4x faster than fp32 at one row on a 2-core EPYC;
it rounds exactly so) and oneDNN's fp32 product on the integer weights
(bf16 times int8 is exact in fp32), scaled and rounded after (fast at many rows).
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


class RowDispatch:
    """Which path a forward of `rows` rows (tokens) takes: the packed oneDNN product or
    torch's own linear. One instance is shared by every layer of a model, so changing it
    switches them all."""

    __slots__ = ("_beyond", "_packed")

    def __init__(self, packed_upto: tuple[bool, ...] = (), beyond: bool = True) -> None:
        self._packed = packed_upto
        """Index r: whether r rows take the packed path."""
        self._beyond = beyond
        """Row counts past the table."""

    def packed(self, rows: int) -> bool:
        return self._packed[rows] if rows < len(self._packed) else self._beyond

    @classmethod
    def always(cls, packed: bool) -> RowDispatch:
        return cls((), packed)

    def state(self) -> tuple[tuple[bool, ...], bool]:
        return self._packed, self._beyond

    def set(self, packed_upto: tuple[bool, ...], beyond: bool) -> None:
        self._packed, self._beyond = packed_upto, beyond

    def uses(self, packed: bool) -> bool:
        """Whether some row count takes that path (its weight copy is needed)."""
        return self._beyond == packed or packed in self._packed


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 weights [out, in] and one bfloat16 scale per output channel (the
    precision torch's int8 kernel takes them in)."""
    scales = (weight.abs().amax(dim=1).float().clamp_min(1e-12) / 127.0).to(torch.bfloat16)
    q = torch.round(weight.float() / scales.float()[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scales


class PackedLinear(nn.Linear):
    """`nn.Linear` whose inference forward runs on a oneDNN-reordered weight or on torch's
    linear, as its `RowDispatch` says for the call's row count."""

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None, transposed: bool = False,
                 compute_dtype: torch.dtype | None = None, dispatch: RowDispatch | None = None,
                 int8: bool = False) -> None:
        nn.Module.__init__(self)
        # The original parameters stay as they are (shape included), so state dicts,
        # tied embeddings and the autograd path see the same tensors as before.
        self.weight = weight
        self.bias = bias
        self.transposed = transposed
        self.out_features, self.in_features = weight.shape[::-1] if transposed else weight.shape
        self.int8 = int8
        self.compute_dtype = torch.bfloat16 if int8 else compute_dtype or weight.dtype
        self.dispatch = dispatch or RowDispatch.always(True)
        self._packed: torch.Tensor | None = None
        self._plain: torch.Tensor | None = None
        self._bias: torch.Tensor | None = None
        self._scales: torch.Tensor | None = None
        """int8 only: per-channel scales, in bf16 for torch's kernel; `_scales_fp32` for oneDNN's."""
        self._scales_fp32: torch.Tensor | None = None
        self.keep(packed=self.dispatch.uses(True), plain=self.dispatch.uses(False))

    def configure(self, dispatch: RowDispatch, compute_dtype: torch.dtype | None = None,
                  int8: bool = False) -> None:
        """Follow `dispatch` from now on (an engine built again on an already packed model
        brings its own choice), products in `compute_dtype` (None: the weight's dtype) or
        on int8 weights."""
        compute_dtype = torch.bfloat16 if int8 else compute_dtype or self.weight.dtype
        if compute_dtype != self.compute_dtype or int8 != self.int8:
            self.keep(packed=False, plain=False)
            self.compute_dtype, self.int8 = compute_dtype, int8
        self.dispatch = dispatch
        self.keep(packed=dispatch.uses(True), plain=dispatch.uses(False))

    def keep(self, *, packed: bool, plain: bool) -> None:
        """Build or drop the weight copies of each path (a path whose copy is dropped must
        not be dispatched to)."""
        with torch.no_grad():
            w = self.weight.detach()
            w = w.t() if self.transposed else w
            if self.int8:
                self._keep_int8(w, packed=packed, plain=plain)
                return
            self._scales = self._scales_fp32 = None
            if packed and self._packed is None:
                self._packed = torch.ops.mkldnn._reorder_linear_weight(
                    w.to(self.compute_dtype).contiguous(), _PACK_ROWS_HINT)
            elif not packed:
                self._packed = None
            if plain and self._plain is None:
                # Same dtype: a view of the parameter, no copy.
                self._plain = w if self.compute_dtype == w.dtype else w.to(self.compute_dtype).contiguous()
            elif not plain:
                self._plain = None
            self._bias = None if self.bias is None else self.bias.detach().to(self.compute_dtype)

    def _keep_int8(self, w: torch.Tensor, *, packed: bool, plain: bool) -> None:
        if not (packed or plain):
            self._packed = self._plain = self._scales = self._scales_fp32 = self._bias = None
            return
        if (packed and self._packed is None) or (plain and self._plain is None):
            q, self._scales = quantize_per_channel(w)  # deterministic: the scales stay the same
            self._scales_fp32 = self._scales.float()
            if packed and self._packed is None:
                self._packed = torch.ops.mkldnn._reorder_linear_weight(q.float().contiguous(), _PACK_ROWS_HINT)
            if plain and self._plain is None:
                self._plain = q.contiguous()
        if not packed:
            self._packed = None
        if not plain:
            self._plain = None
        self._bias = None if self.bias is None else self.bias.detach().float()

    def _forward_int8(self, x: torch.Tensor) -> torch.Tensor:
        xb = x.reshape(-1, self.in_features).to(torch.bfloat16)
        if self.dispatch.packed(xb.shape[0]):
            sums = torch.ops.mkldnn._linear_pointwise(xb.float(), self._packed, None, "none", [], "")
            y = (sums * self._scales_fp32).to(torch.bfloat16).float()
        else:
            y = torch.ops.aten._weight_int8pack_mm(xb, self._plain, self._scales).float()
        if self._bias is not None:
            y = y + self._bias
        return y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
        if needs_grad or x.dtype != self.weight.dtype:
            weight = self.weight.t() if self.transposed else self.weight
            return F.linear(x, weight, self.bias)
        if self.int8:
            return self._forward_int8(x)
        xc = x if self.compute_dtype == x.dtype else x.to(self.compute_dtype)
        if self.dispatch.packed(x.numel() // self.in_features):
            y = torch.ops.mkldnn._linear_pointwise(xc, self._packed, self._bias, "none", [], "")
        else:
            y = F.linear(xc, self._plain, self._bias)
        # Lower-precision products only: activations, norms, attention and the KV cache
        # around them keep the model's dtype.
        return y if y.dtype == x.dtype else y.to(x.dtype)


def _replacement(module: nn.Module, compute_dtype: torch.dtype | None,
                 dispatch: RowDispatch | None, int8: bool) -> PackedLinear | None:
    if type(module) is nn.Linear:  # exact type: a PackedLinear is never packed again
        return PackedLinear(module.weight, module.bias, compute_dtype=compute_dtype, dispatch=dispatch, int8=int8)
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf"):
        # transformers' Conv1D keeps the weight as [in, out]: x @ W + b.
        return PackedLinear(module.weight, module.bias, transposed=True, compute_dtype=compute_dtype,
                            dispatch=dispatch, int8=int8)
    return None


def pack_linears(model: nn.Module, compute_dtype: torch.dtype | None = None,
                 dispatch: RowDispatch | None = None, int8: bool = False) -> int:
    """Replace the model's CPU float linears in place; returns how many were packed.
    `compute_dtype` (e.g. bfloat16) runs the products in that precision, on weights
    converted once; None keeps each weight's own dtype; `int8` runs them on int8 weights
    (bf16 activations). `dispatch` (shared by every layer) picks the path per row count;
    None: always the packed one."""
    if not onednn_available():
        log.info("oneDNN packed linears unavailable in this torch build; using torch's default")
        return 0
    targets = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if (weight is not None and weight.device.type == "cpu"
                and weight.dtype in (torch.float32, torch.bfloat16)
                and packing_supported(torch.float32 if int8 else compute_dtype or weight.dtype)):
            new = _replacement(module, compute_dtype, dispatch, int8)
            if new is not None:
                targets.append((name, new))
    for name, new in targets:
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)
    return len(targets)


def packed_layers(model: nn.Module) -> list[PackedLinear]:
    return [m for m in model.modules() if isinstance(m, PackedLinear)]


@functools.cache
def int8_kernel_supported() -> bool:
    """Whether torch's weight-only int8 product runs here on bfloat16 activations (it does
    on AVX2 as well as AVX-512 CPUs; its many-row partner is oneDNN's fp32 product)."""
    try:
        torch.ops.aten._weight_int8pack_mm(torch.ones(1, 8, dtype=torch.bfloat16),
                                           torch.ones(8, 8, dtype=torch.int8), torch.ones(8, dtype=torch.bfloat16))
    except (RuntimeError, AttributeError):
        return False
    return packing_supported(torch.float32)


def format_supported(weight_format: str) -> bool:
    """Whether this CPU runs `weight_format`'s products: "bf16" needs oneDNN's bfloat16
    products, "int8" torch's int8 kernel and oneDNN's fp32 one."""
    if weight_format == "bf16":
        return packing_supported(torch.bfloat16)
    if weight_format == "int8":
        return int8_kernel_supported()
    return True


def check_weight_format(device: torch.device, weight_format: str) -> None:
    """Refuse a low-precision `weight_format` where it cannot run, with the reason: off the
    CPU (set the model's dtype instead) or on a CPU without its kernels."""
    if weight_format == "fp32":
        return
    if device.type != "cpu":
        raise ValueError(f"weight_format={weight_format!r} is only supported on CPU (set the model's dtype instead)")
    if weight_format == "bf16" and not format_supported("bf16"):
        raise ValueError("weight_format='bf16' needs bfloat16 products in oneDNN, which this CPU lacks "
                         "(they need AVX-512 or AVX-NE-CONVERT); use weight_format='fp32' or 'int8'")
    if not format_supported(weight_format):
        raise ValueError(f"weight_format={weight_format!r} needs torch's int8 weight kernel and oneDNN, "
                         "which this torch build lacks; use weight_format='fp32'")
