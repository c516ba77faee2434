"""llmserve's results -> OpenAI's JSON objects: `chat.completion`, `text_completion`, their
stream chunks, the usage object and the in-stream error. Plain dicts; the server frames them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from models.types import FinishEvent, FinishReason

FINISH_REASONS = {FinishReason.EOS: "stop", FinishReason.STOP_SEQUENCE: "stop", FinishReason.LENGTH: "length",
                  FinishReason.CANCELLED: "stop"}
"""OpenAI's finish reasons: "stop" for a natural end, a stop string or a complete JSON
document; "length" when the token budget ran out."""


@dataclass(frozen=True)
class Reply:
    """Identity of one reply, shared by all its chunks."""

    chat: bool
    model: str
    id: str = field(default="")
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        if not self.id:
            prefix = "chatcmpl" if self.chat else "cmpl"
            object.__setattr__(self, "id", f"{prefix}-{uuid.uuid4().hex[:24]}")

    def head(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                "system_fingerprint": None}


def usage(finishes: Sequence[FinishEvent], choices_per_prompt: int) -> dict[str, int]:
    """Prompt tokens once per prompt (n choices share it, as OpenAI counts), output tokens of every choice."""
    prompt = sum(f.prompt_tokens for f in finishes[::choices_per_prompt])
    completion = sum(f.completion_tokens for f in finishes)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def reply(r: Reply, texts: Sequence[str], finishes: Sequence[FinishEvent], choices_per_prompt: int) -> dict[str, Any]:
    """The whole (non-streamed) `chat.completion` or `text_completion`."""
    choices = []
    for i, (text, finish) in enumerate(zip(texts, finishes)):
        choice: dict[str, Any] = {"index": i, "logprobs": None, "finish_reason": FINISH_REASONS[finish.reason]}
        if r.chat:
            choice["message"] = {"role": "assistant", "content": text, "refusal": None}
        else:
            choice["text"] = text
        choices.append(choice)
    return {**r.head("chat.completion" if r.chat else "text_completion"), "choices": choices,
            "usage": usage(finishes, choices_per_prompt)}


def chunk(r: Reply, index: int, *, text: str | None = None, role: bool = False, finish: FinishEvent | None = None,
          include_usage: bool = False) -> dict[str, Any]:
    """One stream event for choice `index`: its first (the role), a piece of text, or its end."""
    reason = FINISH_REASONS[finish.reason] if finish is not None else None
    if r.chat:
        delta: dict[str, Any] = {}
        if role:
            delta = {"role": "assistant", "content": ""}
        elif text is not None:
            delta = {"content": text}
        choice: dict[str, Any] = {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}
    else:
        choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": reason}
    out = {**r.head("chat.completion.chunk" if r.chat else "text_completion"), "choices": [choice]}
    if include_usage:
        out["usage"] = None  # OpenAI: null on every chunk but the last one
    return out


def usage_chunk(r: Reply, finishes: Sequence[FinishEvent], choices_per_prompt: int) -> dict[str, Any]:
    """The last event when `stream_options.include_usage` is set: no choices, the usage."""
    return {**r.head("chat.completion.chunk" if r.chat else "text_completion"), "choices": [],
            "usage": usage(finishes, choices_per_prompt)}


def error(message: str, kind: str = "server_error", param: str | None = None, code: str | None = None
          ) -> dict[str, Any]:
    """OpenAI's error object (also the body of a failed stream's last event)."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
