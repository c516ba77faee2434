"""LUT persistence: per-(tenant, lut_name, model) lookup tables and their learned entries.

The payload of an entry is opaque bytes (the caller serializes its key/value tensors and
names the format); this module never imports torch. Every change bumps the LUT's `version`
so the model side can keep a cache keyed by `LutVersion` and reload only when it moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update

from storage import schema as t
from storage.db import Database
from storage.errors import AlreadyExistsError, NotFoundError, check_name
from storage.pagination import Page, after_key, clamp_page_size, decode_token, make_page
from storage.schema import TENANT_LEN, utcnow


@dataclass(frozen=True)
class LutVersion:
    """Identity of one state of a LUT. Comparing the whole value (not just `version`) is what
    detects a LUT deleted and re-created since: ids are never reused."""

    lut_id: int
    version: int


@dataclass(frozen=True)
class LutRecord:
    id: int
    lut_name: str
    model: str
    version: int
    """Starts at 1 on creation; +1 on every added or deleted entry."""
    entry_count: int
    total_bytes: int
    """Sum of the entries' payload sizes."""
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class LutEntryRecord:
    """An entry's metadata, without its payload (what listings return)."""

    id: int
    lut_id: int
    label: str
    label_context: str | None
    payload_format: str
    size_bytes: int
    created_at: datetime


@dataclass(frozen=True)
class LutEntryData(LutEntryRecord):
    """An entry with its payload, as `load_entries` returns it."""

    payload: bytes


@dataclass(frozen=True)
class LutEntryAdded:
    entry: LutEntryRecord
    version: LutVersion
    """The LUT's state right after this entry landed."""


@dataclass(frozen=True)
class LutSnapshot:
    """All entries of a LUT read in one statement, so they match `version` exactly."""

    lut_name: str
    model: str
    version: LutVersion
    entries: tuple[LutEntryData, ...]


_ENTRY_META = (
    t.LutEntry.id,
    t.LutEntry.lut_id,
    t.LutEntry.label,
    t.LutEntry.label_context,
    t.LutEntry.payload_format,
    t.LutEntry.size_bytes,
    t.LutEntry.created_at,
)
# Correlated subqueries use the lut_id index; a joined GROUP BY would scan every entry.
_ENTRY_COUNT = (
    select(func.count()).where(t.LutEntry.lut_id == t.Lut.id).correlate(t.Lut).scalar_subquery()
)
_TOTAL_BYTES = (
    select(func.coalesce(func.sum(t.LutEntry.size_bytes), 0))
    .where(t.LutEntry.lut_id == t.Lut.id)
    .correlate(t.Lut)
    .scalar_subquery()
)
_LUT_ROW = select(
    t.Lut.id,
    t.Lut.lut_name,
    t.Lut.model,
    t.Lut.version,
    _ENTRY_COUNT,
    _TOTAL_BYTES,
    t.Lut.created_at,
    t.Lut.updated_at,
)


def _lut_name(lut_name: str, model: str) -> str:
    return f"{model}/{lut_name}"


def _key(tenant: str, lut_name: str, model: str) -> tuple:
    """The WHERE clause of one LUT: the tenant is part of every LUT's identity."""
    return t.Lut.tenant == tenant, t.Lut.lut_name == lut_name, t.Lut.model == model


@dataclass(frozen=True)
class NewLutEntry:
    """An entry to write in bulk (import)."""

    label: str
    label_context: str | None
    payload_format: str
    payload: bytes


class LutRepository:
    """Reads and writes LUTs; every method is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_entry(
        self,
        tenant: str,
        lut_name: str,
        model: str,
        label: str,
        payload: bytes,
        *,
        payload_format: str,
        label_context: str | None = None,
    ) -> LutEntryAdded:
        """Append an entry, creating the LUT on first use; the version bump and the entry
        land together or not at all.

        The upsert takes the LUT row's write lock (PostgreSQL waits on a concurrent upsert
        of the same key, then increments the committed version; SQLite already holds the
        database write lock from BEGIN IMMEDIATE), so concurrent callers in any number of
        threads or processes each get their own version number and none is lost.
        """
        check_name("tenant", tenant, TENANT_LEN)
        check_name("lut_name", lut_name)
        check_name("model", model)
        check_name("payload_format", payload_format, 64)
        payload = bytes(payload)
        now = utcnow()
        upsert = self._bump_version(tenant, lut_name, model, now)
        with self._db.session() as s:
            lut_id, version = s.execute(upsert).one()
            entry_id = s.execute(
                insert(t.LutEntry)
                .values(
                    lut_id=lut_id,
                    label=label,
                    label_context=label_context,
                    payload=payload,
                    payload_format=payload_format,
                    size_bytes=len(payload),
                    created_at=now,
                )
                .returning(t.LutEntry.id)
            ).scalar_one()
        entry = LutEntryRecord(
            entry_id, lut_id, label, label_context, payload_format, len(payload), now
        )
        return LutEntryAdded(entry, LutVersion(lut_id, version))

    def replace_entries(
        self, tenant: str, lut_name: str, model: str, entries: list[NewLutEntry], *, overwrite: bool
    ) -> LutVersion:
        """Make `entries` the LUT's whole content in one transaction (import): readers see the
        old entries or all the new ones, never a mix, and a failure changes nothing. A LUT
        that already has entries is only replaced with `overwrite`; AlreadyExistsError else."""
        check_name("lut_name", lut_name)
        check_name("model", model)
        for e in entries:
            check_name("payload_format", e.payload_format, 64)
        now = utcnow()
        upsert = self._bump_version(tenant, lut_name, model, now)
        rows = [
            {"label": e.label, "label_context": e.label_context, "payload": bytes(e.payload),
             "payload_format": e.payload_format, "size_bytes": len(e.payload), "created_at": now}
            for e in entries
        ]  # fmt: skip
        with self._db.session() as s:
            lut_id, version = s.execute(upsert).one()
            held = s.execute(
                select(func.count()).select_from(t.LutEntry).where(t.LutEntry.lut_id == lut_id)
            ).scalar_one()
            if held and not overwrite:
                raise AlreadyExistsError("lut", _lut_name(lut_name, model))
            s.execute(delete(t.LutEntry).where(t.LutEntry.lut_id == lut_id))
            if rows:
                s.execute(insert(t.LutEntry), [{**r, "lut_id": lut_id} for r in rows])
        return LutVersion(lut_id, version)

    def _bump_version(self, tenant: str, lut_name: str, model: str, now: datetime):
        """Create the LUT at version 1 or add one to its version, returning (id, version). The
        upsert takes the row's write lock, which serialises writers of one LUT."""
        return (
            self._db.insert(t.Lut)
            .values(tenant=tenant, lut_name=lut_name, model=model, version=1, created_at=now, updated_at=now)
            .on_conflict_do_update(
                index_elements=[t.Lut.tenant, t.Lut.lut_name, t.Lut.model],
                set_={"version": t.Lut.version + 1, "updated_at": now},
            )
            .returning(t.Lut.id, t.Lut.version)
        )

    def get_lut(self, tenant: str, lut_name: str, model: str) -> LutRecord:
        with self._db.session(readonly=True) as s:
            row = s.execute(_LUT_ROW.where(*_key(tenant, lut_name, model))).one_or_none()
        if row is None:
            raise NotFoundError("lut", _lut_name(lut_name, model))
        return LutRecord(*row)

    def get_version(self, tenant: str, lut_name: str, model: str) -> LutVersion | None:
        """Current version, or None when the LUT does not exist; one indexed row read."""
        with self._db.session(readonly=True) as s:
            row = s.execute(
                select(t.Lut.id, t.Lut.version).where(*_key(tenant, lut_name, model))
            ).one_or_none()
        return None if row is None else LutVersion(*row)

    def list_luts(
        self, tenant: str, *, model: str | None = None, page_size: int = 0, page_token: str = ""
    ) -> Page[LutRecord]:
        """The tenant's LUTs ordered by (lut_name, model), optionally of one model only."""
        size = clamp_page_size(page_size)
        scope = f"luts:{tenant}:{model or ''}"
        key = decode_token(page_token, scope, (str, str))
        stmt = _LUT_ROW.where(t.Lut.tenant == tenant).order_by(t.Lut.lut_name, t.Lut.model).limit(size + 1)
        if model:
            stmt = stmt.where(t.Lut.model == model)
        if key is not None:
            stmt = stmt.where(after_key((t.Lut.lut_name, t.Lut.model), key))
        with self._db.session(readonly=True) as s:
            rows = [LutRecord(*r) for r in s.execute(stmt)]
        return make_page(rows, size, scope, lambda r: (r.lut_name, r.model))

    def list_entries(
        self, tenant: str, lut_name: str, model: str, *, page_size: int = 0, page_token: str = ""
    ) -> Page[LutEntryRecord]:
        """Entries' metadata in insertion order; raises NotFoundError for an unknown LUT."""
        size = clamp_page_size(page_size)
        scope = f"lut_entries:{tenant}:{model}/{lut_name}"
        key = decode_token(page_token, scope, (int,))
        with self._db.session(readonly=True) as s:
            lut_id = self._lut_id(s, tenant, lut_name, model)
            stmt = (
                select(*_ENTRY_META)
                .where(t.LutEntry.lut_id == lut_id)
                .order_by(t.LutEntry.id)
                .limit(size + 1)
            )
            if key is not None:
                stmt = stmt.where(t.LutEntry.id > key[0])
            rows = [LutEntryRecord(*r) for r in s.execute(stmt)]
        return make_page(rows, size, scope, lambda r: (r.id,))

    def entry_labels(self, tenant: str, lut_name: str, model: str) -> list[tuple[int, str]]:
        """(id, label) of every entry in insertion order, without payloads; raises
        NotFoundError for an unknown LUT."""
        with self._db.session(readonly=True) as s:
            lut_id = self._lut_id(s, tenant, lut_name, model)
            rows = s.execute(
                select(t.LutEntry.id, t.LutEntry.label).where(t.LutEntry.lut_id == lut_id).order_by(t.LutEntry.id)
            ).all()
        return [(int(r[0]), r[1]) for r in rows]

    def delete_entry(self, tenant: str, lut_name: str, model: str, entry_id: int) -> LutVersion:
        """Delete one entry and bump the version; returns the new version."""
        with self._db.session() as s:
            # Bump first: it locks the LUT row, serializing with add_entry. If the entry turns
            # out not to exist, raising rolls the bump back with everything else.
            row = s.execute(
                update(t.Lut)
                .where(*_key(tenant, lut_name, model))
                .values(version=t.Lut.version + 1, updated_at=utcnow())
                .returning(t.Lut.id, t.Lut.version)
            ).one_or_none()
            if row is None:
                raise NotFoundError("lut", _lut_name(lut_name, model))
            deleted = s.execute(
                delete(t.LutEntry).where(t.LutEntry.id == entry_id, t.LutEntry.lut_id == row.id)
            ).rowcount
            if deleted == 0:
                raise NotFoundError("lut_entry", f"{_lut_name(lut_name, model)}/{entry_id}")
        return LutVersion(*row)

    def delete_lut(self, tenant: str, lut_name: str, model: str) -> None:
        """Delete a LUT; its entries go with it (ON DELETE CASCADE)."""
        with self._db.session() as s:
            deleted = s.execute(delete(t.Lut).where(*_key(tenant, lut_name, model))).rowcount
        if deleted == 0:
            raise NotFoundError("lut", _lut_name(lut_name, model))

    def load_entries(self, tenant: str, lut_name: str, model: str) -> LutSnapshot | None:
        """Every entry with its payload, or None when the LUT does not exist (cold start).

        One statement, so the entries and the version come from the same snapshot even on
        PostgreSQL's READ COMMITTED.
        """
        stmt = (
            select(t.Lut.id.label("lut_key"), t.Lut.version, *_ENTRY_META, t.LutEntry.payload)
            .outerjoin(t.LutEntry, t.LutEntry.lut_id == t.Lut.id)
            .where(*_key(tenant, lut_name, model))
            .order_by(t.LutEntry.id)
        )
        with self._db.session(readonly=True) as s:
            rows = s.execute(stmt).all()
        if not rows:
            return None
        version = LutVersion(rows[0][0], rows[0][1])
        entries = tuple(LutEntryData(*r[2:]) for r in rows if r[2] is not None)
        return LutSnapshot(lut_name, model, version, entries)

    def count_entries(self, tenant: str) -> int:
        """Entries over all of the tenant's LUTs (its storage quota)."""
        with self._db.session(readonly=True) as s:
            return s.execute(
                select(func.count()).select_from(t.LutEntry).join(t.Lut, t.Lut.id == t.LutEntry.lut_id)
                .where(t.Lut.tenant == tenant)
            ).scalar_one()

    @staticmethod
    def _lut_id(s, tenant: str, lut_name: str, model: str) -> int:
        lut_id = s.execute(select(t.Lut.id).where(*_key(tenant, lut_name, model))).scalar_one_or_none()
        if lut_id is None:
            raise NotFoundError("lut", _lut_name(lut_name, model))
        return lut_id
