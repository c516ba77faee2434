"""Engine behaviour: finish reasons and usage, cancellation, back-pressure, errors,
background work, lifecycle."""

from __future__ import annotations

import asyncio

import pytest
from engine_testlib import byte_ids, collect, wait_steps, wait_until

from models.types import RowHook
from models.errors import InvalidArgument, ResourceExhausted, Unavailable
from models.types import FinishEvent, FinishReason, GenerationRequest, TokenEvent
from models.sampling_policy import SamplingParams
from tests.forward_gate import ForwardGate

GREEDY = SamplingParams(max_new_tokens=8, temperature=0.0)


class Script(RowHook):
    """Forces a fixed token sequence (then EOS), independent of the random model."""

    def __init__(self, ids: list[int], eos: int) -> None:
        self.ids = ids + [eos]

    def on_logits(self, logits, generated_ids):
        keep = self.ids[min(len(generated_ids), len(self.ids) - 1)]
        logits.fill_(float("-inf"))
        logits[keep] = 0.0
        return logits


class NoEos(RowHook):
    def __init__(self, eos: int) -> None:
        self.eos = eos

    def on_logits(self, logits, generated_ids):
        logits[self.eos] = float("-inf")
        return logits


def prompt(tokenizer, text="the quick brown fox"):
    return tokenizer(text)["input_ids"]


async def test_length_finish_usage_and_text_invariants(make_engine, tokenizer):
    engine = make_engine()
    ids = prompt(tokenizer)
    tokens, fin, events = await collect(engine, ids, GREEDY, hooks=[NoEos(tokenizer.eos_token_id)])
    assert fin.reason is FinishReason.LENGTH
    assert (fin.prompt_tokens, fin.completion_tokens, fin.total_tokens) == (len(ids), 8, len(ids) + 8)
    assert len(tokens) == 8 and all(len(e.token_ids) == 1 for e in events)
    assert "".join(e.text for e in events) == fin.text


async def test_eos_finish(make_engine, tokenizer):
    engine = make_engine()
    script = byte_ids(tokenizer, "hi!")
    tokens, fin, events = await collect(engine, prompt(tokenizer), SamplingParams(max_new_tokens=50, temperature=0),
                                        hooks=[Script(script, tokenizer.eos_token_id)])
    assert fin.reason is FinishReason.EOS and fin.text == "hi!"
    assert fin.completion_tokens == 4 and tokens == script + [tokenizer.eos_token_id]


async def test_stop_sequence_split_across_tokens(make_engine, tokenizer):
    engine = make_engine()
    script = byte_ids(tokenizer, "ab STOP cd")
    params = SamplingParams(max_new_tokens=50, temperature=0, stop_sequences=("STOP",))
    tokens, fin, events = await collect(engine, prompt(tokenizer), params, hooks=[Script(script, tokenizer.eos_token_id)])
    assert fin.reason is FinishReason.STOP_SEQUENCE
    assert fin.text == "ab " == "".join(e.text for e in events)
    assert fin.completion_tokens == len("ab STOP") == len(tokens)
    assert all("S" not in e.text for e in events)


async def test_full_context_window_finishes_with_length(make_engine, tokenizer):
    engine = make_engine(max_seq_len=12)
    ids = prompt(tokenizer)  # fewer than 12 tokens
    _, fin, _ = await collect(engine, ids, SamplingParams(max_new_tokens=100, temperature=0),
                              hooks=[NoEos(tokenizer.eos_token_id)])
    assert fin.reason is FinishReason.LENGTH and fin.prompt_tokens + fin.completion_tokens == 12


async def test_invalid_requests_raise_before_first_event(make_engine, tokenizer):
    engine = make_engine(max_seq_len=12)
    with pytest.raises(InvalidArgument):
        await anext(engine.generate(GenerationRequest([], GREEDY)))
    with pytest.raises(InvalidArgument):
        await anext(engine.generate(GenerationRequest(list(range(12)), GREEDY)))
    with pytest.raises(InvalidArgument):
        await anext(engine.generate(GenerationRequest([10**6], GREEDY)))

    class NoSuchLayer(RowHook):
        layers = (2,)  # the tiny model has layers 0 and 1

    with pytest.raises(InvalidArgument, match="layer"):
        await anext(engine.generate(GenerationRequest([3, 4], GREEDY, hooks=(NoSuchLayer(),))))
    with pytest.raises(InvalidArgument, match="temperature"):
        await anext(engine.generate(GenerationRequest([3, 4], SamplingParams(temperature=-1.0))))
    assert engine.stats().queued_requests == 0 and engine.stats().running_rows == 0


async def test_cancellation_frees_the_row_at_the_next_step(make_engine, tokenizer):
    engine = make_engine()
    params = SamplingParams(max_new_tokens=150, temperature=0)
    no_eos = [NoEos(tokenizer.eos_token_id)]
    streams = [engine.generate(GenerationRequest(prompt(tokenizer), params, hooks=tuple(no_eos))) for _ in range(4)]
    for s in streams:
        assert isinstance(await anext(s), TokenEvent)
    await wait_until(lambda: engine.stats().running_rows == 4)

    await streams[0].aclose()  # consumer stops iterating
    await wait_steps(engine, 2)
    assert engine.stats().running_rows == 3

    async def drain(s):
        async for event in s:
            if isinstance(event, FinishEvent):
                return event

    task = asyncio.create_task(drain(streams[1]))
    await wait_steps(engine, 1)
    task.cancel()  # consumer task cancelled
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_steps(engine, 2)
    assert engine.stats().running_rows == 2

    async def with_deadline(s):
        async with asyncio.timeout(0.02):  # caller's deadline passes mid-stream
            await drain(s)

    # No step can run while the gate holds, so the deadline comes before the stream's end.
    with ForwardGate(engine.model), pytest.raises(TimeoutError):
        await with_deadline(streams[2])
    finished = await drain(streams[3])
    assert finished.reason is FinishReason.LENGTH and finished.completion_tokens == 150
    # The expired row may already be gone, leaving the engine idle: wait on the count, not on steps.
    await wait_until(lambda: engine.stats().running_rows == 0)


async def test_full_queue_raises_resource_exhausted_without_waiting_for_a_step(make_engine, tokenizer):
    engine = make_engine(max_batch_rows=1, max_queued_requests=2, retry_after_s=0.25)
    params = SamplingParams(max_new_tokens=200, temperature=0)
    hooks = (NoEos(tokenizer.eos_token_id),)
    # While the gate holds the running row's next forward, no slot or queue place can
    # free: a refusal that comes back now did not wait for the engine.
    with ForwardGate(engine.model, let_through=1) as gate:
        busy = [engine.generate(GenerationRequest(prompt(tokenizer), params, hooks=hooks)) for _ in range(3)]
        tasks = [asyncio.create_task(anext(busy[0]))]
        await wait_until(lambda: engine.stats().running_rows == 1 and gate.holding.is_set())
        tasks += [asyncio.create_task(anext(s)) for s in busy[1:]]
        await wait_until(lambda: engine.stats().queued_requests == 2)
        steps = engine.stats().steps
        with pytest.raises(ResourceExhausted) as info:
            async with asyncio.timeout(30):  # a guard against a hang, not a speed limit
                await anext(engine.generate(GenerationRequest(prompt(tokenizer), params)))
        assert not gate.timed_out and engine.stats().steps == steps
        assert info.value.retry_after_s == 0.25
        stats = engine.stats()
        assert (stats.running_rows, stats.queued_requests) == (1, 2)
        assert stats.queued_tokens == 2 * len(prompt(tokenizer))  # the refused prompt was not queued
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for stream in busy:
        await stream.aclose()
    # Cancelled consumers free both the running slot and the queue.
    await wait_until(lambda: engine.stats().queued_requests == 0 and engine.stats().running_rows == 0)


async def test_hook_error_fails_only_its_row(make_engine, tokenizer):
    class Broken(RowHook):
        def on_logits(self, logits, generated_ids):
            if len(generated_ids) == 2:
                raise RuntimeError("boom")
            return logits

    engine = make_engine()
    ok_params = SamplingParams(max_new_tokens=10, temperature=0)
    no_eos = [NoEos(tokenizer.eos_token_id)]
    bad, good = await asyncio.gather(collect(engine, prompt(tokenizer), ok_params, hooks=[Broken()]),
                                     collect(engine, prompt(tokenizer, "hello"), ok_params, hooks=no_eos))
    assert bad[1].reason is FinishReason.ERROR and "boom" in bad[1].error and bad[1].completion_tokens == 2
    assert good[1].reason is FinishReason.LENGTH and good[1].completion_tokens == 10


async def test_failed_step_ends_its_rows_with_error_and_engine_keeps_serving(make_engine, tokenizer, monkeypatch):
    engine = make_engine()
    worker = engine._worker
    real = worker._forward
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("device fell over")
        return real(*args, **kwargs)

    monkeypatch.setattr(worker, "_forward", flaky)
    _, fin, _ = await collect(engine, prompt(tokenizer), SamplingParams(max_new_tokens=10, temperature=0),
                              hooks=[NoEos(tokenizer.eos_token_id)])
    assert fin.reason is FinishReason.ERROR and fin.error and "device fell over" not in fin.error
    _, fin2, _ = await collect(engine, prompt(tokenizer), GREEDY, hooks=[NoEos(tokenizer.eos_token_id)])
    assert fin2.reason is FinishReason.LENGTH and fin2.completion_tokens == 8


async def test_background_runs_in_slices_while_interactive_rows_progress(make_engine, tokenizer):
    engine = make_engine(background_slice_every=4)
    seen: list[tuple[int, int]] = []

    def job(n):
        for _ in range(n):
            stats = engine.stats()
            seen.append((stats.steps, stats.running_rows))
            yield
        return "done"

    params = SamplingParams(max_new_tokens=60, temperature=0)
    hooks = [NoEos(tokenizer.eos_token_id)]
    gen_task = asyncio.gather(*(collect(engine, prompt(tokenizer), params, hooks=hooks) for _ in range(2)))
    await wait_until(lambda: engine.stats().running_rows == 2)
    result, streams = await asyncio.gather(engine.run_background(job(1000)), gen_task)
    assert result == "done" and len(seen) == 1000
    assert all(fin.completion_tokens == 60 for _, fin, _ in streams)
    busy_steps = [s for s, rows in seen if rows > 0]
    assert len(busy_steps) >= 3  # background progressed while generation ran
    gaps = [b - a for a, b in zip(busy_steps, busy_steps[1:])]
    assert min(gaps) >= 4  # ...but at most one unit per 4 steps
    # Once idle, the job ran continuously: most units saw no running rows.
    assert sum(1 for _, rows in seen if rows == 0) > 900


async def test_background_job_errors_and_cancellation(make_engine):
    engine = make_engine()

    def failing():
        yield
        raise ValueError("bad unit")

    with pytest.raises(ValueError, match="bad unit"):
        await engine.run_background(failing())

    started, closed = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def endless():
        loop.call_soon_threadsafe(started.set)
        try:
            while True:
                yield
        finally:
            loop.call_soon_threadsafe(closed.set)

    task = asyncio.create_task(engine.run_background(endless()))
    await asyncio.wait_for(started.wait(), 30)  # cancelled mid-job, not before its first unit
    task.cancel()
    await asyncio.wait_for(closed.wait(), 5)
    await wait_until(lambda: engine.stats().background_jobs == 0)


async def test_stop_ends_streams_and_refuses_new_work(make_engine, tokenizer):
    engine = make_engine()
    stream = engine.generate(GenerationRequest(prompt(tokenizer), SamplingParams(max_new_tokens=200, temperature=0),
                                               hooks=(NoEos(tokenizer.eos_token_id),)))
    await anext(stream)
    await asyncio.to_thread(engine.stop)
    events = [e async for e in stream]
    assert isinstance(events[-1], FinishEvent) and events[-1].reason is FinishReason.ERROR
    assert sum(isinstance(e, FinishEvent) for e in events) == 1
    with pytest.raises(Unavailable):
        await anext(engine.generate(GenerationRequest(prompt(tokenizer), GREEDY)))
    with pytest.raises(Unavailable):
        await engine.run_background(iter(()))


def test_unknown_weight_format_is_refused_naming_the_choices():
    from models.engine.config import EngineConfig

    with pytest.raises(ValueError, match=r"engine\.weight_format must be 'fp32', 'bf16' or 'int8', got 'fp8'"):
        EngineConfig(weight_format="fp8")
