"""Start to SERVING with cached weights: `python -m server.main` (the embedded SmolLM2's
safetensors copy already in data/models) from process start until gRPC health answers
SERVING, polled every 50 ms; `--runs` starts, median. Then the parts, each in a fresh
interpreter: importing the server (`server.app`), loading the model copy
(`models.loading.load_model`), building the engine (packing the linears, KV cache).

    python -m bench.startup [--runs 3]   -> bench/startup.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import machine, report
from bench.server_proc import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 3.0

_PARTS = r"""
import json, time
t0 = time.perf_counter()
import server.app  # noqa: F401
t1 = time.perf_counter()
from models.loading import load_model
from models.registry import ModelSpec
loaded = load_model(ModelSpec("smollm2", "embedded"), __import__("pathlib").Path("data/models"))
t2 = time.perf_counter()
from models.engine.engine import Engine
Engine(loaded.model, loaded.tokenizer, device="cpu")
t3 = time.perf_counter()
print(json.dumps({"import_server_s": t1 - t0, "load_model_s": t2 - t1, "engine_s": t3 - t2}))
"""


def measure(runs: int) -> dict[str, Any]:
    ready = []
    with tempfile.TemporaryDirectory(prefix="llmserve-startup-") as tmp:
        for i in range(runs):
            with ServerProcess(Path(tmp), label=f"start{i}", poll_s=0.05) as srv:
                ready.append(srv.ready_s)
            print(f"start {i}: SERVING after {ready[-1]:.2f} s", flush=True)
    parts = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _PARTS], cwd=ROOT, capture_output=True, text=True, check=True,
                             env=ServerProcess._env())
        parts.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"ready_s": ready, "ready_median_s": statistics.median(ready),
            "parts": {k: statistics.median(p[k] for p in parts) for k in parts[0]}, "parts_runs": parts}


def markdown(results: dict[str, Any]) -> str:
    facts, idle, r = results["machine"], results["idle"], results["results"]
    met = "met" if r["ready_median_s"] < TARGET_S else "**not met**"
    parts = r["parts"]
    lines = [
        "# Start to SERVING with cached weights",
        "",
        f"Machine: {facts['cpu_model']} ({facts['cores']} cores, flags: {', '.join(facts['cpu_flags'])}), "
        f"torch {facts['torch']}; {facts['date']}.",
        f"Load before the run: {idle['load_1min']:.2f} (1-minute average), {100 * idle['busy_share_1s']:.0f}% "
        f"of the CPU busy. {idle['warning']}".rstrip(),
        "",
        f"`python -m server.main` (default settings, SQLite, embedded SmolLM2 from its cached safetensors copy) "
        f"from process start until health answers SERVING (50 ms polls): "
        f"**{r['ready_median_s']:.2f} s** median of {len(r['ready_s'])} "
        f"({', '.join(f'{x:.2f}' for x in r['ready_s'])}); target < {TARGET_S:g} s: {met}.",
        "",
        "Parts (fresh interpreter each, median):",
        "",
        "| part | s |",
        "|---|---|",
        f"| import the server (`server.app`: grpc, torch, transformers, services) | {parts['import_server_s']:.2f} |",
        f"| load the model copy (`load_model`) | {parts['load_model_s']:.2f} |",
        f"| build the engine (pack linears, KV cache) | {parts['engine_s']:.2f} |",
        "",
        results.get("notes", ""),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--notes", default="", help="a paragraph appended to the results")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "startup")
    args = parser.parse_args(argv)
    idle = machine.idle_check()
    results = {"machine": machine.facts(), "idle": idle, "results": measure(args.runs), "notes": args.notes}
    print(report.write(results, args.out, markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
