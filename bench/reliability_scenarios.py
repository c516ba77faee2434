"""The reliability scenarios, each a function of the stack and a size that returns its
figures: REST fuzzing through Envoy, load with cancels, a PostgreSQL restart mid-load and a
server restart behind Envoy (gRPC fuzzing is in bench/grpc_fuzz.py). `make reliability`
runs them long (bench/reliability.py); tests/integration/test_reliability.py runs them short.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import psutil

from bench.reliability_stack import PrivatePostgres, Stack
from llmserve.chat.v1 import chat_service_pb2 as chat_pb
from llmserve.chat.v1 import chat_service_pb2_grpc as chat_grpc
from llmserve.generation.v1 import generation_service_pb2 as gen_pb
from llmserve.generation.v1 import generation_service_pb2_grpc as gen_grpc
from llmserve.lut.v1 import lut_service_pb2 as lut_pb
from llmserve.lut.v1 import lut_service_pb2_grpc as lut_grpc
from llmserve.specialist.v1 import specialist_service_pb2 as spec_pb
from llmserve.specialist.v1 import specialist_service_pb2_grpc as spec_grpc

# --- REST fuzzing -----------------------------------------------------------------------


@dataclass
class RestFuzzFigures:
    operations: int = 0
    requests: int = 0
    by_status: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    """5xx other than a 503/429 the document names for that operation."""
    bad_error_shape: list[str] = field(default_factory=list)
    """4xx whose body is not the JSON error shape {code, message, details}."""
    healthy_after: bool = False
    schemathesis_rc: int = -1


def rest_fuzz(stack: Stack, max_examples: int, folder: Path, seed: int = 1, timeout_s: float = 900,
              phases: str = "examples,coverage,fuzzing") -> RestFuzzFigures:
    """schemathesis over every operation of /openapi.json through Envoy; every exchange is
    read back from its HAR report and judged here."""
    document = httpx.get(f"{stack.base_url}/openapi.json", timeout=30).json()
    har = folder / "schemathesis.har"
    argv = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{stack.base_url}/openapi.json",
            "--url", stack.base_url, "--checks", "not_a_server_error", "--max-examples", str(max_examples),
            "--phases", phases, "--seed", str(seed), "--workers", "1",
            "--request-timeout", "60", "--no-color", "--report", "har", "--report-har-path", str(har)]
    proc = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=timeout_s, check=False)
    (folder / "schemathesis.out").write_text(proc.stdout + proc.stderr)
    figures = RestFuzzFigures(schemathesis_rc=proc.returncode)
    figures.operations = sum(len(item) for item in document["paths"].values())
    for entry in json.loads(har.read_text())["log"]["entries"]:
        request, response = entry["request"], entry["response"]
        status = response["status"]
        figures.requests += 1
        figures.by_status[status] += 1
        where = f'{request["method"]} {request["url"][len(stack.base_url):][:200]}'
        body = response.get("content", {}).get("text", "") or ""
        if status >= 500 and not _documented(document, request, status):
            figures.server_errors.append(f"{where} -> {status}: {body[:300]}")
        elif 400 <= status < 500 and not _error_shaped(body):
            figures.bad_error_shape.append(f"{where} -> {status}: {body[:300]}")
    figures.healthy_after = stack.healthy()
    return figures


def _documented(document: dict, request: dict, status: int) -> bool:
    if status not in (503, 429):
        return False
    path = request["url"].split("?", 1)[0].split("/", 3)[-1]
    for template, item in document["paths"].items():
        pattern = "^/" + "/".join("[^/]+" if part.startswith("{") else part
                                  for part in template.strip("/").split("/")) + "$"
        if re.match(pattern.replace("{", r"\{"), "/" + path):
            operation = item.get(request["method"].lower(), {})
            return str(status) in operation.get("responses", {})
    return False


def _error_shaped(body: str) -> bool:
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    if not isinstance(parsed, dict):
        return False
    if "error" in parsed and isinstance(parsed["error"], dict):  # the OpenAI paths' own shape
        return "message" in parsed["error"]
    return isinstance(parsed.get("code"), int) and isinstance(parsed.get("message"), str)


# --- load with cancels ------------------------------------------------------------------


@dataclass
class LoadFigures:
    streams: int = 0
    requests: int = 0
    completed: int = 0
    cancelled: int = 0
    deadline_cut: int = 0
    mixed: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    running_after: float = -1.0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_samples_mb: list[float] = field(default_factory=list, repr=False)
    inter_token_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def p99_inter_token_ms(self) -> float:
        values = sorted(self.inter_token_ms)
        return values[min(len(values) - 1, int(len(values) * 0.99))] if values else 0.0

    @property
    def rss_second_half_growth_mb(self) -> float:
        """Growth over the soak's second half: start-up allocations (KV, caches, arenas) are
        over by then, so what still grows there is what a leak would look like."""
        half = self.rss_samples_mb[len(self.rss_samples_mb) // 2:]
        return max(half) - half[0] if half else 0.0


def load_with_cancels(stack: Stack, streams: int, duration_s: float, seed: int = 0,
                      specialist: str = "") -> LoadFigures:
    """`specialist` names a trained specialist to mix in; none when empty."""
    return asyncio.run(_load(stack, streams, duration_s, seed, specialist))


async def _load(stack: Stack, streams: int, duration_s: float, seed: int, specialist: str) -> LoadFigures:
    figures = LoadFigures(streams=streams)
    rng = random.Random(seed)
    server = psutil.Process(stack.pid)
    async with grpc.aio.insecure_channel(stack.target) as channel:
        gen = gen_grpc.GenerationServiceStub(channel)
        lut = lut_grpc.LutServiceStub(channel)
        chat = chat_grpc.ChatServiceStub(channel)
        spec = spec_grpc.SpecialistServiceStub(channel)
        lut_name = f"load-{uuid.uuid4().hex[:8]}"
        await lut.TrainLut(lut_pb.TrainLutRequest(label="Paris", label_context="The capital of France is",
                                                  lut_name=lut_name), timeout=60)
        schema = json.dumps({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
        figures.rss_start_mb = server.memory_info().rss / 2**20
        stop_at = time.monotonic() + duration_s

        async def stream_once(worker_rng: random.Random) -> None:
            fate = worker_rng.choice(["complete", "complete", "cancel", "deadline"])
            timeout = worker_rng.uniform(0.05, 0.5) if fate == "deadline" else 120
            call = gen.StreamComplete(gen_pb.StreamCompleteRequest(prompt="Once upon a time",
                                                                   max_new_tokens=worker_rng.randint(8, 48)),
                                      timeout=timeout)
            cancel_after = worker_rng.randint(1, 6)
            seen, last = 0, time.monotonic()
            try:
                async for message in call:
                    now = time.monotonic()
                    if message.HasField("error"):
                        figures.unexpected.append(f"in-band error: {message.error}")
                    if seen:
                        figures.inter_token_ms.append((now - last) * 1000)
                    seen, last = seen + 1, now
                    if fate == "cancel" and seen >= cancel_after:
                        call.cancel()
                        break
                if fate == "cancel" and seen >= cancel_after:
                    figures.cancelled += 1
                else:
                    figures.completed += 1
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and fate == "deadline":
                    figures.deadline_cut += 1
                elif exc.code() == grpc.StatusCode.CANCELLED and fate == "cancel":
                    figures.cancelled += 1
                else:
                    figures.unexpected.append(f"stream ({fate}): {exc.code().name} {exc.details()}")

        async def mixed_once(worker_rng: random.Random) -> None:
            kind = worker_rng.choice(["lut", "chat_json", "specialist"] if specialist else ["lut", "chat_json"])
            try:
                if kind == "specialist":
                    # The gates route: the mixture of the base and the trained specialist runs.
                    reply = await spec.Generate(spec_pb.GenerateRequest(prompt="Invoices are due", max_new_tokens=4),
                                                timeout=120)
                    if specialist not in reply.specialists:
                        figures.unexpected.append(f"specialist: routed to {list(reply.specialists)}")
                elif kind == "lut":
                    await lut.Generate(lut_pb.GenerateRequest(prompt="The capital of France is", lut_name=lut_name,
                                                              max_new_tokens=4), timeout=120)
                else:
                    await chat.StartConversation(chat_pb.StartConversationRequest(
                        user_id=str(uuid.uuid4()), initial_message="Name a city.", json_schema=schema,
                        max_new_tokens=16), timeout=120)
                figures.mixed[kind] += 1
            except grpc.aio.AioRpcError as exc:
                figures.unexpected.append(f"{kind}: {exc.code().name} {exc.details()}")

        async def worker(index: int) -> None:
            worker_rng = random.Random(rng.random())
            while time.monotonic() < stop_at:
                figures.requests += 1
                if index % 8 == 7:
                    await mixed_once(worker_rng)
                else:
                    await stream_once(worker_rng)

        async def sample_rss() -> None:
            while time.monotonic() < stop_at:
                figures.rss_samples_mb.append(server.memory_info().rss / 2**20)
                figures.rss_peak_mb = max(figures.rss_peak_mb, figures.rss_samples_mb[-1])
                await asyncio.sleep(1)

        await asyncio.gather(sample_rss(), *(worker(i) for i in range(streams)))
    # Every slot must come free: the engine's running rows go back to 0 once nothing is in flight.
    for _ in range(100):
        figures.running_after = stack.running_rows()
        if figures.running_after == 0:
            break
        await asyncio.sleep(0.2)
    figures.rss_end_mb = server.memory_info().rss / 2**20
    return figures


# --- PostgreSQL restart -----------------------------------------------------------------


@dataclass
class PgRestartFigures:
    requests: int = 0
    ok_before: int = 0
    during: Counter = field(default_factory=Counter)
    slowest_failure_s: float = 0.0
    ok_after: int = 0
    recovered_after_s: float = -1.0
    unexpected: list[str] = field(default_factory=list)
    writes_acknowledged: int = 0
    writes_lost: int = 0
    server_restarted: bool = False


def pg_restart(stack: Stack, pg: PrivatePostgres, outage_s: float, calls: int = 20,
               workers: int = 1) -> PgRestartFigures:
    """Chat writes and reads while the database stops and starts again (`workers` clients
    calling throughout the outage); llmserve keeps running."""
    figures = PgRestartFigures()
    pid = stack.pid
    acknowledged: list[tuple[str, str]] = []
    with grpc.insecure_channel(stack.target) as channel:
        chat = chat_grpc.ChatServiceStub(channel)
        lut = lut_grpc.LutServiceStub(channel)

        lock = threading.Lock()

        def call(label: str) -> tuple[grpc.StatusCode, float]:
            started = time.monotonic()
            with lock:
                figures.requests += 1
                write = figures.requests % 2 == 0
            try:
                if not write:
                    lut.ListLuts(lut_pb.ListLutsRequest(), timeout=30)
                else:
                    reply = chat.StartConversation(chat_pb.StartConversationRequest(
                        user_id=str(uuid.uuid4()), initial_message=label, max_new_tokens=2), timeout=30)
                    acknowledged.append((reply.session_id, label))
                return grpc.StatusCode.OK, time.monotonic() - started
            except grpc.RpcError as exc:
                return exc.code(), time.monotonic() - started

        for i in range(calls):
            code, _ = call(f"before {i}")
            figures.ok_before += code == grpc.StatusCode.OK
            if code != grpc.StatusCode.OK:
                figures.unexpected.append(f"before the outage: {code.name}")
        pg.stop()
        outage_end = time.monotonic() + outage_s

        def during() -> None:
            while time.monotonic() < outage_end:
                code, took = call("during")
                with lock:
                    figures.during[code.name] += 1
                    if code != grpc.StatusCode.OK:
                        figures.slowest_failure_s = max(figures.slowest_failure_s, took)
                    if code != grpc.StatusCode.UNAVAILABLE:
                        figures.unexpected.append(f"during the outage: {code.name}")

        threads = [threading.Thread(target=during) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        pg.start()
        back = time.monotonic()
        while time.monotonic() - back < 60:
            code, _ = call("after-probe")
            if code == grpc.StatusCode.OK:
                figures.recovered_after_s = time.monotonic() - back
                break
            time.sleep(0.2)
        for i in range(calls):
            code, _ = call(f"after {i}")
            figures.ok_after += code == grpc.StatusCode.OK
            if code != grpc.StatusCode.OK:
                figures.unexpected.append(f"after the outage: {code.name}")
        for session_id, label in acknowledged:
            history = chat.GetHistory(chat_pb.GetHistoryRequest(session_id=session_id), timeout=30)
            figures.writes_acknowledged += 1
            if label not in [m.content for m in history.messages if m.sender == "user"]:
                figures.writes_lost += 1
    figures.server_restarted = stack.pid != pid or stack.proc.poll() is not None
    return figures


# --- server restart behind Envoy --------------------------------------------------------


@dataclass
class ServerRestartFigures:
    restarts: int = 0
    requests: int = 0
    by_status: Counter = field(default_factory=Counter)
    slowest_down_answer_s: float = 0.0
    unexpected: list[str] = field(default_factory=list)
    recovered_after_s: list[float] = field(default_factory=list)


def server_restart(stack: Stack, restarts: int) -> ServerRestartFigures:
    """kill -9 of llmserve while a client polls through Envoy; Envoy must answer 503 fast
    while it is down and 200 again once it is back on the same port."""
    figures = ServerRestartFigures()
    url = f"{stack.base_url}/v1/models"
    stop = threading.Event()
    down = threading.Event()

    def poll() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    status = client.get(url).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                took = time.monotonic() - started
                figures.requests += 1
                figures.by_status[status] += 1
                if status not in (200, 503):
                    figures.unexpected.append(f"{status}")
                if status == 503 and down.is_set():
                    figures.slowest_down_answer_s = max(figures.slowest_down_answer_s, took)
                time.sleep(0.05)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        for _ in range(restarts):
            time.sleep(1.0)
            down.set()
            stack.kill_server()
            time.sleep(2.0)  # the poller sees Envoy's answers while nothing listens
            down.clear()
            started = time.monotonic()
            stack.start_server()
            while httpx.get(url, timeout=30).status_code != 200:
                if time.monotonic() - started > 120:
                    figures.unexpected.append("no 200 within 120 s of the restart")
                    break
                time.sleep(0.1)
            figures.recovered_after_s.append(time.monotonic() - started)
            figures.restarts += 1
        time.sleep(1.0)
    finally:
        stop.set()
        poller.join(60)
    return figures
