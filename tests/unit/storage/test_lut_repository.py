"""LutRepository on SQLite and PostgreSQL: versions, payloads, pagination, concurrency."""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import func, select

from storage import (
    AlreadyExistsError,
    Database,
    InvalidArgumentError,
    LutRepository,
    LutVersion,
    NewLutEntry,
    NotFoundError,
)
from storage import schema as t


@pytest.fixture
def luts(db: Database) -> LutRepository:
    return LutRepository(db)

T = "t1"


def _add(luts: LutRepository, name="user_1", model="gpt2", label="l", payload=b"p"):
    return luts.add_entry(T, name, model, label, payload, payload_format="raw")


def test_add_entry_creates_lut_then_bumps_version(luts: LutRepository) -> None:
    first = luts.add_entry(
        T, "user_1", "gpt2", "TLG is a firm.", b"\x00k\x00v",
        payload_format="torch", label_context="Assistant: ",
    )  # fmt: skip
    second = _add(luts, payload=b"12345")
    assert first.version.version == 1 and second.version.version == 2
    assert first.version.lut_id == second.version.lut_id
    assert first.entry.label_context == "Assistant: " and first.entry.size_bytes == 4
    lut = luts.get_lut(T, "user_1", "gpt2")
    assert (lut.version, lut.entry_count, lut.total_bytes) == (2, 2, 9)
    assert lut.updated_at >= lut.created_at
    assert luts.get_version(T, "user_1", "gpt2") == LutVersion(lut.id, 2)


def test_luts_are_separate_per_model(luts: LutRepository) -> None:
    _add(luts, model="gpt2")
    _add(luts, model="gpt2")
    _add(luts, model="mistral")
    assert luts.get_lut(T, "user_1", "gpt2").version == 2
    assert luts.get_lut(T, "user_1", "mistral").version == 1
    assert luts.get_version(T, "user_1", "other") is None


def test_load_entries_returns_exact_payloads_in_order(luts: LutRepository) -> None:
    payloads = [os.urandom(1 << 20), b"\x00" * 17, b""]
    for i, payload in enumerate(payloads):
        luts.add_entry(T, "u", "gpt2", f"label {i}", payload, payload_format="safetensors")
    snapshot = luts.load_entries(T, "u", "gpt2")
    assert snapshot is not None
    assert [e.payload for e in snapshot.entries] == payloads
    assert [e.label for e in snapshot.entries] == ["label 0", "label 1", "label 2"]
    assert snapshot.version == luts.get_version(T, "u", "gpt2")
    assert luts.load_entries(T, "nobody", "gpt2") is None


def test_delete_entry_bumps_version_and_empty_lut_still_loads(luts: LutRepository) -> None:
    added = _add(luts)
    after = luts.delete_entry(T, "user_1", "gpt2", added.entry.id)
    assert after == LutVersion(added.version.lut_id, 2)
    snapshot = luts.load_entries(T, "user_1", "gpt2")
    assert snapshot is not None and snapshot.entries == () and snapshot.version == after
    with pytest.raises(NotFoundError):
        luts.delete_entry(T, "user_1", "gpt2", added.entry.id)
    with pytest.raises(NotFoundError):
        luts.delete_entry(T, "missing", "gpt2", added.entry.id)
    assert luts.get_version(T, "user_1", "gpt2") == after


def test_delete_entry_of_another_lut_is_not_found(luts: LutRepository) -> None:
    other = _add(luts, name="other")
    _add(luts, name="mine")
    with pytest.raises(NotFoundError):
        luts.delete_entry(T, "mine", "gpt2", other.entry.id)
    assert luts.get_lut(T, "other", "gpt2").entry_count == 1


def test_delete_lut_cascades_to_its_entries_only(db: Database, luts: LutRepository) -> None:
    for _ in range(3):
        _add(luts, name="doomed")
    _add(luts, name="kept")
    luts.delete_lut(T, "doomed", "gpt2")
    with db.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(t.LutEntry)) == 1
    with pytest.raises(NotFoundError) as err:
        luts.get_lut(T, "doomed", "gpt2")
    assert (err.value.resource_type, err.value.name) == ("lut", "gpt2/doomed")
    with pytest.raises(NotFoundError):
        luts.delete_lut(T, "doomed", "gpt2")
    assert luts.get_lut(T, "kept", "gpt2").entry_count == 1


def test_recreated_lut_has_a_different_version_identity(luts: LutRepository) -> None:
    old = _add(luts).version
    luts.delete_lut(T, "user_1", "gpt2")
    new = _add(luts).version
    # Same counter value, but a cache keyed by LutVersion must see a change.
    assert new.version == old.version and new != old


def test_list_luts_pages_through_everything_in_order(luts: LutRepository) -> None:
    expected = []
    for name in ["d", "a", "c", "b", "e"]:
        for model in ["mistral", "gpt2"]:
            _add(luts, name=name, model=model)
            expected.append((name, model))
    seen, token, pages = [], "", 0
    while True:
        page = luts.list_luts(T, page_size=3, page_token=token)
        seen += [(r.lut_name, r.model) for r in page.items]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(expected) and pages == 4
    only_gpt2 = luts.list_luts(T, model="gpt2", page_size=10)
    assert [r.lut_name for r in only_gpt2.items] == ["a", "b", "c", "d", "e"]
    assert only_gpt2.next_page_token == ""
    assert all(r.entry_count == 1 for r in only_gpt2.items)


def test_page_tokens_are_checked(luts: LutRepository) -> None:
    for name in "abc":
        _add(luts, name=name)
    token = luts.list_luts(T, model="gpt2", page_size=1).next_page_token
    assert token
    with pytest.raises(InvalidArgumentError) as err:
        luts.list_luts(T, model="mistral", page_token=token)
    assert err.value.field == "page_token"
    with pytest.raises(InvalidArgumentError):
        luts.list_luts(T, page_token="not a token!")
    with pytest.raises(InvalidArgumentError):
        luts.list_luts(T, page_size=-1)


def test_list_entries_pages_in_insertion_order(luts: LutRepository) -> None:
    ids = [_add(luts, label=f"l{i}").entry.id for i in range(7)]
    first = luts.list_entries(T, "user_1", "gpt2", page_size=4)
    second = luts.list_entries(T, "user_1", "gpt2", page_size=4, page_token=first.next_page_token)
    assert [e.id for e in first.items + second.items] == ids
    assert second.next_page_token == ""
    with pytest.raises(NotFoundError):
        luts.list_entries(T, "missing", "gpt2")


def test_add_entry_rejects_bad_names(luts: LutRepository) -> None:
    with pytest.raises(InvalidArgumentError):
        _add(luts, name="")
    with pytest.raises(InvalidArgumentError):
        luts.add_entry(T, "u", "gpt2", "l", b"p", payload_format="")
    with pytest.raises(InvalidArgumentError) as err:
        _add(luts, name="x" * 256)  # PostgreSQL would reject it, SQLite would store it
    assert err.value.field == "lut_name"
    assert luts.list_luts(T).items == ()


def test_concurrent_add_entry_from_threads_all_land(luts: LutRepository, run_threads) -> None:
    threads, per_thread = 8, 15

    def work(i: int) -> list[int]:
        return [_add(luts, label=f"{i}-{j}").version.version for j in range(per_thread)]

    versions = [v for vs in run_threads(threads, work) for v in vs]
    total = threads * per_thread
    # Every call saw its own version: no two increments merged, none lost.
    assert sorted(versions) == list(range(1, total + 1))
    lut = luts.get_lut(T, "user_1", "gpt2")
    assert (lut.version, lut.entry_count) == (total, total)


def test_concurrent_add_entry_from_processes_all_land(
    db_url: str, luts: LutRepository, run_processes
) -> None:
    processes, per_process = 4, 20
    outputs = run_processes(
        [
            [db_url, "add_entries", "shared", "gpt2", str(per_process), f"p{i}"]
            for i in range(processes)
        ]
    )
    versions = sorted(v for out in outputs for v in json.loads(out))
    total = processes * per_process
    assert versions == list(range(1, total + 1))
    snapshot = luts.load_entries(T, "shared", "gpt2")
    assert snapshot is not None and snapshot.version.version == total
    assert sorted(e.label for e in snapshot.entries) == sorted(
        f"p{i}-{j}" for i in range(processes) for j in range(per_process)
    )


def test_replace_entries_is_all_or_nothing(luts: LutRepository) -> None:
    _add(luts, label="old 1")
    _add(luts, label="old 2")
    new = [NewLutEntry(f"new {i}", None, "raw", b"x" * i) for i in range(3)]
    with pytest.raises(AlreadyExistsError):
        luts.replace_entries(T, "user_1", "gpt2", new, overwrite=False)
    broken = [*new, NewLutEntry(None, None, "raw", b"y")]  # NOT NULL label fails mid-insert
    with pytest.raises(Exception):
        luts.replace_entries(T, "user_1", "gpt2", broken, overwrite=True)
    kept = luts.load_entries(T, "user_1", "gpt2")
    assert [e.label for e in kept.entries] == ["old 1", "old 2"] and kept.version.version == 2

    version = luts.replace_entries(T, "user_1", "gpt2", new, overwrite=True)
    after = luts.load_entries(T, "user_1", "gpt2")
    assert [e.label for e in after.entries] == ["new 0", "new 1", "new 2"]
    assert version.version == after.version.version == 3  # readers' caches see the change
    fresh = luts.replace_entries(T, "user_2", "gpt2", new[:1], overwrite=False)
    assert fresh.version == 1 and luts.get_lut(T, "user_2", "gpt2").entry_count == 1


def test_entry_labels_lists_every_label_in_insertion_order(luts: LutRepository) -> None:
    a = _add(luts, label="My dog is called Biscuit.").entry.id
    b = _add(luts, label="My dog is called Rex now.").entry.id
    luts.add_entry(T, "user_2", "gpt2", "elsewhere", b"p", payload_format="raw")
    assert luts.entry_labels(T, "user_1", "gpt2") == [(a, "My dog is called Biscuit."), (b, "My dog is called Rex now.")]
    luts.delete_entry(T, "user_1", "gpt2", a)
    assert luts.entry_labels(T, "user_1", "gpt2") == [(b, "My dog is called Rex now.")]
    with pytest.raises(NotFoundError):
        luts.entry_labels(T, "nobody", "gpt2")
