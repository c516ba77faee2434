"""`python -m bench.replicas`: one replica against two behind Envoy, on the real model,
PostgreSQL and Redis (processes on loopback ports); writes bench/replicas.md and .json.

- throughput: the same concurrent Complete load through Envoy, aggregate generated tok/s
  with one replica and with two (on a 2-core CPU the two share the cores: expect no gain);
- shared state: TrainLut on replica A, then Generate with that LUT on replica B, against
  Generate on A itself; the difference is what the cross-replica path costs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import grpc

from bench import machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import protogen  # noqa: E402
import replicas  # noqa: E402

from llmserve.generation.v1 import generation_service_pb2 as gen_pb  # noqa: E402
from llmserve.generation.v1 import generation_service_pb2_grpc as gen_grpc  # noqa: E402
from llmserve.lut.v1 import lut_service_pb2 as lut_pb  # noqa: E402
from llmserve.lut.v1 import lut_service_pb2_grpc as lut_grpc  # noqa: E402

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
PROMPTS = ("Explain how a river forms:", "Write a short note about tea:", "Describe a quiet morning:",
           "List three uses of copper:", "Tell a story about a lighthouse:", "What makes bread rise?")


@contextmanager
def pg_schema():
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def throughput(target: str, clients: int, requests: int, tokens: int) -> dict:
    """`clients` threads each sending `requests` greedy Complete calls through `target`."""
    generated: list[int] = []
    served: dict[str, int] = {}
    lock = threading.Lock()

    def client(i: int) -> None:
        with grpc.insecure_channel(target) as channel:
            stub = gen_grpc.GenerationServiceStub(channel)
            for j in range(requests):
                reply, call = stub.Complete.with_call(gen_pb.CompleteRequest(
                    prompt=PROMPTS[(i + j) % len(PROMPTS)], max_new_tokens=tokens, temperature=0.0))
                name = dict(call.initial_metadata()).get("x-llmserve-replica", "?")
                with lock:
                    generated.append(reply.usage.completion_tokens)
                    served[name] = served.get(name, 0) + 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    return {"clients": clients, "requests": len(generated), "tokens": sum(generated), "seconds": round(seconds, 2),
            "tok_s": round(sum(generated) / seconds, 1), "served_by": served}


def shared_state(a: str, b: str, rounds: int) -> dict:
    """p50 ms of Generate with a LUT just taught on A, asked on B vs on A."""
    times: dict[str, list[float]] = {"same": [], "other": []}
    with grpc.insecure_channel(a) as on_a, grpc.insecure_channel(b) as on_b:
        teach = lut_grpc.LutServiceStub(on_a)
        stubs = {"same": teach, "other": lut_grpc.LutServiceStub(on_b)}
        for i in range(rounds):
            for where in ("same", "other"):
                lut = f"bench-{where}-{i}-{uuid.uuid4().hex[:6]}"
                teach.TrainLut(lut_pb.TrainLutRequest(label=f"Kelvar the otter lives in Drumholt {i}.", lut_name=lut))
                start = time.perf_counter()
                stubs[where].Generate(lut_pb.GenerateRequest(prompt="Where does Kelvar the otter live?",
                                                             lut_name=lut, length=8))
                times[where].append((time.perf_counter() - start) * 1000)
    same, other = statistics.median(times["same"]), statistics.median(times["other"])
    return {"rounds": rounds, "generate_same_replica_p50_ms": round(same, 1),
            "generate_other_replica_p50_ms": round(other, 1), "extra_ms": round(other - same, 1)}


def run(clients: int, requests: int, tokens: int, rounds: int) -> dict:
    descriptor = protogen.generate_descriptor(ROOT / "build" / "llmserve.pb")
    out: dict = {"machine": machine.facts(), "idle_before": machine.idle_check(),
                 "load": {"clients": clients, "requests_per_client": requests, "max_new_tokens": tokens}}
    for count in (1, 2):
        with pg_schema() as url, replicas.loopback_cluster(count, descriptor, url, REDIS_URL,
                                                           ready_timeout=300) as cluster:
            throughput(cluster.grpc_target, count, 1, 8)  # warm each engine
            out[f"replicas_{count}"] = throughput(cluster.grpc_target, clients, requests, tokens)
            if count == 2:
                a, b = cluster.replicas
                out["shared_state"] = shared_state(a.target, b.target, rounds)
    one, two = out["replicas_1"]["tok_s"], out["replicas_2"]["tok_s"]
    out["ratio_2_over_1"] = round(two / one, 2) if one else None
    return out


def report(result: dict) -> str:
    m, one, two, lut = result["machine"], result["replicas_1"], result["replicas_2"], result["shared_state"]
    load = result["load"]
    return "\n".join([
        "# Two replicas against one (`make bench`, `python -m bench.replicas`)", "",
        f"Machine: {m.get('cpu_model')} ({m.get('cores')} cores); 1-minute load average before the run "
        f"{result['idle_before'].get('load_1min')}. SmolLM2-135M-Instruct, PostgreSQL and Redis on this "
        "machine, replicas as processes on loopback ports behind one Envoy."
        + (f" **{result['idle_before']['warning']}**" if result["idle_before"].get("warning") else ""),
        f"Load: {load['clients']} clients x {load['requests_per_client']} greedy Complete calls of "
        f"{load['max_new_tokens']} new tokens, through Envoy.", "",
        "| replicas | generated tokens | seconds | aggregate tok/s | requests per replica |",
        "|---|---|---|---|---|",
        f"| 1 | {one['tokens']} | {one['seconds']} | {one['tok_s']} | {one['served_by']} |",
        f"| 2 | {two['tokens']} | {two['seconds']} | {two['tok_s']} | {two['served_by']} |", "",
        f"Two replicas / one: **{result['ratio_2_over_1']}x**. Both replicas share the same CPU cores "
        "(each gets cores/2 torch threads), so no gain is expected here; replicas pay off with one device each.", "",
        "Shared-state path (LUT taught on replica A, then Generate with it):", "",
        "| Generate on | p50 ms |", "|---|---|",
        f"| A (the replica that taught it) | {lut['generate_same_replica_p50_ms']} |",
        f"| B (another replica) | {lut['generate_other_replica_p50_ms']} |", "",
        f"Extra latency of the cross-replica path: **{lut['extra_ms']} ms** (p50 over {lut['rounds']} rounds; both "
        "replicas read the new version from PostgreSQL on their next request, so the path is the same one).", ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    result = run(args.clients, args.requests, args.tokens, args.rounds)
    (ROOT / "bench" / "replicas.json").write_text(json.dumps(result, indent=2))
    (ROOT / "bench" / "replicas.md").write_text(report(result))
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
