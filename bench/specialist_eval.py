"""`make eval-specialists`: trains a three-specialist mixture on SmolLM2-135M from real
offline text (Python standard-library docstrings, Debian manual pages, licence texts),
with README files of installed Debian packages as general text, and writes
bench/specialist_eval.md: held-out perplexity base vs mixture per domain and on general
text, routing accuracy, training time, and decode tok/s with and without specialists.

    python -m bench.specialist_eval [--steps N] [--out bench/specialist_eval.md]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import importlib
import inspect
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

from models.engine.config import EngineConfig
from models.engine.engine import Engine
from models.loading import load_model
from models.registry import default_specs
from domain.specialist.config import SpecialistConfig
from domain.specialist.hook import SpecialistHook
from domain.specialist.mixture import Mixture
from domain.specialist.train import Domain, Progress, eval_units, sequences, train_units
from models.types import FinishEvent, GenerationRequest
from models.sampling_policy import SamplingParams

ROOT = Path(__file__).resolve().parent.parent
BUDGET_BYTES = 200_000  # per domain, the "~200 KB corpus"
STDLIB = ("collections", "itertools", "functools", "os", "pathlib", "json", "re", "string", "datetime", "argparse",
          "logging", "subprocess", "threading", "asyncio", "textwrap", "statistics", "decimal", "fractions", "random",
          "shutil", "tempfile", "typing", "unittest", "csv", "sqlite3", "heapq", "bisect", "contextlib",
          "dataclasses", "enum", "inspect", "pickle", "socket", "zipfile", "tarfile", "gzip", "hashlib", "uuid",
          "calendar", "email.message", "http.client", "urllib.parse", "urllib.request", "xml.etree.ElementTree",
          "configparser", "difflib", "pprint", "queue", "sched", "selectors", "shlex", "smtplib", "ssl", "struct",
          "tokenize", "traceback", "weakref", "io", "codecs", "copy", "glob", "fnmatch", "locale", "operator",
          "optparse", "platform", "plistlib", "signal", "timeit", "trace", "types", "warnings", "zlib", "ast",
          "base64", "binascii", "cmd", "code", "concurrent.futures", "ftplib", "getopt", "gettext", "imaplib")


def docstring_docs() -> list[str]:
    docs = []
    for name in STDLIB:
        try:
            module = importlib.import_module(name)
        except Exception:
            continue
        parts = [f"{name}\n\n{inspect.getdoc(module) or ''}"]
        for attr, obj in sorted(vars(module).items()):
            if attr.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            doc = inspect.getdoc(obj) if (inspect.isclass(obj) or inspect.isfunction(obj)) else None
            if doc:
                parts.append(f"{name}.{attr}\n{doc}")
        docs.append("\n\n".join(parts))
    return docs


def man_docs(limit: int = 400) -> list[str]:
    docs = []
    for path in sorted(Path("/usr/share/man/man1").glob("*.1.gz"))[:limit]:
        try:
            src = gzip.decompress(path.read_bytes())
            out = subprocess.run(["groff", "-mandoc", "-Tutf8", "-P-cbou"], input=src, capture_output=True,
                                 timeout=20, check=False).stdout.decode("utf-8", "replace")
        except Exception:
            continue
        text = "\n".join(line.rstrip() for line in out.splitlines())
        if len(text) > 500:
            docs.append(text)
    return docs


def licence_docs() -> list[str]:
    return [p.read_text(errors="replace") for p in sorted(Path("/usr/share/common-licenses").iterdir()) if p.is_file()]


def general_docs() -> list[str]:
    docs = []
    for path in sorted(Path("/usr/share/doc").glob("*/README*")):
        try:
            data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            text = data.decode("utf-8")
        except Exception:
            continue
        if len(text) > 300:
            docs.append(text)
    return docs


def budget(docs: list[str], limit: int = BUDGET_BYTES) -> list[str]:
    """Documents spread over the whole list until `limit` bytes."""
    if not docs:
        return docs
    stride = max(1, len(docs) // 60)
    order = [d for i in range(stride) for d in docs[i::stride]]
    out, size = [], 0
    for doc in order:
        if size >= limit:
            break
        out.append(doc[: limit - size])
        size += len(out[-1].encode())
    return out


def domain(name: str, docs: list[str], tokenizer, seq_len: int, by_document: bool) -> Domain:
    """Held-out: whole documents never seen in training, taken whenever the held-out share
    of the bytes so far is under 10%; or every 10th sequence for corpora of few long
    documents (licences, whose versions share most of their text)."""
    def seqs(texts: list[str]) -> torch.Tensor:
        ids = tokenizer("\n\n".join(texts), add_special_tokens=False)["input_ids"]
        return sequences(ids, seq_len)
    if by_document:
        train, heldout, seen, held = [], [], 0, 0
        for i, doc in enumerate(docs):
            seen += len(doc)
            if i > 0 and held < 0.1 * seen:
                heldout.append(doc)
                held += len(doc)
            else:
                train.append(doc)
        return Domain(name, seqs(train), seqs(heldout))
    all_seqs = seqs(docs)
    mask = torch.zeros(len(all_seqs), dtype=torch.bool)
    mask[9::10] = True
    return Domain(name, all_seqs[~mask], all_seqs[mask])


async def decode_rate(engine: Engine, tokenizer, mixture: Mixture | None, runs: int = 3, tokens: int = 64) -> float:
    ids = tokenizer("The history of the printing press", add_special_tokens=True)["input_ids"]
    rates = []
    for _ in range(runs):
        hooks = (SpecialistHook(mixture),) if mixture is not None else ()
        request = GenerationRequest(list(ids), SamplingParams(max_new_tokens=tokens, temperature=0.0,
                                                              stop_sequences=()), hooks=hooks)
        start, first, n = time.perf_counter(), None, 0
        async for event in engine.generate(request):
            if first is None:
                first = time.perf_counter()  # decode rate: after the prefill's first token
            if isinstance(event, FinishEvent):
                n = event.completion_tokens
        rates.append((n - 1) / (time.perf_counter() - first))
    return statistics.median(rates)


async def main(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    spec = next(s for s in default_specs() if s.name == "smollm2")
    loaded = load_model(spec, ROOT / "data" / "models")
    tok = loaded.tokenizer
    # The server's defaults (SpecialistConfig), so the figures describe what a job does.
    cfg = SpecialistConfig(steps=args.steps or SpecialistConfig().steps, eval_sequences=args.eval_seqs)
    t0 = time.perf_counter()
    sources = {"docstrings": (budget(docstring_docs()), True), "manpages": (budget(man_docs()), True),
               "licences": (budget(licence_docs()), False)}
    general = domain("general", budget(general_docs()), tok, cfg.seq_len, True)
    domains = [domain(n, docs, tok, cfg.seq_len, by_doc) for n, (docs, by_doc) in sources.items()]
    prep_s = time.perf_counter() - t0
    engine = Engine(loaded.model, tok, EngineConfig(), device=loaded.device)
    engine.start()
    model = engine.model
    c = model.config
    mixture = Mixture(tuple(d.name for d in domains), c.num_hidden_layers, c.hidden_size, cfg.rank).to(engine.device)
    progress = Progress()
    t0 = time.perf_counter()
    await engine.run_background(train_units(model, mixture, general, domains, cfg.steps, cfg, progress))
    train_s = time.perf_counter() - t0
    frozen = mixture.frozen()
    everything = [*domains, general]
    base, mixed = {}, {}
    await engine.run_background(eval_units(model, None, everything, cfg.eval_sequences, out=base))
    await engine.run_background(eval_units(model, frozen, everything, cfg.eval_sequences, out=mixed))
    plain = await decode_rate(engine, tok, None)
    with_sp = await decode_rate(engine, tok, frozen)
    plain2 = await decode_rate(engine, tok, None)  # again: the machine is shared, bracket the hooked run
    engine.stop()
    write(args.out, domains, general, base, mixed, train_s, progress, statistics.mean([plain, plain2]), with_sp,
          cfg, prep_s, sources)


def write(out: Path, domains, general, base, mixed, train_s, progress, plain, with_sp, cfg, prep_s, sources) -> None:
    names = [d.name for d in domains]
    lines = ["# Specialist mixture evaluation (SmolLM2-135M)", "",
             f"Generated by `bench/specialist_eval.py` on {platform.machine()} with {torch.get_num_threads()} torch "
             f"threads, fp32 CPU; {time.strftime('%Y-%m-%d %H:%M')}.", "",
             "## Data", "",
             "| corpus | source | bytes | train tokens | held-out tokens (evaluated) | held out by |", "|---|---|---|---|---|---|"]
    src = {"docstrings": "Python standard-library docstrings (`inspect.getdoc`)",
           "manpages": "Debian manual pages `/usr/share/man/man1` rendered by groff",
           "licences": "`/usr/share/common-licenses`", "general": "READMEs of installed packages `/usr/share/doc/*/README*`"}
    for d in [*domains, general]:
        size = sum(len(x.encode()) for x in sources[d.name][0]) if d.name in sources else "-"
        how = "sequence (every 10th)" if d.name == "licences" else "whole documents (~10% of bytes)"
        lines.append(f"| {d.name} | {src[d.name]} | {size} | {d.train.numel()} | {mixed[d.name].tokens} | {how} |")
    lines += ["", "## Held-out perplexity", "", "| corpus | base | mixture (soft gates) | change | target |",
              "|---|---|---|---|---|"]
    ok = {}
    for n in [*names, "general"]:
        b, m = base[n].perplexity, mixed[n].perplexity
        change = (m - b) / b
        target = "<= +2%" if n == "general" else "<= -20%"
        ok[n] = change <= 0.02 if n == "general" else change <= -0.20
        lines.append(f"| {n} | {b:.2f} | {m:.2f} | {change:+.1%} | {target} {'met' if ok[n] else 'MISSED'} |")
    hits, total = 0, 0
    per = []
    for i, n in enumerate(names):
        own = [g for g in mixed[n].gate_means if max(range(len(g)), key=g.__getitem__) == i + 1]
        hits, total = hits + len(own), total + len(mixed[n].gate_means)
        per.append(f"{n} {len(own)}/{len(mixed[n].gate_means)}")
    acc = hits / total if total else 0.0
    gen_base = [g[0] for g in mixed["general"].gate_means]
    ratio = with_sp / plain if plain else 0.0
    lines += ["", "## Routing", "",
              f"Routing accuracy (held-out domain passages whose mean gate weight, over layers and tokens, is highest "
              f"for their own specialist): **{acc:.3f}** ({hits}/{total}: {', '.join(per)}); target >= 0.9 "
              f"{'met' if acc >= 0.9 else 'MISSED'}.",
              f"General held-out passages: mean gate weight of the base expert {statistics.mean(gen_base):.3f}.", "",
              "## Cost", "",
              f"- Training: {cfg.steps} steps x {cfg.batch_size} sequences x {cfg.seq_len} tokens (one general + one "
              f"per specialist per step), rank {cfg.rank}: **{train_s / 60:.1f} min** wall for all three specialists "
              f"together ({progress.train_seconds / 60:.1f} min in forward/backward); target < 15 min per ~200 KB "
              f"specialist {'met' if train_s < 900 else 'MISSED'}. Final training loss {progress.loss:.3f}.",
              f"- Corpus preparation (docstrings, groff rendering, tokenizing): {prep_s:.0f} s.",
              f"- Decode, batch 1, greedy, 64 tokens (median of 3): without specialists {plain:.1f} tok/s, with "
              f"{with_sp:.1f} tok/s: **{ratio:.2f}x**; target >= 0.8x {'met' if ratio >= 0.8 else 'MISSED'}.", "",
              "## Method", "",
              "Per decoder layer, each specialist is a rank-16 residual adapter on the layer's output and a gate "
              "(softmax over base + specialists) reads the token's normalized hidden state and the causal mean of "
              "the passage so far. Base weights are frozen. Loss: language-model cross-entropy plus 0.5 x a routing "
              "cross-entropy of every gate against the corpus the sequence came from (base for general text). "
              "Perplexities use the same held-out sequences for base and mixture; the base column is the model "
              "without adapters."
              " General text: the README corpus is also trained on (as the base expert's target), and its held-out documents are evaluated, so the general row measures text like the general corpus; text unlike all four corpora was not measured."]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=0, help="optimizer steps (default: the server's)")
    parser.add_argument("--eval-seqs", type=int, default=24)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "specialist_eval.md")
    asyncio.run(main(parser.parse_args()))
