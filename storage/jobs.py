"""Job persistence: long-running training jobs as resources with a guarded state machine.

    queued  -> running | cancelled
    running -> completed | failed | cancelled | queued (requeued to resume from a checkpoint)

Every transition is one conditional UPDATE (`WHERE state IN <legal sources>`), so two
racing callers cannot both move a job; the loser gets ConflictError.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, literal, or_, select, update

from storage import schema as t
from storage.db import Database
from storage.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    check_name,
    parse_enum,
)
from storage.pagination import Page, after_key, clamp_page_size, decode_token, make_page
from storage.schema import DEFAULT_TENANT, TENANT_LEN, utcnow


class JobKind(enum.StrEnum):
    SAE_TRAINING = "sae_training"
    SPECIALIST_TRAINING = "specialist_training"


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


LEGAL_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED}),
    JobState.RUNNING: frozenset(
        {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED}
    ),
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    kind: JobKind
    state: JobState
    device: str | None
    """Device of the worker that last claimed the job; None until first claimed."""
    params: dict[str, Any]
    progress: float
    """Fraction done, 0.0 to 1.0."""
    message: str
    result: dict[str, Any] | None
    details: dict[str, Any] | None
    """Live statistics of a running job, written with its progress."""
    checkpoint_path: str | None
    """Latest checkpoint; a requeued job resumes from it."""
    error: str | None
    created_at: datetime
    started_at: datetime | None
    updated_at: datetime
    """Also the worker's heartbeat: update_progress refreshes it."""
    completed_at: datetime | None
    cancel_requested: bool
    tenant: str = DEFAULT_TENANT
    """Who created it; SHARED_TENANT for deployment-wide jobs."""
    owner: str | None = None
    """The replica holding the job while it runs (its claim), None otherwise."""
    lease_expires_at: datetime | None = None
    """When the owner's claim lapses unless renewed by its heartbeat (update_progress)."""
    attempts: int = 0
    """How many times the job was claimed."""


def _record(row: t.Job) -> JobRecord:
    values = {c.key: getattr(row, c.key) for c in t.Job.__table__.columns}
    kind, state = JobKind(row.kind), JobState(row.state)
    # float(): SQLite's RETURNING hands back 1.0 as the integer 1.
    return JobRecord(**{**values, "kind": kind, "state": state, "progress": float(row.progress)})


class JobRepository:
    """Reads and writes jobs; one transaction per call."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self, kind: JobKind | str, params: dict[str, Any], *, tenant: str, job_id: str | None = None
    ) -> JobRecord:
        """Queue a new job for `tenant`; `job_id` defaults to a fresh UUID4 string."""
        kind = parse_enum(JobKind, kind, "kind")
        check_name("tenant", tenant, TENANT_LEN, allow_empty=True)
        if job_id is not None:
            check_name("job_id", job_id)
        now = utcnow()
        record = JobRecord(
            job_id or str(uuid.uuid4()), kind, JobState.QUEUED, device=None, params=dict(params),
            progress=0.0, message="", result=None, details=None, checkpoint_path=None, error=None,
            created_at=now, started_at=None, updated_at=now, completed_at=None,
            cancel_requested=False, tenant=tenant, owner=None, lease_expires_at=None, attempts=0,
        )  # fmt: skip
        values = {**vars(record), "kind": kind.value, "state": record.state.value}
        stmt = self._db.insert(t.Job).values(values).on_conflict_do_nothing()
        stmt = stmt.returning(t.Job.job_id)
        with self._db.session() as s:
            if s.execute(stmt).first() is None:  # the conflict skipped the insert
                raise AlreadyExistsError("job", record.job_id)
        return record

    def get(self, job_id: str, *, tenant: str | None = None) -> JobRecord:
        """The job; with `tenant`, another tenant's job is NotFoundError like a missing one."""
        with self._db.session(readonly=True) as s:
            return _record(_owned(s.get(t.Job, job_id), job_id, tenant))

    def list(
        self,
        *,
        tenant: str | None = None,
        kind: JobKind | str | None = None,
        state: JobState | str | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[JobRecord]:
        """Jobs newest first (by creation time, ties broken by id); only `tenant`'s when given."""
        size = clamp_page_size(page_size)
        kind = parse_enum(JobKind, kind, "kind") if kind else None
        state = parse_enum(JobState, state, "state") if state else None
        scope = f"jobs:{tenant if tenant is not None else '*'}:{kind or ''}:{state or ''}"
        key = decode_token(page_token, scope, (datetime, str))
        order = (t.Job.created_at, t.Job.job_id)
        stmt = select(t.Job).order_by(*(c.desc() for c in order)).limit(size + 1)
        if tenant is not None:
            stmt = stmt.where(t.Job.tenant == tenant)
        if kind:
            stmt = stmt.where(t.Job.kind == kind.value)
        if state:
            stmt = stmt.where(t.Job.state == state.value)
        if key is not None:
            stmt = stmt.where(after_key(order, key, descending=True))
        with self._db.session(readonly=True) as s:
            rows = [_record(r) for r in s.scalars(stmt)]
        return make_page(rows, size, scope, lambda r: (r.created_at, r.job_id))

    def count(self, *, tenant: str | None = None, kind: JobKind | str | None = None,
              state: JobState | str | None = None) -> int:
        """How many jobs `list` would return over all its pages."""
        stmt = select(func.count()).select_from(t.Job)
        if tenant is not None:
            stmt = stmt.where(t.Job.tenant == tenant)
        if kind:
            stmt = stmt.where(t.Job.kind == parse_enum(JobKind, kind, "kind").value)
        if state:
            stmt = stmt.where(t.Job.state == parse_enum(JobState, state, "state").value)
        with self._db.session(readonly=True) as s:
            return int(s.execute(stmt).scalar_one())

    def update_progress(
        self, job_id: str, progress: float, *, message: str | None = None,
        checkpoint_path: str | None = None, details: dict[str, Any] | None = None,
        owner: str | None = None, lease: timedelta | None = None,
    ) -> JobRecord:  # fmt: skip
        """Record progress of a running job (None leaves a field as it is). The returned
        record carries `cancel_requested`, which is how a worker learns to stop.

        It is also the owner's heartbeat: with `owner`, the update applies only while that
        replica still holds the job (ConflictError once its lease was taken over), and
        `lease` extends the claim from now."""
        if not 0.0 <= progress <= 1.0:
            raise InvalidArgumentError("progress", "must be between 0.0 and 1.0")
        now = utcnow()
        values: dict[str, Any] = {"progress": progress, "updated_at": now}
        if lease is not None:
            values["lease_expires_at"] = now + lease
        if message is not None:
            values["message"] = message
        if checkpoint_path is not None:
            values["checkpoint_path"] = checkpoint_path
        if details is not None:
            values["details"] = details
        return self._update(job_id, {JobState.RUNNING}, values, "job is not running", owner)

    def transition(
        self, job_id: str, to_state: JobState | str, *, message: str | None = None,
        result: dict[str, Any] | None = None, error: str | None = None,
        details: dict[str, Any] | None = None, owner: str | None = None, checkpoint_path: str | None = None,
    ) -> JobRecord:  # fmt: skip
        """Move a job along the state machine; ConflictError if the move is not legal.

        Requeueing a running job whose cancel was requested cancels it instead (the returned
        record shows which happened), so a cancel is never lost to a resume. With `owner`,
        a running job moves only while that replica still holds it (a replica whose lease
        was taken over cannot complete, fail or requeue the job the new owner runs).
        """
        to_state = parse_enum(JobState, to_state, "to_state")
        sources = {s for s, targets in LEGAL_TRANSITIONS.items() if to_state in targets}
        now = utcnow()
        values: dict[str, Any] = {"state": to_state.value, "updated_at": now}
        if message is not None:
            values["message"] = message
        if details is not None:
            values["details"] = details
        if checkpoint_path is not None:
            values["checkpoint_path"] = checkpoint_path
        if to_state is JobState.QUEUED:
            values.update(_requeue(now))
        if to_state is JobState.RUNNING:
            # Keep the first start time when a requeued job runs again.
            values["started_at"] = _first_start(now)
        if to_state.terminal:
            values["completed_at"] = now
        if to_state is JobState.COMPLETED:
            values.update(progress=1.0, result=result)
        if to_state is JobState.FAILED:
            values["error"] = error or "failed"
        if to_state is not JobState.RUNNING:
            # The owner stays on a finished job (who ran it); a requeued one has none.
            values["lease_expires_at"] = None
            if to_state is JobState.QUEUED:
                values["owner"] = None
        reason = f"cannot move to {to_state.value}"
        return self._update(job_id, sources, values, reason, owner)

    def request_cancel(self, job_id: str, *, tenant: str | None = None) -> JobRecord:
        """Cancel a job: a queued one is cancelled at once; a running one gets
        `cancel_requested` and its worker moves it to cancelled. Cancelling a cancelled job
        returns it unchanged; a completed or failed one raises ConflictError."""
        now = utcnow()
        with self._db.session() as s:
            row = _owned(s.get(t.Job, job_id, with_for_update=True), job_id, tenant)
            state = JobState(row.state)
            if state is JobState.QUEUED:
                row.state, row.completed_at = JobState.CANCELLED.value, now
                row.cancel_requested, row.updated_at = True, now
            elif state is JobState.RUNNING:
                row.cancel_requested, row.updated_at = True, now
            elif state is not JobState.CANCELLED:
                raise ConflictError("job", job_id, f"job already {state.value}")
            s.flush()
            return _record(row)

    def claim_next(self, kind: JobKind | str, device: str, *, owner: str | None = None,
                   lease: timedelta | None = None) -> JobRecord | None:
        """Atomically take the oldest queued job of `kind`, mark it running on `device`
        for `owner` (a replica) until `lease` from now, and return it; None when nothing
        is queued.

        PostgreSQL: FOR UPDATE SKIP LOCKED lets concurrent claimers pass over a row another
        claimer holds instead of queueing on it. SQLite ignores FOR UPDATE; BEGIN IMMEDIATE
        already makes each claim exclusive.
        """
        kind = parse_enum(JobKind, kind, "kind")
        now = utcnow()
        pick = (
            select(t.Job.job_id)
            .where(t.Job.kind == kind.value, t.Job.state == JobState.QUEUED.value)
            .order_by(t.Job.created_at, t.Job.job_id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        with self._db.session() as s:
            job_id = s.execute(pick).scalar_one_or_none()
            if job_id is None:
                return None
            row = s.execute(
                update(t.Job)
                .where(t.Job.job_id == job_id, t.Job.state == JobState.QUEUED.value)
                .values(
                    state=JobState.RUNNING.value,
                    device=device,
                    started_at=_first_start(now),
                    updated_at=now,
                    owner=owner,
                    lease_expires_at=now + lease if lease is not None else None,
                    attempts=t.Job.attempts + 1,
                )
                .returning(t.Job)
            ).scalar_one()
            return _record(row)

    def recover_interrupted(
        self, kind: JobKind | str, *, stale_after: timedelta | None = None,
        owner: str | None = None, expired: bool = False,
    ) -> list[JobRecord]:  # fmt: skip
        """Requeue jobs of `kind` left running by a process that died, so they resume from
        their checkpoint; ones whose cancel was requested become cancelled instead.

        With no filter every running job counts as interrupted: right for a single server
        calling this at start-up, before it runs anything. With several servers on one
        database, narrow it: `owner` takes the jobs that replica held (it restarted),
        `expired` the jobs whose lease lapsed (their owner stopped renewing it), and
        `stale_after` the jobs silent that long. Filters given together are alternatives.
        """
        kind = parse_enum(JobKind, kind, "kind")
        now = utcnow()
        where = [t.Job.kind == kind.value, t.Job.state == JobState.RUNNING.value]
        taken = []
        if stale_after is not None:
            taken.append(t.Job.updated_at < now - stale_after)
        if owner is not None:
            taken.append(t.Job.owner == owner)
        if expired:
            # A running job without a lease was claimed before leases existed: fair game.
            taken.append(or_(t.Job.lease_expires_at.is_(None), t.Job.lease_expires_at < _utc(now)))
        if taken:
            where.append(or_(*taken))
        message = "interrupted: the process running it stopped"
        stmt = (
            update(t.Job)
            .where(*where)
            .values(**_requeue(now), updated_at=now, message=message, owner=None, lease_expires_at=None)
            .returning(t.Job)
        )
        with self._db.session() as s:
            records = [_record(r) for r in s.execute(stmt).scalars()]
        return sorted(records, key=lambda r: (r.created_at, r.job_id))

    def _update(
        self, job_id: str, sources: set[JobState], values: dict[str, Any], reason: str,
        owner: str | None = None,
    ) -> JobRecord:  # fmt: skip
        where = [t.Job.job_id == job_id, t.Job.state.in_([x.value for x in sources])]
        if owner is not None:
            # Only the holder moves a running job; a queued one (cancel) has no holder.
            where.append(or_(t.Job.state != JobState.RUNNING.value, t.Job.owner == owner))
        with self._db.session() as s:
            row = s.execute(update(t.Job).where(*where).values(values).returning(t.Job)).scalar_one_or_none()
            if row is None:
                current = s.get(t.Job, job_id)
                if current is None:
                    raise NotFoundError("job", job_id)
                if owner is not None and current.state == JobState.RUNNING.value and current.owner != owner:
                    raise ConflictError("job", job_id, f"lease lost: {current.owner or 'no one'} holds it now")
                raise ConflictError("job", job_id, f"{reason} (state is {current.state})")
            return _record(row)


def _owned(row: t.Job | None, job_id: str, tenant: str | None) -> t.Job:
    if row is None or (tenant is not None and row.tenant != tenant):
        raise NotFoundError("job", job_id)
    return row


def _utc(now: datetime) -> Any:
    # Bound as UtcDateTime so SQLite stores it in the same UTC text form as other writes.
    return literal(now, t.UtcDateTime())


def _first_start(now: datetime) -> Any:
    return func.coalesce(t.Job.started_at, _utc(now))


def _requeue(now: datetime) -> dict[str, Any]:
    """Values moving a running job back to queued, or to cancelled if a cancel is pending."""
    cancel = t.Job.cancel_requested.is_(True)
    return {
        "state": case((cancel, JobState.CANCELLED.value), else_=JobState.QUEUED.value),
        "completed_at": case((cancel, _utc(now)), else_=None),
    }
