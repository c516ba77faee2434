"""Linear kernels chosen by measurement: one choice per batch-row bucket, made on the
real layers, cached by machine/torch/model/dtype/threads (a second start reads it), and
each layer following the choice of its call's row count."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os

import pytest
import torch
from engine_testlib import collect, make_gpt2, make_llama

from models.engine import kernels
from models.engine.config import EngineConfig
from models.engine.engine import Engine
from models.engine.kernels import BUCKETS, KernelCache, KernelPlan
from models.engine.packed import (
    PackedLinear,
    format_supported,
    onednn_available,
    packed_layers,
)
from models.sampling_policy import SamplingParams

pytestmark = pytest.mark.skipif(not onednn_available(), reason="this torch build has no oneDNN linear ops")


@pytest.fixture
def cache(tmp_path):
    # Any load: the test is about caching, not about whether this machine is quiet.
    return KernelCache(tmp_path / "kernels", "tiny", max_other_cpu=math.inf)


def _engine(tokenizer, cache=None, plan=None, threads=1, model=None, **config) -> Engine:
    engine = Engine(model or make_llama(len(tokenizer)), tokenizer, EngineConfig(num_threads=threads, **config),
                    device="cpu", kernel_cache=cache, kernel_plan=plan)
    engine.choose_kernels_now()
    return engine


async def test_without_a_choice_onednn_serves_until_the_measurement_between_steps(tokenizer, cache, make_engine):
    engine = make_engine(make_llama(len(tokenizer)), kernel_cache=cache)
    assert engine.kernels.source == "pending" and engine.kernels.kernels == {"onednn"}
    # Both paths' weights are there for the measurement meanwhile.
    assert all(m._packed is not None and m._plain is not None for m in packed_layers(engine.model))
    served = asyncio.create_task(collect(engine, [5, 9, 13], SamplingParams(max_new_tokens=30, temperature=0)))
    plan = await engine.choose_kernels()
    assert plan.source == "measured" and engine.kernels is plan
    assert len((await served)[0]) == 30
    assert cache.read(plan.key) == dataclasses.replace(plan, source="cache")
    layers = packed_layers(engine.model)
    assert all((m._packed is not None) == ("onednn" in plan.kernels) for m in layers)
    assert all((m._plain is not None) == ("torch" in plan.kernels) for m in layers)


@pytest.mark.skipif(not format_supported("int8"), reason="int8 is refused on this CPU (tested below)")
def test_int8_serves_its_few_rows_on_torch_until_the_measurement(tokenizer, make_engine):
    engine = make_engine(make_llama(len(tokenizer)), weight_format="int8")
    plan = engine.kernels
    assert plan.source == "pending"
    assert [plan.kernel_for(r) for r in (1, 8, 9, 64)] == ["torch-int8", "torch-int8", "onednn-int8", "onednn-int8"]


def test_other_processes_cpu_counts_other_processes_not_this_one():
    import subprocess
    import sys
    import time

    def measured(seconds: float) -> float:
        meter = kernels.OtherProcessesCpu()
        meter.start()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:  # this process busy: not "other" work
            pass
        meter.stop()
        return meter.share()

    cores = os.cpu_count() or 1
    assert measured(0.5) < 0.5 / cores
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(min(cores, 4))]
    try:
        time.sleep(0.3)  # started and spinning
        # Each spinner takes a core (or shares one with this process): well above zero.
        assert measured(1.0) > 0.5 * min(cores, 4) / cores / 2
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def test_the_choice_is_measured_per_bucket_then_read_from_the_cache(tokenizer, cache):
    threads = torch.get_num_threads()
    try:
        first = _engine(tokenizer, cache).kernels
        assert first.source == "measured" and first.measure_s > 0
        assert [(b.min_rows, b.max_rows) for b in first.buckets] == [(lo, hi) for lo, hi, _ in BUCKETS]
        for b in first.buckets:  # both kernels timed in every bucket, the faster (by the margin) kept
            assert set(b.measured_ms) == {"torch", "onednn"} and all(ms > 0 for ms in b.measured_ms.values())
            faster = "torch" if b.measured_ms["torch"] < (1 - kernels.MARGIN) * b.measured_ms["onednn"] else "onednn"
            assert b.kernel == faster
        files = list(cache.folder.glob("kernels-*.json"))
        assert len(files) == 1
        stored = json.loads(files[0].read_text())
        assert stored["key"]["threads"] == 1 and stored["key"]["model"] == "tiny"
        assert stored["key"]["cpu"] and stored["key"]["torch"] == torch.__version__

        second = _engine(tokenizer, cache).kernels
        assert second.source == "cache"
        assert second.buckets == first.buckets and second.measure_s == first.measure_s

        # Another thread count is another machine as far as kernels go: measured again.
        assert _engine(tokenizer, cache, threads=2).kernels.source == "measured"
        assert len(list(cache.folder.glob("kernels-*.json"))) == 2
    finally:
        torch.set_num_threads(threads)


def test_a_damaged_or_foreign_cache_file_is_measured_again(tokenizer, cache):
    plan = _engine(tokenizer, cache).kernels
    path = cache.path(plan.key)
    path.write_text("{not json")
    assert _engine(tokenizer, cache).kernels.source == "measured"
    # A file under the right name whose key differs (a hash collision, a hand edit) is not trusted.
    data = json.loads(path.read_text())
    data["key"]["cpu"] = "another cpu"
    path.write_text(json.dumps(data))
    assert _engine(tokenizer, cache).kernels.source == "measured"
    assert cache.read(plan.key).source == "cache"


def test_a_measurement_on_a_busy_machine_is_used_but_not_cached(tokenizer, tmp_path):
    cache = KernelCache(tmp_path / "k", "tiny", max_other_cpu=-1.0)  # any other work counts as busy
    assert _engine(tokenizer, cache).kernels.source == "measured"
    assert not list((tmp_path / "k").glob("kernels-*.json"))


def test_a_configured_kernel_is_not_measured(tokenizer, cache):
    plan = _engine(tokenizer, cache, cpu_linear="torch").kernels
    assert (plan.source, plan.kernels) == ("configured", {"torch"})
    assert _engine(tokenizer, cache, cpu_linear="onednn").kernels.kernels == {"onednn"}
    assert not list(cache.folder.glob("*.json")) if cache.folder.exists() else True


def _mixed() -> KernelPlan:
    """torch and oneDNN alternating over the buckets: every step size switches kernel."""
    return KernelPlan(tuple(kernels.BucketChoice(lo, hi, "torch" if i % 2 == 0 else "onednn")
                            for i, (lo, hi, _) in enumerate(BUCKETS)), "configured")


@pytest.mark.parametrize("make", [make_llama, make_gpt2], ids=["llama", "gpt2"])
def test_each_call_takes_the_kernel_of_its_row_count(tokenizer, make):
    model = make(len(tokenizer)).eval()
    ids = torch.tensor([[5, 9, 13, 2, 7, 11]])
    with torch.inference_mode():
        expected = model(ids).logits
    engine = _engine(tokenizer, plan=_mixed(), model=model)
    layers = packed_layers(engine.model)
    assert layers and all(m._packed is not None and m._plain is not None for m in layers)
    plan = engine.kernels
    for rows in (1, 2, 3, 4, 5, 16, 17, 33, 64, 65, 500):
        assert layers[0].dispatch.packed(rows) == (plan.kernel_for(rows) == "onednn")
    assert [plan.kernel_for(r) for r in (1, 2, 4, 8, 16, 32, 1000)] == [
        "torch", "onednn", "torch", "onednn", "torch", "onednn", "torch"]
    with torch.inference_mode():
        torch.testing.assert_close(engine.model(ids).logits, expected, atol=1e-4, rtol=1e-4)


def test_unused_weight_copies_are_dropped(tokenizer):
    onednn_only = _engine(tokenizer, plan=KernelPlan.fixed("onednn", "configured"))
    assert all(m._plain is None and m._packed is not None for m in packed_layers(onednn_only.model))
    torch_only = _engine(tokenizer, plan=KernelPlan.fixed("torch", "configured"))
    assert not any(isinstance(m, PackedLinear) for m in torch_only.model.modules())  # left as it was


@pytest.mark.parametrize("fmt", ["bf16", "int8"])
def test_low_precision_candidates_are_the_formats_own_kernels(fmt, tokenizer, cache):
    if not format_supported(fmt):  # bf16 on an AVX2-only CPU: refused at start, with the reason
        with pytest.raises(Exception, match=f"weight_format='{fmt}' needs"):
            _engine(tokenizer, cache, weight_format=fmt)
        return
    plan = _engine(tokenizer, cache, weight_format=fmt).kernels
    assert plan.kernels <= {f"torch-{fmt}", f"onednn-{fmt}"}
    assert set(plan.buckets[0].measured_ms) == {f"torch-{fmt}", f"onednn-{fmt}"}
    layers = packed_layers(_engine(tokenizer, cache, weight_format=fmt).model)
    assert all(m.compute_dtype == torch.bfloat16 and m.int8 == (fmt == "int8") for m in layers)
