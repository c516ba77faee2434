"""Device and memory facts for SAE training: per-GPU status (host memory comes from
models.devices), model shapes read from configs, and memory estimates."""

from __future__ import annotations

from dataclasses import dataclass

import torch

GIB = float(1 << 30)


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    total: int
    allocated: int
    free: int
    utilization: float


def gpus() -> list[GpuInfo]:
    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        try:
            util = torch.cuda.utilization(i) / 100.0
        except Exception:  # needs pynvml; utilisation is then unknown
            util = 0.0
        out.append(GpuInfo(i, torch.cuda.get_device_name(i), total, torch.cuda.memory_allocated(i), free, util))
    return out


@dataclass(frozen=True)
class ModelShape:
    architecture: str
    total_layers: int
    hidden_size: int
    vocab_size: int
    parameters: int


def shape_of(config, parameters: int | None = None) -> ModelShape:
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", 0)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", 0)
    vocab = getattr(config, "vocab_size", 0)
    if parameters is None:  # decoder blocks (~12 h^2 each) plus embeddings
        parameters = 12 * layers * hidden * hidden + vocab * hidden
    return ModelShape(getattr(config, "model_type", "unknown"), layers, hidden, vocab, parameters)


@dataclass(frozen=True)
class MemoryEstimate:
    required_gb: float
    minimum_gb: float
    recommended_gb: float
    is_large: bool
    batch_size: int
    max_sequence_length: int


def estimate(shape: ModelShape, dtype_bytes: int = 4, expansion: int = 16) -> MemoryEstimate:
    """Weights at their dtype, activations of a 16 x 512 extraction batch, and an SAE
    of `expansion` x hidden latents with Adam state (4 copies, fp32)."""
    weights = shape.parameters * dtype_bytes
    activations = 16 * 512 * shape.hidden_size * 4 * 8
    sae = 4 * 2 * expansion * shape.hidden_size * shape.hidden_size * 4
    required = (weights + activations + sae) * 1.2 / GIB
    large = shape.parameters >= 6e9
    return MemoryEstimate(round(required, 2), round(required, 2), round(required * 1.5, 2), large,
                          4 if large else 16, 512)
