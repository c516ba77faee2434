"""`make eval-sae`: trains the default SAE recipe (TopK, 16x expansion, k = 32) through
the real SaeTrainingService on a middle layer of SmolLM2-135M, over a corpus of
offline English text (Python standard-library docstrings and Debian manual pages),
then trains SAELens on the same cached activations with matched settings, and writes
bench/sae_eval.md.

    python -m bench.sae_eval [--tokens N] [--epochs E] [--compare-tokens M]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import importlib
import inspect
import json
import os
import platform
import re
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import grpc

from llmserve.sae.v1 import sae_service_pb2 as pb
from llmserve.sae.v1 import sae_service_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "data" / "bench" / "sae"
SAE_VENV = ROOT / ".venv-sae" / "bin" / "python"
_ROFF = re.compile(r"\\f[BIRP]|\\\(..|\\[-&e]|\\\*\(..|^\.[A-Za-z]+ ?", re.M)


def corpus_text(max_bytes: int) -> str:
    """Docstrings of every importable standard-library module, then English manual pages
    with roff markup stripped, up to `max_bytes`."""
    parts: list[str] = []
    size = 0
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in ("antigravity", "this", "idlelib", "tkinter", "turtle"):
            continue
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - platform-specific modules
            continue
        for obj in (module, *vars(module).values()):
            doc = inspect.getdoc(obj) if inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isfunction(obj) else None
            if doc and (obj is module or getattr(obj, "__module__", None) == module.__name__):
                parts.append(doc)
                size += len(doc)
    for page in sorted(Path("/usr/share/man/man1").glob("*.gz")) + sorted(Path("/usr/share/man/man8").glob("*.gz")):
        if size >= max_bytes:
            break
        try:
            text = _ROFF.sub("", gzip.decompress(page.read_bytes()).decode("utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
        parts.append(text)
        size += len(text)
    return "\n".join(p.strip() for p in parts)[:max_bytes] + "\n"


async def train(args) -> tuple[dict, float]:
    from models.registry import default_specs
    from domain.sae.config import SaeConfig
    from server.app import create_server
    from server.settings import Settings

    WORK.mkdir(parents=True, exist_ok=True)
    settings = Settings(host="127.0.0.1", port=0, data_dir=ROOT / "data", models=default_specs(),
                        database_url=f"sqlite:///{WORK / 'jobs.db'}",
                        sae=SaeConfig(max_tokens=args.tokens, checkpoint_interval_s=120.0))
    app = await create_server(settings, wait_ready=True)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = pb_grpc.SaeTrainingServiceStub(channel)
            text = corpus_text(args.corpus_bytes).encode()
            chunks = [pb.UploadCorpusRequest(chunk=text[i:i + (1 << 20)]) for i in range(0, len(text), 1 << 20)]
            up = await stub.UploadCorpus(iter([pb.UploadCorpusRequest(filename="sae_eval_corpus.txt"), *chunks]))
            print(f"corpus: {up.size_bytes / 1e6:.1f} MB, {up.lines_count} lines", flush=True)
            started = time.perf_counter()
            job = await stub.CreateTrainingJob(pb.CreateTrainingJobRequest(
                model_name="smollm2", corpus_file=up.filename, layer_number=args.layer, expansion_factor=16, k=32,
                learning_rate=args.lr, max_epochs=args.epochs, min_loss=0, max_sequence_length=args.seq_len))
            async for event in stub.WatchTrainingJob(pb.WatchTrainingJobRequest(job_id=job.job_id,
                                                                                min_interval_seconds=30)):
                snap = getattr(event, event.WhichOneof("event"))
                print(f"{time.perf_counter() - started:7.0f}s {snap.status} {snap.progress:.2f} {snap.message}",
                      flush=True)
            result = await stub.GetTrainingResult(pb.GetTrainingResultRequest(job_id=job.job_id))
            wall = time.perf_counter() - started
        runtime = await app.manager.runtime("smollm2")
        prefill = await runtime.engine.run_background(_full_prefill(runtime.engine, args.seq_len))
    finally:
        await app.stop(grace=0.5)
    from google.protobuf.json_format import MessageToDict

    out = MessageToDict(result, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    out["metadata"] = json.loads(Path(result.metadata_path).read_text())
    out["full_prefill_tokens_per_second"] = prefill
    return out, wall


def _full_prefill(engine, seq_len: int, batches: int = 4):
    """Engine job: tokens/s of whole-model forwards (all layers and the LM head) over batches
    shaped like the extraction's, the reference for extraction speed."""
    import torch

    ids = torch.randint(100, 20000, (4096 // seq_len, seq_len))
    with torch.inference_mode():
        engine.model(input_ids=ids, use_cache=False)  # warm-up
        start = time.perf_counter()
        for _ in range(batches):
            engine.model(input_ids=ids, use_cache=False)
            yield
    return batches * ids.numel() / (time.perf_counter() - start)


def compare(activations: str, tokens: int, lr: float) -> dict | None:
    if not SAE_VENV.exists():
        print("SAELens comparison skipped: .venv-sae is missing (make eval-sae creates it)", flush=True)
        return None
    # The trainer's imports (storage, sqlalchemy, ...) come from this venv; SAELens from its own.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"]])}
    proc = subprocess.run([str(SAE_VENV), "-m", "bench.sae_compare", "--activations", activations,
                           "--tokens", str(tokens), "--lr", str(lr), "--unclipped"], cwd=ROOT, capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], flush=True)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def render(res: dict, wall: float, cmp: dict | None, args) -> str:
    from domain.sae.config import SaeConfig

    m, st, meta = res["metrics"], res["training_stats"], res["metadata"]
    fs = st["feature_statistics"]
    lines = [
        "# SAE evaluation (`make eval-sae`)", "",
        f"One run on this machine ({platform.processor() or platform.machine()}, CPU only), "
        f"{time.strftime('%Y-%m-%d')}. Model SmolLM2-135M-Instruct, layer {args.layer} of 30 (residual stream "
        f"output), TopK SAE, 16x expansion = {res['feature_count']} latents, k = 32, Adam lr {args.lr} "
        f"(linear decay to 0 over the last {SaeConfig().lr_decay_share:.0%} of the steps), batch 1024 tokens, {args.epochs} epochs over {meta['train_tokens']:,} cached training tokens "
        f"(sequences of {args.seq_len}, first position dropped); metrics on {int(m['eval_tokens']):,} held-out tokens.",
        "", "Corpus: Python standard-library docstrings and Debian manual pages (English), "
        f"{meta['train_sequences'] + meta['eval_sequences']} sequences.", "",
        "| measure | result | target |", "|---|---|---|",
        f"| FVU (centred, held-out) | {m['fvu']:.3f} | <= 0.10 |",
        f"| L0 | {m['l0']:.1f} | = k |",
        f"| dead latents (no firing in the last {int(m['dead_window_tokens']):,} training tokens) | "
        f"{100 * m['dead_fraction']:.2f} % | < 1 % |",
        f"| never fired on held-out tokens | {fs['dead_features']} of {fs['total_features']} | |",
        f"| dense latents (fire on > {m['dense_threshold']:.0%} of tokens) | {100 * m['dense_fraction']:.2f} % | |",
        f"| CE-loss score | {m.get('ce_loss_score', float('nan')):.3f} | >= 0.9 |",
        f"| tokens trained | {meta['train_tokens'] * st['total_epochs']:,} ({st['total_epochs']} epochs) | |",
        f"| training time | {st['training_time_seconds']:.0f} s ({st['tokens_per_second']:.0f} tokens/s) | |",
        f"| activation extraction | {meta['extraction_seconds']:.0f} s "
        f"({meta['extraction_tokens_per_second']:.0f} tokens/s through layers 0-{args.layer}; whole-model "
        f"prefill of the same batches: {res['full_prefill_tokens_per_second']:.0f} tokens/s) | |",
        f"| job wall time (extract + train + evaluate) | {wall:.0f} s | |", ""]
    if cmp:
        rows = cmp["rows"]
        base = rows["saelens"]["tokens_per_second"]
        lines += [
            f"## Against SAELens {cmp['saelens_version']} (same cached activations)", "",
            f"Both train {cmp['tokens']:,} tokens from the same initial weights (unit-norm decoder rows, tied "
            f"encoder), in the same order, normalised the same way, TopK k = {cmp['k']}, {cmp['d_sae']} latents, "
            f"batch {cmp['batch']}, Adam lr {cmp['lr']} (constant for both), gradient norm clipped to 1 on the summed "
            f"error, auxiliary dead-latent loss 1/32. FVU on the same "
            "held-out tokens.", "",
            "| trainer | tokens/s | vs SAELens | FVU at equal tokens |", "|---|---|---|---|"]
        labels = {"saelens": "SAELens TopKTrainingSAE", "llmserve": "llmserve",
                  "llmserve_fp32_select": "llmserve (fp32 latent selection)",
                  "llmserve_unclipped": "llmserve without gradient clipping (the trainer before)"}
        for name, label in labels.items():
            if name not in rows:
                continue
            r = rows[name]
            lines.append(f"| {label} | {r['tokens_per_second']:.0f} | {r['tokens_per_second'] / base:.2f}x | "
                         f"{r['fvu']:.4f} |")
        lines.append("")
    lines += ["Loss curve (every ~10% of training):", "", "| tokens | loss |", "|---|---|"]
    curve = m["loss_curve"]
    for point in curve[:: max(1, len(curve) // 10)]:
        lines.append(f"| {int(point['tokens_processed']):,} | {point['loss']:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokens", type=int, default=1_000_000, help="activations cached for training")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--layer", type=int, default=15)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--corpus-bytes", type=int, default=8_000_000)
    ap.add_argument("--compare-tokens", type=int, default=300_000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "sae_eval.md"))
    args = ap.parse_args()
    res, wall = asyncio.run(train(args))
    cmp = compare(res["activations_path"], args.compare_tokens, args.lr)
    (WORK / "result.json").write_text(json.dumps({"result": res, "compare": cmp, "args": vars(args)}, indent=1))
    text = render(res, wall, cmp, args)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
