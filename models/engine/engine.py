"""The inference engine: one per device, shared by every service. It owns the step
loop (one dedicated thread: schedule -> execute -> detokenize/deliver), exposes
`generate()` as an async iterator of TokenEvent/FinishEvent, and runs background
jobs (activation extraction, training steps) in slices between decode steps.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable
from typing import Any

import torch

from models.engine.admission import EngineStats, check_request, context_window
from models.engine.config import EngineConfig
from models.engine.detokenize import RowDetokenizer, eos_ids_of
from models.engine.device_thread import DeviceThread
from models.engine.kernels import KernelCache, KernelPlan, install_linear_kernels
from models.engine.observer import (
    NULL_OBSERVER,
    EngineObserver,
    RequestRecord,
    StepRecord,
)
from models.engine.scheduler import SchedRow, Scheduler, SchedulerOutput
from models.engine.streams import BackgroundJob, Outbox, RowStream
from models.engine.worker import ModelRunnerOutput, Worker
from models.errors import Unavailable
from models.types import (
    FinishEvent,
    FinishReason,
    GenerationRequest,
    Priority,
    TokenEvent,
)

log = logging.getLogger(__name__)


class Engine:
    """Continuous-batching engine over one Hugging Face causal LM on one device."""

    def __init__(self, model, tokenizer, config: EngineConfig | None = None,
                 device: str | torch.device | None = None, observer: EngineObserver = NULL_OBSERVER,
                 kernel_cache: KernelCache | None = None, kernel_plan: KernelPlan | None = None) -> None:
        """Build on the thread that will run the engine (`start(device_thread)`): the linear
        kernels are measured here, with that thread's OpenMP team. `kernel_cache` keeps the
        measured choice across starts; `kernel_plan` imposes one (tests, benchmarks)."""
        self.config = config = config or EngineConfig()
        self.observer = observer
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model = model.to(self.device).eval()
        if config.num_threads and self.device.type == "cpu":
            torch.set_num_threads(config.num_threads)
        self.kernels: KernelPlan | None
        """The linear kernel per batch-row bucket on a CPU (None on other devices)."""
        self.kernels, self._measurement = install_linear_kernels(model, config, self.device, kernel_cache,
                                                                 kernel_plan)
        self.model = model
        self.tokenizer = tokenizer
        self.max_seq_len = context_window(model, config)
        self.eos_ids = eos_ids_of(tokenizer, model)
        self._worker = Worker(model, max_rows=config.max_batch_rows, max_seq_len=self.max_seq_len,
                              kv_cache_tokens=config.kv_cache_tokens, kv_initial_len=config.kv_initial_len,
                              prefix_cache_tokens=config.prefix_cache_tokens if config.prefix_cache else 0,
                              prefix_block_tokens=config.prefix_block_tokens, fast_forward=config.fast_forward)
        log.info("forward pass of %s: %s", type(model).__name__, self._worker.forward_path)
        self._scheduler = Scheduler(
            max_batch_rows=config.max_batch_rows, max_queued_requests=config.max_queued_requests,
            max_queued_tokens=config.max_queued_tokens, prefill_token_budget=config.prefill_token_budget,
            kv_cache_tokens=config.kv_cache_tokens, retry_after_s=config.retry_after_s,
            fair_share=config.fair_share, prefix_lookup=self._prefix_lookup if config.prefix_cache else None)
        self._lock = threading.Lock()  # guards scheduler, streams, jobs, state
        self._wake = threading.Event()
        self._streams: dict[str, RowStream] = {}
        self._jobs: deque[BackgroundJob] = deque()
        self._thread: DeviceThread | None = None
        self._state = "new"  # new -> running -> stopped
        self._steps = 0
        self._step_started: float | None = None  # monotonic start of the forward now running
        self._tokens = 0
        self._since_background = 0

    # ---- lifecycle ------------------------------------------------------------
    def start(self, device_thread: DeviceThread | None = None) -> None:
        """Run the step loop on `device_thread` (the thread that built this engine, so one
        OpenMP team serves the device) or on a new one; the engine owns it from now on."""
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"engine is {self._state}")
            self._state = "running"
        self._thread = device_thread or DeviceThread()
        self._thread.submit(self._run)
        self._thread.close()  # the loop is its last job: the thread ends with it

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the loop; unfinished streams end with ERROR, pending jobs with Unavailable."""
        with self._lock:
            if self._state != "running":
                self._state = "stopped"
                return
            self._state = "stopping"
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._state == "running"

    async def choose_kernels(self) -> KernelPlan | None:
        """Measure the linear kernels, when no plan was cached, configured or given, in
        small units between steps (the engine serves meanwhile, on oneDNN for every batch
        size); the plan in force afterwards."""
        measurement, self._measurement = self._measurement, None
        if measurement is not None:
            self.kernels = await self.run_background(measurement.units())
        return self.kernels

    def choose_kernels_now(self) -> KernelPlan | None:
        """`choose_kernels` at once, on the calling thread; before `start()` only."""
        if self._state != "new":
            raise RuntimeError("choose_kernels_now() is for an engine not started yet")
        measurement, self._measurement = self._measurement, None
        if measurement is not None:
            self.kernels = measurement.run()
        return self.kernels


    # ---- public API -------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent | FinishEvent]:
        """Stream one request's events; exactly one FinishEvent ends the stream.

        Raises (from the first `__anext__`, before any event) InvalidArgument for a
        prompt that does not fit, ResourceExhausted when the queue is full, Unavailable
        when the engine is not running. Leaving the loop early, cancelling the task or a
        deadline cancels the row; it leaves the batch at the next step.
        """
        started = last = time.monotonic()
        stream = self._submit(request, asyncio.get_running_loop())
        finished = False
        received = 0
        first: float | None = None
        try:
            while True:
                event = await stream.queue.get()
                now = time.monotonic()
                if isinstance(event, TokenEvent):
                    (self.observer.inter_token if received else self.observer.first_token)(now - last)
                    first = now if first is None else first
                    received += len(event.token_ids)
                    last = now
                finished = isinstance(event, FinishEvent)
                if finished:
                    # Reported before the caller sees the end, so metrics read after a
                    # response count it.
                    self._report(stream, event.reason, event.completion_tokens, started, first, now)
                yield event
                if finished:
                    return
        finally:
            if not finished:
                self.cancel(request.request_id)
                self._report(stream, FinishReason.CANCELLED, received, started, first, time.monotonic())

    def _report(self, stream: RowStream, reason: FinishReason, completion_tokens: int, started: float,
                first: float | None, end: float) -> None:
        request, admitted = stream.request, stream.admitted_at
        self.observer.finished(RequestRecord(
            prompt_tokens=len(request.prompt_ids), completion_tokens=completion_tokens, reason=reason.value,
            e2e_s=end - started, hooks=tuple((h.kind, h.fired()) for h in request.hooks),
            started_at=time.time() - (time.monotonic() - started),
            queue_wait_s=None if admitted is None else admitted - started,
            first_token_s=None if first is None else first - started))

    def cancel(self, request_id: str) -> bool:
        with self._lock:
            found = self._scheduler.cancel(request_id)
        self._wake.set()
        return found

    async def run_background(self, job: Iterable[Any]) -> Any:
        """Run `job` (an iterator of small units) on the engine thread between steps;
        returns the generator's return value. Cancelling the caller stops the job.
        Units may run their own forwards on the model: no row's layer taps are
        installed while a unit runs."""
        loop = asyncio.get_running_loop()
        bg = BackgroundJob(iter(job), loop, loop.create_future())
        with self._lock:
            if self._state != "running":
                raise Unavailable("engine is not running")
            self._jobs.append(bg)
        self._wake.set()
        try:
            return await bg.future
        except asyncio.CancelledError:
            bg.cancelled = True
            self._wake.set()
            raise

    def stalled(self, limit_s: float) -> str:
        """Why this engine cannot serve ("" when it can): its loop died, or one step has run
        longer than `limit_s` (a hung device, a deadlock)."""
        if self._state != "running" or self._thread is None or not self._thread.is_alive():
            return f"engine loop is {self._state if self._state != 'running' else 'dead'}"
        started = self._step_started
        if started is not None and time.monotonic() - started > limit_s:
            return f"engine step running for {time.monotonic() - started:.0f} s"
        return ""

    def stats(self) -> EngineStats:
        with self._lock:
            return EngineStats(
                running_rows=self._scheduler.active_rows, queued_requests=self._scheduler.queued_requests,
                queued_tokens=self._scheduler.queued_tokens, steps=self._steps,
                tokens_generated=self._tokens, background_jobs=len(self._jobs),
                kv_cache_bytes=self._worker.cache.nbytes(), preemptions=self._scheduler.preemptions,
                live_rows=self._scheduler.live_rows,
                kv_slots_used=self._scheduler.active_rows,
                kv_slots_total=self.config.max_batch_rows, kv_tokens_reserved=self._scheduler.reserved_tokens,
                kv_tokens_total=self.config.kv_cache_tokens,
                hook_rows=tuple(sorted(Counter(kind for s in self._streams.values()
                                               for kind in {h.kind for h in s.request.hooks}).items())),
                **self._prefix_stats())

    def _prefix_stats(self) -> dict[str, int]:
        cache = self._worker.prefix_cache
        if cache is None:
            return {}
        return {"prefix_cache_tokens": cache.used_tokens, "prefix_cache_tokens_total": cache.capacity_tokens,
                "prefix_cache_bytes": cache.nbytes(),
                "prefix_cache_evicted_tokens": cache.stats.evicted_blocks * cache.block_tokens}

    # ---- admission (caller's thread) ------------------------------------------
    def _submit(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop) -> RowStream:
        check_request(request, max_seq_len=self.max_seq_len, vocab_size=self._worker.vocab_size,
                      num_layers=self._worker.num_layers)
        n = len(request.prompt_ids)
        detok = RowDetokenizer(self.tokenizer, request.prompt_ids, stop_sequences=request.params.stop_sequences,
                               eos_ids=self.eos_ids, max_new_tokens=request.params.max_new_tokens,
                               max_seq_len=self.max_seq_len)
        stream = RowStream(request, loop, asyncio.Queue(), detok, submitted_at=time.monotonic())
        row = SchedRow(request.request_id, n, min(n + request.params.max_new_tokens, self.max_seq_len),
                       Priority(request.priority), payload=request, tenant=request.tenant,
                       weight=self.config.tenant_weights.get(request.tenant, 1.0),
                       preemptible=not request.hooks)
        with self._lock:
            if self._state != "running":
                raise Unavailable("engine is not running")
            self._scheduler.submit(row)  # raises ResourceExhausted when full
            self._streams[request.request_id] = stream
        self._wake.set()
        return stream

    # ---- the engine thread -------------------------------------------------------
    def _prefix_lookup(self, row: SchedRow) -> int:
        """The scheduler admits `row` (engine thread, lock held): prompt tokens it takes
        from the prefix cache."""
        cached, eligible = self._worker.reserve_prefix(row.payload)
        if eligible:
            self.observer.prefix_lookup(row.prompt_len, cached)
        return cached

    def _run(self) -> None:
        if self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)
        try:
            while self._state == "running":
                self._wake.clear()
                did_work = self._step()
                if not self._run_background(did_work) and not did_work:
                    self._wake.wait()
        except BaseException:  # a bug in the loop itself: fail everything loudly
            log.exception("engine loop crashed")
        finally:
            self._shutdown()

    def _step(self) -> bool:
        with self._lock:
            sched = self._scheduler.schedule()
        outbox = Outbox()
        for row in sched.dropped + sched.cancelled_waiting:
            stream = self._streams.pop(row.request_id, None)
            if stream is not None and not stream.done:
                outbox.put(stream, stream.finish_event(FinishReason.CANCELLED))
        if sched.admitted:
            now = time.monotonic()
            for row in sched.admitted:
                stream = self._streams.get(row.request_id)
                if stream is not None:
                    stream.admitted_at = now
                    self.observer.queue_wait(now - stream.submitted_at)
        if sched.has_model_work:
            self.observer.step(StepRecord(batch_rows=len(sched.prefill) + len(sched.decode),
                                          prefill_tokens=sched.prefill_tokens, decode_rows=len(sched.decode)))
        if sched.has_model_work or sched.dropped or sched.cancelled_waiting:
            self._step_started = time.monotonic()
            try:
                result = self._worker.execute(sched)
            except Exception as exc:
                log.exception("engine step failed")
                self._fail_rows(sched, exc, outbox)
            else:
                self._process(result, outbox)
            finally:
                self._step_started = None
        if not self._worker.num_rows and not sched.has_model_work:
            self._worker.cache.reset_if_oversized()
        outbox.flush()
        if sched.has_model_work:
            self._steps += 1
            self._since_background += 1
        return sched.has_model_work

    def _process(self, result: ModelRunnerOutput, outbox: Outbox) -> None:
        self._tokens += len(result.token_ids)
        finished: list[str] = []
        for rid, tok in zip(result.request_ids, result.token_ids):
            stream = self._streams.get(rid)
            if stream is None or stream.done or rid in result.errors:
                continue
            delta = stream.detok.add(tok)
            reason = stream.detok.finish_reason
            if rid in result.hook_finished and reason in (None, FinishReason.LENGTH):
                # A hook that declares the output complete on the last allowed token ends a
                # complete reply, not one cut by the limit.
                reason = FinishReason.EOS
                delta += stream.detok.flush()
            outbox.put(stream, TokenEvent((tok,), delta))
            if reason is not None:
                outbox.put(stream, stream.finish_event(reason))
                finished.append(rid)
        for rid, message in result.errors.items():
            stream = self._streams.get(rid)
            if stream is not None and not stream.done:
                outbox.put(stream, stream.finish_event(FinishReason.ERROR, message))
                finished.append(rid)
        self._worker.keep_kv(finished)
        self._retire(finished)

    def _fail_rows(self, sched: SchedulerOutput, exc: Exception, outbox: Outbox) -> None:
        """The forward pass raised: end every row of this step with ERROR, keep serving."""
        ids = {r.request_id for r in sched.decode} | {c.row.request_id for c in sched.prefill}
        message = f"generation step failed: {type(exc).__name__}"
        for rid in ids:
            stream = self._streams.get(rid)
            if stream is not None and not stream.done:
                outbox.put(stream, stream.finish_event(FinishReason.ERROR, message))
        self._retire(list(ids))

    def _retire(self, request_ids: list[str]) -> None:
        if not request_ids:
            return
        with self._lock:
            for rid in request_ids:
                self._scheduler.finish(rid)
                self._streams.pop(rid, None)
        self._wake.set()  # one more pass frees their slots even if nothing else is pending

    def _run_background(self, did_work: bool) -> bool:
        """Run at most one background unit; True if one ran."""
        with self._lock:
            if not self._jobs:
                return False
            interactive = self._scheduler.interactive_active or self._scheduler.queued_requests > 0
            if did_work and interactive and self._since_background < self.config.background_slice_every:
                return False
            job = self._jobs.popleft()
        self._since_background = 0
        # Background units run their own forwards on the model; the interactive rows'
        # layer taps are re-installed before the next step and must not fire meanwhile.
        self._worker.taps.clear()
        if job.run_unit():
            with self._lock:
                self._jobs.append(job)
        return True

    def _shutdown(self) -> None:
        try:
            self._worker.close()
        except Exception:
            log.exception("closing the worker failed")
        with self._lock:
            self._state = "stopped"
            streams = list(self._streams.values())
            self._streams.clear()
            jobs = list(self._jobs)
            self._jobs.clear()
        outbox = Outbox()
        for stream in streams:
            if not stream.done:
                outbox.put(stream, stream.finish_event(FinishReason.ERROR, "engine stopped"))
        outbox.flush()
        for job in jobs:
            job.fail(Unavailable("engine stopped"))
