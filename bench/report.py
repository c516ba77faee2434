"""The targets of the issue computed from the measured sections, and results.md."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

REFERENCE_32_TOK_S = 310.0
"""The issue's absolute figure for 32 streams (1.5x the ~207 tok/s static batch-32 of the notes)."""


def _get(d: Any, *keys: Any) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _fmt(x: Any, digits: int = 1) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _missing(sections: dict[str, Any], *names: str) -> str:
    gone = [n for n in names if n not in sections]
    errors = [f"{n}: {sections[n]['error']}" for n in names if isinstance(sections.get(n), dict)
              and sections[n].get("error")]
    return "; ".join([f"not measured ({', '.join(gone)} not run)"] * bool(gone) + errors) or "not measured"


SIDE_BENCHES = ("prefix_cache", "chunked_prefill", "startup", "perplexity")
"""Benches of `make bench` that run before bench.run and whose figures join its target table."""


def side_results(bench_dir: Path) -> dict[str, Any]:
    """The side benches' json files as they are on disk (each names its own machine and date)."""
    found = {}
    for name in SIDE_BENCHES:
        path = bench_dir / f"{name}.json"
        if path.exists():
            found[name] = json.loads(path.read_text())
    return found


def _chunked_itl(side: dict[str, Any], arrival: bool, default_only: bool = True) -> float | None:
    doc = side.get("chunked_prefill") or {}
    for mode in doc.get("modes", []):
        if mode.get("arrival") == arrival and (not default_only or mode.get("budget") == doc.get("default_budget")):
            return mode.get("itl_p99_ms")
    return None


def _sixth_turn_ttft_ms(side: dict[str, Any], cached: bool) -> float | None:
    for mode in (side.get("prefix_cache") or {}).get("modes", []):
        if mode.get("prefix_cache") is cached and mode.get("ttft_s") is not None:
            return mode["ttft_s"] * 1000
    return None


def _fastest_format_within_rule(sections: dict[str, Any], side: dict[str, Any]) -> tuple[str, float, float] | None:
    """(weight format, one-stream decode tok/s, perplexity delta %) of the fastest engine format whose
    perplexity on held-out text (bench/perplexity) is within 2% of fp32, or None if none was measured."""
    deltas = {}
    for r in (side.get("perplexity") or {}).get("rows", []):
        status = str(r.get("status", ""))
        if status.startswith("engine: weight_format ") and r.get("passes") and r.get("delta_pct") is not None:
            deltas[status.split()[2]] = r["delta_pct"]
    best = None
    for fmt, data in (_get(sections, "weights", "formats") or {}).items():
        decode = _get(data, "1", "stream_decode_tok_s_p50")
        if fmt in deltas and decode is not None and (best is None or decode > best[1]):
            best = (fmt, decode, deltas[fmt])
    return best


def targets(sections: dict[str, Any], side: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per target: measured value, requirement, met (True/False/None)."""
    side = side or {}
    g = lambda c, k: _get(sections, "grpc", str(c), "summary", k)  # noqa: E731
    a = _get(sections, "serial", "summary", "tok_s")
    a_decode = _get(sections, "serial", "summary", "stream_decode_tok_s_p50")
    b16 = _get(sections, "static", "16", "summary", "tok_s")
    b32 = _get(sections, "static", "32", "summary", "tok_s")
    rest16 = _get(sections, "rest", "16", "summary", "tok_s")
    llama = _get(sections, "llamacpp", "decode_tok_s_p50")
    rows = []

    def row(name: str, num: float | None, den: float | None, op: str, bound: float, unit: str,
            detail: str, needs: tuple[str, ...], ratio: bool = True) -> None:
        value = (num / den if num is not None and den else None) if ratio else num
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        if op == "report":  # the issue asks for the figure, not a bound
            met = None if value is None else "reported"
        missing = [n for n in needs if n in SIDE_BENCHES and n not in side]
        rows.append({"target": name, "value": value, "met": met,
                     "required": "reported" if op == "report" else f"{op} {bound:g}{unit}",
                     "detail": detail if value is not None else (
                         f"not measured (bench/{missing[0]}.json missing)" if missing else _missing(sections, *needs))})

    row("One stream decode vs HF generate batch 1 (per-stream decode tok/s)", g(1, "stream_decode_tok_s_p50"),
        a_decode, ">=", 2.5, "x", f"{_fmt(g(1, 'stream_decode_tok_s_p50'))} vs {_fmt(a_decode)} tok/s",
        ("grpc", "serial"))
    row("One stream alone vs llama.cpp batch-1 (decode tok/s)", g(1, "stream_decode_tok_s_p50"), llama, ">=",
        0.5, "x", f"{_fmt(g(1, 'stream_decode_tok_s_p50'))} vs {_fmt(llama)} tok/s", ("grpc", "llamacpp"))
    fastest = _fastest_format_within_rule(sections, side)
    fmt, decode, delta = fastest or ("any format", None, 0.0)
    for name, den, bound, needs in (("HF generate batch 1", a_decode, 2.5, "serial"),
                                    ("llama.cpp batch-1", llama, 0.5, "llamacpp")):
        row(f"One stream, fastest format within 2% perplexity ({fmt}, {delta:+.2f}%) vs {name} (decode tok/s)",
            decode, den, ">=", bound, "x", f"{_fmt(decode)} vs {_fmt(den)} tok/s", ("weights", "perplexity", needs))
    row("16 gRPC streams vs static batch-16 HF generate", g(16, "tok_s"), b16, ">=", 1.5, "x",
        f"{_fmt(g(16, 'tok_s'))} vs {_fmt(b16)} tok/s", ("grpc", "static"))
    row("32 gRPC streams vs static batch-32 HF generate", g(32, "tok_s"), b32, ">=", 1.5, "x",
        f"{_fmt(g(32, 'tok_s'))} vs {_fmt(b32)} tok/s", ("grpc", "static"))
    row("TTFT p50 at 16 streams vs TTFT alone (1 stream)", g(16, "ttft_p50_ms"), g(1, "ttft_p50_ms"), "<=", 2.0,
        "x", f"{_fmt(g(16, 'ttft_p50_ms'), 0)} vs {_fmt(g(1, 'ttft_p50_ms'), 0)} ms", ("grpc",))
    row("REST-SSE through Envoy vs gRPC, 16 streams", rest16, g(16, "tok_s"), ">=", 0.97, "x",
        f"{_fmt(rest16)} vs {_fmt(g(16, 'tok_s'))} tok/s", ("rest", "grpc"))
    with_cache, without = _sixth_turn_ttft_ms(side, True), _sixth_turn_ttft_ms(side, False)
    row("6th chat turn TTFT, prefix cache vs none (bench/prefix_cache.md)", with_cache, without, "<=", 0.3, "x",
        f"{_fmt(with_cache, 0)} vs {_fmt(without, 0)} ms", ("prefix_cache",))
    chunked, alone = _chunked_itl(side, True), _chunked_itl(side, False)
    row("ITL p99 at 16 streams, 1,500-token arrival vs none, chunked (bench/chunked_prefill.md)", chunked, alone,
        "report", 0, "x", f"{_fmt(chunked, 0)} vs {_fmt(alone, 0)} ms", ("chunked_prefill",))
    ready = _get(side, "startup", "results", "ready_median_s")
    row("Start to SERVING with cached weights (bench/startup.md)", ready, None, "<=", 3.0, " s",
        f"{_fmt(ready, 2)} s (median)", ("startup",), ratio=False)
    row("16 gRPC streams vs serial HF generate (baseline A)", g(16, "tok_s"), a, ">=", 7.5, "x",
        f"{_fmt(g(16, 'tok_s'))} vs {_fmt(a)} tok/s", ("grpc", "serial"))
    row("32 gRPC streams, absolute", g(32, "tok_s"), None, ">=", REFERENCE_32_TOK_S, " tok/s",
        f"{_fmt(g(32, 'tok_s'))} tok/s", ("grpc",), ratio=False)
    return rows


def _cell(text: Any) -> str:
    """Text safe inside a markdown table cell (error messages carry pipes and newlines)."""
    return " ".join(str(text).replace("|", "/").split())


def _met(m: bool | str | None) -> str:
    if isinstance(m, str):
        return m
    return "not measured" if m is None else ("yes" if m else "**no**")


def _stream_table(title_rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    out = ["| run | requests | errors | tokens (requested) | by length | wall s | aggregate tok/s | "
           "TTFT p50 / p99 ms | ITL p50 / p99 ms | per-stream decode tok/s p50 |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in title_rows:
        out.append(f"| {name} | {s['requests']} | {s['errors']} | {s['completion_tokens']} ({s['requested_tokens']}) | "
                   f"{s['finished_by_length']} | {_fmt(s['wall_s'])} | **{_fmt(s['tok_s'])}** | "
                   f"{_fmt(s['ttft_p50_ms'], 0)} / {_fmt(s['ttft_p99_ms'], 0)} | "
                   f"{_fmt(s['itl_p50_ms'], 0)} / {_fmt(s['itl_p99_ms'], 0)} | {_fmt(s['stream_decode_tok_s_p50'])} |")
    return out


def markdown(results: dict[str, Any]) -> str:
    run, machine, sections, profile = results["run"], results["machine"], results["sections"], results["run"]["profile"]
    idle = machine.get("idle_start", {})
    lines = ["# llmserve benchmark results", "",
             f"Generated by `python -m bench.run {' '.join(run['argv'])}`".rstrip() + f" (`{profile['name']}` profile), "
             f"run `{run['id']}`, {run['started']}, {_fmt(run.get('duration_s'), 0)} s in all. "
             "All ratios below come from sections measured in this one run on this machine"
             + (" — **except**: sections come from runs " + ", ".join(sorted(run["section_runs"].values()))
                if len(set(run.get("section_runs", {}).values())) > 1 else "") + ".", ""]
    if idle.get("warning"):
        lines += [f"> **Warning:** {idle['warning']}."]
        if idle.get("busiest_processes"):
            lines += [f"> Busiest other processes at start: {'; '.join(idle['busiest_processes'])}."]
        lines += [""]

    lines += ["## Targets", "", "| target | measured | required | met | values |", "|---|---|---|---|---|"]
    for t in results["targets"]:
        unit = next((u for u in (" tok/s", " s") if t["required"].endswith(u)), "x")
        lines.append(f"| {t['target']} | {_fmt(t['value'], 2)}{unit if t['value'] is not None else ''} | "
                     f"{t['required']} | {_met(t['met'])} | {_cell(t['detail'])} |")

    lines += ["", "## Machine", "",
              f"- CPU: {machine.get('cpu_model')} ({machine.get('cores')} cores visible, flags: "
              f"{', '.join(machine.get('cpu_flags', [])) or 'none of avx2/fma/avx512'}), "
              f"{_fmt(machine.get('memory_gib'))} GiB RAM",
              f"- Python {machine.get('python')}, torch {machine.get('torch')} ({machine.get('torch_threads')} threads), "
              f"transformers {machine.get('transformers')}; {machine.get('platform')}",
              f"- Date (UTC): {machine.get('date')}",
              f"- Idle check before starting: 1-minute load average {_fmt(idle.get('load_1min'), 2)} "
              f"(warn above 0.5), CPU busy {_fmt(100 * idle['busy_share_1s'] if 'busy_share_1s' in idle else None, 0)}% "
              f"over 1 s; load average at the end {_fmt(machine.get('load_1min_end'), 2)} (includes this run)"]

    lo, hi = profile["prompt_tokens"], profile["output_tokens"]
    lines += ["", "## Workload", "",
              f"- Model: SmolLM2-135M-Instruct, fp32 safetensors copy of the embedded GGUF; completion "
              f"requests (no chat template) cut from a fixed prose corpus (`bench/corpus.py`), seed {run['seed']}.",
              f"- Prompts {lo[0]}-{lo[1]} tokens and max_new_tokens {hi[0]}-{hi[1]}, uniform per request; "
              f"sampling {profile['sampling']} with a per-request seed. Continuing prose makes most streams "
              "run to max_new_tokens; the server has no ignore-EOS switch, so tokens are counted from each "
              "stream's final `usage.completion_tokens` (the `by length` column says how many ran to the limit).",
              f"- Clients: each starts a seeded {profile['stagger_ms'][0]}-{profile['stagger_ms'][1]} ms after the "
              "previous one and sends its requests back to back; requests per client by concurrency: "
              f"{profile['requests_per_client']}. Aggregate tok/s = completion tokens / (first request sent -> "
              "last final received). TTFT = request sent -> first token-carrying delta; ITL = gap between "
              "consecutive delta events of one stream, pooled over streams.",
              f"- Baseline A: {profile['serial_requests']} requests of the same distribution, one after another "
              "through `model.generate` (EOS suppressed with min_new_tokens, so each runs exactly its max_new_tokens).",
              f"- Baseline B: one left-padded static batch of 16 / 32 of those prompts, every row generating "
              f"{profile['static_new_tokens']} tokens (equal lengths: static batching at its best). `tok/s` counts "
              "all rows x tokens; `useful tok/s` counts only what each request asked for.",
              f"- llama.cpp: {profile['llamacpp_requests']} prompts, {profile['llamacpp_new_tokens']} new tokens each, "
              "batch 1, EOS suppressed; decode tok/s = (tokens - 1) / (first -> last token), the same "
              "measure as the per-stream decode tok/s of llmserve.",
              "- llmserve runs as its own process (`python -m server.main`, default engine settings); the load "
              "generator runs in this process; Envoy is rendered by `tools/envoy_config.py` from envoy.yaml."]

    lines += ["", "## Results", "", "### HF generate baselines", ""]
    serial, static = sections.get("serial"), sections.get("static")
    if serial and serial.get("summary"):
        lines += _stream_table([("A: serial HF generate", serial["summary"])]) + [""]
    else:
        lines += [f"Baseline A: {_missing(sections, 'serial')}", ""]
    if static and not static.get("error"):
        lines += ["| static batch | rows | padded prompt len | new tokens/row | wall s | tok/s | useful tok/s |",
                  "|---|---|---|---|---|---|---|"]
        for key in ("16", "32"):
            s = _get(static, key, "summary")
            if s:
                lines.append(f"| B{key} | {s['rows']} | {s['padded_prompt_tokens']} | {s['new_tokens_per_row']} | "
                             f"{_fmt(s['wall_s'])} | **{_fmt(s['tok_s'])}** | {_fmt(s['useful_tok_s'])} |")
        lines += [""]
    else:
        lines += [f"Baseline B: {_missing(sections, 'static')}", ""]

    lines += _kvcache_lines(sections, profile)
    lines += ["### llama.cpp (llama-cpp-python, same GGUF, batch 1)", ""]
    lc = sections.get("llamacpp")
    if lc and not lc.get("error"):
        lines += [f"llama-cpp-python {lc.get('version')} in `{lc.get('venv')}`, {lc.get('threads')} threads: "
                  f"decode **{_fmt(lc.get('decode_tok_s_p50'))} tok/s** (p50 over prompts), end-to-end "
                  f"{_fmt(lc.get('e2e_tok_s'))} tok/s, TTFT p50 {_fmt(lc.get('ttft_p50_ms'), 0)} ms; "
                  f"configuration: {_get(lc, 'config', 'name')}."]
        if lc.get("failed_configs"):
            lines += ["", "Configurations that crashed first (llama.cpp's fault, not the model's): "
                      + "; ".join(lc["failed_configs"]) + "."]
        lines += [""]
    else:
        lines += [f"Not measured: {(lc or {}).get('error') or 'section not run'}.", ""]

    lines += ["### llmserve", ""]
    rows = [(f"gRPC, {c} client{'s' * (c != '1')}", _get(sections, "grpc", c, "summary"))
            for c in ("1", "4", "16", "32")]
    rows += [("REST-SSE via Envoy, 16 clients", _get(sections, "rest", "16", "summary"))]
    rows = [(n, s) for n, s in rows if s]
    if rows:
        lines += _stream_table(rows) + [""]
    for name in ("grpc", "rest"):
        err = _get(sections, name, "error")
        if err:
            lines += [f"{name}: {err}", ""]
    if not rows:
        lines += [f"llmserve: {_missing(sections, 'grpc', 'rest')}", ""]

    lines += ["### Weight formats", ""]
    w = sections.get("weights")
    if not w:
        lines += ["Not run.", ""]
    elif w.get("error"):
        lines += [f"Not measured: {w['error']}.", ""]
    else:
        lines += ["| weight_format | 1 stream tok/s | 1 stream decode tok/s | 16 streams tok/s | greedy agreement with "
                  f"{w['default']} (first {profile['agreement_tokens']} tokens, {profile['agreement_prompts']} prompts) |",
                  "|---|---|---|---|---|"]
        for fmt, data in w["formats"].items():
            if data.get("error"):
                lines.append(f"| {fmt} | not measured: {_cell(data['error'])} | | | |")
                continue
            agree = _get(data, "agreement", "identical_share")
            lines.append(f"| {fmt} | {_fmt(_get(data, '1', 'tok_s'))} | "
                         f"{_fmt(_get(data, '1', 'stream_decode_tok_s_p50'))} | {_fmt(_get(data, '16', 'tok_s'))} | "
                         f"{'reference' if fmt == w['default'] else (_fmt(100 * agree, 0) + '%' if agree is not None else 'n/a')} |")
        lines += [""]

    lines += ["## Section timings", "", ", ".join(f"{k} {v:.0f} s" for k, v in results.get("durations", {}).items()),
              "", f"Raw per-request records: `{run.get('json_name', 'results.json')}` beside this file "
              "(server and Envoy logs under `bench/raw/<run id>/`)."]
    return "\n".join(lines) + "\n"


def _kvcache_lines(sections: dict[str, Any], profile: dict[str, Any]) -> list[str]:
    """KV-cache management decided by measurement: transformers' continuous batching vs the engine."""
    lines = ["### KV cache: transformers' continuous batching vs the engine's slot cache", ""]
    kv = sections.get("kvcache")
    if not kv or kv.get("error"):
        return lines + [f"Not measured: {(kv or {}).get('error') or 'section not run'}.", ""]
    lines += [f"The first 16 / 32 baseline prompts submitted at once in this process, greedy, up to "
              f"{profile.get('kv_new_tokens')} new tokens each: `generate_batch` (paged cache, its default "
              "configuration) against `models.engine.Engine` (own slot cache), first on torch's linear kernels "
              "(the same as transformers': only KV cache and scheduling differ), then with its default "
              "oneDNN-packed linears.", "",
              "| implementation | rows | tokens | wall s | tok/s |", "|---|---|---|---|---|"]
    for key in ("continuous_batch-16", "continuous_batch-32", "engine_batch_torch-16", "engine_batch_torch-32",
                "engine_batch-16", "engine_batch-32"):
        s = _get(kv, key, "summary")
        if s:
            lines.append(f"| {s['kind']} | {s['rows']} | {s['completion_tokens']} | {_fmt(s['wall_s'])} | "
                         f"**{_fmt(s['tok_s'])}** |")
    for rows in ("16", "32"):
        hf = _get(kv, f"continuous_batch-{rows}", "summary", "tok_s")
        same = _get(kv, f"engine_batch_torch-{rows}", "summary", "tok_s")
        ours = _get(kv, f"engine_batch-{rows}", "summary", "tok_s")
        if hf and same and ours:
            lines.append(f"\n{rows} rows: the engine makes {same / hf:.2f}x the tok/s of transformers' "
                         f"continuous batching on the same kernels, {ours / hf:.2f}x with packed linears.")
    return lines + [""]


def write(results: dict[str, Any], out: Path, render: Callable[[dict[str, Any]], str]) -> str:
    """Write `out`.json (the figures) and `out`.md (`render(results)`); returns the markdown."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    text = render(results)
    out.with_suffix(".md").write_text(text)
    return text
