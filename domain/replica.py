"""This server as one of several replicas behind one load balancer, sharing one database
(and Redis, and the artifact store in it): its name and how it holds jobs."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from domain.jobs import JobLease


@dataclass(frozen=True)
class ReplicaConfig:
    """`[replica]` in the settings (`LLMSERVE_REPLICA__NAME`, `LLMSERVE_REPLICA__COUNT`, ...)."""

    name: str = ""
    """This replica's name: sent with every response (`x-llmserve-replica` header and
    trailer) and written on the jobs it holds. Empty: `<hostname>-<pid>`. Kubernetes: the
    pod name (downward API)."""
    count: int = 1
    """How many replicas share the database. More than 1 needs PostgreSQL, and a starting
    replica then requeues only its own and lease-expired jobs (the others run elsewhere)."""
    job_lease_s: float = 30.0
    """How long a replica holds a running job without a heartbeat; past it another replica
    requeues the job and resumes it from its last stored checkpoint. Heartbeats come with
    each progress write (`sae.progress_interval_s`, `specialist.poll_interval_s`), which
    must be several times shorter."""
    mixture_poll_s: float = 5.0
    """How often a replica looks for a specialist mixture trained elsewhere, so it is loaded
    before the next request needs it (each request checks too)."""

    def resolved_name(self) -> str:
        return self.name or f"{socket.gethostname()}-{os.getpid()}"

    def lease(self) -> JobLease:
        return JobLease(self.resolved_name(), self.job_lease_s, solo=self.count <= 1)

    def check(self, database_url: str) -> None:
        """ValueError when the settings cannot work: several replicas on a local database."""
        if self.count < 1:
            raise ValueError(f"replica.count must be >= 1, got {self.count}")
        if self.job_lease_s <= 0 or self.mixture_poll_s <= 0:
            raise ValueError("replica.job_lease_s and replica.mixture_poll_s must be > 0")
        if self.count > 1 and not database_url.startswith("postgresql"):
            raise ValueError(
                f"replica.count = {self.count} needs a database every replica shares: set database_url "
                f"(LLMSERVE_DATABASE_URL) to PostgreSQL, e.g. postgresql+psycopg://user@host:5432/db; "
                f"SQLite ({database_url}) is local to one machine")
