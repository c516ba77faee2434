"""Typed configuration of the specialist mixture (embedded in Settings as `settings.specialist`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SpecialistConfig:
    """Where corpora and weights live, the experts' shape, and how a mixture is trained.
    Training defaults fit SmolLM2-135M on 2 CPU cores (see bench/specialist_eval.md)."""

    model: str = ""
    """Registry name of the generalist the experts sit on; empty means the server's default model."""
    corpus_dir: Path | None = None
    """Folder holding one sub-folder of .txt files per specialist (seed layout `data/<name>/*.txt`)
    and the general corpus in `general/`; None means the server's data_dir."""
    weights_dir: Path | None = None
    """Where trained mixtures are written (safetensors); None means <data_dir>/specialists."""
    reserved_names: tuple[str, ...] = ("general", "base", "trainingJobs", "models", "specialists", "sae", "samples",
                                     "bench")
    """Names a specialist may not take: the general corpus, the generalist expert, the REST
    jobs segment, and the server's own folders under data_dir."""
    rank: int = 16
    """Rank of each specialist's adapter in every layer."""
    steps: int = 150
    """Optimizer steps of a training job when the request sets none."""
    batch_size: int = 4
    """Sequences per optimizer step, drawn in turn from the general corpus and each specialist."""
    micro_batch: int = 2
    """Sequences per engine work unit: a unit blocks decoding while it runs, so it stays small
    (about a second on SmolLM2 / 2 CPU cores); gradients accumulate over a step's units."""
    seq_len: int = 128
    """Tokens per training sequence."""
    learning_rate: float = 3e-3
    """AdamW learning rate of adapters and gates."""
    route_weight: float = 0.5
    """Weight of the routing loss: cross-entropy of every gate against the corpus a training
    sequence came from (base for general text). It teaches the gates to route, so general
    text keeps the generalist and domains get their own expert."""
    heldout_fraction: float = 0.1
    """Share of each corpus's sequences held out for the specialist's reported perplexity."""
    max_corpus_tokens: int = 200_000
    """Tokens read from one corpus at most (training time and memory stay bounded)."""
    eval_sequences: int = 16
    """Held-out sequences per specialist evaluated after training."""
    general_samples: int = 16
    """When no general corpus exists, sequences sampled from the generalist itself serve as
    general text, so the gates learn what the base model already does well."""
    max_corpus_bytes: int = 8 * 1024 * 1024
    """Largest corpus file accepted by an upload, in bytes."""
    poll_interval_s: float = 0.25
    """How often a running job's progress is written and cancel requests are checked; also
    how often the job queue is checked for jobs queued by another server process."""
    seed: int = 0
    """Seed of parameter initialisation and batch sampling (reproducible jobs)."""
