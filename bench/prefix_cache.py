"""Prefix cache: time to first token of a chat's 6th turn with the engine's prefix cache
and without it, in process on the embedded SmolLM2 (default engine settings but
`engine.prefix_cache`).

Each trial is one chat (its own system prompt and questions, so no trial finds another's
history): turns 1-5 are generated greedily (`--new-tokens` each) and appended to the
history as a chat client does (the reply text goes back through the chat template); turn
6's prompt is then submitted alone on the idle engine and its TTFT is the time from
submission to the first token event. The turn-6 greedy tokens of both modes are
compared (the cache must not change them).

    python -m bench.prefix_cache [--repeats 2] [--new-tokens 48]   -> bench/prefix_cache.md
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
import time
from pathlib import Path
from typing import Any

from bench import machine, report
from models.engine.config import EngineConfig
from models.engine.engine import Engine
from models.generation import ChatTurn, chat_prompt_ids
from models.sampling_policy import SamplingParams
from models.types import FinishEvent, GenerationRequest, TokenEvent

ROOT = Path(__file__).resolve().parent.parent

SYSTEM = ("You are a patient assistant for the {topic} desk of a public library. Answer in two or three "
          "sentences, plainly, without lists. If you do not know something, say so and suggest where the "
          "reader could look. Never invent titles, authors or dates.")
TOPICS = ["astronomy", "gardening", "history", "cooking", "sailing", "music"]
QUESTIONS = [
    "What is a good first book about {topic}?",
    "Why is that one better than the others?",
    "How long would it take a beginner to read it?",
    "What should I read after that?",
    "Is there anything for children on the same subject?",
    "Can you sum up what we discussed in one sentence?",
]


class _Lookups:
    """EngineObserver that keeps the prefix-cache lookups (prompt, cached tokens)."""

    def __init__(self) -> None:
        self.lookups: list[tuple[int, int]] = []

    def prefix_lookup(self, prompt_tokens: int, cached_tokens: int) -> None:
        self.lookups.append((prompt_tokens, cached_tokens))

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


async def _turn(engine: Engine, ids: list[int], new_tokens: int) -> tuple[list[int], float]:
    start = time.perf_counter()
    first = None
    tokens: list[int] = []
    async for event in engine.generate(GenerationRequest(list(ids), SamplingParams(max_new_tokens=new_tokens,
                                                                                   temperature=0.0))):
        if isinstance(event, TokenEvent):
            first = first if first is not None else time.perf_counter() - start
            tokens += event.token_ids
        elif isinstance(event, FinishEvent):
            return tokens, first
    raise RuntimeError("stream ended without a FinishEvent")


async def _chat(engine: Engine, tokenizer: Any, topic: str, new_tokens: int) -> dict[str, Any]:
    turns = [ChatTurn("system", SYSTEM.format(topic=topic))]
    seen: list[int] = []
    for question in QUESTIONS[:-1]:
        turns.append(ChatTurn("user", question.format(topic=topic)))
        ids = chat_prompt_ids(tokenizer, turns)
        reply, _ = await _turn(engine, ids, new_tokens)
        seen = ids + reply
        turns.append(ChatTurn("assistant", tokenizer.decode(reply, skip_special_tokens=True)))
    turns.append(ChatTurn("user", QUESTIONS[-1].format(topic=topic)))
    ids = chat_prompt_ids(tokenizer, turns)
    # How far turn 6's prompt repeats turn 5's tokens (prompt and reply): the most any
    # cache could reuse (the template re-tokenizes the reply's text).
    common = next((i for i, (a, b) in enumerate(zip(ids, seen)) if a != b), min(len(ids), len(seen)))
    tokens, ttft = await _turn(engine, ids, new_tokens)
    return {"topic": topic, "prompt_tokens": len(ids), "common_prefix": common, "ttft_s": ttft, "tokens": tokens}


async def _mode(loaded: Any, enabled: bool, args: argparse.Namespace) -> dict[str, Any]:
    observer = _Lookups()
    engine = Engine(loaded.model, loaded.tokenizer, EngineConfig(prefix_cache=enabled), device="cpu",
                    observer=observer)
    engine.start()
    try:
        await _turn(engine, chat_prompt_ids(loaded.tokenizer, [ChatTurn("user", "Hello")]), 2)  # warm-up
        trials = []
        for topic in TOPICS[:args.repeats]:
            trials.append(await _chat(engine, loaded.tokenizer, topic, args.new_tokens))
            trials[-1]["cached_tokens"] = observer.lookups[-1][1] if enabled else 0
    finally:
        engine.stop()
    return {"prefix_cache": enabled, "trials": trials,
            "ttft_s": statistics.median(t["ttft_s"] for t in trials),
            "prompt_tokens": statistics.median(t["prompt_tokens"] for t in trials)}


def markdown(results: dict[str, Any]) -> str:
    facts, idle, args = results["machine"], results["idle"], results["args"]
    on, off = (next(m for m in results["modes"] if m["prefix_cache"] is v) for v in (True, False))
    ratio = on["ttft_s"] / off["ttft_s"]
    lines = [
        "# Prefix cache: TTFT of a chat's 6th turn",
        "",
        f"Machine: {facts['cpu_model']} ({facts['cores']} cores, flags: {', '.join(facts['cpu_flags'])}), "
        f"torch {facts['torch']}; {facts['date']}.",
        f"Load before the run: {idle['load_1min']:.2f} (1-minute average), {100 * idle['busy_share_1s']:.0f}% "
        f"of the CPU busy; after it: {results['load_after']:.2f}. {idle['warning']}".rstrip(),
        "",
        f"In process, SmolLM2-135M fp32, default engine settings but `prefix_cache`. One chat per trial "
        f"(system prompt, 5 greedy turns of {args['new_tokens']} tokens at most, then the 6th question) on an "
        f"idle engine; TTFT = submission of turn 6 to its first token. Median over {args['repeats']} trials "
        f"(different chats) per mode.",
        "",
        "| mode | turn-6 prompt tokens | repeating turn 5 | taken from the cache | TTFT ms (median) | per trial ms |",
        "|---|---|---|---|---|---|",
    ]
    for m in (off, on):
        prompts = ", ".join(str(t["prompt_tokens"]) for t in m["trials"])
        common = ", ".join(str(t["common_prefix"]) for t in m["trials"])
        cached = ", ".join(str(t["cached_tokens"]) for t in m["trials"]) if m["prefix_cache"] else "0"
        per_trial = ", ".join(f"{1e3 * t['ttft_s']:.0f}" for t in m["trials"])
        lines.append(f"| prefix cache {'on' if m['prefix_cache'] else 'off'} | {prompts} | {common} | "
                     f"{cached} | {1e3 * m['ttft_s']:.0f} | {per_trial} |")
    same = all(a["tokens"] == b["tokens"] for a, b in zip(on["trials"], off["trials"]))
    lines += [
        "",
        f"With / without: **{ratio:.2f}x** (target <= 0.3x: {'met' if ratio <= 0.3 else 'missed'}). "
        f"Turn-6 greedy tokens identical in both modes: {'yes' if same else 'NO'}.",
        "",
        results.get("notes", ""),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.prefix_cache", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2, help=f"chats per mode (at most {len(TOPICS)})")
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--notes", default="", help="a paragraph appended to the results")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "data" / "models")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "prefix_cache")
    args = parser.parse_args(argv)
    args.repeats = max(1, min(args.repeats, len(TOPICS)))
    from models.loading import load_model
    from models.registry import ModelSpec

    idle = machine.idle_check()
    loaded = load_model(ModelSpec("smollm2", "embedded"), args.cache_dir)
    results: dict[str, Any] = {"machine": machine.facts(), "idle": idle, "notes": args.notes,
                               "args": {k: getattr(args, k) for k in ("repeats", "new_tokens")}, "modes": []}
    for enabled in (False, True):
        # A fresh copy per engine: the engine packs the model's linears in place.
        fresh = copy.copy(loaded)
        fresh.model = copy.deepcopy(loaded.model)
        mode = asyncio.run(_mode(fresh, enabled, args))
        results["modes"].append(mode)
        print({k: v for k, v in mode.items() if k != "trials"}, flush=True)
    results["load_after"] = machine.load_average()
    print(report.write(results, args.out, markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
