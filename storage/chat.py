"""Chat persistence: sessions, their ordered messages, and the named JSON schemas that
constrained replies refer to."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update

from storage import schema as t
from storage.db import Database
from storage.errors import (
    AlreadyExistsError,
    ConflictError,
    NotFoundError,
    check_name,
    parse_enum,
)
from storage.pagination import Page, after_key, clamp_page_size, decode_token, make_page
from storage.schema import SHARED_TENANT, TENANT_LEN, utcnow


class SessionStatus(enum.StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class Sender(enum.StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


@dataclass(frozen=True)
class ChatSessionRecord:
    session_id: str
    user_id: str
    model: str
    system_prompt: str | None
    status: SessionStatus
    created_at: datetime
    last_active: datetime
    ended_at: datetime | None


@dataclass(frozen=True)
class ChatMessageRecord:
    message_id: str
    session_id: str
    seq: int
    """1 for a session's first message, then +1 per message, without gaps."""
    sender: Sender
    content: str
    content_json: str | None
    """The reply as JSON text when it was generated under a JSON schema."""
    timestamp: datetime


@dataclass(frozen=True)
class JsonSchemaRecord:
    name: str
    schema_json: str
    created_at: datetime
    builtin: bool


def _session(row: t.ChatSession) -> ChatSessionRecord:
    return ChatSessionRecord(
        row.session_id,
        row.user_id,
        row.model,
        row.system_prompt,
        SessionStatus(row.status),
        row.created_at,
        row.last_active,
        row.ended_at,
    )


def _message(row: t.ChatMessage) -> ChatMessageRecord:
    return ChatMessageRecord(
        row.message_id,
        row.session_id,
        row.seq,
        Sender(row.sender),
        row.content,
        row.content_json,
        row.timestamp,
    )


def _schema(row: t.JsonSchema) -> JsonSchemaRecord:
    return JsonSchemaRecord(row.name, row.schema_json, row.created_at, row.builtin)


class ChatRepository:
    """Reads and writes chat sessions, messages and JSON schemas; one transaction per call."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- sessions -------------------------------------------------------------------

    def create_session(
        self, tenant: str, user_id: str, model: str, *, system_prompt: str | None = None,
        session_id: str | None = None,
    ) -> ChatSessionRecord:  # fmt: skip
        """Start an active session; `session_id` defaults to a fresh UUID4 string."""
        check_name("tenant", tenant, TENANT_LEN)
        if session_id is not None:
            check_name("session_id", session_id, 36)
        check_name("user_id", user_id)
        check_name("model", model)
        now = utcnow()
        record = ChatSessionRecord(
            session_id or str(uuid.uuid4()), user_id, model, system_prompt, SessionStatus.ACTIVE,
            created_at=now, last_active=now, ended_at=None,
        )  # fmt: skip
        values = {**vars(record), "status": record.status.value, "tenant": tenant}
        stmt = (
            self._db.insert(t.ChatSession)
            .values(values)
            .on_conflict_do_nothing()
            .returning(t.ChatSession.session_id)
        )
        with self._db.session() as s:
            if s.execute(stmt).first() is None:  # the conflict skipped the insert
                raise AlreadyExistsError("chat_session", record.session_id)
        return record

    def get_session(self, tenant: str, session_id: str) -> ChatSessionRecord:
        with self._db.session(readonly=True) as s:
            return _session(self._load_session(s, tenant, session_id))

    def touch(self, tenant: str, session_id: str) -> None:
        """Mark the session as used now (e.g. on a read-only call that adds no message)."""
        with self._db.session() as s:
            n = s.execute(
                update(t.ChatSession)
                .where(*_own(tenant, session_id))
                .values(last_active=utcnow())
            ).rowcount
        if n == 0:
            raise NotFoundError("chat_session", session_id)

    def end_session(self, tenant: str, session_id: str) -> ChatSessionRecord:
        """End the session; ending an ended session changes nothing and returns it as is."""
        now = utcnow()
        with self._db.session() as s:
            s.execute(
                update(t.ChatSession)
                .where(*_own(tenant, session_id), t.ChatSession.status == SessionStatus.ACTIVE.value)
                .values(status=SessionStatus.ENDED.value, ended_at=now, last_active=now)
            )
            return _session(self._load_session(s, tenant, session_id))

    def list_sessions(
        self,
        tenant: str,
        *,
        user_id: str | None = None,
        active_only: bool = False,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[ChatSessionRecord]:
        """Sessions newest first (by creation time, ties broken by id)."""
        size = clamp_page_size(page_size)
        scope = f"sessions:{tenant}:{user_id or ''}:{int(active_only)}"
        key = decode_token(page_token, scope, (datetime, str))
        order = (t.ChatSession.created_at, t.ChatSession.session_id)
        stmt = (select(t.ChatSession).where(t.ChatSession.tenant == tenant)
                .order_by(*(c.desc() for c in order)).limit(size + 1))
        if user_id:
            stmt = stmt.where(t.ChatSession.user_id == user_id)
        if active_only:
            stmt = stmt.where(t.ChatSession.status == SessionStatus.ACTIVE.value)
        if key is not None:
            stmt = stmt.where(after_key(order, key, descending=True))
        with self._db.session(readonly=True) as s:
            rows = [_session(r) for r in s.scalars(stmt)]
        return make_page(rows, size, scope, lambda r: (r.created_at, r.session_id))

    # --- messages -------------------------------------------------------------------

    def append_message(
        self,
        tenant: str,
        session_id: str,
        sender: Sender | str,
        content: str,
        *,
        content_json: str | None = None,
    ) -> ChatMessageRecord:
        """Add a message with the session's next `seq`; refused once the session ended."""
        return self.append_messages(tenant, session_id, [(sender, content, content_json)])[0]

    def append_messages(
        self, tenant: str, session_id: str, messages: list[tuple[Sender | str, str, str | None]]
    ) -> list[ChatMessageRecord]:
        """Add (sender, content, content_json) messages with consecutive `seq`s in one
        transaction (an exchange lands whole or not at all); refused once the session ended.

        The UPDATE of last_active comes first because it locks the session row on
        PostgreSQL, so concurrent appends to one session queue there and each reads the
        max(seq) the previous one committed (SQLite: BEGIN IMMEDIATE does the same).
        """
        parsed = [(parse_enum(Sender, sender, "sender"), content, content_json)
                  for sender, content, content_json in messages]
        now = utcnow()
        with self._db.session() as s:
            locked = s.execute(
                update(t.ChatSession)
                .where(*_own(tenant, session_id), t.ChatSession.status == SessionStatus.ACTIVE.value)
                .values(last_active=now)
            ).rowcount
            if locked == 0:
                self._load_session(s, tenant, session_id)  # raises NotFoundError if missing
                raise ConflictError("chat_session", session_id, "session has ended")
            seq = s.execute(
                select(func.coalesce(func.max(t.ChatMessage.seq), 0)).where(
                    t.ChatMessage.session_id == session_id
                )
            ).scalar_one()
            rows = [dict(message_id=str(uuid.uuid4()), session_id=session_id, seq=seq + i, sender=sender.value,
                         content=content, content_json=content_json, timestamp=now)
                    for i, (sender, content, content_json) in enumerate(parsed, start=1)]
            s.execute(insert(t.ChatMessage), rows)
        return [ChatMessageRecord(**{**row, "sender": sender}) for row, (sender, _, _) in zip(rows, parsed)]

    def history(
        self, tenant: str, session_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[ChatMessageRecord]:
        """Messages with seq > `after_seq` in seq order (at most `limit` of them)."""
        stmt = (
            select(t.ChatMessage)
            .where(t.ChatMessage.session_id == session_id, t.ChatMessage.seq > after_seq)
            .order_by(t.ChatMessage.seq)
            .limit(limit)
        )
        with self._db.session(readonly=True) as s:
            self._load_session(s, tenant, session_id)
            return [_message(r) for r in s.scalars(stmt)]

    # --- JSON schemas ---------------------------------------------------------------
    # A tenant sees its own schemas and the built-in ones (owned by SHARED_TENANT); a name
    # taken by a built-in schema cannot be reused.

    def create_schema(self, tenant: str, name: str, schema_json: str) -> JsonSchemaRecord:
        check_name("tenant", tenant, TENANT_LEN)
        record = JsonSchemaRecord(name, schema_json, utcnow(), False)
        stmt = (
            self._db.insert(t.JsonSchema)
            .values(tenant=tenant, **vars(record))
            .on_conflict_do_nothing()
            .returning(t.JsonSchema.name)
        )
        with self._db.session() as s:
            if s.get(t.JsonSchema, (SHARED_TENANT, name)) is not None or s.execute(stmt).first() is None:
                raise AlreadyExistsError("json_schema", name)
        return record

    def register_builtin_schema(self, name: str, schema_json: str) -> JsonSchemaRecord:
        """Create or overwrite a built-in schema; idempotent, for server start-up."""
        now = utcnow()
        stmt = (
            self._db.insert(t.JsonSchema)
            .values(tenant=SHARED_TENANT, name=name, schema_json=schema_json, created_at=now, builtin=True)
            .on_conflict_do_update(
                index_elements=[t.JsonSchema.tenant, t.JsonSchema.name],
                set_={"schema_json": schema_json, "builtin": True},
            )
        )
        with self._db.session() as s:
            s.execute(stmt)
            return _schema(s.get_one(t.JsonSchema, (SHARED_TENANT, name), populate_existing=True))

    def get_schema(self, tenant: str, name: str) -> JsonSchemaRecord:
        with self._db.session(readonly=True) as s:
            row = s.get(t.JsonSchema, (tenant, name)) or s.get(t.JsonSchema, (SHARED_TENANT, name))
            if row is None:
                raise NotFoundError("json_schema", name)
            return _schema(row)

    def list_schemas(self, tenant: str) -> list[JsonSchemaRecord]:
        """The tenant's schemas and the built-in ones, by name; there are few, so no pagination."""
        stmt = (select(t.JsonSchema).where(t.JsonSchema.tenant.in_((tenant, SHARED_TENANT)))
                .order_by(t.JsonSchema.name))
        with self._db.session(readonly=True) as s:
            return [_schema(r) for r in s.scalars(stmt)]

    def delete_schema(self, tenant: str, name: str) -> None:
        """Delete one of the tenant's schemas; built-in ones are refused with ConflictError."""
        with self._db.session() as s:
            row = s.get(t.JsonSchema, (tenant, name))
            if row is None:
                if s.get(t.JsonSchema, (SHARED_TENANT, name)) is not None:
                    raise ConflictError("json_schema", name, "builtin schemas cannot be deleted")
                raise NotFoundError("json_schema", name)
            s.delete(row)

    @staticmethod
    def _load_session(s, tenant: str, session_id: str) -> t.ChatSession:
        row = s.get(t.ChatSession, session_id, populate_existing=True)
        if row is None or row.tenant != tenant:  # another tenant's session is a missing one
            raise NotFoundError("chat_session", session_id)
        return row


def _own(tenant: str, session_id: str) -> tuple:
    return t.ChatSession.session_id == session_id, t.ChatSession.tenant == tenant
