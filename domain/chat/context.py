"""Conversation context: which turns of a session's history go into the prompt.

Oldest turns are dropped first, whole exchanges at a time (a kept history always starts
at a user message), until prompt + reply room fit the model's context window. The system
prompt and the newest user message are never dropped or cut; when those alone do not fit,
the request is refused with INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from models.errors import InvalidArgument
from models.generation import ChatTurn


@dataclass(frozen=True)
class FittedContext:
    turns: list[ChatTurn]
    """System prompt (if any), kept history, newest message: the prompt's turns."""
    prompt_tokens: int
    dropped: int
    """History turns left out because the window was full."""
    max_new_tokens: int
    """Reply limit: the request's, or the default lowered to the room left."""


def fit_context(
    system: ChatTurn | None, history: Sequence[ChatTurn], newest: ChatTurn, *,
    count: Callable[[list[ChatTurn]], int], context_window: int,
    max_new_tokens: int | None, default_max_new_tokens: int, min_reply_tokens: int,
    field: str,
) -> FittedContext:  # fmt: skip
    """Drop the fewest oldest exchanges so that the prompt plus the reply room fits.

    `count(turns)` is the prompt length in tokens through the chat template. The reply
    room is `max_new_tokens` when the client set it, else `min_reply_tokens` (the default
    limit is then lowered to whatever room is left, as for the other chat endpoints).
    """
    head = [system] if system else []
    room = max_new_tokens if max_new_tokens is not None else min(min_reply_tokens, default_max_new_tokens)
    budget = context_window - room

    def build(start: int) -> list[ChatTurn]:
        return [*head, *history[start:], newest]

    # Candidate starts: each user turn (so exchanges stay whole), then "no history".
    starts = [i for i, t in enumerate(history) if t.role == "user"]
    starts = [0] + [i for i in starts if i > 0] + [len(history)]
    alone = count(build(len(history)))
    if alone > budget:
        raise InvalidArgument(field, f"the message needs {alone} prompt tokens with the system prompt; the context "
                                     f"window of {context_window} leaves {budget} after {room} for the reply")
    # Prompt length only shrinks as the start moves later: binary search the earliest fit.
    lo, hi, best = 0, len(starts) - 1, (len(starts) - 1, alone)
    while lo <= hi:
        mid = (lo + hi) // 2
        n = alone if starts[mid] == len(history) else count(build(starts[mid]))
        if n <= budget:
            best, hi = (mid, n), mid - 1
        else:
            lo = mid + 1
    start, tokens = starts[best[0]], best[1]
    limit = max_new_tokens if max_new_tokens is not None else min(default_max_new_tokens, context_window - tokens)
    return FittedContext(build(start), tokens, start, limit)
