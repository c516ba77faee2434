"""One `GrammarCompiler` per loaded model, built on first use and shared by every feature
that constrains decoding (chat sessions, the OpenAI-compatible `response_format`)."""

from __future__ import annotations

import asyncio

from domain.structured.grammar import CompiledSchema, GrammarCompiler
from domain.structured.schemas import JsonSchemaSpec
from models.manager import ModelRuntime


class GrammarCompilers:
    def __init__(self) -> None:
        self._compilers: dict[str, GrammarCompiler] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def compiler(self, runtime: ModelRuntime) -> GrammarCompiler:
        """The model's compiler (reading the vocabulary takes about a second, once)."""
        name = runtime.name
        if name not in self._compilers:
            async with self._locks.setdefault(name, asyncio.Lock()):
                if name not in self._compilers:
                    loaded = runtime.loaded
                    self._compilers[name] = await asyncio.to_thread(GrammarCompiler, loaded.tokenizer,
                                                                    loaded.vocab_size)
        return self._compilers[name]

    async def compile(self, runtime: ModelRuntime, spec: JsonSchemaSpec, field: str) -> CompiledSchema:
        """`spec`'s grammar for `runtime`'s tokenizer, off the event loop; InvalidArgument
        naming `field` when it cannot be used."""
        compiler = await self.compiler(runtime)
        return await asyncio.to_thread(compiler.compile, spec, field)
