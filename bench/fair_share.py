"""Fair share between tenants: time to first token of one tenant's lone request while
another tenant holds every slot of the batch, with and without `engine.fair_share`.

In process, on the embedded SmolLM2: tenant "busy" opens `--streams` greedy streams of
`--busy-tokens` tokens each (as many as the batch has rows, so every slot is taken),
then tenant "lone" sends one short request once all of them are decoding. Each mode
is measured `--repeats` times on the same engine settings; results -> bench/fair_share.md.

    python -m bench.fair_share [--streams 32] [--busy-tokens 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from bench import machine, report
from models.engine.config import EngineConfig
from models.engine.engine import Engine
from models.loading import load_model
from models.registry import ModelSpec
from models.sampling_policy import SamplingParams
from models.types import FinishEvent, GenerationRequest

BUSY_PROMPT = "Write a long story about a lighthouse keeper and the sea."
LONE_PROMPT = "What is the capital of France?"


async def _stream(engine: Engine, ids: list[int], params: SamplingParams, tenant: str,
                  first: asyncio.Event | None = None) -> tuple[float | None, float, int]:
    """(seconds to the first token, seconds to the end, tokens generated) of one request."""
    start = time.perf_counter()
    ttft = None
    async for event in engine.generate(GenerationRequest(list(ids), params, tenant=tenant)):
        if ttft is None and not isinstance(event, FinishEvent):
            ttft = time.perf_counter() - start
            if first is not None:
                first.set()
        if isinstance(event, FinishEvent):
            return ttft, time.perf_counter() - start, event.completion_tokens
    raise RuntimeError("stream ended without a FinishEvent")


def _chat_ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                         tokenize=True, return_dict=True)["input_ids"]


async def _one_trial(engine: Engine, tokenizer: Any, streams: int, busy_tokens: int) -> dict[str, float]:
    busy_ids, lone_ids = _chat_ids(tokenizer, BUSY_PROMPT), _chat_ids(tokenizer, LONE_PROMPT)
    busy_params = SamplingParams(max_new_tokens=busy_tokens, temperature=0.0)
    firsts = [asyncio.Event() for _ in range(streams)]
    busy = [asyncio.create_task(_stream(engine, busy_ids, busy_params, "busy", firsts[i])) for i in range(streams)]
    await asyncio.gather(*(f.wait() for f in firsts))
    running_at_submit = engine.stats().running_rows
    lone_ttft, lone_total, _ = await _stream(engine, lone_ids, SamplingParams(max_new_tokens=8, temperature=0.0), "lone")
    busy_results = await asyncio.gather(*busy)
    return {"lone_ttft_s": lone_ttft or 0.0, "lone_total_s": lone_total,
            "busy_mean_total_s": statistics.mean(t for _, t, _ in busy_results),
            "busy_mean_tokens": statistics.mean(n for _, _, n in busy_results),
            "busy_rows_running_at_submit": running_at_submit}


async def measure(fair_share: bool, loaded: Any, args: argparse.Namespace) -> dict[str, Any]:
    config = EngineConfig(max_batch_rows=args.streams, fair_share=fair_share)
    engine = Engine(loaded.model, loaded.tokenizer, config, device="cpu")
    engine.start()
    try:
        await _one_trial(engine, loaded.tokenizer, min(4, args.streams), 4)  # warm-up
        trials = [await _one_trial(engine, loaded.tokenizer, args.streams, args.busy_tokens)
                  for _ in range(args.repeats)]
        preemptions = engine.stats().preemptions
    finally:
        engine.stop()
    return {"fair_share": fair_share, "trials": trials, "preemptions": preemptions,
            "lone_ttft_median_s": statistics.median(t["lone_ttft_s"] for t in trials),
            "busy_total_median_s": statistics.median(t["busy_mean_total_s"] for t in trials)}


def markdown(results: dict[str, Any]) -> str:
    facts, idle, args = results["machine"], results["idle"], results["args"]
    on, off = results["on"], results["off"]
    lines = [
        "# Fair share between tenants",
        "",
        f"Machine: {facts['cpu_model']}, {facts['cores']} cores, torch {facts['torch']}; {facts['date']}.",
        f"Load before the run: {idle['load_1min']:.2f} (1-minute average). {idle['warning']}".rstrip(),
        "",
        f"Tenant `busy` holds {args['streams']} greedy streams of {args['busy_tokens']} tokens "
        f"(every slot of a {args['streams']}-row batch); tenant `lone` then sends one 8-token request. "
        f"Median of {args['repeats']} trials per mode, one run, same engine settings. Busy rows still "
        f"running when the lone request was sent (per trial): off {[t['busy_rows_running_at_submit'] for t in off['trials']]}, "
        f"on {[t['busy_rows_running_at_submit'] for t in on['trials']]}; busy tokens per stream: "
        f"{off['trials'][0]['busy_mean_tokens']:.0f}.",
        "",
        "| engine.fair_share | lone TTFT (s) | busy stream mean duration (s) | preemptions |",
        "|---|---|---|---|",
        f"| off | {off['lone_ttft_median_s']:.2f} | {off['busy_total_median_s']:.2f} | {off['preemptions']} |",
        f"| on | {on['lone_ttft_median_s']:.2f} | {on['busy_total_median_s']:.2f} | {on['preemptions']} |",
        "",
        f"Lone tenant's TTFT with fair share: {off['lone_ttft_median_s'] / max(on['lone_ttft_median_s'], 1e-9):.1f}x "
        f"shorter than without. The busy tenant's streams took {on['busy_total_median_s'] / max(off['busy_total_median_s'], 1e-9):.2f}x "
        "as long with it (one row per trial is recomputed; the other rows are not slowed beyond sharing the batch).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fair_share", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--busy-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=Path("data/models"))
    parser.add_argument("--out", type=Path, default=Path("bench/fair_share"))
    args = parser.parse_args(argv)
    idle = machine.idle_check()
    loaded = load_model(ModelSpec("smollm2", "embedded"), args.cache_dir)
    results: dict[str, Any] = {"machine": machine.facts(), "idle": idle,
                               "args": {k: v for k, v in vars(args).items() if k in ("streams", "busy_tokens", "repeats")}}
    results["off"] = asyncio.run(measure(False, loaded, args))
    results["on"] = asyncio.run(measure(True, loaded, args))
    print(report.write(results, args.out, markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
