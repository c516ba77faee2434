"""Text generation for clients: prompt or chat turns -> tokens -> engine stream.

Completion, chat and the other services build on `TextGenerator`; it validates
inputs, applies the chat template, and resolves sampling controls through the one
policy (`models.sampling_policy`) from the defaults of the caller's kind of request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping, Sequence

from models.errors import InvalidArgument
from models.manager import ModelManager, ModelRuntime
from models.sampling_policy import SamplingDefaults, SamplingParams, resolve
from models.types import GenerationEvent, GenerationRequest
from models.validation import require_text

CHAT_ROLES = ("system", "user", "assistant")


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

    def __init__(self, manager: ModelManager, defaults: SamplingDefaults | None = None) -> None:
        self._manager = manager
        self.defaults = defaults or SamplingDefaults()

    async def prepare_completion(self, prompt: str, model: str, overrides: Mapping[str, Any],
                                 defaults: SamplingParams | None = None) -> PreparedRequest:
        """`defaults`: where the controls start (the completion defaults when None)."""
        require_text("prompt", prompt)
        runtime = await self._manager.runtime(model)
        check_length("prompt", len(prompt), runtime.loaded.context_window)
        ids = await _tokenize(runtime.loaded.tokenizer, prompt)
        return self._bind(runtime, ids, overrides, defaults or self.defaults.completion)

    async def prepare_chat(self, turns: Sequence[ChatTurn], model: str, overrides: Mapping[str, Any],
                           defaults: SamplingParams | None = None) -> PreparedRequest:
        if not turns:
            raise InvalidArgument("messages", "must contain at least one message")
        for i, turn in enumerate(turns):
            if turn.role not in CHAT_ROLES:
                raise InvalidArgument(f"messages[{i}].role", f"must be one of {', '.join(CHAT_ROLES)}; got '{turn.role}'")
            require_text(f"messages[{i}].content", turn.content)
        runtime = await self._manager.runtime(model)
        check_length("messages", sum(len(t.content) for t in turns), runtime.loaded.context_window)
        ids = chat_prompt_ids(runtime.loaded.tokenizer, turns)
        return self._bind(runtime, ids, overrides, defaults or self.defaults.completion)

    @staticmethod
    def _bind(runtime: ModelRuntime, prompt_ids: list[int], overrides: Mapping[str, Any],
              defaults: SamplingParams) -> PreparedRequest:
        params = resolve(defaults, overrides, len(prompt_ids), runtime.loaded.context_window)
        return PreparedRequest(runtime, GenerationRequest(prompt_ids=prompt_ids, params=params))


MAX_CHARS_PER_TOKEN = 32
"""No tokenizer makes a token of more characters than this in practice, so text longer than
the context window times this cannot fit: refused before any time is spent tokenizing it."""
INLINE_TOKENIZE_CHARS = 4096
"""Shorter text is tokenized on the event loop; longer text in a worker thread, so a long
prompt never stalls other calls."""


def check_length(field: str, chars: int, context_window: int) -> None:
    if chars > context_window * MAX_CHARS_PER_TOKEN:
        raise InvalidArgument(field, f"is {chars} characters; the model's context window of {context_window} "
                                     f"tokens cannot hold it")


async def _tokenize(tokenizer: Any, text: str) -> list[int]:
    if len(text) <= INLINE_TOKENIZE_CHARS:
        return list(tokenizer(text, add_special_tokens=True)["input_ids"])
    return list((await asyncio.to_thread(tokenizer, text, add_special_tokens=True))["input_ids"])


def chat_prompt_ids(tokenizer: Any, turns: Sequence[ChatTurn]) -> list[int]:
    """Token ids of `turns` through the model's chat template (plain text when it has none)."""
    messages = [{"role": t.role, "content": t.content} for t in turns]
    if getattr(tokenizer, "chat_template", None):
        out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = out["input_ids"] if isinstance(out, Mapping) else out
        return [int(i) for i in ids]
    text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages) + "Assistant:"
    return list(tokenizer(text)["input_ids"])
