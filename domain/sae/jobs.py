"""SAE training jobs as durable resources: validated at creation, queued in the
database, claimed by one replica at a time and run on the model's device engine
(extraction, training, evaluation as background units that never starve generation),
with progress, heartbeat and cancellation through the job row, and resumed from the last
stored checkpoint after a restart or on another replica when its holder dies."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

from models.errors import FailedPrecondition, ResourceExhausted
from storage.errors import ConflictError, NotFoundError
from models.devices import host_memory
from models.manager import ModelManager
from domain.sae import hardware
from domain.sae.config import SaeConfig, TrainParams
from domain.sae.corpus import UploadedCorpora
from domain.sae.model_facts import ModelFacts, model_facts
from domain.sae.pipeline import Pipeline
from domain.sae.results import Progress, SaeJobStatus, SaeResult
from domain.artifacts import ArtifactStore
from domain.jobs import JobKind, JobLease, JobRecord, JobState, JobStore, Page, claim, recover_at_start

log = logging.getLogger(__name__)

KIND = JobKind.SAE_TRAINING


class SaeJobs:
    def __init__(self, manager: ModelManager, repo: JobStore, corpora: UploadedCorpora, store: ArtifactStore,
                 config: SaeConfig, artifacts_dir: Path, lease: JobLease) -> None:
        self.manager, self.repo, self.corpora, self.config = manager, repo, corpora, config
        self.store, self.artifacts_dir, self.lease = store, artifacts_dir, lease
        self._wake = asyncio.Event()
        self._runner: asyncio.Task | None = None
        self.live: dict[str, Progress] = {}

    # -- models ------------------------------------------------------------------------

    async def facts(self, model_name: str) -> ModelFacts:
        return await model_facts(self.manager, model_name)

    def memory_check(self, shape: hardware.ModelShape) -> tuple[hardware.MemoryEstimate, float]:
        """The estimate and the memory available to it: the roomiest GPU, else host memory."""
        est = hardware.estimate(shape)
        gpus = hardware.gpus()
        available = max(g.free for g in gpus) if gpus else host_memory().free_bytes
        return est, available / hardware.GIB

    # -- jobs --------------------------------------------------------------------------

    async def create(self, tenant: str, params: TrainParams) -> tuple[JobRecord, ModelFacts]:
        params.validate()
        facts = await self.facts(params.model_name)
        if facts.unavailable or facts.shape is None:
            raise FailedPrecondition(f"model '{params.model_name}' cannot be used here: {facts.unavailable}")
        params.validate_for_model(facts.shape.total_layers, facts.shape.hidden_size)
        await asyncio.to_thread(self.corpora.require, tenant, params.corpus_file)
        est, available = self.memory_check(facts.shape)
        if est.required_gb > available:
            raise ResourceExhausted(f"not enough memory: required {est.required_gb:.1f} GB, available "
                                    f"{available:.1f} GB; use a smaller model", 0.0, subject="device memory")
        now = datetime.now(timezone.utc)
        job_id = f"train_{now:%Y%m%d_%H%M%S}_{random.randrange(10000):04d}"
        record = await asyncio.to_thread(self.repo.create, KIND, params.to_json(), tenant=tenant, job_id=job_id)
        self._wake.set()
        return record, facts

    async def get(self, tenant: str, job_id: str) -> SaeJobStatus:
        record = await asyncio.to_thread(self.repo.get, job_id, tenant=tenant)
        if record.kind is not KIND:
            raise NotFoundError("job", job_id)
        return SaeJobStatus.of(record)

    async def list(self, tenant: str, state: JobState | None, page_size: int,
                   page_token: str) -> tuple[Page[SaeJobStatus], int]:
        """One page of the tenant's jobs, newest first, and how many match over all pages."""
        page = await asyncio.to_thread(self.repo.list, tenant=tenant, kind=KIND, state=state, page_size=page_size,
                                       page_token=page_token)
        total = await asyncio.to_thread(self.repo.count, tenant=tenant, kind=KIND, state=state)
        return Page(tuple(SaeJobStatus.of(r) for r in page.items), page.next_page_token), total

    async def result(self, tenant: str, job_id: str) -> tuple[SaeJobStatus, SaeResult]:
        status = await self.get(tenant, job_id)
        record = status.record
        if record.state is not JobState.COMPLETED:
            why = f": {record.error}" if record.error else ""
            raise FailedPrecondition(f"job {job_id} is {record.state.value}{why}; results exist only for "
                                     f"completed jobs")
        return status, SaeResult.from_json(record.result)

    async def cancel(self, tenant: str, job_id: str) -> SaeJobStatus:
        await self.get(tenant, job_id)  # another tenant's job, or a specialist job, is a missing one
        record = await asyncio.to_thread(self.repo.request_cancel, job_id, tenant=tenant)
        self._wake.set()
        return SaeJobStatus.of(record)

    async def watch(self, tenant: str, job_id: str, interval: float) -> AsyncIterator[SaeJobStatus]:
        """The job now, then whenever it changes (polled from the database, so a job run by
        another server is watched the same way), ending with its terminal state."""
        last = None
        while True:
            status = await self.get(tenant, job_id)
            if status.record.updated_at != last:
                last = status.record.updated_at
                yield status
            if status.state.terminal:
                return
            await asyncio.sleep(interval)

    # -- the runner --------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.corpora.import_legacy)
        recovered = await asyncio.to_thread(recover_at_start, self.repo, KIND, self.lease)
        for record in recovered:
            log.info("SAE job %s was interrupted; now %s", record.job_id, record.state.value)
        self._runner = asyncio.create_task(self._run(), name="sae-job-runner")

    async def close(self) -> None:
        # A running job stays "running" in the database; the next start requeues it and it
        # resumes from its last checkpoint (the same path as after a crash).
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)

    async def _run(self) -> None:
        device = "engine"
        while True:
            try:
                record = await asyncio.to_thread(claim, self.repo, KIND, device, self.lease)
            except Exception:  # database away for now: keep the runner alive
                log.exception("SAE job runner cannot claim jobs; retrying")
                record = None
            if record is None:
                self._wake.clear()
                try:  # several servers may share the queue: look again now and then
                    await asyncio.wait_for(self._wake.wait(), timeout=5.0)
                except TimeoutError:
                    pass
                continue
            try:
                await self._execute(record)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one job stop the runner
                log.exception("SAE job %s crashed the runner", record.job_id)

    async def _execute(self, record: JobRecord) -> None:
        progress = self.live[record.job_id] = Progress()
        pipeline = Pipeline(self.manager, self.corpora, self.store, self.config, self.artifacts_dir, record,
                            progress)
        task = asyncio.create_task(pipeline.run())
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=self.config.progress_interval_s)
                if task.done():
                    break
                current = await asyncio.to_thread(
                    self.repo.update_progress, record.job_id, min(progress.fraction, 1.0),
                    message=pipeline.message(), checkpoint_path=progress.checkpoint, details=progress.details(),
                    **self.lease.writes())
                if current.cancel_requested:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    await asyncio.to_thread(self.repo.transition, record.job_id, JobState.CANCELLED,
                                            message="Cancelled by user", owner=self.lease.owner)
                    return
            await self._finish(record, task, pipeline)
        except ConflictError as exc:  # another replica took the job over (our lease lapsed): stop
            log.warning("SAE job %s: %s; leaving it to its new holder", record.job_id, exc)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            self.live.pop(record.job_id, None)

    async def _finish(self, record: JobRecord, task: asyncio.Task, pipeline: Pipeline) -> None:
        try:
            result = task.result()
        except Exception as exc:
            log.exception("SAE job %s failed", record.job_id)
            reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            await asyncio.to_thread(self.repo.transition, record.job_id, JobState.FAILED,
                                    message=f"Training failed: {reason}", error=reason,
                                    details=pipeline.progress.details(), owner=self.lease.owner,
                                    checkpoint_path=pipeline.progress.checkpoint)
            return
        # The last checkpoint may have been stored after the last progress write: record it here.
        await asyncio.to_thread(self.repo.transition, record.job_id, JobState.COMPLETED, result=result.to_json(),
                                message=pipeline.message(), details=pipeline.progress.details(),
                                owner=self.lease.owner, checkpoint_path=pipeline.progress.checkpoint)
