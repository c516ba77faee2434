"""What an SAE job reports: its live status and, once completed, its result. Both are
stored on the job row as JSON (`to_json` / `from_json`) and handed to callers as these
objects."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from domain.jobs import JobRecord, JobState


@dataclass(frozen=True)
class ModelInfo:
    """The model an SAE is trained on (seed 002's ModelInfo)."""

    model_name: str
    actual_model_loaded: str
    architecture: str
    total_layers: int
    selected_layer: int
    hidden_size: int
    vocab_size: int
    requires_token: bool = False


@dataclass(frozen=True)
class LossPoint:
    step: int
    epoch: int
    tokens_processed: int
    loss: float
    l0: float = 0.0
    """Mean latents firing per token in this step's batch (0 in curves saved before it was
    recorded)."""


@dataclass(frozen=True)
class FeatureStatistics:
    total_features: int
    active_features: int
    dead_features: int
    mean_activation: float
    sparsity_achieved: float


@dataclass(frozen=True)
class TrainingStats:
    final_loss: float
    total_epochs: int
    training_time_seconds: float
    convergence_epoch: int
    tokens_trained: int
    extraction_seconds: float
    tokens_per_second: float
    resumed_from_epoch: int
    feature_statistics: FeatureStatistics


@dataclass(frozen=True)
class SaeMetrics:
    fvu: float
    l0: float
    dead_fraction: float
    dead_window_tokens: int
    dense_fraction: float
    dense_threshold: float
    mean_activation: float
    ce_loss_score: float
    ce_loss_clean: float
    ce_loss_sae: float
    ce_loss_zero: float
    eval_tokens: int
    loss_curve: tuple[LossPoint, ...] = ()


@dataclass(frozen=True)
class Artifacts:
    weights_path: str
    config_path: str
    feature_stats_path: str


@dataclass(frozen=True)
class SaeResult:
    """A completed job's artifacts and measurements."""

    model_path: str
    activations_path: str
    metadata_path: str
    feature_count: int
    checkpoints: tuple[str, ...]
    artifacts: Artifacts
    model_info: ModelInfo
    training_stats: TrainingStats
    metrics: SaeMetrics

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SaeResult:
        stats = dict(data["training_stats"])
        stats["feature_statistics"] = FeatureStatistics(**stats["feature_statistics"])
        metrics = dict(data["metrics"])
        metrics["loss_curve"] = tuple(LossPoint(**p) for p in metrics["loss_curve"])
        return cls(model_path=data["model_path"], activations_path=data["activations_path"],
                   metadata_path=data["metadata_path"], feature_count=data["feature_count"],
                   checkpoints=tuple(data["checkpoints"]), artifacts=Artifacts(**data["artifacts"]),
                   model_info=ModelInfo(**data["model_info"]), training_stats=TrainingStats(**stats),
                   metrics=SaeMetrics(**metrics))


@dataclass(frozen=True)
class SaeJobStatus:
    """A job as clients see it while it runs (and after)."""

    record: JobRecord
    epoch: int = 0
    loss: float = 0.0
    tokens_processed: int = 0
    eta_s: float | None = None
    """Seconds left; None when unknown or the job has ended."""
    model_info: ModelInfo | None = None
    model_name: str = ""

    @property
    def state(self) -> JobState:
        return self.record.state

    @classmethod
    def of(cls, record: JobRecord) -> SaeJobStatus:
        d = record.details or {}
        info = d.get("model_info")
        eta = d.get("eta_s")
        return cls(record, epoch=int(d.get("epoch", 0)), loss=float(d.get("loss", 0.0)),
                   tokens_processed=int(d.get("tokens_processed", 0)),
                   eta_s=None if eta is None or record.state.terminal else float(eta),
                   model_info=ModelInfo(**info) if info else None,
                   model_name=str(record.params.get("model_name", "")))


@dataclass
class Progress:
    """Live progress of the running job: written by the engine thread, read by the job
    runner (plain attribute writes)."""

    phase: str = "queued"
    fraction: float = 0.0
    epoch: int = 0
    step: int = 0
    tokens: int = 0
    loss: float = 0.0
    eta_s: float | None = None
    checkpoint: str | None = None
    model_info: ModelInfo | None = None

    def details(self) -> dict[str, Any]:
        """The job row's `details` document (read back by `SaeJobStatus.of`)."""
        return {"phase": self.phase, "epoch": self.epoch, "step": self.step, "tokens_processed": self.tokens,
                "loss": self.loss, "eta_s": self.eta_s,
                "model_info": dataclasses.asdict(self.model_info) if self.model_info else None}
