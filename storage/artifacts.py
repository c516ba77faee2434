"""Artifacts in the database: named files shared by every replica (uploaded corpora, SAE
checkpoints and results, specialist weights), stored as chunked blobs on SQLite or
PostgreSQL.

A write streams its chunks under a fresh blob id, in short transactions, and then swaps the
artifact's blob id in one transaction that also deletes the old blob: readers see the whole
old file or the whole new one. A crash mid-write leaves chunks no artifact names;
`sweep_orphans` removes them once they are older than any write could take.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from storage import schema as t
from storage.db import Database
from storage.errors import ConflictError, InvalidArgumentError, NotFoundError, check_name
from storage.schema import ARTIFACT_KEY_LEN, TENANT_LEN, utcnow

CHUNK_BYTES = 1024 * 1024
"""Size of one stored chunk: large enough that a 100 MB checkpoint is 100 rows, small
enough that no single value strains either database."""
CHUNKS_PER_TRANSACTION = 8
"""Chunks written (or read) per statement batch: bounds a transaction to about 8 MB."""


@dataclass(frozen=True)
class ArtifactInfo:
    tenant: str
    key: str
    size_bytes: int
    sha256: str
    created_at: datetime
    updated_at: datetime


def check_key(key: str) -> str:
    """Keys are relative slash-separated paths: no empty, '.' or '..' segments."""
    check_name("key", key, ARTIFACT_KEY_LEN)
    parts = key.split("/")
    if key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidArgumentError("key", f"{key!r} must be a relative path without empty, '.' or '..' parts")
    return key


def _prefix_range(prefix: str):
    # Keys under a prefix, by range rather than LIKE: '%' and '_' in keys stay literal.
    return t.Artifact.key >= prefix, t.Artifact.key < prefix + "\U0010ffff"


class ArtifactRepository:
    """Reads and writes artifacts; every method names the owning tenant."""

    def __init__(self, db: Database, chunk_bytes: int = CHUNK_BYTES) -> None:
        self._db = db
        self._chunk = chunk_bytes

    def put(self, tenant: str, key: str, data: bytes | Iterable[bytes]) -> ArtifactInfo:
        """Store `data` (bytes, or pieces of any size) as `key`, replacing what was there."""
        check_name("tenant", tenant, TENANT_LEN, allow_empty=True)
        check_key(key)
        blob_id = uuid.uuid4().hex
        digest = hashlib.sha256()
        size = seq = 0
        pending: list[dict] = []
        try:
            for chunk in _rechunk([data] if isinstance(data, (bytes, bytearray, memoryview)) else data,
                                  self._chunk):
                digest.update(chunk)
                size += len(chunk)
                pending.append({"blob_id": blob_id, "seq": seq, "data": chunk, "created_at": utcnow()})
                seq += 1
                if len(pending) >= CHUNKS_PER_TRANSACTION:
                    self._write_chunks(pending)
                    pending = []
            self._write_chunks(pending)
            return self._commit(tenant, key, blob_id, size, digest.hexdigest())
        except BaseException:
            self._drop_blob(blob_id)
            raise

    def _write_chunks(self, rows: list[dict]) -> None:
        if rows:
            with self._db.session() as s:
                s.execute(self._db.insert(t.ArtifactChunk), rows)

    def _commit(self, tenant: str, key: str, blob_id: str, size: int, sha256: str) -> ArtifactInfo:
        now = utcnow()
        with self._db.session() as s:
            row = s.get(t.Artifact, (tenant, key), with_for_update=True)
            if row is None:
                row = t.Artifact(tenant=tenant, key=key, blob_id=blob_id, size_bytes=size, sha256=sha256,
                                 created_at=now, updated_at=now)
                s.add(row)
            else:
                old = row.blob_id
                row.blob_id, row.size_bytes, row.sha256, row.updated_at = blob_id, size, sha256, now
                s.execute(delete(t.ArtifactChunk).where(t.ArtifactChunk.blob_id == old))
            s.flush()
            return _info(row)

    def _drop_blob(self, blob_id: str) -> None:
        try:
            with self._db.session() as s:
                s.execute(delete(t.ArtifactChunk).where(t.ArtifactChunk.blob_id == blob_id))
        except Exception:  # the sweep removes it later; the original error matters more
            pass

    def stat(self, tenant: str, key: str) -> ArtifactInfo | None:
        with self._db.session(readonly=True) as s:
            row = s.get(t.Artifact, (tenant, key))
            return _info(row) if row is not None else None

    def chunks(self, tenant: str, key: str) -> Iterator[bytes]:
        """The artifact's bytes, chunk by chunk. NotFoundError when absent; ConflictError
        when it was replaced while being read (read again for the new version)."""
        info_row = self._row(tenant, key)
        blob_id, expected = info_row.blob_id, info_row.size_bytes
        seq = got = 0
        while True:
            stmt = (select(t.ArtifactChunk.seq, t.ArtifactChunk.data)
                    .where(t.ArtifactChunk.blob_id == blob_id, t.ArtifactChunk.seq >= seq)
                    .order_by(t.ArtifactChunk.seq).limit(CHUNKS_PER_TRANSACTION))
            with self._db.session(readonly=True) as s:
                rows = s.execute(stmt).all()
            for row_seq, data in rows:
                if row_seq != seq:
                    break
                got += len(data)
                seq += 1
                yield bytes(data)
            if got == expected:
                return
            if len(rows) < CHUNKS_PER_TRANSACTION or rows[-1][0] != seq - 1:
                raise ConflictError("artifact", key, "replaced while it was being read")

    def get(self, tenant: str, key: str) -> bytes:
        """The whole artifact, read again if it was replaced mid-read."""
        for _ in range(3):
            try:
                return b"".join(self.chunks(tenant, key))
            except ConflictError:
                continue
        return b"".join(self.chunks(tenant, key))

    def list(self, tenant: str, prefix: str = "") -> list[ArtifactInfo]:
        """Artifacts whose key starts with `prefix`, by key."""
        stmt = select(t.Artifact).where(t.Artifact.tenant == tenant, *_prefix_range(prefix)).order_by(t.Artifact.key)
        with self._db.session(readonly=True) as s:
            return [_info(r) for r in s.scalars(stmt)]

    def total_bytes(self, tenant: str, prefix: str = "") -> int:
        stmt = select(func.coalesce(func.sum(t.Artifact.size_bytes), 0)).where(
            t.Artifact.tenant == tenant, *_prefix_range(prefix))
        with self._db.session(readonly=True) as s:
            return int(s.execute(stmt).scalar_one())

    def delete(self, tenant: str, key: str) -> bool:
        """Remove one artifact; False when there was none."""
        return self._delete(tenant, [t.Artifact.key == key]) > 0

    def delete_prefix(self, tenant: str, prefix: str) -> int:
        """Remove every artifact under `prefix`; returns how many."""
        return self._delete(tenant, list(_prefix_range(prefix)))

    def _delete(self, tenant: str, where: list) -> int:
        with self._db.session() as s:
            rows = s.execute(delete(t.Artifact).where(t.Artifact.tenant == tenant, *where)
                             .returning(t.Artifact.blob_id)).scalars().all()
            if rows:
                s.execute(delete(t.ArtifactChunk).where(t.ArtifactChunk.blob_id.in_(rows)))
            return len(rows)

    def sweep_orphans(self, older_than: timedelta = timedelta(hours=1)) -> int:
        """Delete chunks of blobs no artifact names (crashed writes) older than `older_than`."""
        named = select(t.Artifact.blob_id)
        stmt = delete(t.ArtifactChunk).where(t.ArtifactChunk.created_at < utcnow() - older_than,
                                             t.ArtifactChunk.blob_id.not_in(named))
        with self._db.session() as s:
            return s.execute(stmt).rowcount or 0

    def _row(self, tenant: str, key: str) -> t.Artifact:
        with self._db.session(readonly=True) as s:
            row = s.get(t.Artifact, (tenant, key))
            if row is None:
                raise NotFoundError("artifact", key)
            s.expunge(row)
            return row


def _rechunk(pieces: Iterable[bytes], size: int) -> Iterator[bytes]:
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def _info(row: t.Artifact) -> ArtifactInfo:
    return ArtifactInfo(row.tenant, row.key, int(row.size_bytes), row.sha256, row.created_at, row.updated_at)
