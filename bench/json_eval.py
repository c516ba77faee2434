"""`python -m bench.json_eval [--target HOST:PORT] [--split design|heldout|all]`: structured
replies on bench/json_tasks/tasks.jsonl, each task one new conversation whose first message
is constrained by its schema (a built-in name, or an inline schema from
bench/json_tasks/schemas.json) under the task's own max_new_tokens (tight ones included).

The whole set runs twice, greedy, one request at a time, and the two passes are compared
token by token: a structured reply must parse and validate, and the same request must
give the same reply. Writes bench/json_eval.json and bench/json_eval.md, with the design
half (used while building the closing) and the held-out half reported apart.
Without --target it starts an in-process server on the embedded SmolLM2-135M.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import grpc

from bench import report
from llmserve.chat.v1 import chat_service_pb2 as pb
from llmserve.chat.v1 import chat_service_pb2_grpc as pb_grpc
from llmserve.common.v1 import common_pb2

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "bench" / "json_tasks" / "tasks.jsonl"
INLINE_SCHEMAS = ROOT / "bench" / "json_tasks" / "schemas.json"
OUT = ROOT / "bench" / "json_eval"
MODEL_DIR = ROOT / "data" / "models" / "smollm2"


@contextlib.asynccontextmanager
async def _server(target: str | None) -> AsyncIterator[str]:
    if target:
        yield target
        return
    from models.registry import default_specs
    from server.app import create_server
    from server.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        (data / "models").mkdir()
        (data / "models" / "smollm2").symlink_to(MODEL_DIR, target_is_directory=True)  # reuse the conversion
        app = await create_server(Settings(host="127.0.0.1", port=0, data_dir=data, models=default_specs(),
                                           default_model="smollm2"), wait_ready=True)
        try:
            yield f"127.0.0.1:{app.port}"
        finally:
            await app.stop(grace=1.0)


def _spec(task: dict, schemas: dict[str, dict]) -> Any:
    from domain.structured.schemas import check_schema

    return check_schema(json.dumps(schemas[task["schema"]]), "s", task["schema"])


async def _one(stub: Any, task: dict, schemas: dict[str, dict], inline: dict[str, dict]) -> dict[str, Any]:
    """One task as the first message of a new conversation: no earlier turn (a sampled
    greeting would make the prompt differ from run to run)."""
    request = pb.StreamConversationRequest(user_id=str(uuid.uuid4()), initial_message=task["message"],
                                           max_new_tokens=task["max_new_tokens"], temperature=0.0)
    if task["schema"] in inline:
        request.json_schema = json.dumps(inline[task["schema"]])
    else:
        request.json_schema_name = task["schema"]
    first = last = None
    final, token_ids, sid = None, [], None
    async for event in stub.StreamConversation(request):
        kind = event.WhichOneof("event")
        now = time.perf_counter()
        if kind == "session_id":
            sid = event.session_id
        elif kind == "delta":
            token_ids += event.delta.token_ids
            first = first or now
            last = now
        elif kind == "final":
            final = event.final
        elif kind == "error":
            raise RuntimeError(event.error.message)
    if sid:
        await stub.EndConversation(pb.EndConversationRequest(session_id=sid))
    text = final.text
    _, why = _spec(task, schemas).validate(text)
    return {"id": task["id"], "split": task["split"], "schema": task["schema"], "budget": task["max_new_tokens"],
            "valid": why is None, "why": why, "text": text, "tokens": final.usage.completion_tokens,
            "token_ids": token_ids, "decode_s": (last - first) if first and last else 0.0,
            "length": final.finish_reason == common_pb2.FINISH_REASON_LENGTH}


def _compiler() -> Any:
    from transformers import AutoTokenizer

    from domain.structured.grammar import GrammarCompiler

    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
    return GrammarCompiler(tokenizer, len(tokenizer))


def _hook_cost(compiler: Any, rows: list[dict], schemas: dict[str, dict]) -> dict[str, float]:
    """Mean cost per token of the grammar hook (bitmask, closing check, matcher advance),
    replaying the replies' own tokens with their budgets: the part of a step decoding adds."""
    import torch

    spent, count, forced = 0.0, 0, 0
    for r in rows:
        hook = compiler.compile(_spec(r, schemas), "s").hook(r["budget"])
        logits = torch.zeros(compiler.info.vocab_size)
        start = time.perf_counter()
        for i, tok in enumerate(r["token_ids"]):
            logits.zero_()
            logits[tok] = 1.0  # the reply's own token is the favourite, as it was when served
            hook.on_logits(logits, r["token_ids"][:i])
            hook.on_token(tok)
        spent += time.perf_counter() - start
        count += len(r["token_ids"])
        forced += hook.forced_steps
    return {"ms_per_token": 1e3 * spent / count if count else 0.0, "forced_steps": forced}


def _compile_times(compiler: Any, schemas: dict[str, dict]) -> list[tuple[str, float, float]]:
    """(schema, first compile ms, median cached ms) with a cold compiler on the model's tokenizer."""
    from domain.structured.schemas import check_schema

    rows = []
    for name, schema in schemas.items():
        spec = check_schema(json.dumps(schema), "s", name)
        first = compiler.compile(spec, "s").compile_ms
        cached = statistics.median(compiler.compile(spec, "s").compile_ms for _ in range(50))
        rows.append((name, first, cached))
    return rows


def _summary(rows: list[dict]) -> dict[str, Any]:
    tokens = sum(r["tokens"] - 1 for r in rows if r["decode_s"] > 0)
    seconds = sum(r["decode_s"] for r in rows if r["decode_s"] > 0)
    return {"n": len(rows), "valid": sum(r["valid"] for r in rows), "length": sum(r["length"] for r in rows),
            "tokens": sum(r["tokens"] for r in rows), "tok_s": tokens / seconds if seconds else 0.0}


def _results(passes: list[list[dict]], compiles: list, hook: dict, target: str | None, load: list[float],
             split: str) -> dict[str, Any]:
    first, second = passes[0], passes[-1]
    same = {a["id"]: a["token_ids"] == b["token_ids"] for a, b in zip(first, second)}
    halves = {}
    for name in ("design", "heldout"):
        mine = [r for r in first if r["split"] == name]
        if mine:
            halves[name] = {**_summary(mine), "identical": sum(same[r["id"]] for r in mine),
                            "second_pass_valid": sum(r["valid"] for r in second if r["split"] == name)}
    return {"target": target or "in-process SmolLM2-135M-Instruct", "split": split, "passes": len(passes),
            "halves": halves, "compiles": compiles, "hook": hook, "load_before_after": load,
            "rows": [{k: v for k, v in r.items() if k != "token_ids"} | {"identical": same[r["id"]]}
                     for r in first]}


def _markdown(res: dict[str, Any]) -> str:
    lines = [
        "# Structured replies: valid and reproducible",
        "",
        f"`make eval-json` ({res['target']}): bench/json_tasks/tasks.jsonl, each task a new conversation whose "
        f"first message is constrained by its schema, greedy, one request at a time, max_new_tokens per task "
        f"(20 to 384). The set ran {res['passes']} times and the passes are compared token by token. "
        f"Machine load (1-min average) before / after: {res['load_before_after'][0]:.1f} / "
        f"{res['load_before_after'][1]:.1f} on 2 shared cores.",
        "",
        "| half | replies | parse + validate | cut at max_new_tokens | identical in both passes | "
        "valid in pass 2 | tokens | decode tok/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, h in res["halves"].items():
        lines.append(f"| {name} | {h['n']} | {h['valid']}/{h['n']} ({100 * h['valid'] / h['n']:.0f}%) | "
                     f"{h['length']} | {h['identical']}/{h['n']} | {h['second_pass_valid']}/{h['n']} | "
                     f"{h['tokens']} | {h['tok_s']:.1f} |")
    hook = res["hook"]
    lines += [
        "",
        "The design half was used to build and check the closing; the held-out half was written with it "
        "and first run for this report.",
        "",
        f"Grammar hook cost per token (bitmask, closing check near the budget, matcher advance; replaying "
        f"the replies' tokens on this machine): **{hook['ms_per_token']:.3f} ms**; steps where only the "
        f"closing path's next token was left: {hook['forced_steps']}.",
        "",
        "## Grammar compile time (model tokenizer, cold compiler)",
        "",
        "| schema | first compile ms | cached lookup ms (median of 50) |",
        "|---|---|---|",
        *[f"| {n} | {a:.1f} | {b:.4f} |" for n, a, b in res["compiles"]],
        "",
        "## Replies (pass 1)",
        "",
        "| task | half | schema | budget | valid | same in pass 2 | tokens | reply (first 100 chars) / why invalid |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        shown = (r["text"][:100] if r["valid"] else f"{r['why'][:80]}: {r['text'][:60]}")
        shown = shown.replace("|", "\\|").replace("\n", " ").replace("`", "'")
        lines.append(f"| {r['id']} | {r['split']} | {r['schema']} | {r['budget']} | {'yes' if r['valid'] else 'NO'} "
                     f"| {'yes' if r['identical'] else 'NO'} | {r['tokens']} | `{shown}` |")
    return "\n".join(lines) + "\n"


async def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.json_eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", help="HOST:PORT of a running server (default: start one in-process)")
    p.add_argument("--tasks", type=Path, default=TASKS)
    p.add_argument("--split", choices=("design", "heldout", "all"), default="all")
    p.add_argument("--passes", type=int, default=2, help="runs of the whole set, compared token by token")
    p.add_argument("--out", type=Path, default=OUT, help="results path without suffix (.json and .md)")
    args = p.parse_args(argv)
    tasks = [json.loads(line) for line in args.tasks.read_text().splitlines() if line.strip()]
    tasks = [t for t in tasks if args.split in ("all", t["split"])]
    inline = json.loads(INLINE_SCHEMAS.read_text())
    load = [os.getloadavg()[0]]
    passes: list[list[dict]] = []
    async with _server(args.target) as target:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.ChatServiceStub(channel)
            schemas = dict(inline)
            for name in {t["schema"] for t in tasks} - set(inline):
                schemas[name] = json.loads((await stub.GetSchema(pb.GetSchemaRequest(name=name))).schema.json_schema)
            for k in range(args.passes):
                rows = []
                for i, task in enumerate(tasks):
                    row = await _one(stub, task, schemas, inline)
                    rows.append(row)
                    print(f"[pass {k + 1}, {i + 1}/{len(tasks)}] {task['id']} {task['schema']} "
                          f"valid={row['valid']} tokens={row['tokens']}/{task['max_new_tokens']}", flush=True)
                passes.append(rows)
    load.append(os.getloadavg()[0])
    compiler = _compiler()
    used = {n: s for n, s in schemas.items() if any(t["schema"] == n for t in tasks)}
    res = _results(passes, _compile_times(compiler, used), _hook_cost(_compiler(), passes[0], schemas),
                   args.target, load, args.split)
    report.write(res, args.out, _markdown)
    print(f"wrote {args.out}.md")


if __name__ == "__main__":
    asyncio.run(main())
