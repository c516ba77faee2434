"""Activation extraction: a corpus becomes packed token sequences, the model runs on
them only up to the chosen layer (batched, as background units on the device's
engine), and the layer outputs are cached on disk for training and evaluation."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from models.forward import run_to_layer

CACHE_DTYPE = torch.float16  # halves RAM and disk; residual values of these models fit easily


@dataclass
class Sequences:
    train: list[list[int]]
    eval: list[list[int]]


def pack_corpus(tokenizer, lines: Iterator[str], seq_len: int, max_tokens: int, eval_fraction: float) -> Sequences:
    """Token sequences of exactly `seq_len` (the last may be shorter), packed from the
    corpus's non-empty lines joined by newlines, each starting with BOS when the tokenizer
    has one. Position 0 is never used as an activation (see `extract_job`). The last
    `eval_fraction` of the sequences (at least one) are held out for evaluation."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    body = seq_len - len(bos)
    budget = int(max_tokens / max(1e-6, 1 - eval_fraction)) + seq_len
    stream: list[int] = []
    sequences: list[list[int]] = []
    for line in lines:
        if not line.strip():
            continue
        stream += tokenizer(line.rstrip("\n") + "\n", add_special_tokens=False)["input_ids"]
        while len(stream) >= body:
            sequences.append(bos + stream[:body])
            stream = stream[body:]
        if len(sequences) * seq_len >= budget:
            break
    if len(stream) > 1:
        sequences.append(bos + stream)
    n_eval = max(1, round(len(sequences) * eval_fraction)) if len(sequences) > 1 else 0
    return Sequences(sequences[: len(sequences) - n_eval], sequences[len(sequences) - n_eval:])


def extract_job(engine, layer: int, sequences: list[list[int]], batch_size: int, out: list[torch.Tensor]):
    """Engine job (one batch per unit): layer-`layer` outputs of every sequence, position 0
    dropped (BOS / attention-sink outliers), appended to `out` as [tokens, hidden] tensors.
    Returns the number of tokens run through the model."""
    model = engine.model
    device = next(model.parameters()).device
    pad = 0
    ran = 0
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start:start + batch_size]
        width = max(len(s) for s in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, seq in enumerate(batch):
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
        hidden = run_to_layer(model, layer, ids.to(device), mask.to(device))
        keep = mask.bool().to(device)
        keep[:, 0] = False
        out.append(hidden[keep].to("cpu", CACHE_DTYPE))
        ran += int(mask.sum())
        yield
    return ran


@dataclass
class ActivationCache:
    """Cached activations of one job: train and eval splits plus what produced them."""

    train: torch.Tensor
    eval: torch.Tensor
    eval_sequences: list[list[int]]
    meta: dict

    def save(self, path: Path, meta_path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save({"train": self.train, "eval": self.eval, "eval_sequences": self.eval_sequences}, tmp)
        os.replace(tmp, path)  # a cache file is complete or absent, never half-written
        meta_path.write_text(json.dumps(self.meta, indent=2))

    @classmethod
    def load(cls, path: Path, meta_path: Path) -> ActivationCache | None:
        if not path.exists() or not meta_path.exists():
            return None
        data = torch.load(path, weights_only=True)
        return cls(data["train"], data["eval"], data["eval_sequences"], json.loads(meta_path.read_text()))


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start
