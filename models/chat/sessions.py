"""Chat sessions: start, send (streamed or not), history, end, list, over the database.

One exchange = store the user message, generate with the fitted context, store the reply.
Exchanges of one session run one at a time, in arrival order (a FIFO lock per session in
this process); the database's per-session `seq` keeps messages ordered and none lost when
several replicas share the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from models.chat.cache import HistoryCache
from models.chat.config import ChatConfig
from models.chat.context import fit_context
from models.chat.providers import BoundModel, ChatProvider
from models.chat.schemas import SchemaRegistry
from models.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from models.generation import ChatTurn
from models.structured.grammar import CompiledSchema
from models.structured.schemas import JsonSchemaSpec
from models.types import FinishEvent, FinishReason, SamplingParams, TokenEvent
from models.validation import require_text, validate_sampling
from storage.chat import ChatMessageRecord, ChatRepository, ChatSessionRecord, Sender, SessionStatus
from storage.errors import NotFoundError

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 32_768
MAX_NEW_TOKENS = 8192


@dataclass(frozen=True)
class ReplyOptions:
    """A client's controls for one reply; None means the default."""

    json_schema_name: str | None = None
    json_schema: str | None = None
    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None


@dataclass(frozen=True)
class ChatReply:
    """The stored reply of one exchange."""

    session_id: str
    message: ChatMessageRecord
    finish: FinishEvent
    parsed: Any | None
    """The structured reply parsed and validated; None for free text or an invalid/cut reply."""
    invalid_reason: str | None
    """Why a structured reply is not valid (e.g. cut off at max_new_tokens); None otherwise."""
    dropped_turns: int
    """History turns left out of the prompt because the context window was full."""


@dataclass(frozen=True)
class _Plan:
    bound: BoundModel
    turns: list[ChatTurn]
    params: SamplingParams
    spec: JsonSchemaSpec | None
    compiled: CompiledSchema | None
    dropped: int


class _KeyedLocks:
    """One FIFO asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def check_uuid(field: str, value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument(field, f"must be a UUID, got '{value[:64]}'") from None


def _check_message(field: str, text: str) -> None:
    require_text(field, text)
    if len(text) > MAX_MESSAGE_CHARS:
        raise InvalidArgument(field, f"must be at most {MAX_MESSAGE_CHARS} characters")


def schema_instruction(spec: JsonSchemaSpec) -> str:
    # The grammar guarantees the form; telling the model the schema improves the content.
    return f"Reply with only a JSON object that conforms to this JSON Schema:\n{spec.text}"


class ChatSessions:
    """The chat domain service used by the gRPC servicer."""

    def __init__(self, repo: ChatRepository, provider: ChatProvider, schemas: SchemaRegistry,
                 cache: HistoryCache, config: ChatConfig) -> None:
        self._repo = repo
        self._provider = provider
        self.schemas = schemas
        self._cache = cache
        self._config = config
        self._locks = _KeyedLocks()

    async def start(self) -> None:
        """Register the built-in schemas and compile them for the default model, so the
        first structured request does not pay the compile."""
        specs = await self.schemas.register_builtins()
        bound = await self._provider.bind(None)
        for spec in specs:
            await bound.compile(spec, "json_schema_name")

    # --- conversations -----------------------------------------------------------------
    async def start_conversation(self, user_id: str, text: str, *, system_prompt: str | None,
                                 model: str | None, options: ReplyOptions) -> ChatReply:
        user_id = check_uuid("user_id", user_id)
        _check_message("initial_message", text)
        if system_prompt is not None and len(system_prompt) > MAX_MESSAGE_CHARS:
            raise InvalidArgument("system_prompt", f"must be at most {MAX_MESSAGE_CHARS} characters")
        spec = await self.schemas.resolve(options.json_schema_name, options.json_schema)
        bound = await self._provider.bind(model)
        # Everything that can refuse the request runs before the session exists.
        plan = await self._plan(bound, system_prompt or None, [], text, options, spec, "initial_message")
        session = await asyncio.to_thread(self._repo.create_session, user_id, bound.name,
                                          system_prompt=system_prompt or None)
        reply = None
        async with self._locks.hold(session.session_id):
            async for event in self._exchange(session.session_id, [], text, plan):
                reply = event
        assert isinstance(reply, ChatReply)
        return reply

    async def send(self, session_id: str, text: str, options: ReplyOptions) -> AsyncIterator[TokenEvent | ChatReply]:
        """TokenEvents as they are generated, then the stored ChatReply."""
        session_id = check_uuid("session_id", session_id)
        _check_message("user_message", text)
        spec = await self.schemas.resolve(options.json_schema_name, options.json_schema)
        async with self._locks.hold(session_id):
            session = await asyncio.to_thread(self._repo.get_session, session_id)
            if session.status is SessionStatus.ENDED:
                raise FailedPrecondition(f"chat_session '{session_id}' has ended")
            bound = await self._provider.bind(session.model)
            history = await self._history(session)
            plan = await self._plan(bound, session.system_prompt, history, text, options, spec, "user_message")
            async for event in self._exchange(session_id, history, text, plan):
                yield event

    async def _plan(self, bound: BoundModel, system_prompt: str | None, history: list[ChatMessageRecord],
                    text: str, options: ReplyOptions, spec: JsonSchemaSpec | None, field: str) -> _Plan:
        if options.max_new_tokens is not None and not 1 <= options.max_new_tokens <= MAX_NEW_TOKENS:
            raise InvalidArgument("max_new_tokens", f"must be 1 to {MAX_NEW_TOKENS}, got {options.max_new_tokens}")
        if options.seed is not None and options.seed < 0:
            raise InvalidArgument("seed", f"must be >= 0, got {options.seed}")
        compiled = await bound.compile(spec, "json_schema_name" if spec.name else "json_schema") if spec else None
        system = system_prompt or self._config.default_system_prompt
        if spec is not None:
            system = f"{system}\n\n{schema_instruction(spec)}" if system else schema_instruction(spec)
        turns = [ChatTurn("user" if m.sender is Sender.USER else "assistant", m.content) for m in history]
        cfg = self._config
        fitted = await asyncio.to_thread(
            fit_context, ChatTurn("system", system) if system else None, turns, ChatTurn("user", text),
            count=bound.count, context_window=bound.context_window, max_new_tokens=options.max_new_tokens,
            default_max_new_tokens=cfg.default_max_new_tokens, min_reply_tokens=cfg.min_reply_tokens, field=field)
        params = SamplingParams(
            max_new_tokens=fitted.max_new_tokens,
            temperature=0.7 if options.temperature is None else options.temperature,
            top_p=1.0 if options.top_p is None else options.top_p, top_k=options.top_k or 0,
            repetition_penalty=cfg.structured_repetition_penalty if spec is not None else cfg.repetition_penalty,
            seed=options.seed)
        validate_sampling(params, fitted.prompt_tokens, bound.context_window)
        return _Plan(bound, fitted.turns, params, spec, compiled, fitted.dropped)

    async def _exchange(self, session_id: str, history: list[ChatMessageRecord], text: str,
                        plan: _Plan) -> AsyncIterator[TokenEvent | ChatReply]:
        user = await asyncio.to_thread(self._repo.append_message, session_id, Sender.USER, text)
        finish: FinishEvent | None = None
        async for event in plan.bound.generate(plan.turns, plan.params, plan.spec, plan.compiled):
            if isinstance(event, TokenEvent):
                yield event
            else:
                finish = event
        if finish is None or finish.reason is FinishReason.ERROR:
            raise RuntimeError((finish and finish.error) or "generation failed")
        if finish.reason is FinishReason.CANCELLED:
            raise Unavailable("generation was cancelled")
        parsed, why = None, None
        if plan.spec is not None:
            if finish.reason is FinishReason.LENGTH:
                why = f"cut off at max_new_tokens={plan.params.max_new_tokens} before the JSON document was complete"
            else:
                parsed, why = plan.spec.validate(finish.text)
                if why:  # the grammar should make this impossible: worth a look
                    log.warning("structured reply for session %s is invalid: %s", session_id, why)
        content_json = finish.text if why is None and plan.spec is not None else None
        reply = await asyncio.to_thread(self._repo.append_message, session_id, Sender.ASSISTANT, finish.text,
                                        content_json=content_json)
        # The reply's timestamp is the session's new last_active: the cache entry's stamp.
        await self._cache.put(session_id, reply.timestamp, [*history, user, reply])
        yield ChatReply(session_id, reply, finish, parsed, why, plan.dropped)

    # --- reads and end -----------------------------------------------------------------
    async def _history(self, session: ChatSessionRecord) -> list[ChatMessageRecord]:
        cached = await self._cache.get(session.session_id, session.last_active)
        if cached is not None:
            return cached
        messages = await asyncio.to_thread(self._repo.history, session.session_id)
        await self._cache.put(session.session_id, session.last_active, messages)
        return messages

    async def active_session(self, session_id: str) -> ChatSessionRecord:
        """The session, NOT_FOUND when it does not exist or has ended."""
        session_id = check_uuid("session_id", session_id)
        session = await asyncio.to_thread(self._repo.get_session, session_id)
        if session.status is SessionStatus.ENDED:
            raise NotFound("chat_session", session_id, f"chat_session '{session_id}' has ended")
        return session

    async def history(self, session_id: str) -> list[ChatMessageRecord]:
        return await self._history(await self.active_session(session_id))

    async def session_with_count(self, session: ChatSessionRecord) -> tuple[ChatSessionRecord, int]:
        return session, len(await self._history(session))

    async def list_sessions(self, user_id: str | None, page_size: int,
                            page_token: str) -> tuple[list[tuple[ChatSessionRecord, int]], str]:
        if user_id:
            user_id = check_uuid("user_id", user_id)
        page = await asyncio.to_thread(self._repo.list_sessions, user_id=user_id or None, active_only=True,
                                       page_size=page_size or 100, page_token=page_token)
        return [await self.session_with_count(s) for s in page.items], page.next_page_token

    async def end(self, session_id: str) -> bool:
        """End the session; True when it had already ended or never existed (idempotent)."""
        session_id = check_uuid("session_id", session_id)
        try:
            before = await asyncio.to_thread(self._repo.get_session, session_id)
        except NotFoundError:
            return True
        await asyncio.to_thread(self._repo.end_session, session_id)
        await self._cache.drop(session_id)
        return before.status is SessionStatus.ENDED

    async def close(self) -> None:
        await self._provider.close()
        await self._cache.close()
