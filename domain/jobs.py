"""The durable job queue that long work (SAE training, specialist training) runs from:
the interface those features own (`storage.jobs.JobRepository` implements it), the records
it returns, and the lease rule every job runner follows. Jobs are claimed by one replica at
a time and survive restarts. A tenant reads only its own jobs (`tenant=`); `tenant=None`
is the job runners' view."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from storage.jobs import JobKind, JobRecord, JobState
from storage.pagination import Page
from storage.schema import SHARED_TENANT

__all__ = ["SHARED_TENANT", "JobKind", "JobLease", "JobRecord", "JobState", "JobStore", "Page", "claim",
           "recover_at_start"]

log = logging.getLogger(__name__)


class JobStore(Protocol):
    def create(self, kind: JobKind | str, params: dict[str, Any], *, tenant: str,
               job_id: str | None = None) -> JobRecord: ...
    def get(self, job_id: str, *, tenant: str | None = None) -> JobRecord: ...
    def list(self, *, tenant: str | None = None, kind: JobKind | str | None = None, state: JobState | str | None = None, page_size: int = 0,
             page_token: str = "") -> Page[JobRecord]: ...
    def count(self, *, tenant: str | None = None, kind: JobKind | str | None = None, state: JobState | str | None = None) -> int: ...
    def update_progress(self, job_id: str, progress: float, *, message: str | None = None,
                        checkpoint_path: str | None = None, details: dict[str, Any] | None = None,
                        owner: str | None = None, lease: timedelta | None = None) -> JobRecord: ...
    def transition(self, job_id: str, to_state: JobState | str, *, message: str | None = None,
                   result: dict[str, Any] | None = None, error: str | None = None,
                   details: dict[str, Any] | None = None, owner: str | None = None) -> JobRecord: ...
    def request_cancel(self, job_id: str, *, tenant: str | None = None) -> JobRecord: ...
    def claim_next(self, kind: JobKind | str, device: str, *, owner: str | None = None,
                   lease: timedelta | None = None) -> JobRecord | None: ...
    def recover_interrupted(self, kind: JobKind | str, *, stale_after: timedelta | None = None,
                            owner: str | None = None, expired: bool = False) -> list[JobRecord]: ...


@dataclass(frozen=True)
class JobLease:
    """How this replica holds the jobs it runs: its name on the claim, how long a claim
    lasts without a heartbeat, and whether it is the only replica on the database."""

    owner: str
    duration_s: float = 30.0
    solo: bool = True

    @property
    def duration(self) -> timedelta:
        return timedelta(seconds=self.duration_s)

    def writes(self) -> dict[str, Any]:
        """Keyword arguments of a heartbeat (`update_progress`): fenced by owner, lease renewed."""
        return {"owner": self.owner, "lease": self.duration}


def recover_at_start(store: JobStore, kind: JobKind, lease: JobLease) -> list[JobRecord]:
    """Requeue the jobs this replica's previous life left running. Alone on the database,
    every running job was its own; among several, only those it held by name and those
    whose lease lapsed (the others are running elsewhere)."""
    if lease.solo:
        return store.recover_interrupted(kind)
    return store.recover_interrupted(kind, owner=lease.owner, expired=True)


def claim(store: JobStore, kind: JobKind, device: str, lease: JobLease) -> JobRecord | None:
    """Requeue jobs whose holder stopped renewing its lease (a replica that died), then
    claim the oldest queued job for this replica; None when nothing is queued."""
    for record in store.recover_interrupted(kind, expired=True):
        log.info("%s job %s lost its lease; now %s", kind.value, record.job_id, record.state.value)
    return store.claim_next(kind, device, owner=lease.owner, lease=lease.duration)
