"""Continuous batching correctness: a row's tokens do not depend on its neighbours.

Greedy and seeded-sampled rows must produce the same tokens alone and inside a busy
batch where requests of different prompt lengths join and leave at different steps
(padding, position ids, masks, slot compaction and chunked prefill all exercised), on
tiny random models and, for greedy rows, on the real embedded SmolLM2.
"""

from __future__ import annotations

import asyncio

import pytest
import torch
from engine_testlib import collect, wait_steps

from models.engine.config import EngineConfig
from models.engine.engine import Engine
from models.engine.kernels import BUCKETS, BucketChoice, KernelPlan
from models.engine.packed import format_supported, onednn_available
from models.generation import ChatTurn, chat_prompt_ids
from models.loading import load_model
from models.registry import default_specs
from models.sampling_policy import SamplingParams
from tests.support import MODEL_CACHE

PROMPTS = [
    "the quick brown fox",
    "hello",
    "one two three four five six seven eight nine ten, hello world, hello engine",
    "naïve café déjà vu",
    "stop here. END of line",
]
GREEDY = SamplingParams(max_new_tokens=24, temperature=0.0)
SAMPLED = [
    SamplingParams(max_new_tokens=20, temperature=0.9, seed=11),
    SamplingParams(max_new_tokens=20, temperature=0.7, top_k=5, seed=12),
    SamplingParams(max_new_tokens=20, temperature=1.2, top_p=0.8, seed=13),
    SamplingParams(max_new_tokens=20, temperature=0.8, top_k=20, top_p=0.9, repetition_penalty=1.3, seed=14),
    SamplingParams(max_new_tokens=20, temperature=1.0, repetition_penalty=1.5, seed=15),
]


async def staggered(engine, requests: list[tuple[list[int], SamplingParams]], fillers) -> list:
    """Start each request a different number of steps after the previous one, with
    filler rows (other lengths, other budgets) joining and leaving in between."""

    async def later(i, ids, params):
        await wait_steps(engine, 2 * i + (i % 3))
        return await collect(engine, ids, params)

    filler_tasks = [asyncio.create_task(later(i, ids, p)) for i, (ids, p) in enumerate(fillers)]
    results = await asyncio.gather(*(later(i, ids, p) for i, (ids, p) in enumerate(requests)))
    await asyncio.gather(*filler_tasks)
    return results


def fillers(tokenizer) -> list:
    out = []
    for i, text in enumerate(["a b c", "lazy dog jumps " * 4, "x", "seven eight nine " * 3, "END"]):
        out.append((tokenizer(text)["input_ids"], SamplingParams(max_new_tokens=3 + 7 * i, temperature=0.8, seed=i)))
    return out


def _kernel_plans() -> dict[str, KernelPlan]:
    """Every kernel this CPU offers, for every batch size, and the two fp32 kernels
    alternating over the buckets (so a row changes kernel as its batch grows and shrinks)."""
    plans = {"torch": KernelPlan.fixed("torch", "configured")}
    if onednn_available():
        plans["onednn"] = KernelPlan.fixed("onednn", "configured")
        plans["mixed"] = KernelPlan(tuple(BucketChoice(lo, hi, "torch" if i % 2 == 0 else "onednn")
                                          for i, (lo, hi, _) in enumerate(BUCKETS)), "configured")
    return plans


KERNEL_PLANS = _kernel_plans()
BF16_KERNELS = (["torch-bf16", "onednn-bf16"] if format_supported("bf16") else []) \
    + (["torch-int8", "onednn-int8", "mixed-int8"] if format_supported("int8") else [])
"""Kernels of the bf16 and int8 weight formats, where this CPU runs them; "mixed-int8"
alternates int8's two kernels over the buckets."""
MIXED_INT8 = KernelPlan(tuple(BucketChoice(lo, hi, "torch-int8" if i % 2 == 0 else "onednn-int8")
                              for i, (lo, hi, _) in enumerate(BUCKETS)), "configured")


@pytest.mark.parametrize("kernels", [*KERNEL_PLANS, *BF16_KERNELS])
@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("budget", [512, 7])
async def test_greedy_alone_equals_greedy_in_busy_batch(arch, budget, kernels, request, make_engine, tokenizer):
    plan = KERNEL_PLANS.get(kernels) or (MIXED_INT8 if kernels == "mixed-int8" else KernelPlan.fixed(kernels, "configured"))
    engine = make_engine(request.getfixturevalue(arch), prefill_token_budget=budget, kernel_plan=plan,
                         weight_format=kernels.rpartition("-")[2] if "-" in kernels else "fp32")
    assert engine.kernels == plan
    prompts = [tokenizer(p)["input_ids"] for p in PROMPTS]
    alone = [await collect(engine, ids, GREEDY) for ids in prompts]
    batched = await staggered(engine, [(ids, GREEDY) for ids in prompts], fillers(tokenizer))
    for (a_tokens, a_fin, _), (b_tokens, b_fin, _) in zip(alone, batched):
        assert b_tokens == a_tokens
        assert (b_fin.reason, b_fin.text, b_fin.completion_tokens) == (a_fin.reason, a_fin.text, a_fin.completion_tokens)
    assert sum(len(r[0]) for r in alone) > 60  # the comparison covered real generations
    assert engine.stats().running_rows == 0 or await _drained(engine)


async def _drained(engine) -> bool:
    await wait_steps(engine, 1)
    return engine.stats().running_rows == 0


@pytest.mark.parametrize("kernels", list(KERNEL_PLANS))
@pytest.mark.parametrize("arch", ["llama", "gpt2"])
async def test_seeded_sampling_alone_equals_batched(arch, kernels, request, make_engine, tokenizer):
    engine = make_engine(request.getfixturevalue(arch), kernel_plan=KERNEL_PLANS[kernels])
    prompts = [tokenizer(p)["input_ids"] for p in PROMPTS]
    reqs = list(zip(prompts, SAMPLED))
    alone = [await collect(engine, ids, p) for ids, p in reqs]
    batched = await staggered(engine, reqs, fillers(tokenizer))
    assert [r[0] for r in batched] == [r[0] for r in alone]
    # Different seeds really give different streams (the seed is what is reproduced).
    other = await collect(engine, prompts[0], SamplingParams(max_new_tokens=20, temperature=0.9, seed=99))
    assert other[0] != alone[0][0]


async def test_same_seed_same_prompt_concurrently_gives_identical_streams(make_engine, tokenizer):
    engine = make_engine()
    ids = tokenizer(PROMPTS[2])["input_ids"]
    params = SamplingParams(max_new_tokens=16, temperature=1.0, seed=5)
    results = await asyncio.gather(*(collect(engine, ids, params) for _ in range(4)))
    assert all(r[0] == results[0][0] for r in results)
    unseeded = await asyncio.gather(*(collect(engine, ids, SamplingParams(max_new_tokens=16, temperature=1.0))
                                      for _ in range(3)))
    assert len({tuple(r[0]) for r in unseeded}) > 1


REAL_PROMPTS = [
    "The capital of France is",
    "Write a short poem about the sea:",
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    "Q: At what temperature does water boil at sea level?\nA:",
    ("Once upon a time, in a small village at the edge of a great forest, there lived an old clockmaker who "
     "repaired every clock in the valley. One winter morning a stranger arrived with a broken pocket watch "
     "that ran backwards, and asked him to mend it before the first snow melted. The clockmaker"),
]


REAL_GREEDY = SamplingParams(max_new_tokens=16, temperature=0.0)


@pytest.fixture(scope="module")
def smollm2():
    """The real embedded model, loaded the way the server loads it."""
    return load_model(next(s for s in default_specs() if s.source == "embedded"), MODEL_CACHE)


@pytest.mark.slow
@pytest.mark.parametrize("kernels", list(KERNEL_PLANS))
async def test_smollm2_greedy_alone_equals_greedy_in_busy_batch(smollm2, kernels):
    tokenizer = smollm2.tokenizer
    # A small prefill budget and cache so the long prompt is prefilled in chunks while
    # other rows decode, and the cache grows mid-batch.
    engine = Engine(smollm2.model, tokenizer, EngineConfig(prefill_token_budget=48, kv_initial_len=32),
                    device=smollm2.device, kernel_plan=KERNEL_PLANS[kernels])
    engine.start()
    try:
        chat = chat_prompt_ids(tokenizer, [ChatTurn("user", "What is the capital of France?")])
        prompts = [tokenizer(p)["input_ids"] for p in REAL_PROMPTS] + [chat]
        assert max(len(p) for p in prompts) > 48  # at least one prompt needs several prefill chunks
        alone = [await collect(engine, ids, REAL_GREEDY) for ids in prompts]
        batched = await staggered(engine, [(ids, REAL_GREEDY) for ids in prompts], fillers(tokenizer))
    finally:
        engine.stop()
    for (a_tokens, a_fin, _), (b_tokens, b_fin, _) in zip(alone, batched):
        assert b_tokens == a_tokens, (tokenizer.decode(a_tokens), tokenizer.decode(b_tokens))
        assert (b_fin.reason, b_fin.text) == (a_fin.reason, a_fin.text)
    assert "Paris" in alone[-1][1].text  # the real model, answering
