"""Chat sessions: start, send (streamed or not), history, end, list, over the database.

One exchange = store the user message, generate with the fitted context, store the reply.
Exchanges of one session run one at a time, in arrival order (a FIFO lock per session in
this process); the database's per-session `seq` keeps messages ordered and none lost when
several replicas share the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.chat.cache import HistoryCache
from domain.chat.config import ChatConfig
from domain.chat.context import fit_context
from domain.chat.providers import BoundModel, ChatProvider
from domain.chat.schemas import SchemaRegistry
from models.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from models.generation import ChatTurn
from domain.structured.grammar import CompiledSchema
from domain.structured.schemas import JsonSchemaSpec
from models import sampling_policy
from models.sampling_policy import ALIASES, SamplingDefaults, SamplingParams
from models.types import FinishEvent, FinishReason, TokenEvent
from models.validation import require_text
from domain.chat.store import ChatMessageRecord, ChatSessionRecord, ChatStore, Sender, SessionStatus
from storage.errors import NotFoundError

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 32_768


@dataclass(frozen=True)
class ReplyOptions:
    """A client's controls for one reply."""

    json_schema_name: str | None = None
    """A registered schema the reply must follow."""
    json_schema: str | None = None
    """An inline JSON Schema the reply must follow."""
    sampling: Mapping[str, Any] = field(default_factory=dict)
    """Sampling controls the client set (names as in `SamplingParams`); the rest default."""

    @property
    def explicit_budget(self) -> bool:
        return any(ALIASES.get(k, k) == "max_new_tokens" for k in self.sampling)


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

    def __init__(self, repo: ChatStore, provider: ChatProvider, schemas: SchemaRegistry,
                 cache: HistoryCache, config: ChatConfig, defaults: SamplingDefaults) -> None:
        self._repo = repo
        self._defaults = defaults
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
    async def start_conversation(self, tenant: str, user_id: str, text: str, *, system_prompt: str | None,
                                 model: str | None, options: ReplyOptions) -> ChatReply:
        reply = None
        async for event in self.stream_conversation(tenant, user_id, text, system_prompt=system_prompt,
                                                    model=model, options=options):
            reply = event
        assert isinstance(reply, ChatReply)
        return reply

    async def stream_conversation(self, tenant: str, user_id: str, text: str, *, system_prompt: str | None,
                                  model: str | None, options: ReplyOptions
                                  ) -> AsyncIterator[ChatSessionRecord | TokenEvent | ChatReply]:
        """The new session (once it exists), TokenEvents as they are generated, then the
        stored ChatReply."""
        user_id = check_uuid("user_id", user_id)
        _check_message("initial_message", text)
        if system_prompt is not None and len(system_prompt) > MAX_MESSAGE_CHARS:
            raise InvalidArgument("system_prompt", f"must be at most {MAX_MESSAGE_CHARS} characters")
        spec = await self.schemas.resolve(tenant, options.json_schema_name, options.json_schema)
        bound = await self._provider.bind(model)
        # Everything that can refuse the request runs before the session exists.
        plan = await self._plan(bound, system_prompt or None, [], text, options, spec, "initial_message")
        session = await asyncio.to_thread(self._repo.create_session, tenant, user_id, bound.name,
                                          system_prompt=system_prompt or None)
        async with self._locks.hold(session.session_id):
            yield session
            async for event in self._exchange(tenant, session.session_id, [], text, plan):
                yield event

    async def send(self, tenant: str, session_id: str, text: str,
                   options: ReplyOptions) -> AsyncIterator[TokenEvent | ChatReply]:
        """TokenEvents as they are generated, then the stored ChatReply."""
        session_id = check_uuid("session_id", session_id)
        _check_message("user_message", text)
        spec = await self.schemas.resolve(tenant, options.json_schema_name, options.json_schema)
        async with self._locks.hold(session_id):
            session = await asyncio.to_thread(self._repo.get_session, tenant, session_id)
            if session.status is SessionStatus.ENDED:
                raise FailedPrecondition(f"chat_session '{session_id}' has ended")
            bound = await self._provider.bind(session.model)
            history = await self._history(tenant, session)
            plan = await self._plan(bound, session.system_prompt, history, text, options, spec, "user_message")
            async for event in self._exchange(tenant, session_id, history, text, plan):
                yield event

    async def _plan(self, bound: BoundModel, system_prompt: str | None, history: list[ChatMessageRecord],
                    text: str, options: ReplyOptions, spec: JsonSchemaSpec | None, field: str) -> _Plan:
        defaults = self._defaults.chat_structured if spec is not None else self._defaults.chat
        requested = sampling_policy.merge(defaults, options.sampling)  # bad controls fail before any work
        compiled = await bound.compile(spec, "json_schema_name" if spec.name else "json_schema") if spec else None
        system = system_prompt or self._config.default_system_prompt
        if spec is not None:
            system = f"{system}\n\n{schema_instruction(spec)}" if system else schema_instruction(spec)
        turns = [ChatTurn("user" if m.sender is Sender.USER else "assistant", m.content) for m in history]
        fitted = await asyncio.to_thread(
            fit_context, ChatTurn("system", system) if system else None, turns, ChatTurn("user", text),
            count=bound.count, context_window=bound.context_window,
            max_new_tokens=requested.max_new_tokens if options.explicit_budget else None,
            default_max_new_tokens=defaults.max_new_tokens, min_reply_tokens=self._config.min_reply_tokens,
            field=field)
        params = sampling_policy.fit(dataclasses.replace(requested, max_new_tokens=fitted.max_new_tokens), True,
                                     fitted.prompt_tokens, bound.context_window)
        return _Plan(bound, fitted.turns, params, spec, compiled, fitted.dropped)

    async def _exchange(self, tenant: str, session_id: str, history: list[ChatMessageRecord], text: str,
                        plan: _Plan) -> AsyncIterator[TokenEvent | ChatReply]:
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
        # The question and its answer are stored together once the answer is whole: a stream
        # the client dropped, a cancelled or failed generation, leaves no question unanswered.
        user, reply = await asyncio.to_thread(self._repo.append_messages, tenant, session_id,
                                              [(Sender.USER, text, None), (Sender.ASSISTANT, finish.text, content_json)])
        # The reply's timestamp is the session's new last_active: the cache entry's stamp.
        await self._cache.put(session_id, reply.timestamp, [*history, user, reply])
        yield ChatReply(session_id, reply, finish, parsed, why, plan.dropped)

    # --- reads and end -----------------------------------------------------------------
    async def _history(self, tenant: str, session: ChatSessionRecord) -> list[ChatMessageRecord]:
        cached = await self._cache.get(session.session_id, session.last_active)
        if cached is not None:
            return cached
        messages = await asyncio.to_thread(self._repo.history, tenant, session.session_id)
        await self._cache.put(session.session_id, session.last_active, messages)
        return messages

    async def active_session(self, tenant: str, session_id: str) -> ChatSessionRecord:
        """The session, NOT_FOUND when it does not exist, has ended or is another tenant's."""
        session_id = check_uuid("session_id", session_id)
        session = await asyncio.to_thread(self._repo.get_session, tenant, session_id)
        if session.status is SessionStatus.ENDED:
            raise NotFound("chat_session", session_id, f"chat_session '{session_id}' has ended")
        return session

    async def history(self, tenant: str, session_id: str) -> list[ChatMessageRecord]:
        return await self._history(tenant, await self.active_session(tenant, session_id))

    async def session_with_count(self, tenant: str, session: ChatSessionRecord) -> tuple[ChatSessionRecord, int]:
        return session, len(await self._history(tenant, session))

    async def list_sessions(self, tenant: str, user_id: str | None, page_size: int,
                            page_token: str) -> tuple[list[tuple[ChatSessionRecord, int]], str]:
        if user_id:
            user_id = check_uuid("user_id", user_id)
        page = await asyncio.to_thread(self._repo.list_sessions, tenant, user_id=user_id or None, active_only=True,
                                       page_size=page_size or 100, page_token=page_token)
        return [await self.session_with_count(tenant, s) for s in page.items], page.next_page_token

    async def end(self, tenant: str, session_id: str) -> bool:
        """End the session; True when it had already ended or never existed (idempotent)."""
        session_id = check_uuid("session_id", session_id)
        try:
            before = await asyncio.to_thread(self._repo.get_session, tenant, session_id)
        except NotFoundError:
            return True
        await asyncio.to_thread(self._repo.end_session, tenant, session_id)
        await self._cache.drop(session_id)
        return before.status is SessionStatus.ENDED

    async def close(self) -> None:
        await self._provider.close()
        await self._cache.close()
