"""SpecialistService (domain side): the specialist catalogue (corpus folders + database
rows), generation and gate inspection with the serving mixture, and training jobs.

The serving mixture is one immutable object behind one reference: a generation captures
it when prepared, and a finished job replaces the reference, so the swap is atomic and
never changes a running generation."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import torch

from models.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, Unavailable
from models.generation import PreparedRequest, TextGenerator
from models.manager import ModelManager
from domain.specialist.config import SpecialistConfig
from domain.specialist.corpus import SpecialistCorpora, check_name
from domain.specialist.hook import SpecialistHook
from domain.specialist.mixture import Routing
from domain.specialist.weights import MixtureWeights
from domain.artifacts import ArtifactStore
from domain.replica import ReplicaConfig
from domain.specialist.runner import KIND, JobRunner, Serving, all_specialists
from domain.specialist.train import gate_trace
from models.sampling_policy import SamplingParams, merge
from models.validation import require_text
from storage.errors import AlreadyExistsError, NotFoundError
from domain.jobs import SHARED_TENANT, JobRecord, JobState, JobStore, Page, recover_at_start
from domain.specialist.store import SpecialistRecord, SpecialistStatus, SpecialistStore

log = logging.getLogger(__name__)


class State(enum.Enum):
    UPLOADED = "uploaded"
    TRAINING = "training"
    READY = "ready"
    FAILED = "failed"


class Trigger(enum.StrEnum):
    ADD = "add_specialist"
    DELETE = "delete_specialist"
    MANUAL = "manual"
    STARTUP = "startup"


@dataclass(frozen=True)
class SpecialistView:
    name: str
    state: State
    corpus_bytes: int
    corpus_files: int
    metrics: dict[str, Any]
    training_job_id: str
    created_at: datetime
    updated_at: datetime
    train_time: datetime | None


@dataclass(frozen=True)
class TrainingJob:
    """A specialist training job as clients see it."""

    record: JobRecord
    trigger: Trigger
    specialists: tuple[str, ...]
    step: int
    total_steps: int
    loss: float | None

    @property
    def message(self) -> str:
        r = self.record
        return r.error if r.state is JobState.FAILED and r.error else r.message

    @classmethod
    def of(cls, record: JobRecord) -> TrainingJob:
        details, params = record.details or {}, record.params
        return cls(record, Trigger(params.get("trigger", Trigger.MANUAL.value)),
                   tuple(details.get("specialists", params.get("specialists", []))), int(details.get("step", 0)),
                   int(details.get("total_steps", params.get("steps", 0))), details.get("loss"))


@dataclass(frozen=True)
class GateInspection:
    experts: tuple[str, ...]
    token_ids: list[int]
    tokens: list[str]
    weights: torch.Tensor
    """[layers, tokens, experts] soft gate weights."""


_STATES = {SpecialistStatus.PENDING: State.TRAINING, SpecialistStatus.TRAINING: State.TRAINING,
           SpecialistStatus.READY: State.READY, SpecialistStatus.FAILED: State.FAILED}


class SpecialistService:
    def __init__(self, manager: ModelManager, generator: TextGenerator, specialists: SpecialistStore,
                 jobs: JobStore, store: ArtifactStore, config: SpecialistConfig, corpus_dir: Path,
                 weights_dir: Path, replica: ReplicaConfig) -> None:
        self._manager, self._generator = manager, generator
        self._repo, self._jobs, self.config = specialists, jobs, config
        self.corpora = SpecialistCorpora(store, corpus_dir, config.reserved_names)
        self.model = config.model or manager.registry.default
        self.serving: Serving | None = None
        self._lock = asyncio.Lock()  # catalogue changes (add/delete) one at a time in this process
        self._weights = MixtureWeights(store, weights_dir)
        self._lease, self._poll_s = replica.lease(), replica.mixture_poll_s
        self._loading = asyncio.Lock()
        self._unloadable: set[str] = set()
        self._follower: asyncio.Task | None = None
        self._runner = JobRunner(manager, specialists, jobs, self.corpora, self._weights, config, self.model,
                                 self._swap, self._lease)

    # ---- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        """Load the last trained mixture; on a first start adopt the corpora present and
        queue a job that trains what is missing; then start the job worker."""
        await self._manager.runtime(self.model)
        await asyncio.to_thread(recover_at_start, self._jobs, KIND, self._lease)
        await asyncio.to_thread(self.corpora.import_local)
        await self.sync()
        if not await asyncio.to_thread(self._runner.gate_order):
            for info in await asyncio.to_thread(self.corpora.discover):
                await asyncio.to_thread(self._repo.create, info.name, self.model, corpus_bytes=info.size_bytes,
                                        corpus_files=info.file_count)
        names = await asyncio.to_thread(self._runner.gate_order)
        serving = list(self.serving.mixture.experts) if self.serving else []
        if names and names != serving and not await self._pending_jobs():
            await self.create_job(None, Trigger.STARTUP)
        self._runner.start()
        self._follower = asyncio.create_task(self._follow(), name="specialist-mixture-follower")

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
        await self._runner.close()

    async def sync(self) -> None:
        """Serve the newest completed mixture, wherever it was trained: a job completed on
        another replica is swapped in here by the next request (each checks) or within
        `replica.mixture_poll_s`. Only ever moves to a newer job than the one serving."""
        page = await asyncio.to_thread(self._jobs.list, kind=KIND, state=JobState.COMPLETED, page_size=1)
        newest = page.items[0] if page.items else None
        if newest is None or not self._newer(newest):
            return
        async with self._loading:
            if not self._newer(newest):
                return
            mixture = await asyncio.to_thread(self._weights.load, newest)
            if mixture is None:
                self._unloadable.add(newest.job_id)
                return
            runtime = await self._manager.runtime(self.model)
            await self._swap(Serving(mixture.to(runtime.engine.device), self.model, newest.job_id, newest.created_at))

    def _newer(self, record: JobRecord) -> bool:
        current = self.serving
        if record.job_id in self._unloadable:
            return False
        return current is None or (record.created_at, record.job_id) > (current.created_at, current.job_id)

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self.sync()
            except Exception:  # the database may be away for a moment; the next round retries
                log.exception("could not look for a newer specialist mixture")

    async def _swap(self, serving: Serving) -> None:
        self.serving = serving  # one reference assignment: in-flight rows keep their captured mixture
        log.info("serving specialist mixture of job %s: %s", serving.job_id, ", ".join(serving.mixture.experts))

    async def _pending_jobs(self) -> bool:
        for state in (JobState.QUEUED, JobState.RUNNING):
            page = await asyncio.to_thread(self._jobs.list, kind=KIND, state=state, page_size=1)
            if page.items:
                return True
        return False

    # ---- catalogue ------------------------------------------------------------------
    def _view(self, record: SpecialistRecord | None, name: str) -> SpecialistView:
        info = self.corpora.info(name)
        if record is None:
            if info is None:
                raise NotFound("specialist", name)
            made = info.created_at or datetime.now(timezone.utc)
            return SpecialistView(name, State.UPLOADED, info.size_bytes, info.file_count, {}, "", made, made, None)
        metrics = dict(record.metrics)
        job_id = str(metrics.pop("training_job_id", ""))
        trained = metrics.pop("train_time", None)
        state = _STATES[record.status]
        return SpecialistView(name, state, info.size_bytes if info else record.corpus_bytes,
                              info.file_count if info else record.corpus_files, metrics, job_id,
                              record.created_at, record.updated_at,
                              datetime.fromisoformat(trained) if trained and state is State.READY else None)

    def _list(self) -> list[SpecialistView]:
        rows = {r.name: r for r in _rows(self._repo)}
        names = sorted(set(rows) | {i.name for i in self.corpora.discover()})
        return [self._view(rows.get(n), n) for n in names]

    async def list(self) -> list[SpecialistView]:
        return await asyncio.to_thread(self._list)

    async def get(self, name: str) -> SpecialistView:
        check_name(name, self.config.reserved_names)

        def get() -> SpecialistView:
            try:
                return self._view(self._repo.get(name), name)
            except NotFoundError:
                return self._view(None, name)
        return await asyncio.to_thread(get)

    async def names(self) -> list[str]:
        """Added specialists in gate order."""
        return await asyncio.to_thread(self._runner.gate_order)

    async def upload(self, name: str, file_name: str, data: bytes, overwrite: bool) -> tuple[str, SpecialistView]:
        check_name(name, self.config.reserved_names)
        if len(data) > self.config.max_corpus_bytes:
            raise ResourceExhausted(f"corpus file is larger than {self.config.max_corpus_bytes} bytes", 0.0,
                                    subject="corpus size")
        key = await asyncio.to_thread(self.corpora.write, name, file_name, data, overwrite)
        view = await self.get(name)
        if view.state is not State.UPLOADED:
            await asyncio.to_thread(self._repo.update_corpus, name, corpus_bytes=view.corpus_bytes,
                                    corpus_files=view.corpus_files)
        return key, view

    async def add(self, name: str) -> tuple[list[str], TrainingJob, SpecialistView]:
        check_name(name, self.config.reserved_names)
        async with self._lock:
            info = await asyncio.to_thread(self.corpora.require, name)
            try:
                await asyncio.to_thread(self._repo.create, name, self.model, corpus_bytes=info.size_bytes,
                                        corpus_files=info.file_count)
            except AlreadyExistsError:
                raise AlreadyExistsError("specialist", name) from None
            job = await self.create_job(None, Trigger.ADD)
        return await self.names(), job, await self.get(name)

    async def delete(self, name: str) -> tuple[list[str], TrainingJob | None]:
        check_name(name, self.config.reserved_names)
        async with self._lock:
            names = await self.names()
            if name not in names:
                if await asyncio.to_thread(self.corpora.info, name) is None:
                    raise NotFound("specialist", name)
                await asyncio.to_thread(self.corpora.remove, name)  # uploaded, never added: no job
                return names, None
            if len(names) == 1:
                raise FailedPrecondition(f"cannot delete '{name}': it is the last specialist (at least one must exist)")
            await asyncio.to_thread(self._repo.delete, name)
            await asyncio.to_thread(self.corpora.remove, name)
            job = await self.create_job(None, Trigger.DELETE)
        return await self.names(), job

    # ---- generation -----------------------------------------------------------------
    def _require_serving(self) -> Serving:
        if self.serving is None:
            raise Unavailable("no trained specialist mixture yet: the first training job has not completed "
                              "(add a specialist, or watch its training job)")
        return self.serving

    def _forced(self, serving: Serving, name: str) -> int | None:
        if not name:
            return None
        names = serving.mixture.names
        if name not in names:
            raise NotFound("specialist", name, f"force_specialist '{name}' is not an expert of the serving model; "
                                               f"experts: {', '.join(names)}")
        return names.index(name)

    async def prepare(self, prompt: str, overrides: Mapping[str, Any], routing: Routing = Routing.SOFT,
                      force: str = "", defaults: SamplingParams | None = None
                      ) -> tuple[PreparedRequest, tuple[str, ...]]:
        """`defaults`: where the sampling controls start (the specialist defaults when None)."""
        defaults = defaults or self._generator.defaults.specialist
        # Bad input is the client's to fix whatever the server's state: check it first.
        require_text("prompt", prompt)
        merge(defaults, overrides)
        await self.sync()
        serving = self._require_serving()
        forced = self._forced(serving, force)
        prepared = await self._generator.prepare_completion(prompt, serving.model, overrides, defaults)
        hook = SpecialistHook(serving.mixture, routing, forced)
        request = dataclasses.replace(prepared.request, hooks=(*prepared.request.hooks, hook))
        return PreparedRequest(prepared.runtime, request), serving.mixture.experts

    async def inspect(self, prompt: str, per_token: bool) -> GateInspection:
        require_text("prompt", prompt)
        await self.sync()
        serving = self._require_serving()
        runtime = await self._manager.runtime(serving.model)
        tokenizer = runtime.loaded.tokenizer
        ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
        if len(ids) > runtime.loaded.context_window:
            raise InvalidArgument("prompt", f"is {len(ids)} tokens; the context window is "
                                            f"{runtime.loaded.context_window}")

        def job():
            return gate_trace(runtime.engine.model, serving.mixture, ids)
            yield  # a generator: the engine runs it as one unit

        weights = await runtime.engine.run_background(job())
        tokens = [tokenizer.decode([i]) for i in ids] if per_token else []
        return GateInspection(serving.mixture.names, ids if per_token else [], tokens, weights)

    # ---- jobs -------------------------------------------------------------------------
    async def create_job(self, steps: int | None, trigger: Trigger = Trigger.MANUAL) -> TrainingJob:
        if steps is not None and steps < 1:
            raise InvalidArgument("steps", f"must be >= 1, got {steps}")
        names = await self.names()
        if not names:
            raise FailedPrecondition("no specialist has been added: add one with AddSpecialist first")
        params = {"trigger": trigger.value, "steps": steps or self.config.steps, "specialists": names}
        record = await asyncio.to_thread(self._jobs.create, KIND, params, tenant=SHARED_TENANT)
        self._runner.wake()
        return TrainingJob.of(record)

    async def _record(self, job_id: str) -> JobRecord:
        record = await asyncio.to_thread(self._jobs.get, _job_id(job_id))
        if record.kind is not KIND:
            raise NotFound("training job", job_id)
        return record

    async def get_job(self, job_id: str) -> TrainingJob:
        return TrainingJob.of(await self._record(job_id))

    async def list_jobs(self, state: JobState | None, page_size: int, page_token: str) -> Page[TrainingJob]:
        page = await asyncio.to_thread(self._jobs.list, kind=KIND, state=state, page_size=page_size,
                                       page_token=page_token)
        return Page(tuple(TrainingJob.of(r) for r in page.items), page.next_page_token)

    async def cancel_job(self, job_id: str) -> TrainingJob:
        record = await self._record(job_id)
        if record.state.terminal:
            return TrainingJob.of(record)  # cancelling a finished job is a no-op
        record = await asyncio.to_thread(self._jobs.request_cancel, record.job_id)
        if record.state is JobState.CANCELLED and not await self._pending_jobs():
            await asyncio.to_thread(self._fail_untrained)
        return TrainingJob.of(record)

    def _fail_untrained(self) -> None:
        for row in _rows(self._repo):
            if row.status in (SpecialistStatus.PENDING, SpecialistStatus.TRAINING):
                self._repo.update_status(row.name, SpecialistStatus.FAILED)

    async def watch_job(self, job_id: str) -> AsyncIterator[TrainingJob]:
        """The job now, then at each change, ending with its terminal state."""
        record = await self._record(job_id)
        last = None
        while True:
            key = (record.state, record.progress, record.message, record.updated_at)
            if key != last:
                last = key
                yield TrainingJob.of(record)
            if record.state.terminal:
                return
            await asyncio.sleep(self.config.poll_interval_s)
            record = await self._record(job_id)


def _job_id(job_id: str) -> str:
    if not job_id:
        raise InvalidArgument("job_id", "must not be empty")
    return job_id


def _rows(repo: SpecialistStore) -> list[SpecialistRecord]:
    return all_specialists(repo)
