"""Chunked prefill: inter-token latency of 16 decoding streams, alone and while a
1,500-token prompt arrives mid-run, in process on the embedded SmolLM2 (default
engine settings but `engine.prefill_token_budget`).

Each trial starts `--streams` greedy streams (prompts cut from the prose corpus,
`--new-tokens` each: prose continuation runs to the limit); once every stream has
produced `--arrive-after` tokens, one request with a `--long`-token prompt (1 new
token) is submitted. ITL = gap between consecutive token events of one stream,
pooled over the streams, over the whole trial. Modes: no arrival; arrival with the
default budget (the prompt is prefilled in chunks between decode steps); arrival
with `--small-budget`; arrival with a budget >= the prompt (one chunk: what the engine did without chunking).

    python -m bench.chunked_prefill [--streams 16] [--long 1500]   -> bench/chunked_prefill.md
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from bench import machine, report
from bench.corpus import TEXT
from models.engine.config import EngineConfig
from models.engine.engine import Engine
from models.sampling_policy import SamplingParams
from models.types import FinishEvent, GenerationRequest

ROOT = Path(__file__).resolve().parent.parent


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def _prompts(tokenizer: Any, streams: int, long: int) -> tuple[list[list[int]], list[int]]:
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    corpus = (ids * (long // len(ids) + 2))
    short = [corpus[i * 37:i * 37 + 48] for i in range(streams)]
    return short, corpus[:long]


async def _stream(engine: Engine, ids: list[int], params: SamplingParams, gaps: list[float] | None,
                  progress: list[int], index: int) -> float:
    last = None
    start = time.perf_counter()
    async for event in engine.generate(GenerationRequest(list(ids), params)):
        now = time.perf_counter()
        if isinstance(event, FinishEvent):
            return now - start
        if last is not None and gaps is not None:
            gaps.append(now - last)
        last = now
        progress[index] += len(event.token_ids)
    raise RuntimeError("stream ended without a FinishEvent")


async def _trial(engine: Engine, short: list[list[int]], long_ids: list[int] | None,
                 args: argparse.Namespace) -> dict[str, Any]:
    gaps: list[float] = []
    progress = [0] * (len(short) + 1)
    params = SamplingParams(max_new_tokens=args.new_tokens, temperature=0.0)
    tasks = [asyncio.create_task(_stream(engine, ids, params, gaps, progress, i)) for i, ids in enumerate(short)]
    long_s = None
    if long_ids is not None:
        while min(progress[:-1]) < args.arrive_after:
            await asyncio.sleep(0.005)
        long_s = await _stream(engine, long_ids, SamplingParams(max_new_tokens=1, temperature=0.0), None,
                               progress, len(short))
    await asyncio.gather(*tasks)
    ms = [1e3 * g for g in gaps]
    return {"itl_p50_ms": statistics.median(ms), "itl_p99_ms": _percentile(ms, 0.99), "itl_max_ms": max(ms),
            "gaps": len(ms), "long_ttft_s": long_s}


async def _mode(loaded: Any, budget: int, arrival: bool, args: argparse.Namespace) -> dict[str, Any]:
    engine = Engine(loaded.model, loaded.tokenizer, EngineConfig(prefill_token_budget=budget), device="cpu")
    engine.start()
    short, long_ids = _prompts(loaded.tokenizer, args.streams, args.long)
    try:
        await _trial(engine, short[:2], None, argparse.Namespace(**{**vars(args), "new_tokens": 4}))  # warm-up
        trials = [await _trial(engine, short, long_ids if arrival else None, args) for _ in range(args.repeats)]
    finally:
        engine.stop()
    out = {"budget": budget, "arrival": arrival, "trials": trials}
    for key in ("itl_p50_ms", "itl_p99_ms", "itl_max_ms"):
        out[key] = statistics.median(t[key] for t in trials)
    if arrival:
        out["long_ttft_s"] = statistics.median(t["long_ttft_s"] for t in trials)
    return out


def markdown(results: dict[str, Any]) -> str:
    facts, idle, args = results["machine"], results["idle"], results["args"]
    lines = [
        "# Chunked prefill: ITL of 16 streams with a 1,500-token arrival",
        "",
        f"Machine: {facts['cpu_model']} ({facts['cores']} cores, flags: {', '.join(facts['cpu_flags'])}), "
        f"torch {facts['torch']}; {facts['date']}.",
        f"Load before the run: {idle['load_1min']:.2f} (1-minute average), {100 * idle['busy_share_1s']:.0f}% "
        f"of the CPU busy. {idle['warning']}".rstrip(),
        "",
        f"In process, SmolLM2-135M fp32, default engine settings but the prefill budget. {args['streams']} greedy "
        f"streams of {args['new_tokens']} tokens (48-token prompts); in the arrival modes a {args['long']}-token "
        f"prompt is submitted once every stream has {args['arrive_after']} tokens. ITL pooled over the streams; "
        f"median over {args['repeats']} trials per mode.",
        "",
        "| mode | prefill_token_budget | ITL p50 ms | ITL p99 ms | ITL max ms | long prompt TTFT s |",
        "|---|---|---|---|---|---|",
    ]
    for m in results["modes"]:
        label = ("no arrival" if not m["arrival"] else
                 "arrival, chunked" if m["budget"] < args["long"] else "arrival, one chunk (no chunking)")
        label += " (default budget)" if m["budget"] == results.get("default_budget") else ""
        ttft = f"{m['long_ttft_s']:.2f}" if m["arrival"] else ""
        lines.append(f"| {label} | {m['budget']} | {m['itl_p50_ms']:.0f} | {m['itl_p99_ms']:.0f} | "
                     f"{m['itl_max_ms']:.0f} | {ttft} |")
    lines += ["", results.get("notes", ""), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chunked_prefill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--arrive-after", type=int, default=16)
    parser.add_argument("--long", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--small-budget", type=int, default=128, help="a smaller prefill_token_budget to compare")
    parser.add_argument("--notes", default="", help="a paragraph appended to the results")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "data" / "models")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "chunked_prefill")
    args = parser.parse_args(argv)
    from models.loading import load_model
    from models.registry import ModelSpec

    idle = machine.idle_check()
    loaded = load_model(ModelSpec("smollm2", "embedded"), args.cache_dir)
    default_budget = EngineConfig().prefill_token_budget
    modes = [(default_budget, False), (default_budget, True), (args.small_budget, True),
             (max(args.long, default_budget) + 64, True)]
    results = {"machine": machine.facts(), "idle": idle, "notes": args.notes, "default_budget": default_budget,
               "args": {k: getattr(args, k) for k in ("streams", "new_tokens", "arrive_after", "long", "repeats")},
               "modes": []}
    for budget, arrival in modes:
        # A fresh copy per engine: the engine packs the model's linears in place.
        import copy
        fresh = copy.copy(loaded)
        fresh.model = copy.deepcopy(loaded.model)
        results["modes"].append(asyncio.run(_mode(fresh, budget, arrival, args)))
        print(results["modes"][-1] | {"trials": "..."}, flush=True)
    print(report.write(results, args.out, markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
