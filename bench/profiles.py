"""Token counts and request counts of a run: the full profile (`make bench`,
sized to stay under ~15 minutes on a 2-core CPU) and the quick smoke profile."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Profile:
    """Everything that sizes a run; recorded verbatim in results.json."""

    name: str
    prompt_tokens: tuple[int, int]
    """Inclusive range of prompt lengths (tokens), drawn uniformly per request."""
    output_tokens: tuple[int, int]
    """Inclusive range of max_new_tokens, drawn uniformly per request."""
    stagger_ms: tuple[int, int]
    """Each client starts this long (uniform draw) after the previous one."""
    requests_per_client: dict[int, int] = field(default_factory=dict)
    """Concurrency level -> requests each client sends back to back."""
    serial_requests: int = 8
    """Baseline A: requests run one after another through HF generate."""
    static_new_tokens: int = 128
    """Baseline B: new tokens of every row of a static batch."""
    kv_new_tokens: int = 64
    """KV-cache comparison: new tokens per row of transformers' continuous batching
    vs the engine, same prompts, all at once."""
    llamacpp_requests: int = 4
    llamacpp_new_tokens: int = 128
    agreement_prompts: int = 8
    agreement_tokens: int = 32
    weight_levels: tuple[int, ...] = (1, 16)
    """Concurrency levels re-measured for each non-default weight format."""
    sampling: dict = field(default_factory=lambda: {
        "do_sample": True, "temperature": 0.8, "top_p": 0.95, "top_k": 50, "repetition_penalty": 1.0})
    """Sampling controls of every throughput request (server, HF and llama.cpp alike)."""


FULL = Profile(
    name="full",
    prompt_tokens=(16, 256),
    output_tokens=(32, 128),
    stagger_ms=(0, 200),
    requests_per_client={1: 8, 4: 2, 16: 3, 32: 2},
    serial_requests=10,
    static_new_tokens=128,
    llamacpp_requests=4,
    llamacpp_new_tokens=128,
    agreement_prompts=8,
    agreement_tokens=32,
)

QUICK = Profile(
    name="quick",
    prompt_tokens=(16, 128),
    output_tokens=(16, 48),
    stagger_ms=(0, 200),
    requests_per_client={1: 2, 4: 1, 16: 1, 32: 1},
    serial_requests=2,
    static_new_tokens=32,
    llamacpp_requests=2,
    llamacpp_new_tokens=48,
    agreement_prompts=4,
    agreement_tokens=16,
)
