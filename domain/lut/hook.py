"""`LutHook`: the per-row engine hook that matches a prompt against a LUT and, when a
fact fires, steers decoding along the fact's label (kNN-LM style interpolation).

It changes nothing unless a fact fired: `on_hidden` only reads, and `on_logits`
returns the logits untouched, so a non-firing row decodes exactly like the base model.
For the same reason its row shares the base model's prefix-cache KV, up to its first
content token (the ones it must see).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from models.types import RowHook
from domain.lut.keys import CompiledLut, center


class LutHook(RowHook):
    """One row's LUT matcher and label follower. Engine-thread only."""

    kind = "lut"

    def fired(self) -> bool:
        return self.fired_fact is not None

    def __init__(self, lut: CompiledLut, mean: torch.Tensor, prompt_len: int, content: list[int],
                 threshold: float, interpolation: float, stop_after_label: bool, prompt_ends_space: bool,
                 prompt_words: int | None = None, first_person_prompt: bool = True) -> None:
        self.layers = (lut.layer,)
        self._lut = lut
        self._mean = mean
        self._prompt_len = prompt_len
        self._content = set(content)
        self._threshold = threshold
        self._weight = interpolation
        self._stop = stop_after_label
        self._bare = prompt_ends_space
        self._words = prompt_words
        self._first_person = first_person_prompt
        self._seen = 0  # prompt tokens whose hidden states were matched
        self._best = torch.full((lut.keys.shape[0],), -1.0)
        self._decided = False
        self._label: tuple[int, ...] = ()
        self._pos = 0  # next label token to emit
        self.fired_fact: int | None = None
        self.score: float | None = None

    def prefix_reuse(self) -> tuple[None, int]:
        # on_hidden only reads, so the row's KV is the base model's; prompt tokens before
        # the first content position are never matched and may come from the prefix cache.
        return None, min(self._content, default=self._prompt_len)

    def on_prefix_cached(self, tokens: int) -> None:
        self._seen = tokens

    def on_hidden(self, layer: int, hidden: torch.Tensor) -> None:
        if self._seen >= self._prompt_len:
            return None  # decode steps: matching is over, stay cheap
        q = hidden.shape[1]
        rows = [i - self._seen for i in range(self._seen, self._seen + q) if i in self._content]
        self._seen += q
        if rows:
            h = center(hidden[0, rows].detach().to("cpu"), self._mean)
            sims = self._lut.keys @ h.T  # [keys, rows]
            self._best = torch.maximum(self._best, sims.max(dim=1).values)
        return None

    def _decide(self) -> None:
        self._decided = True
        scores = self._lut.fact_scores(self._best, self._words, self._first_person)
        best = int(scores.argmax())
        # Clamped to [0, 1] so threshold 0 always fires and 1 only on identical keys.
        self.score = max(0.0, float(scores[best]))
        if self.score >= self._threshold:
            self.fired_fact = best
            with_space, bare = self._lut.values[best]
            self._label = bare if self._bare else with_space

    def on_logits(self, logits: torch.Tensor, generated_ids: Sequence[int]) -> torch.Tensor:
        if not self._decided:
            self._decide()
        if self._pos >= len(self._label):
            return logits
        target = self._label[self._pos]
        # log((1 - w) * softmax(logits) + w * onehot(target)), computed stably.
        logp = torch.log_softmax(logits.float(), dim=-1) + math.log1p(-self._weight)
        mixed = logp.clone()
        mixed[target] = torch.logaddexp(logp[target], torch.tensor(math.log(self._weight), device=logp.device))
        return mixed.to(logits.dtype)

    def on_token(self, token_id: int) -> bool:
        if self._pos >= len(self._label):
            return False
        if token_id != self._label[self._pos]:
            self._label = ()  # sampling left the label: let the model continue on its own
            return False
        self._pos += 1
        return self._stop and self._pos == len(self._label)
