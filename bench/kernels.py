"""Linear-layer kernels per batch size on SmolLM2-135M's shapes, for every engine weight
format this CPU runs: the two kernels the engine picks between per batch-row bucket
(`models/engine/kernels.py`) of each format. fp32: torch's default CPU path (MKL sgemm
via `F.linear`, re-packing the weight per call) and oneDNN on a weight reordered once
(`models.engine.packed.PackedLinear`); bf16: the same two in bfloat16; int8 (weight-only,
per-channel): torch's `_weight_int8pack_mm` on bf16 activations and oneDNN's fp32 product
on the integer weights. Fastest call per product over `--repeats` calls, microseconds.

Each call cycles through `--copies` distinct weights of the shape, so a weight is cold
in the caches as in a decode step (30 layers' weights do not fit them).

    python -m bench.kernels [--repeats 60]   -> bench/kernels.md
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench import machine, report

ROOT = Path(__file__).resolve().parent.parent
# (in_features, out_features) of SmolLM2-135M's linears, and how many a step runs.
SHAPES = {"q_proj/o_proj 576x576": (576, 576, 60), "k_proj/v_proj 576x192": (576, 192, 60),
          "gate/up 576x1536": (576, 1536, 60), "down 1536x576": (1536, 576, 30)}
ROWS = (1, 4, 16, 32)


def _best_us(fn: Callable[[int], Any], copies: int, repeats: int) -> float:
    for i in range(copies):
        fn(i)
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        fn(r % copies)
        times.append(time.perf_counter() - t0)
    # The fastest call, not the median: on a shared 2-core machine a descheduled OpenMP
    # thread stalls a product by a whole time slice (~16 ms), which says nothing of the kernel.
    return 1e6 * min(times)


def _formats() -> list[str]:
    from models.engine.packed import format_supported

    return [fmt for fmt in ("fp32", "bf16", "int8") if format_supported(fmt)]


@torch.inference_mode()
def measure(repeats: int, copies: int) -> list[dict[str, Any]]:
    from models.engine.kernels import kernel_name
    from models.engine.packed import PackedLinear, RowDispatch

    torch.manual_seed(0)
    rows_out = []
    for name, (k, n, per_step) in SHAPES.items():
        weights = [torch.nn.Parameter(torch.randn(n, k) * 0.02, requires_grad=False) for _ in range(copies)]
        layers = {}
        for fmt in _formats():
            dispatch = RowDispatch.always(True)
            built = [PackedLinear(w, None, compute_dtype=torch.bfloat16 if fmt == "bf16" else None,
                                  dispatch=dispatch, int8=fmt == "int8") for w in weights]
            for layer in built:
                layer.keep(packed=True, plain=True)
            layers[fmt] = (dispatch, built)
        for rows in ROWS:
            x = torch.randn(rows, k)
            row = {"shape": name, "rows": rows, "per_step": per_step, "us": {}}
            for fmt, (dispatch, built) in layers.items():
                for packed in (False, True):
                    dispatch.set((), packed)
                    row["us"][kernel_name(packed, fmt)] = _best_us(lambda i, b=built, x=x: b[i](x), copies, repeats)
            rows_out.append(row)
            print(row, flush=True)
    return rows_out


def markdown(results: dict[str, Any]) -> str:
    facts, idle = results["machine"], results["idle"]
    kernels = list(results["rows"][0]["us"])
    lines = [
        "# Linear kernels per batch size (SmolLM2-135M shapes)",
        "",
        f"Machine: {facts['cpu_model']} ({facts['cores']} cores, flags: {', '.join(facts['cpu_flags'])}), "
        f"torch {facts['torch']}, {facts['torch_threads']} threads; {facts['date']}.",
        f"Load before the run: {idle['load_1min']:.2f} (1-minute average), {100 * idle['busy_share_1s']:.0f}% "
        f"of the CPU busy. {idle['warning']}".rstrip(),
        "",
        f"Fastest of {results['args']['repeats']} calls per product, in us, cycling over "
        f"{results['args']['copies']} cold weights, through the engine's own layer (`PackedLinear`). "
        "torch = `F.linear` (MKL), onednn = weight reordered once; -bf16: bfloat16 products; -int8: weight-only "
        "int8 (torch-int8 = `aten._weight_int8pack_mm` on bf16 activations, onednn-int8 = fp32 product on the "
        "integer weights). The engine chooses between the two kernels of its weight format per batch-row bucket "
        "at start (`engine.cpu_linear = \"auto\"`, the default; `models/engine/kernels.py`).",
        "",
        "| shape (in x out) | rows | " + " | ".join(f"{k} us" for k in kernels) + " |",
        "|---|---|" + "---|" * len(kernels),
    ]
    for r in results["rows"]:
        lines.append(f"| {r['shape']} | {r['rows']} | " + " | ".join(f"{r['us'][k]:.0f}" for k in kernels) + " |")
    lines += ["", "Per decode step (the 210 linears of the 30 layers, lm_head excluded), summed from the rows above, "
              "in ms; the fastest kernel in bold:", "",
              "| rows | " + " | ".join(kernels) + " |", "|---|" + "---|" * len(kernels)]
    for rows in ROWS:
        sel = [r for r in results["rows"] if r["rows"] == rows]
        step = {k: sum(r["us"][k] * r["per_step"] for r in sel) / 1e3 for k in kernels}
        best = min(step, key=step.get)
        lines.append(f"| {rows} | " + " | ".join(f"**{v:.1f}**" if k == best else f"{v:.1f}"
                                                   for k, v in step.items()) + " |")
    lines += ["", results.get("notes", ""), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kernels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--notes", default="", help="a paragraph appended to the results")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "kernels")
    args = parser.parse_args(argv)
    idle = machine.idle_check()
    results = {"machine": machine.facts(), "idle": idle,
               "args": {"repeats": args.repeats, "copies": args.copies},
               "rows": measure(args.repeats, args.copies), "notes": args.notes}
    print(report.write(results, args.out, markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
