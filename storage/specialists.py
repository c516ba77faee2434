"""Specialist persistence: named domain experts trained on a corpus for one base model."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from storage import schema as t
from storage.db import Database
from storage.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    check_name,
    parse_enum,
)
from storage.pagination import Page, after_key, clamp_page_size, decode_token, make_page
from storage.schema import utcnow


class SpecialistStatus(enum.StrEnum):
    PENDING = "pending"
    """Registered; not trained yet."""
    TRAINING = "training"
    READY = "ready"
    """Weights at `weights_path` can be served."""
    FAILED = "failed"


@dataclass(frozen=True)
class SpecialistRecord:
    name: str
    model: str
    """Base model the specialist is trained for."""
    status: SpecialistStatus
    corpus_bytes: int
    corpus_files: int
    weights_path: str | None
    metrics: dict[str, Any]
    """Training metrics (e.g. final loss); empty until trained."""
    created_at: datetime
    updated_at: datetime


def _record(row: t.Specialist) -> SpecialistRecord:
    values = {c.key: getattr(row, c.key) for c in t.Specialist.__table__.columns}
    return SpecialistRecord(**{**values, "status": SpecialistStatus(row.status)})


class SpecialistRepository:
    """Reads and writes specialists; one transaction per call."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        name: str,
        model: str,
        *,
        corpus_bytes: int = 0,
        corpus_files: int = 0,
        status: SpecialistStatus | str = SpecialistStatus.PENDING,
    ) -> SpecialistRecord:
        now = utcnow()
        check_name("name", name)
        check_name("model", model)
        status = parse_enum(SpecialistStatus, status, "status")
        record = SpecialistRecord(
            name, model, status, corpus_bytes, corpus_files, None, {}, now, now
        )
        values = {**vars(record), "status": record.status.value}
        stmt = self._db.insert(t.Specialist).values(values).on_conflict_do_nothing()
        stmt = stmt.returning(t.Specialist.name)
        with self._db.session() as s:
            if s.execute(stmt).first() is None:  # the conflict skipped the insert
                raise AlreadyExistsError("specialist", name)
        return record

    def get(self, name: str) -> SpecialistRecord:
        with self._db.session(readonly=True) as s:
            row = s.get(t.Specialist, name)
            if row is None:
                raise NotFoundError("specialist", name)
            return _record(row)

    def list(
        self, *, model: str | None = None, page_size: int = 0, page_token: str = ""
    ) -> Page[SpecialistRecord]:
        """Specialists ordered by name, optionally of one base model only."""
        size = clamp_page_size(page_size)
        scope = f"specialists:{model or ''}"
        key = decode_token(page_token, scope, (str,))
        stmt = select(t.Specialist).order_by(t.Specialist.name).limit(size + 1)
        if model:
            stmt = stmt.where(t.Specialist.model == model)
        if key is not None:
            stmt = stmt.where(after_key((t.Specialist.name,), key))
        with self._db.session(readonly=True) as s:
            rows = [_record(r) for r in s.scalars(stmt)]
        return make_page(rows, size, scope, lambda r: (r.name,))

    def update_status(
        self,
        name: str,
        status: SpecialistStatus | str,
        *,
        weights_path: str | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> SpecialistRecord:
        """Set the status; `weights_path` / `metrics` are replaced only when given."""
        values: dict[str, Any] = {"status": parse_enum(SpecialistStatus, status, "status").value}
        if weights_path is not None:
            values["weights_path"] = weights_path
        if metrics is not None:
            values["metrics"] = dict(metrics)
        return self._update(name, values)

    def update_corpus(self, name: str, *, corpus_bytes: int, corpus_files: int) -> SpecialistRecord:
        """Record the size of the specialist's corpus (after files were added or removed)."""
        if corpus_bytes < 0 or corpus_files < 0:
            raise InvalidArgumentError("corpus", "sizes must not be negative")
        return self._update(name, {"corpus_bytes": corpus_bytes, "corpus_files": corpus_files})

    def delete(self, name: str) -> None:
        with self._db.session() as s:
            if s.execute(delete(t.Specialist).where(t.Specialist.name == name)).rowcount == 0:
                raise NotFoundError("specialist", name)

    def _update(self, name: str, values: dict[str, Any]) -> SpecialistRecord:
        with self._db.session() as s:
            row = s.execute(
                update(t.Specialist)
                .where(t.Specialist.name == name)
                .values(**values, updated_at=utcnow())
                .returning(t.Specialist)
            ).scalar_one_or_none()
            if row is None:
                raise NotFoundError("specialist", name)
            return _record(row)
