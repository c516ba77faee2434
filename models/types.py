"""Types shared by the engine and its callers: generation requests, the per-row
extension point (`RowHook`), and the events a generation stream yields.

Row hooks. Features (per-user LUT biasing, JSON-grammar masks, specialist adapters,
SAE activation capture) attach `RowHook` objects to a `GenerationRequest.hooks`; the
engine loop never changes for them. Contract (all calls happen on the engine thread,
in this order within a step):

* `layers`: decoder-layer indices (0-based, negative allowed: -1 is the last layer)
  whose OUTPUT hidden states this hook wants to see. Read once when the row is admitted.
* `on_hidden(layer, hidden)`: called during every forward pass that includes this
  row, once per requested layer, with `hidden` = this row's slice of that layer's
  output, shape [1, q, hidden_size]: q = the prompt-chunk length during prefill
  (chunks arrive in order and cover the whole prompt, or its part after the tokens taken
  from the prefix cache: see `on_prefix_cached`), q = 1 for each decode step.
  Return None to leave it, or a tensor of the same shape to replace this row's hidden
  states (other rows are never affected). The tensor is a view into the batch: copy it
  (`.clone()`/`.cpu()`) if you keep it.
* `on_logits(logits, generated_ids)`: called once per generated token with this row's
  next-token logits [vocab] (float, on the model's device) and the ids generated so far;
  return the logits to use (modify in place or return a new tensor). Set a token to
  -inf to forbid it. Runs before repetition penalty, temperature, top-k and top-p.
* `on_token(token_id)`: called with every token chosen for this row (after sampling);
  return True to end the generation now (FinishReason.EOS: the hook declared the
  output complete; the token itself is kept).
* `on_finish(reason)`: called once when the row ends for any reason (also cancellation
  and errors), to release per-row state.
* `prefix_reuse()`: whether this row may share KV with the engine's prefix cache (read
  when the row is admitted). Hooks with no `layers` never see or change the forward and
  are ignored. For hooks with layers the default, None, keeps the row out of the cache
  (its hidden states may be edited, or every prompt token must be seen). A hook returns
  (key, limit) to opt in: the KV its row computes depends only on the tokens and on `key`
  (None: exactly the base model's, e.g. a hook that only reads), and the row may skip
  the prefill of at most `limit` leading prompt tokens; rows share KV only under equal keys.
* `on_prefix_cached(tokens)`: the first `tokens` prompt tokens came from the prefix
  cache; `on_hidden` will see prefill chunks from that position on. Called before them.
* `kind` and `fired()`: what metrics call the hook ("lut", "json_grammar", ...) and whether
  it changed this row's output (a LUT fact fired); read when the row ends.

Rows without hooks pay nothing: layer taps are installed only while some running row
asked for a layer, and `on_logits`/`on_token` are only called for rows with hooks.
An exception raised by a hook ends only that row, with FinishReason.ERROR.
"""

from __future__ import annotations

import contextvars
import enum
import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from models.sampling_policy import SamplingParams

if TYPE_CHECKING:  # annotations only: the scheduler imports this module and must not load torch
    import torch

_request_ids = itertools.count(1)

request_tenant: contextvars.ContextVar[str] = contextvars.ContextVar("llmserve_request_tenant", default="")
"""The tenant the current call works for; a GenerationRequest made inside the call is
scheduled as that tenant's (fair share). The server sets it per call."""


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


class RowHook:
    """Base class with no-op defaults; override what you need (see the module docstring)."""

    layers: tuple[int, ...] = ()
    kind: str = "custom"

    def fired(self) -> bool:
        return False

    def prefix_reuse(self) -> tuple[Hashable, int] | None:
        return None

    def on_prefix_cached(self, tokens: int) -> None:
        return None

    def on_hidden(self, layer: int, hidden: torch.Tensor) -> torch.Tensor | None:
        return None

    def on_logits(self, logits: torch.Tensor, generated_ids: Sequence[int]) -> torch.Tensor:
        return logits

    def on_token(self, token_id: int) -> bool:
        return False

    def on_finish(self, reason: FinishReason) -> None:
        return None


@dataclass
class GenerationRequest:
    """One row of work for the engine: a tokenized prompt plus its controls."""

    prompt_ids: list[int]
    params: SamplingParams
    hooks: tuple[RowHook, ...] = ()
    priority: Priority = Priority.INTERACTIVE
    request_id: str = field(default_factory=lambda: f"req-{next(_request_ids)}")
    tenant: str = field(default_factory=request_tenant.get)
    """Whose work this is, for fair share between tenants (see `request_tenant`)."""


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
