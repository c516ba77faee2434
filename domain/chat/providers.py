"""Reply providers: who writes a session's replies. `LocalProvider` runs this server's
engine (the default); `domain.chat.openai` calls an OpenAI-compatible HTTP API. Both are
bound to one model per reply and yield the engine's event types, so sessions never care
which one answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from models.types import RowHook
from models.generation import ChatTurn, chat_prompt_ids
from models.manager import ModelManager, ModelRuntime
from domain.structured.compilers import GrammarCompilers
from domain.structured.grammar import CompiledSchema, GrammarCompiler
from domain.structured.schemas import JsonSchemaSpec
from models.types import GenerationEvent, GenerationRequest
from models.sampling_policy import SamplingParams, fit


class BoundModel(Protocol):
    """One model of a provider, ready to answer."""

    name: str
    context_window: int

    def count(self, turns: list[ChatTurn]) -> int:
        """Prompt tokens of `turns` (through the chat template where known)."""

    async def compile(self, spec: JsonSchemaSpec, field: str) -> CompiledSchema | None:
        """Prepare constrained decoding for `spec` (None when the provider constrains
        remotely); InvalidArgument naming `field` when the schema cannot be used."""

    def generate(self, turns: list[ChatTurn], params: SamplingParams, spec: JsonSchemaSpec | None,
                 compiled: CompiledSchema | None) -> AsyncIterator[GenerationEvent]:
        """TokenEvents then exactly one FinishEvent; errors before the first event raise."""


class ChatProvider(Protocol):
    async def bind(self, model: str | None) -> BoundModel:
        """The model named `model` (the provider's default when None or empty)."""

    async def close(self) -> None: ...


class LocalProvider:
    """Replies from this server's engines; one grammar compiler per loaded model."""

    def __init__(self, manager: ModelManager, compilers: GrammarCompilers | None = None) -> None:
        self._manager = manager
        self.compilers = compilers or GrammarCompilers()

    async def bind(self, model: str | None) -> "LocalModel":
        runtime = await self._manager.runtime(model or None)
        return LocalModel(runtime, self)

    async def compiler(self, runtime: ModelRuntime) -> GrammarCompiler:
        """The model's compiler, built on first use (reading the vocabulary takes ~1 s)."""
        return await self.compilers.compiler(runtime)

    async def close(self) -> None:
        return None


class LocalModel:
    def __init__(self, runtime: ModelRuntime, provider: LocalProvider) -> None:
        self._runtime = runtime
        self._provider = provider
        self.name = runtime.name
        self.context_window = runtime.loaded.context_window

    def count(self, turns: list[ChatTurn]) -> int:
        return len(chat_prompt_ids(self._runtime.loaded.tokenizer, turns))

    async def compile(self, spec: JsonSchemaSpec, field: str) -> CompiledSchema:
        return await self._provider.compilers.compile(self._runtime, spec, field)

    def generate(self, turns: list[ChatTurn], params: SamplingParams, spec: JsonSchemaSpec | None,
                 compiled: CompiledSchema | None) -> AsyncIterator[GenerationEvent]:
        ids = chat_prompt_ids(self._runtime.loaded.tokenizer, turns)
        fit(params, True, len(ids), self.context_window)
        hooks: tuple[RowHook, ...] = (compiled.hook(params.max_new_tokens, params.greedy),) if compiled is not None else ()
        return self._runtime.engine.generate(GenerationRequest(prompt_ids=ids, params=params, hooks=hooks))
