"""ArtifactRepository on SQLite and PostgreSQL: chunked round trips, atomic replacement,
tenants, prefixes, reads that see a replacement, and the sweep of crashed writes."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from storage import ConflictError, Database, InvalidArgumentError, NotFoundError
from storage import schema as t
from storage.artifacts import ArtifactRepository


@pytest.fixture
def store(db: Database) -> ArtifactRepository:
    return ArtifactRepository(db, chunk_bytes=10)


def test_put_and_read_back_in_chunks(store: ArtifactRepository, db: Database) -> None:
    data = bytes(range(256)) * 3
    info = store.put("t1", "sae/jobs/j/sae.pt", [data[:7], data[7:500], data[500:]])
    assert (info.size_bytes, info.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert store.get("t1", "sae/jobs/j/sae.pt") == data
    assert [len(c) for c in store.chunks("t1", "sae/jobs/j/sae.pt")][:2] == [10, 10]
    with db.session() as s:
        assert s.query(t.ArtifactChunk).count() == -(-len(data) // 10)
    store.put("t1", "empty", b"")
    assert store.get("t1", "empty") == b"" and store.stat("t1", "empty").size_bytes == 0


def test_replacing_keeps_one_blob_and_tenants_apart(store: ArtifactRepository, db: Database) -> None:
    store.put("t1", "a/x.txt", b"first version")
    store.put("t1", "a/x.txt", b"second")
    store.put("t2", "a/x.txt", b"other tenant")
    assert store.get("t1", "a/x.txt") == b"second" and store.get("t2", "a/x.txt") == b"other tenant"
    with db.session() as s:
        assert s.query(t.ArtifactChunk).count() == 1 + 2  # the first version's chunks are gone
    with pytest.raises(NotFoundError):
        store.get("t3", "a/x.txt")
    assert store.stat("t3", "a/x.txt") is None


def test_prefixes_list_total_and_delete(store: ArtifactRepository) -> None:
    for key in ("c/a_1.txt", "c/a%2.txt", "c/b/deep.txt", "cx/other.txt"):
        store.put("t1", key, key.encode())
    assert [i.key for i in store.list("t1", "c/")] == ["c/a%2.txt", "c/a_1.txt", "c/b/deep.txt"]
    assert store.total_bytes("t1", "c/") == sum(len(k) for k in ("c/a_1.txt", "c/a%2.txt", "c/b/deep.txt"))
    assert store.delete_prefix("t1", "c/") == 3 and [i.key for i in store.list("t1")] == ["cx/other.txt"]
    assert store.delete("t1", "cx/other.txt") and not store.delete("t1", "cx/other.txt")


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "./a", "a/", "x" * 513])
def test_bad_keys_are_refused(store: ArtifactRepository, key: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        store.put("t1", key, b"data")
    assert err.value.field == "key"


def test_a_read_that_sees_a_replacement_raises_and_get_reads_again(store: ArtifactRepository) -> None:
    store.put("t1", "k", b"A" * 200)  # 20 chunks: more than one read batch
    reader = store.chunks("t1", "k")
    first = next(reader)
    store.put("t1", "k", b"B" * 200)
    with pytest.raises(ConflictError):
        list(reader)
    assert first == b"A" * 10 and store.get("t1", "k") == b"B" * 200


def test_a_failed_write_leaves_nothing_and_sweep_removes_crashed_ones(store: ArtifactRepository, db: Database
                                                                     ) -> None:
    def broken():
        yield b"x" * 25
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError):
        store.put("t1", "k", broken())
    assert store.stat("t1", "k") is None
    with db.session() as s:
        assert s.query(t.ArtifactChunk).count() == 0
        s.add(t.ArtifactChunk(blob_id="crashed", seq=0, data=b"left", created_at=t.utcnow() - timedelta(hours=2)))
    store.put("t1", "kept", b"kept")
    assert store.sweep_orphans(timedelta(hours=1)) == 1 and store.get("t1", "kept") == b"kept"
