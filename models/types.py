"""Domain types shared by the engine and its callers: sampling parameters,
generation requests, and the events a generation stream yields."""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.engine.hooks import RowHook

_request_ids = itertools.count(1)


class FinishReason(enum.Enum):
    """Why one generation ended."""

    STOP_SEQUENCE = "stop_sequence"
    EOS = "eos"
    LENGTH = "length"
    CANCELLED = "cancelled"
    ERROR = "error"


class Priority(enum.IntEnum):
    """Scheduling class; lower values are served first."""

    INTERACTIVE = 0
    BACKGROUND = 1


@dataclass(frozen=True)
class SamplingParams:
    """Per-row decoding controls (validated by `models.validation`)."""

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

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0.0


@dataclass
class GenerationRequest:
    """One row of work for the engine: a tokenized prompt plus its controls."""

    prompt_ids: list[int]
    params: SamplingParams
    hooks: tuple["RowHook", ...] = ()
    priority: Priority = Priority.INTERACTIVE
    request_id: str = field(default_factory=lambda: f"req-{next(_request_ids)}")


@dataclass(frozen=True)
class TokenEvent:
    """Tokens produced by one step for one row, with the text they completed."""

    token_ids: tuple[int, ...]
    text: str


@dataclass(frozen=True)
class FinishEvent:
    """The last event of every generation stream."""

    reason: FinishReason
    text: str
    prompt_tokens: int
    completion_tokens: int
    error: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


GenerationEvent = TokenEvent | FinishEvent
