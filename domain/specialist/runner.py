"""Runs specialist training jobs one at a time on the model's engine: claims the oldest
queued job (holding it by a lease its progress writes renew), trains a mixture over the
specialist set as it is then, evaluates it, stores it (artifact store + database) and hands
it to the service, which swaps it in atomically. Training keeps no checkpoint: a job whose
replica died is requeued when its lease lapses and trains again from the first step."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from models.manager import ModelManager, ModelRuntime
from domain.specialist.config import SpecialistConfig
from domain.specialist.corpus import GENERAL, SpecialistCorpora
from domain.specialist.mixture import Mixture
from domain.specialist.train import Domain, DomainEval, Progress, eval_units, sequences, split, train_units
from models.types import GenerationRequest, Priority, TokenEvent
from models.sampling_policy import SamplingParams
from storage.errors import ConflictError, NotFoundError
from domain.jobs import JobKind, JobLease, JobRecord, JobState, JobStore, claim
from domain.specialist.weights import MixtureWeights
from domain.specialist.store import SpecialistStatus, SpecialistStore

log = logging.getLogger(__name__)

KIND = JobKind.SPECIALIST_TRAINING
# Generic openers for self-sampled general text (used only when no general corpus exists).
GENERAL_PROMPTS = ("The", "In 1998,", "My favourite", "Scientists have", "The city", "Once upon a time",
                   "Here is a recipe", "The history of")


@dataclass(frozen=True)
class Serving:
    """The mixture that serves generations, and the job that trained it."""

    mixture: Mixture
    model: str
    job_id: str
    created_at: datetime
    """When the job was created: a newer job's mixture replaces an older one, never the reverse."""


class _Cancelled(Exception):
    pass


class JobRunner:
    """The one worker loop of this process for specialist training jobs."""

    def __init__(self, manager: ModelManager, specialists: SpecialistStore, jobs: JobStore,
                 corpora: SpecialistCorpora, weights: MixtureWeights, config: SpecialistConfig, model: str,
                 on_trained: Callable[[Serving], Awaitable[None]], lease: JobLease) -> None:
        self._manager, self._specialists, self._jobs = manager, specialists, jobs
        self._corpora, self._weights, self._config, self._model = corpora, weights, config, model
        self._lease = lease
        self._on_trained = on_trained
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._general: dict[str, list[int]] = {}
        self._current: str | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="specialist-jobs")

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                runtime = await self._manager.runtime(self._model)
                record = await asyncio.to_thread(claim, self._jobs, KIND, str(runtime.engine.device), self._lease)
            except asyncio.CancelledError:
                raise
            except Exception:  # model or database unavailable for now: keep the worker alive
                log.exception("specialist job worker cannot claim jobs; retrying")
                record = None
            if record is None:
                self._wake.clear()
                try:  # also polls: another server process may queue jobs in a shared database
                    await asyncio.wait_for(self._wake.wait(), timeout=max(1.0, self._config.poll_interval_s * 8))
                except asyncio.TimeoutError:
                    pass
                continue
            try:
                await self._run(record, runtime)
            except asyncio.CancelledError:  # shutdown: requeue so the next start resumes it
                await asyncio.to_thread(self._settle, record.job_id, JobState.QUEUED, "interrupted by shutdown")
                raise

    # ---- one job ------------------------------------------------------------------
    async def _run(self, record: JobRecord, runtime: ModelRuntime) -> None:
        job_id = record.job_id
        names: list[str] = []
        try:
            names = await asyncio.to_thread(self._begin, job_id)
            if not names:
                raise ValueError("no specialist has been added")
            progress = Progress(total=int(record.params.get("steps") or self._config.steps), phase="reading corpora")
            await self._report(job_id, progress, names)
            general, domains = await self._data(runtime, names)
            model = runtime.engine.model
            device = next(model.parameters()).device
            cfg = model.config
            mixture = Mixture(tuple(names), cfg.num_hidden_layers, cfg.hidden_size, self._config.rank,
                              seed=self._config.seed).to(device)
            await self._background(runtime, train_units(model, mixture, general, domains, progress.total,
                                                        self._config, progress), job_id, progress, names)
            frozen = mixture.frozen()
            evals: dict[str, DomainEval] = {}
            await self._background(runtime, eval_units(model, frozen, domains, self._config.eval_sequences, out=evals),
                                   job_id, progress, names)
            weights = await asyncio.to_thread(self._weights.save, frozen, job_id)
            metrics = {d.name: _metrics(d, evals.get(d.name)) for d in domains}
            # Serve the new mixture before the job reads as completed, so a client that saw the
            # job complete never gets the old mixture from this server (other replicas check
            # for a newer completed job on every request).
            await self._on_trained(Serving(frozen, runtime.name, job_id, record.created_at))
            await asyncio.to_thread(self._complete, job_id, names, weights, metrics, progress)
        except ConflictError as exc:  # our lease lapsed and another replica holds the job now
            log.warning("specialist job %s: %s; leaving it to its new holder", job_id, exc)
        except _Cancelled:
            await asyncio.to_thread(self._settle, job_id, JobState.CANCELLED, "cancelled", names)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the job fails; the server and the serving mixture carry on
            log.exception("specialist training job %s failed", job_id)
            await asyncio.to_thread(self._settle, job_id, JobState.FAILED, f"{type(exc).__name__}: {exc}", names)

    async def _background(self, runtime: ModelRuntime, units, job_id: str, progress: Progress,
                          names: list[str]) -> Any:
        task = asyncio.ensure_future(runtime.engine.run_background(units))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self._config.poll_interval_s)
                record = await self._report(job_id, progress, names)
                if record.cancel_requested:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    raise _Cancelled()
                if done:
                    return task.result()
        finally:
            if not task.done():
                task.cancel()

    async def _report(self, job_id: str, progress: Progress, names: list[str]) -> JobRecord:
        fraction = 0.9 * progress.step / progress.total if progress.total else 0.0
        if progress.phase == "evaluating":
            fraction = 0.95
        details = {"step": progress.step, "total_steps": progress.total, "loss": progress.loss,
                   "specialists": names, "train_seconds": round(progress.train_seconds, 3)}
        return await asyncio.to_thread(self._jobs.update_progress, job_id, min(fraction, 1.0),
                                       message=progress.phase, details=details, **self._lease.writes())

    # ---- data -------------------------------------------------------------------------
    async def _data(self, runtime: ModelRuntime, names: list[str]) -> tuple[Domain | None, list[Domain]]:
        tokenizer, cfg = runtime.loaded.tokenizer, self._config

        def build(name: str) -> Domain:
            ids = tokenizer("\n\n".join(self._corpora.read(name)), add_special_tokens=False)["input_ids"]
            return split(name, sequences(ids[: cfg.max_corpus_tokens], cfg.seq_len), cfg.heldout_fraction)

        domains = [await asyncio.to_thread(build, n) for n in names]
        if await asyncio.to_thread(self._corpora.has_general):
            general = await asyncio.to_thread(build, GENERAL)
        else:
            ids = await self._sampled_general(runtime)
            general = split(GENERAL, sequences(ids, cfg.seq_len), 0.0)
        return general, domains

    async def _sampled_general(self, runtime: ModelRuntime) -> list[int]:
        """Text sampled from the generalist, the stand-in for a general corpus."""
        if runtime.name in self._general:
            return self._general[runtime.name]
        tokenizer, n = runtime.loaded.tokenizer, self._config.general_samples
        room = max(2, min(self._config.seq_len, runtime.loaded.context_window - 8))

        async def one(i: int) -> list[int]:
            prompt = tokenizer(GENERAL_PROMPTS[i % len(GENERAL_PROMPTS)], add_special_tokens=False)["input_ids"]
            params = SamplingParams(max_new_tokens=room, temperature=1.0, top_k=50, seed=self._config.seed + i)
            ids = list(prompt)
            async for event in runtime.engine.generate(GenerationRequest(list(prompt), params,
                                                                         priority=Priority.BACKGROUND)):
                if isinstance(event, TokenEvent):
                    ids.extend(event.token_ids)
            return (ids + [tokenizer.eos_token_id or 0] * room)[:room]

        samples = await asyncio.gather(*(one(i) for i in range(n)))
        self._general[runtime.name] = [t for s in samples for t in s]
        return self._general[runtime.name]

    # ---- database (worker threads) -------------------------------------------------
    def gate_order(self) -> list[str]:
        rows = all_specialists(self._specialists)
        return [r.name for r in sorted(rows, key=lambda r: (r.created_at, r.name))]

    def _begin(self, job_id: str) -> list[str]:
        names = self.gate_order()
        for record in all_specialists(self._specialists):
            if record.status is not SpecialistStatus.READY:
                self._specialists.update_status(record.name, SpecialistStatus.TRAINING,
                                                metrics={**record.metrics, "training_job_id": job_id})
        return names

    def _complete(self, job_id: str, names: list[str], weights: str, metrics: dict[str, dict], progress: Progress) -> None:
        now = datetime.now(timezone.utc).isoformat()
        result = {"weights": weights, "specialists": names, "metrics": metrics, "model": self._model,
                  "train_seconds": round(progress.train_seconds, 3)}
        self._jobs.transition(job_id, JobState.COMPLETED, message="completed", result=result, owner=self._lease.owner)
        for name in names:
            try:
                self._specialists.update_status(name, SpecialistStatus.READY, weights_path=weights,
                                                metrics={**metrics[name], "training_job_id": job_id, "train_time": now})
            except NotFoundError:
                pass  # deleted while training: the next job drops its expert

    def _settle(self, job_id: str, state: JobState, message: str, names: list[str] = ()) -> None:
        try:
            owner = self._lease.owner
            if state is JobState.FAILED:
                self._jobs.transition(job_id, state, message=message, error=message, owner=owner)
            else:
                self._jobs.transition(job_id, state, message=message, owner=owner)
        except (ConflictError, NotFoundError):
            log.warning("job %s could not move to %s", job_id, state.value)
        if state is JobState.QUEUED:
            return
        for record in all_specialists(self._specialists):
            if record.name in names and record.status is SpecialistStatus.TRAINING:
                self._specialists.update_status(record.name, SpecialistStatus.FAILED)


def all_specialists(repo: SpecialistStore) -> list:
    out, token = [], ""
    while True:
        page = repo.list(page_size=1000, page_token=token)
        out.extend(page.items)
        token = page.next_page_token
        if not token:
            return out


def _metrics(domain: Domain, evaluation: DomainEval | None) -> dict[str, Any]:
    out: dict[str, Any] = {"train_tokens": int(domain.train.numel()), "heldout_tokens": int(domain.heldout.numel())}
    if evaluation is not None:
        out.update(heldout_loss=evaluation.loss, heldout_perplexity=evaluation.perplexity)
    return out
