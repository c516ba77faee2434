"""Tenant isolation in the storage queries themselves, and the API-key and quota tables,
on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from storage import (
    AlreadyExistsError,
    ChatRepository,
    ConflictError,
    Database,
    JobRepository,
    LutRepository,
    NotFoundError,
    TenantRepository,
)


def test_the_same_lut_name_in_two_tenants_is_two_luts(db: Database) -> None:
    luts = LutRepository(db)
    luts.add_entry("alice", "notes", "gpt2", "Alice's fact", b"a", payload_format="raw")
    luts.add_entry("bob", "notes", "gpt2", "Bob's fact", b"b1", payload_format="raw")
    luts.add_entry("bob", "notes", "gpt2", "Bob's second", b"b2", payload_format="raw")
    assert [e.label for e in luts.load_entries("alice", "notes", "gpt2").entries] == ["Alice's fact"]
    assert luts.get_lut("bob", "notes", "gpt2").entry_count == 2
    assert [r.lut_name for r in luts.list_luts("alice").items] == ["notes"]
    assert luts.list_luts("carol").items == ()
    assert luts.get_version("carol", "notes", "gpt2") is None and luts.load_entries("carol", "notes", "gpt2") is None
    for call in (lambda: luts.get_lut("carol", "notes", "gpt2"), lambda: luts.delete_lut("carol", "notes", "gpt2"),
                 lambda: luts.list_entries("carol", "notes", "gpt2")):
        with pytest.raises(NotFoundError) as err:
            call()
        assert "carol" not in str(err.value)  # the answer is the one a missing LUT gets
    entry = luts.list_entries("alice", "notes", "gpt2").items[0]
    with pytest.raises(NotFoundError):  # bob cannot delete alice's entry through his own LUT of that name
        luts.delete_entry("bob", "notes", "gpt2", entry.id)
    assert luts.count_entries("bob") == 2 and luts.count_entries("alice") == 1


def test_another_tenants_chat_session_is_a_missing_one(db: Database) -> None:
    chat = ChatRepository(db)
    session = chat.create_session("alice", "user-1", "gpt2")
    chat.append_message("alice", session.session_id, "user", "hello")
    for call in (lambda: chat.get_session("bob", session.session_id),
                 lambda: chat.history("bob", session.session_id),
                 lambda: chat.append_message("bob", session.session_id, "user", "hi"),
                 lambda: chat.end_session("bob", session.session_id),
                 lambda: chat.touch("bob", session.session_id)):
        with pytest.raises(NotFoundError):
            call()
    assert chat.list_sessions("bob").items == ()
    assert [s.session_id for s in chat.list_sessions("alice").items] == [session.session_id]
    assert len(chat.history("alice", session.session_id)) == 1  # bob's attempts wrote nothing


def test_schemas_are_per_tenant_and_builtins_are_shared(db: Database) -> None:
    chat = ChatRepository(db)
    chat.register_builtin_schema("Block", '{"type": "object"}')
    chat.create_schema("alice", "Ticket", '{"type": "object"}')
    chat.create_schema("bob", "Ticket", '{"type": "object", "title": "b"}')  # same name, another tenant
    assert chat.get_schema("bob", "Ticket").schema_json.endswith('"b"}')
    assert [s.name for s in chat.list_schemas("alice")] == ["Block", "Ticket"]
    assert [s.name for s in chat.list_schemas("carol")] == ["Block"]
    with pytest.raises(AlreadyExistsError):
        chat.create_schema("alice", "Block", "{}")  # a built-in name is taken for everyone
    with pytest.raises(ConflictError):
        chat.delete_schema("alice", "Block")
    with pytest.raises(NotFoundError):
        chat.delete_schema("carol", "Ticket")
    chat.delete_schema("alice", "Ticket")
    assert chat.get_schema("bob", "Ticket").name == "Ticket"


def test_jobs_are_read_and_cancelled_only_by_their_tenant(db: Database) -> None:
    jobs = JobRepository(db)
    mine = jobs.create("sae_training", {}, tenant="alice")
    jobs.create("sae_training", {}, tenant="bob")
    shared = jobs.create("specialist_training", {}, tenant="")
    assert jobs.get(mine.job_id, tenant="alice").tenant == "alice"
    with pytest.raises(NotFoundError):
        jobs.get(mine.job_id, tenant="bob")
    with pytest.raises(NotFoundError):
        jobs.request_cancel(mine.job_id, tenant="bob")
    assert jobs.get(mine.job_id).state.value == "queued"
    assert [j.job_id for j in jobs.list(tenant="alice", kind="sae_training").items] == [mine.job_id]
    assert jobs.count(tenant="bob") == 1 and jobs.count() == 3
    assert jobs.get(shared.job_id, tenant="").kind.value == "specialist_training"


def test_api_keys_keep_hashes_and_revocation_sticks(db: Database) -> None:
    tenants = TenantRepository(db)
    key = tenants.create_key("k1", "alice", "hash-1", "laptop")
    tenants.create_key("k2", "bob", "hash-2")
    with pytest.raises(AlreadyExistsError):
        tenants.create_key("k1", "bob", "hash-3")
    assert tenants.get_key("k1") == key and tenants.get_key("nope") is None
    assert [k.key_id for k in tenants.list_keys(tenant="alice").items] == ["k1"]
    assert {k.key_id for k in tenants.list_keys().items} == {"k1", "k2"}
    first = tenants.revoke_key("k1")
    assert first.revoked and tenants.revoke_key("k1").revoked_at == first.revoked_at
    assert tenants.get_key("k1").revoked and not tenants.get_key("k2").revoked
    with pytest.raises(NotFoundError):
        tenants.revoke_key("nope")


def test_quotas_are_created_then_replaced(db: Database) -> None:
    tenants = TenantRepository(db)
    assert tenants.get_tenant("alice") is None
    tenants.set_quotas("alice", {"requests_per_minute": 5})
    updated = tenants.set_quotas("alice", {"requests_per_minute": 9, "lut_entries": 100})
    assert tenants.get_tenant("alice").quotas == {"requests_per_minute": 9, "lut_entries": 100}
    assert updated.updated_at >= updated.created_at
