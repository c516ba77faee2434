"""Fair share between tenants on a real (tiny) engine: a lone request is not held back
by another tenant's full batch, and a preempted row resumes with the same output."""

from __future__ import annotations

import asyncio
import time

import pytest
from engine_testlib import byte_ids

from models.sampling_policy import SamplingParams
from models.types import FinishEvent, GenerationRequest

LONG = SamplingParams(max_new_tokens=40, temperature=0.0)
SHORT = SamplingParams(max_new_tokens=3, temperature=0.0)
PROMPTS = ["the quick brown fox", "hello world, hello"]


async def run(engine, ids, params, tenant, log: list, name: str) -> list[int]:
    tokens: list[int] = []
    async for event in engine.generate(GenerationRequest(list(ids), params, tenant=tenant)):
        if isinstance(event, FinishEvent):
            log.append(("finish", name))
            return tokens
        if not tokens:
            log.append(("first", name))
        tokens += event.token_ids
    raise AssertionError("no FinishEvent")


@pytest.fixture
def brake(llama):
    """10 ms per forward pass, so the order of events does not depend on the event loop."""
    handle = llama.register_forward_pre_hook(lambda *_: time.sleep(0.01))
    yield
    handle.remove()


async def busy_tenant_then_lone_request(engine, tokenizer) -> tuple[list, dict[str, list[int]]]:
    log: list = []
    a = [asyncio.create_task(run(engine, byte_ids(tokenizer, p), LONG, "a", log, f"a{i}"))
         for i, p in enumerate(PROMPTS)]
    while sum(1 for kind, _ in log if kind == "first") < 2:  # both of a's rows decode
        await asyncio.sleep(0.001)
    b = await run(engine, byte_ids(tokenizer, "one two"), SHORT, "b", log, "b")
    return log, {"a0": await a[0], "a1": await a[1], "b": b}


async def test_lone_tenant_is_served_while_another_tenant_holds_every_slot(make_engine, tokenizer, brake):
    reference = make_engine(max_batch_rows=2, fair_share=True)
    solo = {f"a{i}": await run(reference, byte_ids(tokenizer, p), LONG, "a", [], "") for i, p in enumerate(PROMPTS)}
    assert all(len(t) >= 20 for t in solo.values())  # long enough to overlap b's request

    engine = make_engine(max_batch_rows=2, fair_share=True, prefix_block_tokens=4)
    log, out = await busy_tenant_then_lone_request(engine, tokenizer)
    # b finished before either of a's rows: it took a slot instead of waiting for one.
    assert log.index(("finish", "b")) < min(log.index(("finish", "a0")), log.index(("finish", "a1")))
    assert engine.stats().preemptions == 1
    # The preempted row was recomputed and continued exactly where it stopped; its KV,
    # kept when it gave its slot up, came back from the prefix cache.
    assert out["a0"] == solo["a0"] and out["a1"] == solo["a1"]
    assert engine._worker.prefix_cache.stats.hits >= 1


async def test_without_fair_share_the_lone_request_waits_for_a_free_slot(make_engine, tokenizer, brake):
    engine = make_engine(max_batch_rows=2, fair_share=False)
    log, _ = await busy_tenant_then_lone_request(engine, tokenizer)
    first_a_finish = min(log.index(("finish", "a0")), log.index(("finish", "a1")))
    assert log.index(("first", "b")) > first_a_finish
    assert engine.stats().preemptions == 0
