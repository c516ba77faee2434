"""What the engine tells an observer (metrics) as it works, without knowing who listens:
one Protocol the server layer implements, so the inference core imports no metrics
library. Every call is cheap and must not raise; `NULL_OBSERVER` ignores everything.

`step`, `queue_wait` and `prefix_lookup` run on the engine thread; `first_token`, `inter_token`,
`finished` and `rejected` on the caller's event loop, as the caller receives each event
(so the latencies are the ones a client of this process sees)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class StepRecord:
    """One engine step that ran the model."""

    batch_rows: int
    """Rows in the forward (prefill chunks plus decode rows)."""
    prefill_tokens: int
    decode_rows: int


@dataclass(frozen=True)
class RequestRecord:
    """One generate() call, at its end."""

    prompt_tokens: int
    completion_tokens: int
    reason: str
    """A FinishReason value ("eos", "length", "cancelled", ...)."""
    e2e_s: float
    """From submission to the finish event (or to the caller leaving)."""
    hooks: tuple[tuple[str, bool], ...] = ()
    """(kind, fired) of each RowHook the row carried."""
    started_at: float = 0.0
    """time.time() at submission (traces place their spans with it)."""
    queue_wait_s: float | None = None
    """Submission to a batch slot; None when the row never got one."""
    first_token_s: float | None = None
    """Submission to the first token (prefill done); None when none came."""


class EngineObserver(Protocol):
    def step(self, record: StepRecord) -> None: ...
    def queue_wait(self, seconds: float) -> None: ...
    def first_token(self, seconds: float) -> None: ...
    def inter_token(self, seconds: float) -> None: ...
    def finished(self, record: RequestRecord) -> None: ...
    def prefix_lookup(self, prompt_tokens: int, cached_tokens: int) -> None:
        """A row that may use the prefix cache was admitted; `cached_tokens` of its
        `prompt_tokens` came from the cache (0: a miss)."""


class NullObserver:
    def step(self, record: StepRecord) -> None:
        return None

    def queue_wait(self, seconds: float) -> None:
        return None

    def first_token(self, seconds: float) -> None:
        return None

    def inter_token(self, seconds: float) -> None:
        return None

    def finished(self, record: RequestRecord) -> None:
        return None

    def prefix_lookup(self, prompt_tokens: int, cached_tokens: int) -> None:
        return None


NULL_OBSERVER: EngineObserver = NullObserver()
