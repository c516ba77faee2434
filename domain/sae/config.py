"""SAE training configuration: server-wide settings (`settings.sae`) and the
per-job parameters of seed 002's TrainingRequest, with their defaults and ranges."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, fields
from typing import Any

from models.errors import InvalidArgument


@dataclass(frozen=True)
class SaeConfig:
    """Server-wide knobs of SAE training (embedded in Settings as `settings.sae`)."""

    train_batch_tokens: int = 1024
    """Activations per optimizer step. The seed's batch_size counts sequences and sets
    the extraction batch; the SAE itself trains on token batches of this size."""
    extract_batch_tokens: int = 4096
    """Most tokens per extraction forward (fewer sequences than the job's batch_size when
    they are long), so one background unit holds the device briefly."""
    max_tokens: int = 2_000_000
    """Cap on activations cached per job (tokens of the corpus beyond it are unused);
    bounds disk (hidden_size * 4 bytes per token) and extraction time."""
    eval_fraction: float = 0.05
    """Share of the corpus's sequences held out for the metrics, never trained on."""
    ce_eval_sequences: int = 16
    """Held-out sequences on which the CE-loss score runs the whole model three times."""
    dead_window_tokens: int = 10_000_000
    """A latent is dead when it fired on none of the last this-many training tokens
    (or of all training tokens when fewer were seen)."""
    dense_threshold: float = 0.1
    """A latent is dense when it fires on more than this share of evaluation tokens."""
    lr_decay_share: float = 0.2
    """Final share of a job's planned steps (max_epochs x steps per epoch) over which the
    learning rate falls linearly to 0, as SAELens and sparsify schedule it; 0 keeps it
    constant. A job that stops early at min_loss may never reach the decay."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this norm, measured on the reconstruction error summed over
    the input dimensions (SAELens's loss scale and bound). At equal tokens it removed most of
    our FVU gap to SAELens (bench/sae_eval.md), plausibly because Adam's second moments
    otherwise remember the large gradients of the first steps; 0 disables clipping."""
    aux_k_coeff: float = 1 / 32
    """Weight of the TopK auxiliary loss that revives dead latents (Gao et al. 2024)."""
    dead_steps_for_aux: int = 200
    """Steps without firing after which the auxiliary loss treats a latent as dead."""
    checkpoint_interval_s: float = 30.0
    """A checkpoint is written at the end of an epoch when this long passed since the last."""
    progress_interval_s: float = 1.0
    """How often a running job's progress is written to the database (and cancel checked)."""
    unit_budget_s: float = 0.05
    """Longest a background unit (training steps or one extraction batch) should hold the
    device before generation gets its turn."""
    max_upload_bytes: int = 256 * 1024 * 1024
    """Largest accepted corpus upload."""
    seed: int = 0
    """Seed of SAE initialisation and shuffling (jobs are reproducible)."""


class Architecture(enum.StrEnum):
    TOPK = "topk"
    L1 = "l1"


@dataclass(frozen=True)
class TrainParams:
    """One job's parameters (seed 002 TrainingRequest plus architecture and k)."""

    model_name: str
    corpus_file: str
    layer_number: int = 12
    hidden_dim: int | None = None
    expansion_factor: int | None = None
    sparsity_coeff: float = 0.001
    learning_rate: float = 0.0001
    batch_size: int = 16
    max_epochs: int = 50
    min_loss: float = 0.01
    gpu_id: int | None = None
    max_sequence_length: int = 512
    architecture: Architecture = Architecture.TOPK
    k: int = 32

    def width(self, hidden_size: int) -> int:
        if self.expansion_factor is not None:
            return self.expansion_factor * hidden_size
        return self.hidden_dim if self.hidden_dim is not None else 1024

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "architecture": self.architecture.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainParams:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["architecture"] = Architecture(values.get("architecture", Architecture.TOPK))
        return cls(**values)

    def validate(self) -> None:
        """Range checks that need no model; the layer and width are checked against the model."""
        _require(bool(self.model_name), "model_name", "is required, e.g. \"smollm2\"")
        _require(bool(self.corpus_file), "corpus_file", "is required: upload a corpus, then name it here")
        if self.hidden_dim is not None and self.expansion_factor is not None:
            raise InvalidArgument("hidden_dim", "set hidden_dim or expansion_factor, not both")
        _in_range("hidden_dim", self.hidden_dim, 1, 1 << 20)
        _in_range("expansion_factor", self.expansion_factor, 1, 256)
        _require(self.sparsity_coeff > 0, "sparsity_coeff", "must be > 0 (typically 1e-4 to 1e-1)")
        _require(0 < self.learning_rate <= 1, "learning_rate", "must be > 0 and <= 1")
        _in_range("batch_size", self.batch_size, 1, 128)
        _in_range("max_epochs", self.max_epochs, 1, 10_000)
        _require(self.min_loss >= 0, "min_loss", "must be >= 0 (0 disables early stopping)")
        _in_range("max_sequence_length", self.max_sequence_length, 16, 32_768)
        _require(self.k >= 1, "k", "must be >= 1")
        _in_range("layer_number", self.layer_number, 0, 10_000)

    def validate_for_model(self, total_layers: int, hidden_size: int) -> None:
        if self.layer_number >= total_layers:
            raise InvalidArgument("layer_number", f"must be between 0 and {total_layers - 1} for this model "
                                                  f"({total_layers} layers)")
        width = self.width(hidden_size)
        if self.architecture is Architecture.TOPK and self.k > width:
            raise InvalidArgument("k", f"must be at most the SAE width ({width})")


def _require(ok: bool, field: str, description: str) -> None:
    if not ok:
        raise InvalidArgument(field, description)


def _in_range(field: str, value: int | None, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise InvalidArgument(field, f"must be between {low} and {high} (got {value})")
