"""SAE training jobs as durable resources: validated at creation, queued in the
database, run one at a time per server on the model's device engine (extraction,
training, evaluation as background units that never starve generation), with
progress and cancellation through the job row, and resumed from the last checkpoint
after a restart."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from transformers import AutoConfig

from models.errors import FailedPrecondition, ModelNotFound, ResourceExhausted
from models.devices import host_memory
from models.loading import weights_unavailable
from models.manager import ModelManager
from models.registry import ModelSpec
from models.sae import hardware
from models.sae.config import SaeConfig, TrainParams
from models.sae.corpus import CorpusStore
from models.sae.pipeline import Pipeline
from models.sae.trainer import Progress
from storage.jobs import JobKind, JobRecord, JobRepository, JobState
from storage.pagination import Page

log = logging.getLogger(__name__)

KIND = JobKind.SAE_TRAINING


@dataclass(frozen=True)
class ModelFacts:
    spec: ModelSpec
    shape: hardware.ModelShape | None
    """None when the config could not be read."""
    unavailable: str | None
    """Why the model cannot be used here; None when it can."""


class SaeJobs:
    def __init__(self, manager: ModelManager, repo: JobRepository, corpora: CorpusStore, config: SaeConfig,
                 artifacts_dir: Path) -> None:
        self.manager, self.repo, self.corpora, self.config = manager, repo, corpora, config
        self.artifacts_dir = artifacts_dir
        self._wake = asyncio.Event()
        self._runner: asyncio.Task | None = None
        self.live: dict[str, Progress] = {}

    # -- models ------------------------------------------------------------------------

    def resolve(self, model_name: str) -> ModelSpec:
        """A configured model by its name or by its Hugging Face id."""
        registry = self.manager.registry
        if model_name in registry.names():
            return registry.resolve(model_name)
        for name in registry.names():
            if registry.resolve(name).path == model_name:
                return registry.resolve(name)
        raise ModelNotFound(model_name, registry.names())

    async def facts(self, model_name: str) -> ModelFacts:
        spec = self.resolve(model_name)
        runtime = self.manager.loaded(spec.name)
        if runtime is not None:
            model = runtime.loaded.model
            return ModelFacts(spec, hardware.shape_of(model.config, sum(p.numel() for p in model.parameters())), None)
        reason = weights_unavailable(spec)
        if reason:
            return ModelFacts(spec, None, reason)
        if spec.source != "huggingface":  # no config without loading (embedded GGUF)
            await self.manager.runtime(spec.name)
            return await self.facts(spec.name)
        config = await asyncio.to_thread(AutoConfig.from_pretrained, spec.path)
        return ModelFacts(spec, hardware.shape_of(config), None)

    def memory_check(self, shape: hardware.ModelShape) -> tuple[hardware.MemoryEstimate, float]:
        """The estimate and the memory available to it: the roomiest GPU, else host memory."""
        est = hardware.estimate(shape)
        gpus = hardware.gpus()
        available = max(g.free for g in gpus) if gpus else host_memory().free_bytes
        return est, available / hardware.GIB

    # -- jobs --------------------------------------------------------------------------

    async def create(self, params: TrainParams) -> tuple[JobRecord, ModelFacts]:
        params.validate()
        facts = await self.facts(params.model_name)
        if facts.unavailable or facts.shape is None:
            raise FailedPrecondition(f"model '{params.model_name}' cannot be used here: {facts.unavailable}")
        params.validate_for_model(facts.shape.total_layers, facts.shape.hidden_size)
        self.corpora.path(params.corpus_file)
        est, available = self.memory_check(facts.shape)
        if est.required_gb > available:
            raise ResourceExhausted(f"not enough memory: required {est.required_gb:.1f} GB, available "
                                    f"{available:.1f} GB; use a smaller model", 0.0, subject="device memory")
        now = datetime.now(timezone.utc)
        job_id = f"train_{now:%Y%m%d_%H%M%S}_{random.randrange(10000):04d}"
        record = await asyncio.to_thread(self.repo.create, KIND, params.to_json(), job_id=job_id)
        self._wake.set()
        return record, facts

    async def get(self, job_id: str) -> JobRecord:
        return await asyncio.to_thread(self.repo.get, job_id)

    async def list(self, state: JobState | None, page_size: int, page_token: str) -> tuple[Page[JobRecord], int]:
        """One page of jobs, newest first, and how many match over all pages."""
        page = await asyncio.to_thread(self.repo.list, kind=KIND, state=state, page_size=page_size,
                                       page_token=page_token)
        return page, await asyncio.to_thread(self.repo.count, kind=KIND, state=state)

    async def result(self, job_id: str) -> JobRecord:
        record = await self.get(job_id)
        if record.state is not JobState.COMPLETED:
            why = f": {record.error}" if record.error else ""
            raise FailedPrecondition(f"job {job_id} is {record.state.value}{why}; results exist only for "
                                     f"completed jobs")
        return record

    async def cancel(self, job_id: str) -> JobRecord:
        record = await asyncio.to_thread(self.repo.request_cancel, job_id)
        self._wake.set()
        return record

    async def watch(self, job_id: str, interval: float) -> AsyncIterator[JobRecord]:
        """The job now, then whenever it changes (polled from the database, so a job run by
        another server is watched the same way), ending with its terminal state."""
        last = None
        while True:
            record = await self.get(job_id)
            if record.updated_at != last:
                last = record.updated_at
                yield record
            if record.state.terminal:
                return
            await asyncio.sleep(interval)

    # -- the runner --------------------------------------------------------------------

    async def start(self) -> None:
        recovered = await asyncio.to_thread(self.repo.recover_interrupted, KIND)
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
            record = await asyncio.to_thread(self.repo.claim_next, KIND, device)
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
        pipeline = Pipeline(self, record, progress)
        task = asyncio.create_task(pipeline.run())
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=self.config.progress_interval_s)
                if task.done():
                    break
                current = await asyncio.to_thread(
                    self.repo.update_progress, record.job_id, min(progress.fraction, 1.0),
                    message=pipeline.message(), checkpoint_path=progress.checkpoint, details=progress.details())
                if current.cancel_requested:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    await asyncio.to_thread(self.repo.transition, record.job_id, JobState.CANCELLED,
                                            message="Cancelled by user")
                    return
            await self._finish(record, task, pipeline)
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
                                    details=pipeline.progress.details())
            return
        await asyncio.to_thread(self.repo.transition, record.job_id, JobState.COMPLETED, result=result,
                                message=pipeline.message(), details=pipeline.progress.details())
