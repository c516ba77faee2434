"""Continuous-batching scheduler: which rows to prefill, decode and drop at each step.

Pure Python (no torch) so it is testable without a model. It owns the bounded
waiting queue (admission control with ResourceExhausted, never an unbounded queue)
and the set of active rows (rows holding a KV slot). Not thread-safe: the engine
serialises calls with its own lock.

Per step, `schedule()`:
  1. drops active rows that finished or were cancelled since the last step (their slots
     are freed before anything else runs);
  2. continues the one row whose prompt is partly prefilled, then admits waiting rows,
     interactive before background, while a slot, the KV budget and the prefill token
     budget allow; a prompt larger than what is left of the token budget is cut into
     chunks (so at most one row is ever partly prefilled); an admitted row's prefill
     starts after the prompt tokens the prefix cache already holds (`prefix_lookup`);
  3. lists the rows that decode one token (rows whose prompt was complete before this step).

Fair share (`fair_share=True`). Within a class, the next row admitted is the oldest row of
the tenant that holds the fewest slots per unit of weight, so one tenant's queued burst
does not wait ahead of another tenant's single request. And when every slot is taken, a
tenant below its weighted share of the batch takes a slot from the tenant furthest above
its own: that tenant's decoding row with the least output is preempted by recompute (it
gives its KV slot back and returns to the head of its tenant's queue; when readmitted, its
prompt plus the tokens it already produced are prefilled again and decoding continues
where it stopped, with the same sampling state). Rows with hooks (LUT, grammar,
specialists, captures) keep per-row state tied to the forward passes they saw and are
never preempted. Without fair share, a class is one FIFO.
"""

from __future__ import annotations

import enum
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from models.errors import ResourceExhausted
from models.types import Priority


class RowStatus(enum.Enum):
    WAITING = "waiting"
    PREFILLING = "prefilling"
    RUNNING = "running"
    DONE = "done"


@dataclass(eq=False)
class SchedRow:
    """The scheduler's view of one request."""

    request_id: str
    prompt_len: int
    reserved_len: int
    """KV columns this row may use: prompt + max new tokens, clamped to the context."""
    priority: Priority = Priority.INTERACTIVE
    payload: Any = None
    """Opaque object for the engine (its own per-row state)."""
    status: RowStatus = RowStatus.WAITING
    num_prefilled: int = 0
    cancelled: bool = False
    finished: bool = False
    seq: int = 0
    tenant: str = ""
    """Who the row works for; fair share balances slots between tenants."""
    weight: float = 1.0
    """The tenant's share weight (a tenant of weight 2 may hold twice the slots of weight 1)."""
    preemptible: bool = True
    """False for rows whose hooks keep per-row state (they are never preempted)."""
    generated: int = 0
    """Tokens the row produced so far (counted by `schedule`); a readmitted row prefills them again."""
    base_len: int = 0
    """The original prompt's length (`prompt_len` grows by `generated` on preemption)."""


@dataclass(frozen=True)
class PrefillChunk:
    """Prompt tokens [start, end) of one row, prefilled this step."""

    row: SchedRow
    start: int
    end: int

    @property
    def completes_prompt(self) -> bool:
        return self.end == self.row.prompt_len


@dataclass
class SchedulerOutput:
    """What one engine step must do, in this order: drop, prefill, decode."""

    dropped: list[SchedRow] = field(default_factory=list)
    """Active rows leaving the batch now (finished or cancelled); free their slots first."""
    cancelled_waiting: list[SchedRow] = field(default_factory=list)
    """Rows cancelled before they were ever admitted (no slot to free)."""
    admitted: list[SchedRow] = field(default_factory=list)
    """Rows given a slot this step; each has a chunk in `prefill`."""
    prefill: list[PrefillChunk] = field(default_factory=list)
    """Prompt chunks to prefill, in pack order; only the last may leave its prompt incomplete."""
    decode: list[SchedRow] = field(default_factory=list)
    """Rows that generate one token this step (their prompt was complete before it)."""
    preempted: list[SchedRow] = field(default_factory=list)
    """Decoding rows that give their slot back now and wait to be recomputed (fair share)."""

    @property
    def has_model_work(self) -> bool:
        return bool(self.prefill or self.decode)

    @property
    def prefill_tokens(self) -> int:
        return sum(c.end - c.start for c in self.prefill)


class Scheduler:
    """Bounded waiting queue + active rows; see the module docstring."""

    def __init__(self, *, max_batch_rows: int, max_queued_requests: int, max_queued_tokens: int,
                 prefill_token_budget: int, kv_cache_tokens: int, retry_after_s: float,
                 fair_share: bool = False, prefix_lookup: Callable[[SchedRow], int] | None = None) -> None:
        self.max_batch_rows = max_batch_rows
        self.prefix_lookup = prefix_lookup
        """Called once per admission: how many leading prompt tokens already have their KV
        (the prefix cache); prefill starts there and only the rest counts against the budget."""
        self.max_queued_requests = max_queued_requests
        self.max_queued_tokens = max_queued_tokens
        self.prefill_token_budget = prefill_token_budget
        self.kv_cache_tokens = kv_cache_tokens
        self.retry_after_s = retry_after_s
        self.fair_share = fair_share
        # Per priority class (served in Priority order), one FIFO per tenant; without fair
        # share every row of a class goes to the same FIFO.
        self._waiting: dict[Priority, dict[str, deque[SchedRow]]] = {p: {} for p in sorted(Priority)}
        self._active: list[SchedRow] = []
        self.preemptions = 0
        self._rows: dict[str, SchedRow] = {}
        self._queued_tokens = 0
        self._seq = itertools.count()

    # ---- admission -----------------------------------------------------------
    def submit(self, row: SchedRow) -> None:
        """Queue a row, or raise ResourceExhausted if a queue bound would be exceeded."""
        if row.request_id in self._rows:
            raise ValueError(f"duplicate request id {row.request_id!r}")
        if row.reserved_len > self.kv_cache_tokens:
            raise ValueError("row reserves more KV columns than the whole cache budget")
        n_waiting = self.queued_requests
        if n_waiting >= self.max_queued_requests:
            raise ResourceExhausted(
                f"engine queue is full ({n_waiting} requests waiting)", self.retry_after_s)
        if n_waiting and self._queued_tokens + row.prompt_len > self.max_queued_tokens:
            raise ResourceExhausted(
                f"engine queue is full ({self._queued_tokens} prompt tokens waiting)", self.retry_after_s)
        row.status = RowStatus.WAITING
        row.seq = next(self._seq)
        row.base_len = row.prompt_len
        self._queue_of(row).append(row)
        self._rows[row.request_id] = row
        self._queued_tokens += row.prompt_len

    def cancel(self, request_id: str) -> bool:
        """Mark a row cancelled; it leaves at the next `schedule()`. False if unknown/done."""
        row = self._rows.get(request_id)
        if row is None or row.status is RowStatus.DONE:
            return False
        row.cancelled = True
        return True

    def finish(self, request_id: str) -> None:
        """The engine finished this row (stop/EOS/length/error); it leaves at the next step."""
        row = self._rows.get(request_id)
        if row is not None:
            row.finished = True

    # ---- the step ------------------------------------------------------------
    def schedule(self) -> SchedulerOutput:
        out = SchedulerOutput()
        self._drop_leaving(out)
        budget = self.prefill_token_budget
        # Continue the (single) partly prefilled row first: it already holds a slot.
        for row in self._active:
            if row.status is RowStatus.PREFILLING and budget > 0:
                end = min(row.prompt_len, row.num_prefilled + budget)
                out.prefill.append(PrefillChunk(row, row.num_prefilled, end))
                budget -= end - row.num_prefilled
        out.decode = [r for r in self._active if r.status is RowStatus.RUNNING]
        self._admit(out, budget)
        for chunk in out.prefill:
            chunk.row.num_prefilled = chunk.end
            chunk.row.status = RowStatus.RUNNING if chunk.completes_prompt else RowStatus.PREFILLING
            chunk.row.generated += chunk.completes_prompt
        for row in out.decode:
            row.generated += 1
        return out

    def _drop_leaving(self, out: SchedulerOutput) -> None:
        keep = []
        for row in self._active:
            if row.cancelled or row.finished:
                self._forget(row)
                out.dropped.append(row)
            else:
                keep.append(row)
        self._active = keep
        for queues in self._waiting.values():
            for tenant, queue in list(queues.items()):
                for r in [r for r in queue if r.cancelled]:
                    queue.remove(r)
                    self._queued_tokens -= r.prompt_len
                    self._forget(r)
                    out.cancelled_waiting.append(r)
                if not queue:
                    del queues[tenant]

    def _admit(self, out: SchedulerOutput, budget: int) -> None:
        for queues in self._waiting.values():
            while queues and budget > 0:
                row = self._next_waiting(queues)
                if len(self._active) >= self.max_batch_rows and not self._preempt_for(row, out):
                    return
                longest = max((r.reserved_len for r in self._active), default=0)
                # Rows are stored left-aligned in equal-length slots: the cache needs
                # rows x longest-row columns. Head-of-line blocking is deliberate: skipping
                # a big request for smaller ones could starve it forever.
                if (len(self._active) + 1) * max(longest, row.reserved_len) > self.kv_cache_tokens:
                    return
                key = self._queue_key(row)
                queues[key].popleft()
                if not queues[key]:
                    del queues[key]
                self._queued_tokens -= row.prompt_len
                start = self.prefix_lookup(row) if self.prefix_lookup else 0
                end = min(row.prompt_len, start + budget)
                budget -= end - start
                row.status = RowStatus.PREFILLING
                self._active.append(row)
                out.admitted.append(row)
                out.prefill.append(PrefillChunk(row, start, end))
            if budget <= 0:
                return

    # ---- fair share ------------------------------------------------------------
    def _queue_key(self, row: SchedRow) -> str:
        return row.tenant if self.fair_share else ""

    def _queue_of(self, row: SchedRow) -> deque[SchedRow]:
        return self._waiting[row.priority].setdefault(self._queue_key(row), deque())

    def _slots_by_tenant(self) -> dict[str, int]:
        held: dict[str, int] = {}
        for r in self._active:
            held[r.tenant] = held.get(r.tenant, 0) + 1
        return held

    def _next_waiting(self, queues: dict[str, deque[SchedRow]]) -> SchedRow:
        """The head of the tenant with the fewest slots per weight (oldest first on ties)."""
        held = self._slots_by_tenant()
        return min((q[0] for q in queues.values()),
                   key=lambda r: (held.get(r.tenant, 0) / r.weight, r.seq))

    def _preempt_for(self, row: SchedRow, out: SchedulerOutput) -> bool:
        """Free one slot for `row` if its tenant is below its share and another tenant would
        still hold at least as much per weight after giving one up; True if a slot was freed."""
        if not self.fair_share:
            return False
        held = self._slots_by_tenant()
        mine = (held.get(row.tenant, 0) + 1) / row.weight
        candidates = [r for r in out.decode
                      if r.preemptible and not (r.cancelled or r.finished) and r.tenant != row.tenant
                      and r.priority >= row.priority and (held[r.tenant] - 1) / r.weight >= mine]
        if not candidates:
            return False
        # The tenant furthest above its share gives up its row with the least output (the
        # cheapest to recompute; the newest on ties).
        victim = max(candidates, key=lambda r: (held[r.tenant] / r.weight, -r.generated, r.seq))
        self._active.remove(victim)
        out.decode.remove(victim)
        out.preempted.append(victim)
        victim.status = RowStatus.WAITING
        victim.prompt_len = victim.base_len + victim.generated
        victim.num_prefilled = 0
        self._queue_of(victim).appendleft(victim)
        self._queued_tokens += victim.prompt_len
        self.preemptions += 1
        return True

    def _forget(self, row: SchedRow) -> None:
        row.status = RowStatus.DONE
        self._rows.pop(row.request_id, None)

    # ---- introspection -------------------------------------------------------
    @property
    def queued_requests(self) -> int:
        return sum(len(q) for queues in self._waiting.values() for q in queues.values())

    @property
    def queued_tokens(self) -> int:
        return self._queued_tokens

    @property
    def active_rows(self) -> int:
        return len(self._active)

    @property
    def live_rows(self) -> int:
        """Active rows not yet finished or cancelled (those keep their slot until the next step)."""
        return sum(1 for r in self._active if not (r.finished or r.cancelled))

    @property
    def reserved_tokens(self) -> int:
        """KV columns the active rows hold: rows x the longest reservation (equal-length slots)."""
        return len(self._active) * max((r.reserved_len for r in self._active), default=0)

    @property
    def interactive_active(self) -> bool:
        return any(r.priority is Priority.INTERACTIVE for r in self._active)

    def has_pending(self) -> bool:
        """True if a step would do anything (rows to run, admit or drop)."""
        if self._active:
            return True
        return any(self._waiting.values())
