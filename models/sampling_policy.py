"""The one sampling policy: the decoding controls a row carries (`SamplingParams`), the
defaults each kind of request starts from (`SamplingDefaults`), and the checks every
request passes (`resolve`, `check`).

A new control is added here (a field of `SamplingParams` and its check), to the proto
request messages that carry it (the server copies fields by name), and to the sampler
(`models/engine/sampling.py`); nothing else changes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models.errors import InvalidArgument

MAX_STOP_SEQUENCES = 16
MAX_STOP_LENGTH = 256
MAX_NEW_TOKENS = 1 << 20
"""A sanity bound; the context window is the real one (`fit`)."""


@dataclass(frozen=True)
class SamplingParams:
    """Per-row decoding controls."""

    max_new_tokens: int = 256
    """Upper bound on generated tokens."""
    temperature: float = 0.7
    """Softmax temperature; 0 means greedy."""
    top_p: float = 1.0
    """Nucleus mass kept, in (0, 1]."""
    top_k: int = 0
    """Keep only the k most likely tokens; 0 disables."""
    repetition_penalty: float = 1.0
    """CTRL-style penalty on tokens already in prompt or output; 1 disables."""
    do_sample: bool = True
    """False forces greedy decoding whatever the temperature."""
    stop_sequences: tuple[str, ...] = ()
    """Strings that end generation; they are not part of the returned text."""
    seed: int | None = None
    """Seed of this row's own random generator, for reproducible sampling."""
    presence_penalty: float = 0.0
    """OpenAI's additive penalty, in [-2, 2], on every token already generated in this row
    (the prompt does not count, as in vLLM); 0 disables."""
    frequency_penalty: float = 0.0
    """OpenAI's additive penalty, in [-2, 2], times how often a token was already generated
    in this row; 0 disables."""

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0.0


CONTROLS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(SamplingParams))
"""Names of every control, as request messages spell them."""

ALIASES: Mapping[str, str] = {"length": "max_new_tokens"}
"""Other names clients use for a control (seed 000 calls the token budget `length`);
the control's own name wins when a request sets both."""


@dataclass(frozen=True)
class SamplingDefaults:
    """Where each kind of request starts before its own overrides (settings `[sampling.*]`)."""

    completion: SamplingParams = SamplingParams(max_new_tokens=512, temperature=0.7, top_p=0.9, top_k=50,
                                                repetition_penalty=1.1)
    """Completion and chat of GenerationService (seed 001's documented defaults)."""
    lut: SamplingParams = SamplingParams(max_new_tokens=512, temperature=0.0, top_p=0.9, top_k=50,
                                         repetition_penalty=1.1)
    """LUT generation: greedy, so a generation is reproducible and a LUT that does not
    fire gives exactly the base model's output."""
    specialist: SamplingParams = SamplingParams(max_new_tokens=80, temperature=0.7, top_p=1.0, top_k=0,
                                                repetition_penalty=1.0)
    """Generation with the specialist mixture (seed 003's example budget, full distribution)."""
    chat: SamplingParams = SamplingParams(max_new_tokens=512, temperature=0.7, top_p=1.0, top_k=0,
                                          repetition_penalty=1.1)
    """Free-text replies of chat sessions."""
    chat_structured: SamplingParams = SamplingParams(max_new_tokens=512, temperature=0.7, top_p=1.0, top_k=0,
                                                     repetition_penalty=1.0)
    """Schema-constrained chat replies. A penalty of 1.1 breaks greedy loops inside strings
    but makes SmolLM2 garble UUIDs it should copy from the message (measured on the eval
    tasks), so structured replies default to none."""
    openai_chat: SamplingParams = SamplingParams(max_new_tokens=4096, temperature=1.0, top_p=1.0, top_k=0,
                                                 repetition_penalty=1.0)
    """`POST /v1/chat/completions`: OpenAI's documented defaults (temperature 1, the full
    distribution, no penalty; the budget is whatever the context window leaves)."""
    openai_completion: SamplingParams = SamplingParams(max_new_tokens=16, temperature=1.0, top_p=1.0, top_k=0,
                                                       repetition_penalty=1.0)
    """`POST /v1/completions`: OpenAI's documented defaults (`max_tokens` 16)."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            check(getattr(self, field.name), where=f"sampling.{field.name}.")


def merge(defaults: SamplingParams, overrides: Mapping[str, Any]) -> SamplingParams:
    """`defaults` with the controls a client set; every value is range-checked."""
    values = {}
    for name, value in overrides.items():
        key = ALIASES.get(name, name)
        if key not in CONTROLS:
            raise KeyError(f"unknown sampling control {name!r}")
        if name in ALIASES and key in overrides:
            continue
        values[key] = tuple(value) if key == "stop_sequences" else value
    params = dataclasses.replace(defaults, **values)
    check(params)
    return params


def fit(params: SamplingParams, explicit_budget: bool, prompt_tokens: int, context_window: int) -> SamplingParams:
    """Fit the token budget to the context window: a default budget is lowered to the room
    left, a budget the client set must fit or the request is refused."""
    room = context_window - prompt_tokens
    if room <= 0:
        raise InvalidArgument("prompt", f"is {prompt_tokens} tokens; the model's context window is {context_window}")
    if not explicit_budget:
        return dataclasses.replace(params, max_new_tokens=max(1, min(params.max_new_tokens, room)))
    if params.max_new_tokens > room:
        raise InvalidArgument("max_new_tokens", f"{params.max_new_tokens} does not fit: prompt is {prompt_tokens} "
                                                f"tokens and the context window {context_window}; at most {room}")
    return params


def resolve(defaults: SamplingParams, overrides: Mapping[str, Any], prompt_tokens: int,
            context_window: int) -> SamplingParams:
    """The row's controls: defaults, then the client's overrides, fitted to the window."""
    params = merge(defaults, overrides)
    explicit = "max_new_tokens" in overrides or any(ALIASES.get(k) == "max_new_tokens" for k in overrides)
    return fit(params, explicit, prompt_tokens, context_window)


def check(params: SamplingParams, *, where: str = "") -> None:
    """Refuse out-of-range controls, naming the field."""
    if params.max_new_tokens < 1:
        raise InvalidArgument(f"{where}max_new_tokens", f"must be >= 1, got {params.max_new_tokens}")
    if params.max_new_tokens > MAX_NEW_TOKENS:
        raise InvalidArgument(f"{where}max_new_tokens", f"must be at most {MAX_NEW_TOKENS}, got {params.max_new_tokens}")
    _finite_range(f"{where}temperature", params.temperature, 0.0, 2.0)
    _finite_range(f"{where}repetition_penalty", params.repetition_penalty, 1e-6, 10.0)
    if not math.isfinite(params.top_p) or not 0.0 < params.top_p <= 1.0:
        raise InvalidArgument(f"{where}top_p", f"must be in (0, 1], got {params.top_p}")
    _finite_range(f"{where}presence_penalty", params.presence_penalty, -2.0, 2.0)
    _finite_range(f"{where}frequency_penalty", params.frequency_penalty, -2.0, 2.0)
    if params.top_k < 0:
        raise InvalidArgument(f"{where}top_k", f"must be >= 0 (0 disables), got {params.top_k}")
    if params.seed is not None and params.seed < 0:
        raise InvalidArgument(f"{where}seed", f"must be >= 0, got {params.seed}")
    if len(params.stop_sequences) > MAX_STOP_SEQUENCES:
        raise InvalidArgument(f"{where}stop_sequences", f"at most {MAX_STOP_SEQUENCES} entries")
    for i, stop in enumerate(params.stop_sequences):
        if not stop or len(stop) > MAX_STOP_LENGTH:
            raise InvalidArgument(f"{where}stop_sequences[{i}]", f"must be 1..{MAX_STOP_LENGTH} characters")


def _finite_range(field: str, value: float, low: float, high: float) -> None:
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidArgument(field, f"must be in [{low:g}, {high:g}], got {value}")
