"""ChatRepository on SQLite and PostgreSQL: sessions, message ordering, JSON schemas."""

from __future__ import annotations

import pytest

from storage import (
    AlreadyExistsError,
    ChatRepository,
    ConflictError,
    Database,
    InvalidArgumentError,
    NotFoundError,
    Sender,
    SessionStatus,
)


@pytest.fixture
def chat(db: Database) -> ChatRepository:
    return ChatRepository(db)

T = "t1"


def test_create_and_get_session(chat: ChatRepository) -> None:
    created = chat.create_session(T, "alice", "mistral", system_prompt="Be brief.")
    assert created.status is SessionStatus.ACTIVE and created.ended_at is None
    assert len(created.session_id) == 36  # a UUID string
    assert chat.get_session(T, created.session_id) == created
    with pytest.raises(AlreadyExistsError):
        chat.create_session(T, "bob", "gpt2", session_id=created.session_id)
    with pytest.raises(InvalidArgumentError):
        chat.create_session(T, "bob", "gpt2", session_id="x" * 37)
    with pytest.raises(NotFoundError) as err:
        chat.get_session(T, "nope")
    assert (err.value.resource_type, err.value.name) == ("chat_session", "nope")


def test_messages_get_consecutive_seq_and_history_is_ordered(chat: ChatRepository) -> None:
    sid = chat.create_session(T, "alice", "gpt2").session_id
    other = chat.create_session(T, "alice", "gpt2").session_id
    chat.append_message(T, other, "user", "elsewhere")
    sent = [
        chat.append_message(T, sid, Sender.SYSTEM, "rules"),
        chat.append_message(T, sid, "user", "hi"),
        chat.append_message(T, sid, "assistant", "{\"a\": 1}", content_json="{\"a\": 1}"),
    ]
    assert [m.seq for m in sent] == [1, 2, 3]
    history = chat.history(T, sid)
    assert history == sent
    assert [m.sender for m in history] == [Sender.SYSTEM, Sender.USER, Sender.ASSISTANT]
    assert history[2].content_json == "{\"a\": 1}"
    assert [m.seq for m in chat.history(T, sid, after_seq=1, limit=1)] == [2]
    assert [m.content for m in chat.history(T, other)] == ["elsewhere"]


def test_append_updates_last_active(chat: ChatRepository) -> None:
    session = chat.create_session(T, "alice", "gpt2")
    message = chat.append_message(T, session.session_id, "user", "hi")
    after = chat.get_session(T, session.session_id)
    assert after.last_active == message.timestamp > session.last_active


def test_append_is_refused_for_ended_missing_or_bad_sender(chat: ChatRepository) -> None:
    sid = chat.create_session(T, "alice", "gpt2").session_id
    with pytest.raises(InvalidArgumentError) as bad:
        chat.append_message(T, sid, "robot", "x")
    assert bad.value.field == "sender"
    chat.end_session(T, sid)
    with pytest.raises(ConflictError):
        chat.append_message(T, sid, "user", "too late")
    with pytest.raises(NotFoundError):
        chat.append_message(T, "missing", "user", "x")
    with pytest.raises(NotFoundError):
        chat.history(T, "missing")
    assert chat.history(T, sid) == []


def test_concurrent_appends_keep_a_gapless_order(chat: ChatRepository, run_threads) -> None:
    sid = chat.create_session(T, "alice", "gpt2").session_id
    threads, per_thread = 8, 15

    def work(i: int) -> list[int]:
        return [chat.append_message(T, sid, "user", f"{i}:{j}").seq for j in range(per_thread)]

    seqs = run_threads(threads, work)
    history = chat.history(T, sid)
    assert [m.seq for m in history] == list(range(1, threads * per_thread + 1))
    for i, thread_seqs in enumerate(seqs):
        # Each thread's own messages come back in the order it sent them.
        assert thread_seqs == sorted(thread_seqs)
        mine = [m.content for m in history if m.content.startswith(f"{i}:")]
        assert mine == [f"{i}:{j}" for j in range(per_thread)]


def test_end_session_is_idempotent(chat: ChatRepository) -> None:
    sid = chat.create_session(T, "alice", "gpt2").session_id
    first = chat.end_session(T, sid)
    assert first.status is SessionStatus.ENDED and first.ended_at is not None
    second = chat.end_session(T, sid)
    assert second == first  # ended_at is not moved by the repeat
    with pytest.raises(NotFoundError):
        chat.end_session(T, "missing")


def test_touch_moves_last_active(chat: ChatRepository) -> None:
    session = chat.create_session(T, "alice", "gpt2")
    chat.touch(T, session.session_id)
    assert chat.get_session(T, session.session_id).last_active > session.last_active
    with pytest.raises(NotFoundError):
        chat.touch(T, "missing")


def test_list_sessions_filters_and_pages_newest_first(chat: ChatRepository) -> None:
    alice = [chat.create_session(T, "alice", "gpt2").session_id for _ in range(5)]
    bob = chat.create_session(T, "bob", "gpt2").session_id
    chat.end_session(T, alice[1])
    seen, token = [], ""
    while True:
        page = chat.list_sessions(T, user_id="alice", page_size=2, page_token=token)
        assert len(page.items) <= 2
        seen += [s.session_id for s in page.items]
        if not (token := page.next_page_token):
            break
    assert seen == alice[::-1]
    active = chat.list_sessions(T, user_id="alice", active_only=True)
    assert [s.session_id for s in active.items] == [s for s in alice[::-1] if s != alice[1]]
    everyone = chat.list_sessions(T)
    assert [s.session_id for s in everyone.items] == [bob, *alice[::-1]]
    with pytest.raises(InvalidArgumentError):
        token = chat.list_sessions(T, user_id="alice", page_size=1).next_page_token
        chat.list_sessions(T, user_id="bob", page_token=token)


def test_json_schema_crud(chat: ChatRepository) -> None:
    created = chat.create_schema(T, "person", '{"type": "object"}')
    assert chat.get_schema(T, "person") == created and created.builtin is False
    with pytest.raises(AlreadyExistsError):
        chat.create_schema(T, "person", "{}")
    chat.register_builtin_schema("json_object", '{"type": "object"}')
    again = chat.register_builtin_schema("json_object", '{"type": "object", "x": 1}')
    assert again.builtin and again.schema_json.endswith("1}")
    assert [s.name for s in chat.list_schemas(T)] == ["json_object", "person"]
    with pytest.raises(ConflictError):
        chat.delete_schema(T, "json_object")
    chat.delete_schema(T, "person")
    with pytest.raises(NotFoundError):
        chat.get_schema(T, "person")
    with pytest.raises(NotFoundError):
        chat.delete_schema(T, "person")
    assert [s.name for s in chat.list_schemas(T)] == ["json_object"]
