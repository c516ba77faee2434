"""Seeded workloads: prompts of chosen token lengths cut from the corpus, output
lengths, per-request sampling seeds and staggered client start times."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from bench.corpus import TEXT
from bench.profiles import Profile


@dataclass(frozen=True)
class RequestSpec:
    """One generation request of a benchmark run."""

    prompt: str
    prompt_tokens: int
    """Length the prompt was cut to (the server may count +-1 after re-tokenizing)."""
    max_new_tokens: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class PromptCutter:
    """Cuts windows of exact token lengths out of the corpus (wrapping around)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer
        ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
        self._ids = ids + ids  # windows may wrap past the end
        # Start windows at word starts so the decoded text re-tokenizes to the same length.
        self._starts = [i for i in range(len(ids)) if tokenizer.decode(ids[i:i + 1]).startswith(" ")]

    def cut(self, n_tokens: int, rng: random.Random) -> str:
        start = rng.choice(self._starts)
        return self._tok.decode(self._ids[start:start + n_tokens]).lstrip()


def make_requests(cutter: PromptCutter, profile: Profile, n: int, rng: random.Random) -> list[RequestSpec]:
    out = []
    for _ in range(n):
        p = rng.randint(*profile.prompt_tokens)
        out.append(RequestSpec(prompt=cutter.cut(p, rng), prompt_tokens=p,
                               max_new_tokens=rng.randint(*profile.output_tokens), seed=rng.randrange(2**31)))
    return out


@dataclass(frozen=True)
class ClientPlan:
    """What one simulated client does: start at `start_s`, then send `requests` back to back."""

    start_s: float
    requests: list[RequestSpec]


def make_clients(cutter: PromptCutter, profile: Profile, concurrency: int, seed: int) -> list[ClientPlan]:
    """`concurrency` clients, each starting a seeded 0-200 ms (profile.stagger_ms) after the previous."""
    rng = random.Random(f"clients-{seed}-{concurrency}")
    per_client = profile.requests_per_client.get(concurrency, 1)
    plans, t = [], 0.0
    for i in range(concurrency):
        if i:
            t += rng.randint(*profile.stagger_ms) / 1000.0
        plans.append(ClientPlan(start_s=t, requests=make_requests(cutter, profile, per_client, rng)))
    return plans


def baseline_requests(cutter: PromptCutter, profile: Profile, n: int, seed: int) -> list[RequestSpec]:
    """The requests of the HF and llama.cpp baselines (same distribution as the server runs)."""
    return make_requests(cutter, profile, n, random.Random(f"baseline-{seed}"))
