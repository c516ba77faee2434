"""Text generation for clients: prompt or chat turns -> tokens -> engine stream.

Completion, chat and the other services build on `TextGenerator`; it validates
inputs, applies the chat template, and fills default sampling controls.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping, Sequence

from models.errors import InvalidArgument
from models.manager import ModelManager, ModelRuntime
from models.types import GenerationEvent, GenerationRequest, SamplingParams
from models.validation import require_text, validate_sampling

CHAT_ROLES = ("system", "user", "assistant")

# Seed 001's documented defaults.
DEFAULT_SAMPLING = SamplingParams(max_new_tokens=512, temperature=0.7, top_p=0.9, top_k=50,
                                  repetition_penalty=1.1, do_sample=True)


@dataclass(frozen=True)
class ChatTurn:
    role: str
    content: str


@dataclass(frozen=True)
class PreparedRequest:
    """A validated request bound to the runtime that will serve it."""

    runtime: ModelRuntime
    request: GenerationRequest

    @property
    def model_name(self) -> str:
        return self.runtime.name

    def events(self) -> AsyncIterator[GenerationEvent]:
        return self.runtime.engine.generate(self.request)


class TextGenerator:
    """Prepares completion and chat requests for the engine of the chosen model."""

    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager

    async def prepare_completion(self, prompt: str, model: str, overrides: Mapping[str, Any]) -> PreparedRequest:
        require_text("prompt", prompt)
        runtime = await self._manager.runtime(model)
        ids = runtime.loaded.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        return self._bind(runtime, list(ids), overrides)

    async def prepare_chat(self, turns: Sequence[ChatTurn], model: str, overrides: Mapping[str, Any]) -> PreparedRequest:
        if not turns:
            raise InvalidArgument("messages", "must contain at least one message")
        for i, turn in enumerate(turns):
            if turn.role not in CHAT_ROLES:
                raise InvalidArgument(f"messages[{i}].role", f"must be one of {', '.join(CHAT_ROLES)}; got '{turn.role}'")
            require_text(f"messages[{i}].content", turn.content)
        runtime = await self._manager.runtime(model)
        ids = chat_prompt_ids(runtime.loaded.tokenizer, turns)
        return self._bind(runtime, ids, overrides)

    @staticmethod
    def _bind(runtime: ModelRuntime, prompt_ids: list[int], overrides: Mapping[str, Any]) -> PreparedRequest:
        ctx = runtime.loaded.context_window
        values = dict(overrides)
        if "max_new_tokens" not in values:
            values["max_new_tokens"] = max(1, min(DEFAULT_SAMPLING.max_new_tokens, ctx - len(prompt_ids)))
        if "stop_sequences" in values:
            values["stop_sequences"] = tuple(values["stop_sequences"])
        params = dataclasses.replace(DEFAULT_SAMPLING, **values)
        validate_sampling(params, len(prompt_ids), ctx)
        return PreparedRequest(runtime, GenerationRequest(prompt_ids=prompt_ids, params=params))


def chat_prompt_ids(tokenizer: Any, turns: Sequence[ChatTurn]) -> list[int]:
    """Token ids of `turns` through the model's chat template (plain text when it has none)."""
    messages = [{"role": t.role, "content": t.content} for t in turns]
    if getattr(tokenizer, "chat_template", None):
        out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = out["input_ids"] if isinstance(out, Mapping) else out
        return [int(i) for i in ids]
    text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages) + "Assistant:"
    return list(tokenizer(text)["input_ids"])
