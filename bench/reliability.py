"""`make reliability`: the reliability scenarios, long, against the real stack (llmserve as
its own process on a tiny random llama, Envoy in front, a private PostgreSQL that the
suite stops and starts), written to bench/reliability.md with their figures.

The tiny model keeps the mechanics (fuzzing, cancels, faults) fast on a CPU; what it
generates is noise, which none of these scenarios judges. `--quick` runs the sizes of
tests/integration/test_reliability.py.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench import grpc_fuzz, machine
from bench.reliability_faults import (JOB_SETTINGS, SPECIALIST, engine_stall, hostile_input, process_faults,
                                      redis_outage, sigterm_drain)
from bench.reliability_scenarios import load_with_cancels, pg_restart, rest_fuzz, server_restart
from bench.reliability_stack import ROOT, PrivatePostgres, PrivateRedis, Stack

OUT = ROOT / "bench" / "reliability.md"
LONG = {"grpc_examples": 200, "rest_examples": 10, "streams": 64, "load_s": 200.0, "outage_s": 10.0,
        "pg_workers": 4, "restarts": 3, "drain_streams": 16, "big_lut": 10_000}
QUICK = {"grpc_examples": 10, "rest_examples": 3, "streams": 12, "load_s": 8.0, "outage_s": 3.0,
         "pg_workers": 1, "restarts": 1, "drain_streams": 4, "big_lut": 200}
# Chosen before the run: what the second half of the soak may add to the server's RSS.
RSS_BOUND_MB = 64


NOTES = [
    "Data lost: 0 is the expectation in every row: the kill -9 row reads back every acknowledged LUT entry and "
    "chat message, the PostgreSQL and Redis rows every acknowledged chat write. The short version of every row "
    "runs in `make test`: tests/integration/test_reliability.py (fuzzing, load, PostgreSQL, server restart, "
    "SIGTERM drain, hostile input), test_job_durability.py and test_lut_durability.py (kill -9 during jobs and "
    "writes), test_dependency_faults.py (Redis), test_observability.py (engine stall), test_hostile_input.py.",
    "",
    "Found by this suite and fixed, each with the test that found it (tests/integration/test_reliability.py):",
    "",
    "- Unknown enum numbers (proto3 enums are open): SaeTrainingService.ListTrainingJobs `state` and "
    "SpecialistService.Generate/StreamGenerate `routing_mode` were INTERNAL (ValueError, KeyError), "
    "SaeTrainingService.CreateTrainingJob `architecture` likewise, SpecialistService.ListTrainingJobs `state` "
    "was silently ignored; now INVALID_ARGUMENT naming the field "
    "(test_grpc_fuzz_gets_no_internal_error_and_no_hang, test_bad_values_found_by_the_fuzzer_are_invalid_argument).",
    "- NUL (U+0000) in a string field (a schema name, a job id, a chat message) reached PostgreSQL, which cannot "
    "store it: INTERNAL (psycopg DataError). Every servicer now refuses it up front with INVALID_ARGUMENT naming "
    "the field; bytes fields may hold anything (test_bad_values_found_by_the_fuzzer_are_invalid_argument).",
    "- The REST fuzzer met a 503 the OpenAPI document did not name (POST /v1/specialists:inspectGates before any "
    "mixture is trained). Every operation now documents 429 and 503, which any call can meet (queue full, "
    "database down) (test_every_operation_documents_its_503_and_429).",
    "- Exporting a LUT of 10,000 entries (13.4 MB) over gRPC failed in the client: RESOURCE_EXHAUSTED, gRPC's "
    "default 4 MiB limit on a received message, while the server allows 64 MiB. llmserve's Python clients "
    "(blocking and asyncio) now set the server's limits on their channels unless told otherwise "
    "(tests/clients/test_python_client.py::test_a_lut_export_past_four_mebibytes_reaches_both_clients).",
    "",
    "Limits of these figures: the RSS bound covers one soak of the length above, not a day; the model is a "
    "2-layer random llama (the mechanics, not the text, are under test).",
]


def tiny_model(folder: Path) -> Path:
    """A 2-layer random llama with SmolLM2's tokenizer and chat template (as the tests use)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(ROOT / "data" / "models" / "smollm2")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _counts(counter) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items(), key=lambda kv: str(kv[0]))) or "none"


def _listing(items: list[str], limit: int = 10) -> str:
    if not items:
        return "none"
    shown = "; ".join(f"`{i[:200]}`" for i in items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def run(sizes: dict, seed: int) -> tuple[list[dict], dict]:
    rows: list[dict] = []
    extra: dict = {}
    with tempfile.TemporaryDirectory(prefix="llmserve-reliability-") as tmp:
        folder = Path(tmp)
        pg = PrivatePostgres()
        pg.start()
        cache = PrivateRedis(folder)
        cache.start()
        model_dir = tiny_model(folder / "tiny")
        stack = Stack(folder, model_dir, pg.url, extra_config=JOB_SETTINGS, redis_url=cache.url)
        try:
            extra["start_s"] = stack.start_server()
            stack.start_envoy()

            started = time.monotonic()
            g = grpc_fuzz.fuzz(stack.target, sizes["grpc_examples"], deadline_s=20, seed=seed)
            healthy = stack.healthy()
            rows.append(dict(
                scenario="Fuzzing, gRPC",
                done=f"Hypothesis strategies from the proto descriptors, {sizes['grpc_examples']} cases per RPC over "
                     f"all {len(grpc_fuzz.unary_methods())} unary RPCs: random field values, unknown enum numbers, "
                     "100 KB strings, invalid UTF-8 and zip headers in bytes fields, 600-deep JSON in schema fields; "
                     "20 s deadline",
                expected="no INTERNAL/UNKNOWN, no call past its deadline, health SERVING after",
                happened=("as expected" if not g.faults and not g.hangs and healthy else "FAILED"),
                figures=f"cases {g.cases}; RPCs {len(g.by_method)}; statuses: {_counts(g.by_status)}; "
                        f"INTERNAL/UNKNOWN: {len(g.faults)} {_listing(g.faults)}; hangs: {len(g.hangs)}; "
                        f"slowest call {g.slowest_s:.2f} s; healthy after: {healthy}; "
                        f"{time.monotonic() - started:.0f} s"))

            started = time.monotonic()
            r = rest_fuzz(stack, sizes["rest_examples"], folder, seed=seed, timeout_s=1500)
            rows.append(dict(
                scenario="Fuzzing, REST",
                done=f"schemathesis (examples, coverage and fuzzing phases, --max-examples {sizes['rest_examples']}) "
                     f"over all {r.operations} operations of /openapi.json through Envoy",
                expected="no 5xx but a 503/429 the document names; every 4xx a JSON error {code, message} "
                         "(OpenAI paths: {error: {message}}); health after",
                happened=("as expected" if not r.server_errors and not r.bad_error_shape and r.healthy_after
                          else "FAILED"),
                figures=f"requests {r.requests}; by status: {_counts(r.by_status)}; undocumented 5xx: "
                        f"{len(r.server_errors)} {_listing(r.server_errors)}; 4xx not in the error shape: "
                        f"{len(r.bad_error_shape)} {_listing(r.bad_error_shape)}; healthy after: {r.healthy_after}; "
                        f"{time.monotonic() - started:.0f} s"))

            rows.append(_process_fault_row(process_faults(stack)))

            lf = load_with_cancels(stack, sizes["streams"], sizes["load_s"], seed=seed, specialist=SPECIALIST)
            growth = lf.rss_end_mb - lf.rss_start_mb
            rows.append(dict(
                scenario="Load with cancels",
                done=f"{lf.streams} concurrent clients for {sizes['load_s']:.0f} s: StreamComplete streams of which "
                     "a random quarter is cancelled mid-stream and a quarter cut by a 0.05-0.5 s deadline; one "
                     "client in eight sends LUT Generate, chat with a JSON schema or specialist Generate (the "
                     "mixture trained in the kill -9 row) instead",
                expected=f"0 unexpected errors; llmserve_requests_running back to 0; RSS growth over the second "
                         f"half of the soak <= {RSS_BOUND_MB} MiB",
                happened=("as expected" if not lf.unexpected and lf.running_after == 0
                          and lf.rss_second_half_growth_mb <= RSS_BOUND_MB else "FAILED"),
                figures=f"requests {lf.requests}: completed {lf.completed}, cancelled {lf.cancelled}, cut by "
                        f"deadline {lf.deadline_cut}, mixed {_counts(lf.mixed)}; unexpected errors "
                        f"{len(lf.unexpected)} {_listing(lf.unexpected)}; running rows after: {lf.running_after:g}; "
                        f"RSS {lf.rss_start_mb:.0f} -> {lf.rss_end_mb:.0f} MiB (growth {growth:+.0f} MiB, second "
                        f"half {lf.rss_second_half_growth_mb:+.0f} MiB, peak {lf.rss_peak_mb:.0f} MiB); p99 "
                        f"inter-token {lf.p99_inter_token_ms:.0f} ms"))

            d = sigterm_drain(stack, sizes["drain_streams"])
            rows.append(dict(
                scenario="SIGTERM with streams in flight",
                done=f"{d.streams} StreamComplete streams of up to 64 tokens; SIGTERM once each had its first "
                     "token; a new call 0.2 s later; the server restarted afterwards",
                expected="every stream in flight gets its whole reply, the new call is refused (UNAVAILABLE), "
                         "exit code 0 within the 15 s grace period",
                happened=("as expected" if d.finished_whole == d.streams and d.exit_code == 0 and d.exit_after_s < 15
                          and d.refused_after_sigterm == "UNAVAILABLE" else "FAILED"),
                figures=f"in flight at SIGTERM {d.in_flight_at_sigterm}; finished whole {d.finished_whole}; cut "
                        f"{_counts(d.cut)}; new call: {d.refused_after_sigterm}; exit code {d.exit_code} after "
                        f"{d.exit_after_s:.1f} s"))

            p = pg_restart(stack, pg, sizes["outage_s"], calls=20, workers=sizes["pg_workers"])
            rows.append(dict(
                scenario="PostgreSQL restart mid-load",
                done=f"{sizes['pg_workers']} clients sending chat writes and LUT listings; the private PostgreSQL "
                     f"stopped (fast shutdown) for {sizes['outage_s']:.0f} s, then started; llmserve untouched",
                expected="UNAVAILABLE, fast, during the outage; OK again afterwards without restarting llmserve; "
                         "no acknowledged write lost",
                happened=("as expected" if not p.unexpected and p.writes_lost == 0 and not p.server_restarted
                          and p.recovered_after_s >= 0 else "FAILED"),
                figures=f"requests {p.requests}; faults injected 1; OK before {p.ok_before}; during: "
                        f"{_counts(p.during)}; slowest failure {p.slowest_failure_s:.2f} s; first OK "
                        f"{p.recovered_after_s:.1f} s after PostgreSQL was back; OK after {p.ok_after}; unexpected "
                        f"{len(p.unexpected)} {_listing(p.unexpected)}; acknowledged writes {p.writes_acknowledged}, "
                        f"lost {p.writes_lost}; llmserve restarted: {p.server_restarted}"))

            rd = redis_outage(stack, cache, sizes["outage_s"])
            rows.append(dict(
                scenario="Redis stopped mid-load",
                done=f"2 clients sending chat messages and reading history; the private Redis (chat cache) killed "
                     f"for {sizes['outage_s']:.0f} s, then started empty",
                expected="every call OK throughout, none slow; no acknowledged write lost, nothing stale after",
                happened=("as expected" if not rd.unexpected and rd.writes_lost == 0 and rd.during.get("OK")
                          else "FAILED"),
                figures=f"requests {rd.requests}; during the outage: {_counts(rd.during)}; slowest call during "
                        f"{rd.slowest_during_s:.2f} s; unexpected {len(rd.unexpected)} {_listing(rd.unexpected)}; "
                        f"acknowledged writes {rd.writes_acknowledged}, lost {rd.writes_lost}"))

            s = server_restart(stack, sizes["restarts"])
            rows.append(dict(
                scenario="Server restart behind Envoy",
                done=f"a client polling GET /v1/models through Envoy every 50 ms; llmserve killed (-9) "
                     f"{sizes['restarts']} times, 2 s down each, restarted on the same port",
                expected="503 answered quickly while down, 200 again after the restart, nothing else",
                happened="as expected" if not s.unexpected and s.by_status.get(503) else "FAILED",
                figures=f"requests {s.requests}; faults injected {s.restarts}; by status: {_counts(s.by_status)}; "
                        f"slowest 503 {s.slowest_down_answer_s * 1000:.0f} ms; back to 200 after "
                        f"{', '.join(f'{x:.1f}' for x in s.recovered_after_s)} s (process start included); "
                        f"unexpected {len(s.unexpected)} {_listing(s.unexpected)}"))
            h = hostile_input(stack, sizes["big_lut"])
            rows.append(dict(
                scenario="Hostile input",
                done=f"2 MiB bodies on 7 JSON paths, a 17 KB path, invalid UTF-8 in paths, a prompt past the "
                     f"context, a gzip bomb over REST and gRPC, 200-deep, outward-pointing and cyclic JSON schemas, "
                     f"upload names with paths, dots and 502 bytes, {sizes['big_lut']} entries in one LUT, 10 "
                     f"clients training one LUT at once",
                expected="each refused with its 4xx / gRPC status, nothing 5xx; the large LUT generates and "
                         "exports; no entry lost",
                happened="as expected" if not h.unexpected else "FAILED",
                figures=f"cases {sum(h.cases.values())} ({len(h.cases)} kinds); unexpected {len(h.unexpected)} "
                        f"{_listing(h.unexpected)}; large LUT: {h.big_lut_entries} entries stored in "
                        f"{h.big_lut_train_s:.0f} s, generate ok {h.big_lut_generate_ok}, export "
                        f"{h.big_lut_export_mb:.1f} MiB; one LUT from 10 clients: {h.concurrent_acknowledged} "
                        f"acknowledged, {h.concurrent_lost} lost"))
            extra["healthy_at_end"] = stack.healthy()

            st = engine_stall(folder / "stall", model_dir)
            rows.append(dict(
                scenario="Engine loop stalled",
                done="in process (the tiny model's forward held by a gate) with stall_after_s 0.5: a call waits "
                     "on the held engine for 3 s, then the gate opens",
                expected="readiness NOT_SERVING while held, liveness SERVING; SERVING again and the held call "
                         "answered after",
                happened=("as expected" if st.not_serving_after_s >= 0 and st.liveness_during == "SERVING"
                          and st.serving_again_after_s >= 0 and st.held_call_tokens == 2 else "FAILED"),
                figures=f"NOT_SERVING {st.not_serving_after_s:.2f} s after the hold began; liveness during: "
                        f"{st.liveness_during}; SERVING again {st.serving_again_after_s:.2f} s after release; held "
                        f"call's tokens {st.held_call_tokens}"))
        finally:
            stack.stop()
            cache.stop()
            pg.destroy()
            # The server's log, for the tracebacks behind any INTERNAL in the table.
            (ROOT / "build").mkdir(exist_ok=True)
            if stack.log.exists():
                (ROOT / "build" / "reliability-server.log").write_bytes(stack.log.read_bytes())
    return rows, extra


def _process_fault_row(f) -> dict:
    return dict(
        scenario="kill -9 during writes and jobs",
        done="4 clients training one LUT and 4 chatting, an SAE job (60 epochs) and a specialist training job "
             "running; the server killed with SIGKILL mid-call, then restarted",
        expected="every acknowledged LUT entry and chat message there, no half exchange, LUT count = version; "
                 "both jobs end, completed or failed with a reason",
        happened="as expected" if f.lost == 0 and not f.unexpected and f.sae_final and f.specialist_final else "FAILED",
        figures=f"LUT entries acknowledged {f.lut_acknowledged}, lost {f.lut_lost}, torn {f.lut_torn}; chat messages "
                f"acknowledged {f.chat_acknowledged}, lost {f.chat_lost}, half exchanges {f.chat_half_exchanges}; "
                f"calls cut by the kill {f.in_flight_failed}; SAE job killed at epoch {f.sae_epoch_at_kill}, "
                f"{f.sae_final}, resumed from epoch {f.sae_resumed_from_epoch}; specialist job killed at step "
                f"{f.specialist_step_at_kill}, {f.specialist_final}; unexpected {_listing(f.unexpected)}")


def write(rows: list[dict], extra: dict, sizes: dict, idle: dict, seconds: float) -> None:
    facts = machine.facts()
    lines = [
        "# Reliability: fuzzing, faults and load",
        "",
        "`make reliability` (bench/reliability.py); the short version of each scenario is "
        "tests/integration/test_reliability.py. One run on this machine:",
        "",
        f"- Date: {facts['date']}; CPU: {facts['cpu_model']}, {facts['cores']} cores, "
        f"{facts['memory_gib']:.1f} GiB; Python {facts['python']}, torch {facts['torch']}",
        f"- Load before the run: load average {idle['load_1min']:.2f}, {idle['busy_share_1s'] * 100:.0f}% of the cores busy "
        "(the machine is shared; other test runs were going on)",
        "- Stack: llmserve as its own process on a 2-layer random llama (SmolLM2's tokenizer), Envoy from "
        "envoy.yaml in front, a private PostgreSQL 15 (initdb/pg_ctl in a temporary folder, own port) as its "
        "database, a private redis-server as its cache",
        f"- Sizes: {sizes}; the whole run took {seconds:.0f} s; llmserve started in {extra.get('start_s', 0):.1f} s; "
        f"healthy at the end: {extra.get('healthy_at_end')}",
        "",
        "| Scenario | What was done | Expected | What happened | Figures |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [row[k].replace("|", "\\|").replace("\n", " ") for k in ("scenario", "done", "expected", "happened",
                                                                           "figures")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *NOTES, ""]
    OUT.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the test sizes (a smoke run)")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--no-write", action="store_true", help="print, do not write bench/reliability.md")
    args = parser.parse_args()
    sizes = QUICK if args.quick else LONG
    idle = machine.idle_check()
    started = time.monotonic()
    rows, extra = run(sizes, args.seed)
    seconds = time.monotonic() - started
    for row in rows:
        print(f"{row['scenario']}: {row['happened']}\n  {row['figures']}\n")
    if not args.no_write:
        write(rows, extra, sizes, idle, seconds)
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
