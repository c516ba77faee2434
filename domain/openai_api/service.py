"""OpenAI's chat and completion calls on this server's engines: each choice is one engine
row prepared by `TextGenerator` with the policy's OpenAI defaults; `n` choices run
concurrently; `response_format` adds the JSON grammar hook to each row.

The caller (the servicer) passes `on_finish`, called once per finished choice, so token
usage is counted where calls are accounted (the tenant's quota)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from domain.lut.service import LutService
from domain.openai_api import render
from domain.openai_api.params import OpenAIRequest, openai_field
from domain.specialist.service import SpecialistService
from domain.structured.compilers import GrammarCompilers
from models.errors import InvalidArgument, Unavailable
from models.generation import PreparedRequest, TextGenerator
from models.manager import ModelManager
from models.sampling_policy import SamplingParams
from models.types import FinishEvent, FinishReason, GenerationEvent, TokenEvent

OnFinish = Callable[[FinishEvent], FinishEvent]


@dataclass(frozen=True)
class Prepared:
    """A checked request bound to its rows (prompt-major: prompt i's choices are rows i*n .. i*n+n-1)."""

    request: OpenAIRequest
    rows: tuple[PreparedRequest, ...]
    reply: render.Reply


@dataclass(frozen=True)
class ModelEntry:
    id: str
    is_default: bool


class OpenAICompletions:
    def __init__(self, generator: TextGenerator, manager: ModelManager, grammars: GrammarCompilers,
                 luts: LutService, specialists: SpecialistService) -> None:
        self._generator = generator
        self._manager = manager
        self._grammars = grammars
        self._luts = luts
        self._specialists = specialists

    def models(self) -> list[ModelEntry]:
        """The models that can be served here, default first."""
        entries = [ModelEntry(s.spec.name, s.is_default) for s in self._manager.statuses()
                   if s.unavailable_reason is None]
        return sorted(entries, key=lambda e: not e.is_default)

    async def prepare(self, request: OpenAIRequest, tenant: str) -> Prepared:
        """Every row, checked (bad input raises here, before any token or reply is sent),
        refusals naming OpenAI's parameters. `tenant`: whose LUT `lut_name` names."""
        try:
            return await self._prepare(request, tenant)
        except InvalidArgument as exc:
            raise InvalidArgument(openai_field(exc.field), exc.description) from None

    async def _prepare(self, request: OpenAIRequest, tenant: str) -> Prepared:
        chat = bool(request.turns)
        defaults = self._generator.defaults.openai_chat if chat else self._generator.defaults.openai_completion
        rows: list[PreparedRequest] = []
        for prompt in (request.prompts or ("",)):
            for i in range(request.n):
                overrides = dict(request.overrides)
                if "seed" in overrides:
                    overrides["seed"] += i  # n choices from one seed must differ, and be reproducible
                if chat:
                    row = await self._generator.prepare_chat(request.turns, request.model, overrides, defaults)
                elif request.lut_name:
                    # Each row its own hook: a LUT hook follows one row's tokens.
                    row = (await self._luts.prepare(tenant, prompt, request.lut_name, request.model,
                                                    request.threshold, overrides, defaults)).prepared
                elif request.specialists:
                    row = await self._specialist_row(prompt, request.model, overrides, defaults)
                else:
                    row = await self._generator.prepare_completion(prompt, request.model, overrides, defaults)
                rows.append(row)
        if request.schema is not None:
            compiled = await self._grammars.compile(rows[0].runtime, request.schema, "response_format")
            rows = [PreparedRequest(r.runtime, dataclasses.replace(
                r.request, hooks=(*r.request.hooks, compiled.hook(r.request.params.max_new_tokens,
                                                              r.request.params.greedy)))) for r in rows]
        return Prepared(request, tuple(rows), render.Reply(chat=chat, model=rows[0].model_name))

    async def complete(self, prepared: Prepared, on_finish: OnFinish) -> dict:
        """The whole reply, once every choice has finished."""
        try:
            async with asyncio.TaskGroup() as group:  # one choice failing stops the others
                tasks = [group.create_task(_collect(row.events(), on_finish)) for row in prepared.rows]
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        finishes = [task.result() for task in tasks]
        texts = [self._echo(prepared, i, f.text) for i, f in enumerate(finishes)]
        return render.reply(prepared.reply, texts, finishes, prepared.request.n)

    async def stream(self, prepared: Prepared, on_finish: OnFinish) -> AsyncIterator[dict]:
        """OpenAI's chunks: per choice its role (chat) or echoed prompt, its text as it comes,
        its end; then the usage chunk when asked for. Choices interleave as they generate."""
        r, request = prepared.reply, prepared.request
        usage_field = request.include_usage
        for i in range(len(prepared.rows)):
            if r.chat:
                yield render.chunk(r, i, role=True, include_usage=usage_field)
            elif request.echo:
                yield render.chunk(r, i, text=self._prompt(prepared, i), include_usage=usage_field)
        finishes: dict[int, FinishEvent] = {}
        async for i, event in _merged([row.events() for row in prepared.rows]):
            if isinstance(event, TokenEvent):
                if event.text:
                    yield render.chunk(r, i, text=event.text, include_usage=usage_field)
                continue
            finishes[i] = on_finish(_checked(event))
            yield render.chunk(r, i, finish=event, include_usage=usage_field)
        if usage_field:
            yield render.usage_chunk(r, [finishes[i] for i in sorted(finishes)], request.n)

    async def _specialist_row(self, prompt: str, model: str, overrides: dict, defaults: SamplingParams
                              ) -> PreparedRequest:
        try:
            row, _experts = await self._specialists.prepare(prompt, overrides, defaults=defaults)
        except Unavailable as exc:
            # The client asked for something this deployment has not trained yet: a bad
            # request for now, not a server failure.
            raise InvalidArgument("specialists", exc.message) from None
        if row.model_name != model:
            raise InvalidArgument("model", f"the specialist mixture runs on '{row.model_name}'; got '{model}'")
        return row

    def _prompt(self, prepared: Prepared, row: int) -> str:
        return prepared.request.prompts[row // prepared.request.n]

    def _echo(self, prepared: Prepared, row: int, text: str) -> str:
        return self._prompt(prepared, row) + text if prepared.request.echo else text


def _checked(event: FinishEvent) -> FinishEvent:
    if event.reason is FinishReason.ERROR:
        raise RuntimeError(event.error or "generation failed")
    return event


async def _collect(events: AsyncIterator[GenerationEvent], on_finish: OnFinish) -> FinishEvent:
    async for event in events:
        if isinstance(event, FinishEvent):
            return on_finish(_checked(event))
    raise RuntimeError("engine stream ended without a finish event")


async def _merged(streams: Sequence[AsyncIterator[GenerationEvent]]
                  ) -> AsyncIterator[tuple[int, GenerationEvent]]:
    """(index, event) from every stream as events arrive. Leaving early (a client gone)
    cancels the others, which frees their rows at the engine's next step."""
    if len(streams) == 1:
        async for event in streams[0]:
            yield 0, event
        return
    queue: asyncio.Queue[tuple[int, GenerationEvent | BaseException | None]] = asyncio.Queue()

    async def pump(i: int, stream: AsyncIterator[GenerationEvent]) -> None:
        try:
            async for event in stream:
                await queue.put((i, event))
        except Exception as exc:  # noqa: BLE001 - re-raised in the consumer
            await queue.put((i, exc))
        await queue.put((i, None))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        open_streams = len(tasks)
        while open_streams:
            i, item = await queue.get()
            if item is None:
                open_streams -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield i, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
