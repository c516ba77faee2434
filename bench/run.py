"""`python -m bench.run [--quick] [--only SECTIONS]`: the benchmark of the issue
"Shared engine ... and make bench"; writes bench/results.md and bench/results.json.

Sections, in order (all by default):
  serial    baseline A: serial HF generate
  static    baseline B: static batch-16 and batch-32 HF generate
  kvcache   transformers' continuous batching (paged cache) vs the engine's slot cache, in process
  llamacpp  llama.cpp batch 1 on the same GGUF (installed into .venv-bench on demand)
  grpc      llmserve, 1/4/16/32 concurrent StreamComplete clients
  rest      llmserve, 16 clients over REST-SSE through Envoy
  weights   engine weight formats (fp32 vs bf16 where the CPU has it): speed and greedy-token agreement

`--quick` is a ~2-minute smoke run (fewer tokens) written to bench/raw/quick-results.*.
`--only` re-measures some sections and merges them into the existing results file
(results.md then says which sections came from which run).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from bench import machine
from bench.profiles import FULL, QUICK, Profile

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RAW = BENCH / "raw"
SECTIONS = ("serial", "static", "kvcache", "llamacpp", "grpc", "rest", "weights")
LEVELS = (1, 4, 16, 32)

_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:6.1f}s] {msg}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run (~2 min), written to bench/raw/quick-results.*")
    p.add_argument("--only", default="", help=f"comma-separated sections: {','.join(SECTIONS)}")
    p.add_argument("--out", type=Path, help="output path without suffix (default bench/results)")
    p.add_argument("--seed", type=int, default=1234)
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()] or list(SECTIONS)
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}; known: {','.join(SECTIONS)}")
    return args


def _summaries(records: list[Any]) -> dict[str, Any]:
    from bench.stats import summarize

    return {"summary": summarize(records), "requests": [r.as_dict() for r in records]}


def _line(label: str, s: dict[str, Any]) -> str:
    f = lambda x, d=1: "n/a" if x is None else f"{x:.{d}f}"  # noqa: E731
    return (f"{label}: {s['completion_tokens']} tokens in {f(s['wall_s'])} s = {f(s.get('tok_s'))} tok/s, "
            f"TTFT p50 {f(s.get('ttft_p50_ms'), 0)} ms, ITL p50 {f(s.get('itl_p50_ms'), 0)} ms"
            + (f", {s['errors']} ERRORS {s['error_samples']}" if s.get("errors") else ""))


# ------------------------------------------------------------------ HF baselines

def run_hf(sections: list[str], profile: Profile, reqs: list[Any], out: dict[str, Any], timed: Callable) -> None:
    from bench import hf_baseline

    lm = hf_baseline.load_embedded()
    hf_baseline.warmup(lm)
    if "serial" in sections:
        with timed("serial"):
            out["serial"] = hf_baseline.serial(lm, reqs[:profile.serial_requests], profile.sampling)
            log(_line("baseline A, serial HF generate", out["serial"]["summary"]))
    if "static" in sections:
        with timed("static"):
            out["static"] = {}
            for rows in (16, 32):
                res = hf_baseline.static_batch(lm, reqs[:rows], profile.static_new_tokens, profile.sampling)
                out["static"][str(rows)] = res
                s = res["summary"]
                log(f"baseline B{rows}: {s['completion_tokens']} tokens in {s['wall_s']:.1f} s = "
                    f"{s['tok_s']:.1f} tok/s (useful {s['useful_tok_s']:.1f})")
    if "kvcache" in sections:
        with timed("kvcache"):
            out["kvcache"] = {}
            # cpu_linear "onednn" goes last: it packs the model's linears in place.
            runs = (("continuous_batch", hf_baseline.continuous_batch, {}),
                    ("engine_batch_torch", hf_baseline.engine_batch, {"cpu_linear": "torch"}),
                    ("engine_batch", hf_baseline.engine_batch, {"cpu_linear": "onednn"}))
            for key, fn, kwargs in runs:
                for rows in (16, 32):
                    res = fn(lm, reqs[:rows], profile.kv_new_tokens, **kwargs)
                    s = res["summary"]
                    out["kvcache"][f"{key}-{rows}"] = res
                    log(f"kvcache {s['kind']}, {rows} rows: {s['completion_tokens']} tokens in "
                        f"{s['wall_s']:.1f} s = {s['tok_s']:.1f} tok/s")
    del lm
    gc.collect()


# ------------------------------------------------------------------ llmserve

async def _warmup(send: Any, reqs: list[Any]) -> None:
    from bench.workload import RequestSpec

    short = [RequestSpec(r.prompt, r.prompt_tokens, 8, r.seed) for r in reqs[:8]]
    await send(short[0], {"do_sample": False})
    await asyncio.gather(*(send(r, {"do_sample": False}) for r in short))


async def _levels(target: str, plans: dict[int, list[Any]], levels: tuple[int, ...], sampling: dict[str, Any],
                  warm: list[Any], label: str) -> dict[str, Any]:
    from bench.clients import GrpcSender, drive

    send = GrpcSender(target)
    out: dict[str, Any] = {}
    try:
        await _warmup(send, warm)
        for c in levels:
            records = await drive(send, plans[c], sampling)
            out[str(c)] = _summaries(records)
            log(_line(f"{label}, {c} client(s)", out[str(c)]["summary"]))
            await asyncio.sleep(1.0)
    finally:
        await send.close()
    return out


async def _greedy(target: str, prompts: tuple[str, ...], n: int) -> list[list[int]]:
    from bench.clients import GrpcSender, sequential
    from bench.workload import RequestSpec

    send = GrpcSender(target)
    try:
        reqs = [RequestSpec(p, 0, n, 0) for p in prompts]
        records = await sequential(send, reqs, {"do_sample": False, "repetition_penalty": 1.0})
    finally:
        await send.close()
    bad = [r.error for r in records if r.error]
    if bad:
        raise RuntimeError(f"greedy requests failed: {bad[0]}")
    return [r.token_ids for r in records]


async def _rest(server_port: int, work: Path, plans: list[Any], sampling: dict[str, Any], warm: list[Any]) -> dict:
    from bench.clients import SseSender, drive
    from tools import envoy_config, protogen

    descriptor = envoy_config.DESCRIPTOR
    if not descriptor.exists():
        protogen.generate_descriptor(descriptor)
    http_port, admin_port = envoy_config.free_port(), envoy_config.free_port()
    config = envoy_config.render(server_port, http_port, admin_port, descriptor, work / "envoy.yaml")
    envoy = envoy_config.start_envoy(config, http_port, admin_port, log_path=work / "envoy.log")
    try:
        envoy_config.wait_backend_healthy(envoy, timeout=30)
        send = SseSender(envoy.base_url, connections=len(plans))
        try:
            await _warmup(send, warm)
            records = await drive(send, plans, sampling)
        finally:
            await send.close()
    finally:
        envoy_config.stop_envoy(envoy)
    res = _summaries(records)
    log(_line("REST-SSE via Envoy, 16 clients", res["summary"]))
    return res


def run_server(sections: list[str], profile: Profile, plans: dict[int, list[Any]], warm: list[Any], work: Path,
               out: dict[str, Any], timed: Callable) -> None:
    from bench import weights
    from bench.corpus import AGREEMENT_PROMPTS
    from bench.server_proc import ServerProcess

    default_fmt, other_fmts, no_formats = weights.formats()
    agreement_prompts = AGREEMENT_PROMPTS[:profile.agreement_prompts]
    wants_weights = "weights" in sections
    reference_tokens = None
    with timed("server_start"):
        server = ServerProcess(work, label="server").start()
    log(f"llmserve SERVING on port {server.port} after {server.ready_s:.1f} s (log {server.log_path})")
    log(f"linear kernels {server.settle_kernels()}")
    target = f"127.0.0.1:{server.port}"
    try:
        if "grpc" in sections:
            with timed("grpc"):
                out["grpc"] = asyncio.run(_levels(target, plans, LEVELS, profile.sampling, warm, "gRPC"))
        if "rest" in sections:
            with timed("rest"):
                try:
                    out["rest"] = {"16": asyncio.run(_rest(server.port, work, plans[16], profile.sampling, warm))}
                except Exception as exc:  # Envoy missing or broken: say so in the table
                    out["rest"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
                    log(f"REST-SSE failed: {out['rest']['error']}")
        if wants_weights and not no_formats:
            with timed("weights"):
                levels = {c: plans[c] for c in profile.weight_levels}
                base = {str(c): _get_summary(out, "grpc", c) for c in profile.weight_levels}
                if any(v is None for v in base.values()):
                    measured = asyncio.run(_levels(target, levels, profile.weight_levels, profile.sampling, warm,
                                                   f"weights {default_fmt}"))
                    base = {c: v["summary"] for c, v in measured.items()}
                reference_tokens = asyncio.run(_greedy(target, agreement_prompts, profile.agreement_tokens))
                out["weights"] = {"default": default_fmt, "formats": {default_fmt: dict(base)}}
    finally:
        server.stop()

    if not wants_weights:
        return
    if no_formats:
        out["weights"] = {"error": no_formats}
        log(f"weights: {no_formats}")
        return
    with timed("weights"):
        for fmt in other_fmts:
            data: dict[str, Any] = {}
            refused = weights.refused(fmt)
            if refused:
                out["weights"]["formats"][fmt] = {"error": f"refused on this CPU: {refused}"}
                log(f"weights {fmt}: {refused}")
                continue
            try:
                with ServerProcess(work, engine={"weight_format": fmt}, label=f"server-{fmt}") as srv:
                    log(f"weights {fmt}: linear kernels {srv.settle_kernels()}")
                    t = f"127.0.0.1:{srv.port}"
                    measured = asyncio.run(_levels(t, {c: plans[c] for c in profile.weight_levels},
                                                   profile.weight_levels, profile.sampling, warm, f"weights {fmt}"))
                    data = {c: v["summary"] for c, v in measured.items()}
                    tokens = asyncio.run(_greedy(t, agreement_prompts, profile.agreement_tokens))
                    data["agreement"] = weights.agreement(reference_tokens, tokens, profile.agreement_tokens)
                    log(f"weights {fmt}: greedy agreement with {default_fmt} "
                        f"{100 * data['agreement']['identical_share']:.0f}%")
            except Exception as exc:
                data = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                log(f"weights {fmt} failed: {data['error']}")
            out["weights"]["formats"][fmt] = data


def _get_summary(out: dict[str, Any], section: str, c: int) -> dict[str, Any] | None:
    return (out.get(section) or {}).get(str(c), {}).get("summary")


# ------------------------------------------------------------------ main

class _Timer:
    def __init__(self) -> None:
        self.durations: dict[str, float] = {}

    def __call__(self, name: str) -> "_Timer":
        self._name = name
        return self

    def __enter__(self) -> None:
        self._t = time.perf_counter()
        log(f"--- {self._name}")

    def __exit__(self, *exc: object) -> None:
        self.durations[self._name] = self.durations.get(self._name, 0.0) + time.perf_counter() - self._t


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = QUICK if args.quick else FULL
    out_base = args.out or (RAW / "quick-results" if args.quick else BENCH / "results")
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    work = RAW / run_id
    work.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")

    idle = machine.idle_check()
    facts = machine.facts()
    log(f"machine: {facts['cpu_model']}, {facts['cores']} cores, torch {facts['torch']}; "
        f"1-min load {idle['load_1min']:.2f}, busy {100 * idle['busy_share_1s']:.0f}%")
    if idle["warning"]:
        log(f"WARNING: {idle['warning']}")
        for p in idle.get("busiest_processes", []):
            log(f"  busy: {p}")
    log(f"profile {profile.name}, sections {','.join(args.sections)}, results -> {out_base}.md/.json")

    from transformers import AutoTokenizer

    from bench import workload
    from models.loading import _embedded_cache
    from models.registry import default_specs

    model_dir = _embedded_cache(next(s for s in default_specs() if s.name == "smollm2"), ROOT / "data" / "models")
    cutter = workload.PromptCutter(AutoTokenizer.from_pretrained(model_dir))
    reqs = workload.baseline_requests(cutter, profile, max(32, profile.serial_requests, profile.llamacpp_requests),
                                      args.seed)
    plans = {c: workload.make_clients(cutter, profile, c, args.seed) for c in LEVELS}
    warm = workload.baseline_requests(cutter, profile, 8, args.seed + 1)

    sections: dict[str, Any] = {}
    timed = _Timer()
    if {"serial", "static", "kvcache"} & set(args.sections):
        run_hf(args.sections, profile, reqs, sections, timed)
    if "llamacpp" in args.sections:
        from bench import llamacpp

        with timed("llamacpp"):
            sel = reqs[:profile.llamacpp_requests]
            sections["llamacpp"] = llamacpp.measure([r.prompt for r in sel], profile.llamacpp_new_tokens,
                                                    profile.sampling, [r.seed for r in sel],
                                                    threads=facts["torch_threads"], log=log)
            lc = sections["llamacpp"]
            log(f"llama.cpp: {lc['error']}" if lc.get("error") else
                f"llama.cpp {lc['version']}: decode {lc['decode_tok_s_p50']:.1f} tok/s, e2e {lc['e2e_tok_s']:.1f}")
    if {"grpc", "rest", "weights"} & set(args.sections):
        try:
            run_server(args.sections, profile, plans, warm, work, sections, timed)
        except Exception as exc:
            msg = f"{type(exc).__name__}: {str(exc)[:500]}"
            log(f"llmserve failed: {msg}")
            for name in ("grpc", "rest", "weights"):
                if name in args.sections and name not in sections:
                    sections[name] = {"error": msg}

    results = _merge(out_base, args, profile, run_id, started, facts, idle, sections, timed.durations)
    from bench import report

    results["targets"] = report.targets(results["sections"], report.side_results(BENCH))
    results["run"]["json_name"] = Path(f"{out_base}.json").name
    Path(f"{out_base}.json").parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out_base}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    Path(f"{out_base}.md").write_text(report.markdown(results))
    log(f"wrote {out_base}.md and {out_base}.json ({time.perf_counter() - _T0:.0f} s in all)")
    print()
    for t in results["targets"]:
        value = "n/a" if t["value"] is None else f"{t['value']:.2f}"
        met = "not measured" if t["met"] is None else t["met"] if isinstance(t["met"], str) else (
            "yes" if t["met"] else "NO")
        print(f"  {t['target']:<55} {value:>8}  (required {t['required']}): {met}  [{t['detail']}]")
    return 0


def _merge(out_base: Path, args: argparse.Namespace, profile: Profile, run_id: str, started: str,
           facts: dict[str, Any], idle: dict[str, Any], sections: dict[str, Any],
           durations: dict[str, float]) -> dict[str, Any]:
    """With --only, keep the other sections of an earlier results file (same profile)."""
    import dataclasses

    previous: dict[str, Any] = {}
    path = Path(f"{out_base}.json")
    if args.only and path.exists():
        try:
            previous = json.loads(path.read_text())
        except ValueError:
            previous = {}
        if previous.get("run", {}).get("profile", {}).get("name") != profile.name:
            previous = {}
    merged = dict(previous.get("sections", {}))
    merged.update(sections)
    section_runs = dict(previous.get("run", {}).get("section_runs", {}))
    section_runs.update({name: run_id for name in sections})
    facts = {**facts, "idle_start": idle, "load_1min_end": machine.load_average()}
    return {
        "run": {"id": run_id, "started": started, "argv": sys.argv[1:] if argv_is_cli() else [],
                "seed": args.seed, "profile": dataclasses.asdict(profile), "sections_run": args.sections,
                "section_runs": section_runs, "duration_s": time.perf_counter() - _T0},
        "machine": facts,
        "sections": merged,
        "durations": {**previous.get("durations", {}), **durations},
    }


def argv_is_cli() -> bool:
    return Path(sys.argv[0]).name in ("run.py", "__main__.py") or sys.argv[0].endswith("bench.run")


if __name__ == "__main__":
    sys.exit(main())
