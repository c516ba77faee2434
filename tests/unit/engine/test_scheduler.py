"""Scheduler unit tests: pure Python, no model."""

from __future__ import annotations

import subprocess
import sys

import pytest

from models.engine.scheduler import RowStatus, Scheduler, SchedRow
from models.errors import ResourceExhausted
from models.types import Priority


def make(**kw) -> Scheduler:
    args = dict(max_batch_rows=4, max_queued_requests=8, max_queued_tokens=1000, prefill_token_budget=100,
                kv_cache_tokens=10_000, retry_after_s=0.5)
    args.update(kw)
    return Scheduler(**args)


def row(rid: str, prompt: int = 10, reserve: int | None = None, priority=Priority.INTERACTIVE) -> SchedRow:
    return SchedRow(rid, prompt, reserve if reserve is not None else prompt + 20, priority)


def ids(rows) -> list[str]:
    return [getattr(r, "request_id", None) or r.row.request_id for r in rows]


def test_scheduler_module_does_not_import_torch():
    code = "import sys, models.engine.scheduler; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=".").returncode == 0


def test_new_rows_prefill_then_decode():
    s = make()
    s.submit(row("a"))
    s.submit(row("b"))
    out = s.schedule()
    assert ids(out.admitted) == ["a", "b"] and ids(out.prefill) == ["a", "b"] and out.decode == []
    assert [(c.start, c.end) for c in out.prefill] == [(0, 10), (0, 10)]
    s.submit(row("c"))
    out = s.schedule()
    assert ids(out.decode) == ["a", "b"] and ids(out.prefill) == ["c"]
    out = s.schedule()
    assert ids(out.decode) == ["a", "b", "c"] and out.prefill == []


def test_long_prompt_is_chunked_within_token_budget_and_decoding_continues():
    s = make(prefill_token_budget=100)
    s.submit(row("short", 10))
    s.schedule()
    s.submit(row("long", 250))
    s.submit(row("next", 30))
    spans = []
    for _ in range(3):
        out = s.schedule()
        assert "short" in ids(out.decode)  # decoding never waits for the long prompt
        assert out.prefill_tokens <= 100
        spans.append([(c.row.request_id, c.start, c.end) for c in out.prefill])
    assert spans[0] == [("long", 0, 100)]
    assert spans[1] == [("long", 100, 200)]
    assert spans[2] == [("long", 200, 250), ("next", 0, 30)]
    out = s.schedule()
    assert ids(out.decode) == ["short", "long", "next"]


def test_at_most_one_row_is_partly_prefilled():
    s = make(prefill_token_budget=50)
    for i in range(3):
        s.submit(row(f"r{i}", 40))
    out = s.schedule()
    assert [(c.row.request_id, c.start, c.end) for c in out.prefill] == [("r0", 0, 40), ("r1", 0, 10)]
    out = s.schedule()
    assert [(c.row.request_id, c.start, c.end) for c in out.prefill] == [("r1", 10, 40), ("r2", 0, 20)]
    assert ids(out.decode) == ["r0"]


def test_batch_rows_limit():
    s = make(max_batch_rows=2)
    for i in range(3):
        s.submit(row(f"r{i}"))
    assert ids(s.schedule().admitted) == ["r0", "r1"]
    assert s.schedule().admitted == []
    assert s.queued_requests == 1 and s.active_rows == 2


def test_interactive_admitted_before_background():
    s = make(max_batch_rows=1)
    s.submit(row("bg", priority=Priority.BACKGROUND))
    s.submit(row("fg"))
    assert ids(s.schedule().admitted) == ["fg"]


def test_queue_bounds_raise_resource_exhausted():
    s = make(max_queued_requests=2, max_queued_tokens=25)
    s.submit(row("a", 10))
    with pytest.raises(ResourceExhausted) as info:
        s.submit(row("b", 20))  # 30 tokens > 25
    assert info.value.retry_after_s == 0.5
    s.submit(row("c", 10))
    with pytest.raises(ResourceExhausted):
        s.submit(row("d", 1))  # 2 requests already waiting
    assert s.queued_requests == 2 and s.queued_tokens == 20
    s.schedule()  # admission frees queue space
    s.submit(row("d", 1))


def test_lone_request_larger_than_token_bound_is_accepted_into_empty_queue():
    s = make(max_queued_tokens=5)
    s.submit(row("big", 50))
    assert s.queued_tokens == 50


def test_cancel_running_row_drops_it_at_next_step():
    s = make()
    s.submit(row("a"))
    s.submit(row("b"))
    s.schedule()
    assert s.cancel("a")
    out = s.schedule()
    assert ids(out.dropped) == ["a"] and ids(out.decode) == ["b"]
    assert s.active_rows == 1
    assert not s.cancel("a")  # already gone


def test_cancel_waiting_row_removes_it_from_queue():
    s = make(max_batch_rows=1)
    s.submit(row("a"))
    s.submit(row("b", 7))
    s.schedule()
    s.cancel("b")
    out = s.schedule()
    assert ids(out.cancelled_waiting) == ["b"] and out.admitted == []
    assert s.queued_requests == 0 and s.queued_tokens == 0


def test_finished_row_frees_its_slot_for_a_waiting_one():
    s = make(max_batch_rows=1)
    s.submit(row("a"))
    s.submit(row("b"))
    s.schedule()
    s.finish("a")
    out = s.schedule()
    assert ids(out.dropped) == ["a"] and ids(out.admitted) == ["b"]


def test_kv_budget_limits_admission_by_longest_reservation():
    s = make(kv_cache_tokens=300, max_batch_rows=8)
    s.submit(row("a", 10, reserve=100))
    s.submit(row("b", 10, reserve=100))
    s.submit(row("c", 10, reserve=100))
    s.submit(row("d", 10, reserve=100))
    assert ids(s.schedule().admitted) == ["a", "b", "c"]  # 4 x 100 > 300
    s.finish("a")
    assert ids(s.schedule().admitted) == ["d"]


def test_duplicate_request_id_rejected():
    s = make()
    s.submit(row("a"))
    with pytest.raises(ValueError):
        s.submit(row("a"))


def test_status_transitions():
    s = make(prefill_token_budget=5)
    r = row("a", 8)
    s.submit(r)
    assert r.status is RowStatus.WAITING
    s.schedule()
    assert r.status is RowStatus.PREFILLING and r.num_prefilled == 5
    s.schedule()
    assert r.status is RowStatus.RUNNING
    s.cancel("a")
    s.schedule()
    assert r.status is RowStatus.DONE
    assert not s.has_pending()


# ---- fair share between tenants --------------------------------------------------
def tenant_row(rid: str, tenant: str, prompt: int = 10, weight: float = 1.0, preemptible: bool = True) -> SchedRow:
    return SchedRow(rid, prompt, prompt + 20, tenant=tenant, weight=weight, preemptible=preemptible)


def held_slots(s: Scheduler) -> dict[str, int]:
    held: dict[str, int] = {}
    for r in s._active:
        held[r.tenant] = held.get(r.tenant, 0) + 1
    return held


def fill(s: Scheduler, tenant: str, n: int, steps: int = 3) -> None:
    for i in range(n):
        s.submit(tenant_row(f"{tenant}{i}", tenant))
    for _ in range(steps):
        s.schedule()


def test_without_fair_share_a_lone_request_waits_behind_another_tenants_burst():
    s = make(max_batch_rows=4)
    fill(s, "a", 6)  # 4 decoding, 2 queued
    s.submit(tenant_row("b0", "b"))
    out = s.schedule()
    assert out.preempted == [] and ids(out.admitted) == [] and len(out.decode) == 4
    s.finish("a0")
    out = s.schedule()
    assert ids(out.admitted) == ["a4"]  # FIFO: a's queued rows come first


def test_fair_share_admits_the_tenant_holding_fewest_slots_first():
    s = make(max_batch_rows=4, fair_share=True, kv_cache_tokens=10_000)
    for i in range(3):
        s.submit(tenant_row(f"a{i}", "a"))
    s.submit(tenant_row("b0", "b"))
    out = s.schedule()
    # a0 first (oldest), then b0 (b holds none while a holds one), then a's others.
    assert ids(out.admitted) == ["a0", "b0", "a1", "a2"]


def test_fair_share_preempts_the_busiest_tenants_least_advanced_row():
    s = make(max_batch_rows=4, fair_share=True)
    fill(s, "a", 4)
    s.schedule()  # a0..a3 decode; every row has produced the same count
    s.submit(tenant_row("b0", "b"))
    out = s.schedule()
    assert ids(out.admitted) == ["b0"]
    assert ids(out.preempted) == ["a3"]  # equal output: the newest row goes
    victim = out.preempted[0]
    assert victim.status is RowStatus.WAITING and victim not in out.decode
    assert victim.prompt_len == victim.base_len + victim.generated == 10 + 4
    assert s.active_rows == 4 and s.queued_requests == 1 and s.preemptions == 1
    # Steady state: 3 + 1 is within one row of an even split; no ping-pong.
    for _ in range(3):
        out = s.schedule()
        assert out.preempted == [] and out.admitted == []
    # When a slot frees, the preempted row comes back and prefills prompt + output again.
    s.finish("a0")
    out = s.schedule()
    assert ids(out.admitted) == ["a3"] and [(c.start, c.end) for c in out.prefill] == [(0, 14)]


def test_fair_share_balances_two_busy_tenants_evenly_and_respects_weights():
    s = make(max_batch_rows=4, fair_share=True, max_queued_requests=20)
    fill(s, "a", 4)
    for i in range(4):
        s.submit(tenant_row(f"b{i}", "b"))
    for _ in range(4):
        s.schedule()
    assert held_slots(s) == {"a": 2, "b": 2}

    s = make(max_batch_rows=6, fair_share=True, max_queued_requests=20)
    for i in range(6):
        s.submit(SchedRow(f"a{i}", 10, 30, tenant="a", weight=1.0))
    for _ in range(3):
        s.schedule()
    for i in range(6):
        s.submit(SchedRow(f"b{i}", 10, 30, tenant="b", weight=2.0))
    for _ in range(6):
        s.schedule()
    assert held_slots(s) == {"a": 2, "b": 4}


def test_rows_with_hooks_and_same_tenant_rows_are_never_preempted():
    s = make(max_batch_rows=2, fair_share=True)
    for i in range(2):
        s.submit(tenant_row(f"a{i}", "a", preemptible=False))
    s.schedule()
    s.schedule()
    s.submit(tenant_row("b0", "b"))
    out = s.schedule()
    assert out.preempted == [] and out.admitted == []
    s = make(max_batch_rows=2, fair_share=True)
    fill(s, "a", 3)
    out = s.schedule()
    assert out.preempted == [] and out.admitted == []


def test_cancelled_preempted_row_leaves_from_the_queue():
    s = make(max_batch_rows=2, fair_share=True)
    fill(s, "a", 2)
    s.submit(tenant_row("b0", "b"))
    out = s.schedule()
    (victim,) = out.preempted
    s.cancel(victim.request_id)
    out = s.schedule()
    assert ids(out.cancelled_waiting) == [victim.request_id] and s.queued_requests == 0


def test_prefill_starts_after_cached_prefix_and_only_the_rest_counts_against_the_budget():
    cached = {"chat": 240, "new": 0}
    asked = []

    def lookup(r: SchedRow) -> int:
        asked.append(r.request_id)
        return cached[r.request_id]

    s = make(prefill_token_budget=100, prefix_lookup=lookup)
    s.submit(row("chat", 300))
    s.submit(row("new", 50))
    out = s.schedule()
    # 60 uncached tokens of "chat" and 40 of "new" fill the budget of 100.
    assert [(c.row.request_id, c.start, c.end) for c in out.prefill] == [("chat", 240, 300), ("new", 0, 40)]
    assert out.prefill_tokens == 100
    out = s.schedule()
    assert [(c.row.request_id, c.start, c.end) for c in out.prefill] == [("new", 40, 50)]
    assert ids(out.decode) == ["chat"]
    assert asked == ["chat", "new"]  # asked once per admission, not per chunk
