"""Optional int8 weights for CPU decode: dynamic int8 quantization of every nn.Linear
(weights int8 per tensor, activations quantized on the fly), via
torch.ao.quantization.quantize_dynamic. Embeddings, norms and GPT-2's Conv1D stay fp32.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


def quantize_int8(model: nn.Module, device: torch.device) -> nn.Module:
    """Quantize `model`'s Linear layers in place; CPU only (the kernels are fbgemm/onednn)."""
    if device.type != "cpu":
        raise ValueError("weight_format='int8' is only supported on CPU")
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch deprecates the quantized tensor types in favour of torchao; still works in 2.13.
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
