"""Checks of client-supplied generation inputs; each failure names the field."""

from __future__ import annotations

import math

from models.errors import InvalidArgument
from models.types import SamplingParams

MAX_STOP_SEQUENCES = 16
MAX_STOP_LENGTH = 256


def require_text(field: str, value: str) -> None:
    if not value or not value.strip():
        raise InvalidArgument(field, "must be a non-empty string")


def validate_sampling(params: SamplingParams, prompt_tokens: int, context_window: int) -> None:
    """Reject out-of-range controls, and outputs that cannot fit the context window."""
    room = context_window - prompt_tokens
    if room <= 0:
        raise InvalidArgument("prompt", f"is {prompt_tokens} tokens; the model's context window is {context_window}")
    if params.max_new_tokens <= 0:
        raise InvalidArgument("max_new_tokens", f"must be >= 1, got {params.max_new_tokens}")
    if params.max_new_tokens > room:
        raise InvalidArgument("max_new_tokens", f"{params.max_new_tokens} does not fit: prompt is {prompt_tokens} "
                                                f"tokens and the context window {context_window}; at most {room}")
    _finite_range("temperature", params.temperature, 0.0, 2.0)
    _finite_range("repetition_penalty", params.repetition_penalty, 1e-6, 10.0)
    if not math.isfinite(params.top_p) or not 0.0 < params.top_p <= 1.0:
        raise InvalidArgument("top_p", f"must be in (0, 1], got {params.top_p}")
    if params.top_k < 0:
        raise InvalidArgument("top_k", f"must be >= 0 (0 disables), got {params.top_k}")
    if len(params.stop_sequences) > MAX_STOP_SEQUENCES:
        raise InvalidArgument("stop_sequences", f"at most {MAX_STOP_SEQUENCES} entries")
    for i, stop in enumerate(params.stop_sequences):
        if not stop or len(stop) > MAX_STOP_LENGTH:
            raise InvalidArgument(f"stop_sequences[{i}]", f"must be 1..{MAX_STOP_LENGTH} characters")


def _finite_range(field: str, value: float, low: float, high: float) -> None:
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidArgument(field, f"must be in [{low:g}, {high:g}], got {value}")
