"""Linear-layer kernels per batch size on SmolLM2-135M's shapes: torch's default CPU
path (MKL sgemm via `F.linear`, re-packing the weight per call) against oneDNN on a
weight reordered once (`models.engine.packed.PackedLinear`; the engine picks between the two
per batch-row bucket by its own measurement at start, `models/engine/kernels.py`), and
the weight-only int8 kernel of this torch (`aten._weight_int8pack_mm`, per-channel
scales) for the record. Median microseconds per product over `--repeats` calls.

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
from torch.nn import functional as F

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


@torch.inference_mode()
def measure(repeats: int, copies: int, int8: bool) -> list[dict[str, Any]]:
    from models.engine.packed import PackedLinear

    torch.manual_seed(0)
    rows_out = []
    for name, (k, n, per_step) in SHAPES.items():
        weights = [torch.nn.Parameter(torch.randn(n, k) * 0.02, requires_grad=False) for _ in range(copies)]
        packed = [PackedLinear(w, None) for w in weights]
        scales = [w.abs().amax(1) / 127 for w in weights]
        qweights = [torch.round(w / s[:, None]).to(torch.int8) for w, s in zip(weights, scales)]
        for rows in ROWS:
            x = torch.randn(rows, k)
            mkl = _best_us(lambda i: F.linear(x, weights[i]), copies, repeats)
            onednn = _best_us(lambda i: packed[i](x), copies, repeats)
            row = {"shape": name, "rows": rows, "per_step": per_step, "mkl_us": mkl, "onednn_us": onednn}
            if int8:
                row["int8pack_us"] = _best_us(
                    lambda i: torch.ops.aten._weight_int8pack_mm(x, qweights[i], scales[i]), copies,
                    max(5, repeats // 3))
            rows_out.append(row)
            print(row, flush=True)
    return rows_out


def markdown(results: dict[str, Any]) -> str:
    facts, idle = results["machine"], results["idle"]
    int8 = any("int8pack_us" in r for r in results["rows"])
    lines = [
        "# Linear kernels per batch size (SmolLM2-135M shapes)",
        "",
        f"Machine: {facts['cpu_model']} ({facts['cores']} cores, flags: {', '.join(facts['cpu_flags'])}), "
        f"torch {facts['torch']}, {facts['torch_threads']} threads; {facts['date']}.",
        f"Load before the run: {idle['load_1min']:.2f} (1-minute average), {100 * idle['busy_share_1s']:.0f}% "
        f"of the CPU busy. {idle['warning']}".rstrip(),
        "",
        f"fp32, fastest of {results['args']['repeats']} calls per product, in us, cycling over "
        f"{results['args']['copies']} cold weights. MKL = `F.linear` (torch's default); oneDNN = "
        "`PackedLinear` (weight reordered once). The engine chooses between them per batch-row bucket at start "
        "(`engine.cpu_linear = \"auto\"`, the default; `models/engine/kernels.py`)."
        + (" int8pack = `aten._weight_int8pack_mm` (weight-only int8, per-channel scales)." if int8 else ""),
        "",
        "| shape (in x out) | rows | MKL us | oneDNN us | MKL / oneDNN |" + (" int8pack us |" if int8 else ""),
        "|---|---|---|---|---|" + ("---|" if int8 else ""),
    ]
    for r in results["rows"]:
        lines.append(f"| {r['shape']} | {r['rows']} | {r['mkl_us']:.0f} | {r['onednn_us']:.0f} | "
                     f"{r['mkl_us'] / r['onednn_us']:.2f}x |" + (f" {r['int8pack_us']:.0f} |" if int8 else ""))
    lines += ["", "Per decode step (the 210 linears of the 30 layers, lm_head excluded), summed from the rows above:", "",
              "| rows | MKL ms | oneDNN ms | faster |", "|---|---|---|---|"]
    for rows in ROWS:
        sel = [r for r in results["rows"] if r["rows"] == rows]
        mkl = sum(r["mkl_us"] * r["per_step"] for r in sel) / 1e3
        one = sum(r["onednn_us"] * r["per_step"] for r in sel) / 1e3
        lines.append(f"| {rows} | {mkl:.1f} | {one:.1f} | {'oneDNN' if one < mkl else 'MKL'} "
                     f"({max(mkl, one) / min(mkl, one):.2f}x) |")
    lines += ["", results.get("notes", ""), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kernels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--no-int8", action="store_true", help="skip the (slow) weight-only int8 kernel")
    parser.add_argument("--notes", default="", help="a paragraph appended to the results")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "kernels")
    args = parser.parse_args(argv)
    idle = machine.idle_check()
    results = {"machine": machine.facts(), "idle": idle,
               "args": {"repeats": args.repeats, "copies": args.copies},
               "rows": measure(args.repeats, args.copies, not args.no_int8), "notes": args.notes}
    print(report.write(results, args.out, markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
