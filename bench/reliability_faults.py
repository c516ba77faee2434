"""The fault scenarios of `make reliability` that stop or starve a part of the stack: kill -9
during writes and jobs, SIGTERM with streams in flight, Redis stopped, the engine loop
stalled; and a battery of hostile input. Each returns its figures; bench/reliability.py
writes them as rows, tests/integration/test_reliability.py runs them short.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx

from bench.reliability_stack import PrivateRedis, Stack
from llmserve.chat.v1 import chat_service_pb2 as chat_pb
from llmserve.chat.v1 import chat_service_pb2_grpc as chat_grpc
from llmserve.common.v1 import common_pb2
from llmserve.generation.v1 import generation_service_pb2 as gen_pb
from llmserve.generation.v1 import generation_service_pb2_grpc as gen_grpc
from llmserve.lut.v1 import lut_service_pb2 as lut_pb
from llmserve.lut.v1 import lut_service_pb2_grpc as lut_grpc
from llmserve.sae.v1 import sae_service_pb2 as sae_pb
from llmserve.sae.v1 import sae_service_pb2_grpc as sae_grpc
from llmserve.specialist.v1 import specialist_service_pb2 as spec_pb
from llmserve.specialist.v1 import specialist_service_pb2_grpc as spec_grpc

# Small jobs, so that a kill lands mid-job and the restarted job still ends within minutes.
JOB_SETTINGS = ("[sae]\ntrain_batch_tokens = 64\ncheckpoint_interval_s = 0.0\nprogress_interval_s = 0.1\n"
                "ce_eval_sequences = 1\n[specialist]\nsteps = 60\nbatch_size = 2\nmicro_batch = 2\nseq_len = 16\n"
                "eval_sequences = 1\npoll_interval_s = 0.05\ngeneral_samples = 2\n")
SPECIALIST = "law"
TERMINAL = {common_pb2.JOB_STATE_COMPLETED, common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_CANCELLED}


def _poll(get, done, timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = get()
        if done(value):
            return value
        time.sleep(0.1)
    raise TimeoutError(f"not there after {timeout:.0f} s: {value}")


# --- kill -9 during writes and jobs ---------------------------------------------------------


@dataclass
class ProcessFaultFigures:
    lut_acknowledged: int = 0
    lut_lost: int = 0
    lut_torn: bool = False
    chat_acknowledged: int = 0
    chat_lost: int = 0
    chat_half_exchanges: int = 0
    sae_epoch_at_kill: int = 0
    sae_final: str = ""
    sae_resumed_from_epoch: int = 0
    specialist_step_at_kill: int = 0
    specialist_final: str = ""
    in_flight_failed: int = 0
    unexpected: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.lut_lost + self.chat_lost + self.chat_half_exchanges + int(self.lut_torn)


def process_faults(stack: Stack) -> ProcessFaultFigures:
    """SIGKILL while LUT trains and chat writes are in flight and an SAE and a specialist job
    run; after the restart every acknowledged write is there, nothing is half written, and
    both jobs end (completed, or failed with a reason). Leaves the specialist trained."""
    figures = ProcessFaultFigures()
    lut_name = f"kill-{uuid.uuid4().hex[:6]}"
    lut_acks: list[str] = []
    chat_acks: list[tuple[str, str]] = []
    stop = threading.Event()
    with grpc.insecure_channel(stack.target) as channel:
        sae = sae_grpc.SaeTrainingServiceStub(channel)
        spec = spec_grpc.SpecialistServiceStub(channel)
        lut = lut_grpc.LutServiceStub(channel)
        chat = chat_grpc.ChatServiceStub(channel)
        sae.UploadCorpus(iter([sae_pb.UploadCorpusRequest(filename="river.txt"), sae_pb.UploadCorpusRequest(
            chunk=b"The river begins as a thin stream high in the mountains, fed by melting snow.\n" * 40)]))
        sae_job = sae.CreateTrainingJob(sae_pb.CreateTrainingJobRequest(
            model_name="tiny", corpus_file="river.txt", layer_number=0, hidden_dim=128, k=4, max_epochs=60,
            max_sequence_length=32, min_loss=0)).job_id
        spec.UploadSpecialistCorpus(iter([spec_pb.UploadSpecialistCorpusRequest(name=SPECIALIST, file_name="t.txt"),
                                          spec_pb.UploadSpecialistCorpusRequest(
                                              chunk={"data": b"Invoices are due within thirty days. " * 30})]))
        spec_job = spec.AddSpecialist(spec_pb.AddSpecialistRequest(name=SPECIALIST)).training_job_id

        def teach(worker: int) -> None:
            for i in range(10_000):
                if stop.is_set():
                    return
                try:
                    reply = lut.TrainLut(lut_pb.TrainLutRequest(label=f"Fact {worker}-{i} about Quenford.",
                                                                lut_name=lut_name), timeout=60)
                    lut_acks.append(reply.entry_id)
                except grpc.RpcError:
                    figures.in_flight_failed += 1
                    return

        def talk(worker: int) -> None:
            try:
                session = chat.StartConversation(chat_pb.StartConversationRequest(
                    user_id=str(uuid.uuid4()), initial_message=f"hello {worker}", max_new_tokens=2),
                    timeout=60).session_id
            except grpc.RpcError:
                figures.in_flight_failed += 1
                return
            chat_acks.append((session, f"hello {worker}"))
            for i in range(10_000):
                if stop.is_set():
                    return
                try:
                    chat.SendMessage(chat_pb.SendMessageRequest(session_id=session, user_message=f"m {worker}-{i}",
                                                                max_new_tokens=2), timeout=60)
                    chat_acks.append((session, f"m {worker}-{i}"))
                except grpc.RpcError:
                    figures.in_flight_failed += 1
                    return

        writers = [threading.Thread(target=teach, args=(w,)) for w in range(4)]
        writers += [threading.Thread(target=talk, args=(w,)) for w in range(4)]
        for thread in writers:
            thread.start()
        killed_at = _poll(lambda: sae.GetTrainingJob(sae_pb.GetTrainingJobRequest(job_id=sae_job)),
                          lambda j: j.current_epoch >= 3 and j.last_checkpoint)
        spec_at_kill = _poll(lambda: spec.GetTrainingJob(spec_pb.GetTrainingJobRequest(job_id=spec_job)).job,
                             lambda j: j.state == common_pb2.JOB_STATE_RUNNING and j.step >= 1)
        _poll(lambda: (len(lut_acks), len(chat_acks)), lambda n: n[0] >= 8 and n[1] >= 8, timeout=120)
        figures.sae_epoch_at_kill, figures.specialist_step_at_kill = killed_at.current_epoch, spec_at_kill.step
        os.kill(stack.pid, signal.SIGKILL)  # writers are mid-call
        stack.proc.wait(30)
        stop.set()
        for thread in writers:
            thread.join(90)
    stack.start_server()
    with grpc.insecure_channel(stack.target) as channel:
        lut = lut_grpc.LutServiceStub(channel)
        chat = chat_grpc.ChatServiceStub(channel)
        sae = sae_grpc.SaeTrainingServiceStub(channel)
        spec = spec_grpc.SpecialistServiceStub(channel)
        info = lut.GetLut(lut_pb.GetLutRequest(lut_name=lut_name)).lut
        stored, token = set(), ""
        while True:
            page = lut.ListLutEntries(lut_pb.ListLutEntriesRequest(lut_name=lut_name, page_size=100, page_token=token))
            stored |= {e.entry_id for e in page.entries}
            token = page.next_page_token
            if not token:
                break
        figures.lut_acknowledged = len(lut_acks)
        figures.lut_lost = len(set(lut_acks) - stored)
        figures.lut_torn = not (info.entry_count == len(stored) == info.version)
        histories: dict[str, list] = {}
        for session, text in chat_acks:
            if session not in histories:
                histories[session] = list(chat.GetHistory(chat_pb.GetHistoryRequest(session_id=session)).messages)
            figures.chat_acknowledged += 1
            figures.chat_lost += text not in [m.content for m in histories[session] if m.sender == "user"]
        for messages in histories.values():
            senders = [m.sender for m in messages]
            figures.chat_half_exchanges += senders != ["user", "llm"] * (len(senders) // 2) or len(senders) % 2
        sae_final = _poll(lambda: sae.GetTrainingJob(sae_pb.GetTrainingJobRequest(job_id=sae_job)),
                          lambda j: j.state in TERMINAL)
        figures.sae_final = common_pb2.JobState.Name(sae_final.state) + (f" ({sae_final.message})"
                                                                         if sae_final.message else "")
        if sae_final.state == common_pb2.JOB_STATE_COMPLETED:
            result = sae.GetTrainingResult(sae_pb.GetTrainingResultRequest(job_id=sae_job))
            figures.sae_resumed_from_epoch = result.training_stats.resumed_from_epoch
        elif not sae_final.message:
            figures.unexpected.append("SAE job failed without a reason")
        spec_final = _poll(lambda: spec.GetTrainingJob(spec_pb.GetTrainingJobRequest(job_id=spec_job)).job,
                           lambda j: j.state in TERMINAL)
        figures.specialist_final = common_pb2.JobState.Name(spec_final.state) + (
            f" ({spec_final.message})" if spec_final.message else "")
        if spec_final.state != common_pb2.JOB_STATE_COMPLETED and not spec_final.message:
            figures.unexpected.append("specialist job ended without a reason")
    return figures


# --- SIGTERM with streams in flight ---------------------------------------------------------


@dataclass
class DrainFigures:
    streams: int = 0
    in_flight_at_sigterm: int = 0
    finished_whole: int = 0
    cut: Counter = field(default_factory=Counter)
    refused_after_sigterm: str = ""
    exit_code: int | None = None
    exit_after_s: float = 0.0


def sigterm_drain(stack: Stack, streams: int, tokens: int = 64) -> DrainFigures:
    """SIGTERM once every stream has its first token: each stream still gets all its tokens,
    a new call is refused, and the process exits 0 within its grace period. Restarts the
    server afterwards."""
    figures = DrainFigures(streams=streams)

    async def scenario() -> None:
        async with grpc.aio.insecure_channel(stack.target) as channel:
            gen = gen_grpc.GenerationServiceStub(channel)
            first = asyncio.Event()
            started = 0

            async def one() -> None:
                nonlocal started
                call = gen.StreamComplete(gen_pb.StreamCompleteRequest(prompt="Once upon a time", max_new_tokens=tokens),
                                          timeout=120)
                deltas, final = 0, None
                try:
                    async for message in call:
                        if message.HasField("delta"):
                            deltas += 1
                            if deltas == 1:
                                started += 1
                                if started == streams:
                                    first.set()
                        elif message.HasField("final"):
                            final = message.final
                        else:
                            figures.cut[f"in-band error {message.error.code}"] += 1
                    if final is not None and final.usage.completion_tokens >= deltas:
                        figures.finished_whole += 1
                    elif final is None:
                        figures.cut[f"no final event after {deltas} tokens"] += 1
                except grpc.aio.AioRpcError as exc:
                    figures.cut[exc.code().name] += 1

            tasks = [asyncio.create_task(one()) for _ in range(streams)]
            await asyncio.wait_for(first.wait(), 120)
            figures.in_flight_at_sigterm = sum(not task.done() for task in tasks)
            os.kill(stack.pid, signal.SIGTERM)
            sent = time.monotonic()
            await asyncio.sleep(0.2)
            try:
                await gen.Complete(gen_pb.CompleteRequest(prompt="late", max_new_tokens=2), timeout=10)
                figures.refused_after_sigterm = "accepted"
            except grpc.aio.AioRpcError as exc:
                figures.refused_after_sigterm = exc.code().name
            await asyncio.gather(*tasks)
            await asyncio.to_thread(stack.proc.wait, 60)
            figures.exit_code, figures.exit_after_s = stack.proc.returncode, time.monotonic() - sent

    asyncio.run(scenario())
    stack.start_server()
    return figures


# --- Redis stopped --------------------------------------------------------------------------


@dataclass
class RedisOutageFigures:
    requests: int = 0
    during: Counter = field(default_factory=Counter)
    slowest_during_s: float = 0.0
    unexpected: list[str] = field(default_factory=list)
    writes_acknowledged: int = 0
    writes_lost: int = 0


def redis_outage(stack: Stack, cache: PrivateRedis, outage_s: float, workers: int = 2) -> RedisOutageFigures:
    """Chat writes and reads while Redis (the chat cache) is killed and started again, empty."""
    figures = RedisOutageFigures()
    acknowledged: list[tuple[str, str]] = []
    phase = ["before"]
    lock = threading.Lock()
    with grpc.insecure_channel(stack.target) as channel:
        chat = chat_grpc.ChatServiceStub(channel)
        sessions = [chat.StartConversation(chat_pb.StartConversationRequest(
            user_id=str(uuid.uuid4()), initial_message="start", max_new_tokens=2), timeout=60).session_id
                    for _ in range(workers)]
        stop = threading.Event()

        def work(session: str) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                text, started = f"{phase[0]} {i}", time.monotonic()
                try:
                    chat.SendMessage(chat_pb.SendMessageRequest(session_id=session, user_message=text,
                                                                max_new_tokens=2), timeout=30)
                    chat.GetHistory(chat_pb.GetHistoryRequest(session_id=session), timeout=30)
                    code = "OK"
                    acknowledged.append((session, text))
                except grpc.RpcError as exc:
                    code = exc.code().name
                with lock:
                    figures.requests += 2
                    if phase[0] == "during":
                        figures.during[code] += 1
                        figures.slowest_during_s = max(figures.slowest_during_s, time.monotonic() - started)
                    if code != "OK":
                        figures.unexpected.append(f"{phase[0]}: {code}")

        threads = [threading.Thread(target=work, args=(s,)) for s in sessions]
        for thread in threads:
            thread.start()
        time.sleep(2)
        cache.stop()
        phase[0] = "during"
        time.sleep(outage_s)
        cache.start()
        phase[0] = "after"
        time.sleep(2)
        stop.set()
        for thread in threads:
            thread.join(60)
        for session in sessions:
            said = [m.content for m in chat.GetHistory(chat_pb.GetHistoryRequest(session_id=session)).messages
                    if m.sender == "user"]
            mine = [text for s, text in acknowledged if s == session]
            figures.writes_acknowledged += len(mine)
            figures.writes_lost += len(set(mine) - set(said))
    return figures


# --- the engine loop stalled ----------------------------------------------------------------


@dataclass
class StallFigures:
    not_serving_after_s: float = -1.0
    liveness_during: str = ""
    serving_again_after_s: float = -1.0
    held_call_tokens: int = 0


def engine_stall(folder: Path, tiny_model_dir: Path, hold_s: float = 3.0) -> StallFigures:
    """The engine's forward pass held (in process: the forward is gated) while a call waits:
    readiness turns NOT_SERVING, liveness stays SERVING, both recover when it moves again."""
    return asyncio.run(_engine_stall(folder, tiny_model_dir, hold_s))


async def _engine_stall(folder: Path, tiny_model_dir: Path, hold_s: float) -> StallFigures:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from server.observability_config import HealthConfig
    from tests.forward_gate import ForwardGate
    from tests.support import make_settings, running, tiny_specs

    figures = StallFigures()
    settings = make_settings(folder, tiny_specs(tiny_model_dir), "tiny",
                             health=HealthConfig(stall_after_s=0.5, check_interval_s=0.05))
    async with running(settings) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def status(service: str = "") -> str:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

        async def seconds_until(wanted: str) -> float:
            started = time.monotonic()
            async with asyncio.timeout(60):
                while await status() != wanted:
                    await asyncio.sleep(0.02)
            return time.monotonic() - started

        with ForwardGate(app.manager.loaded("tiny").engine.model, let_through=0, max_hold_s=60) as gate:
            call = gen_grpc.GenerationServiceStub(channel).Complete(gen_pb.CompleteRequest(prompt="Hi",
                                                                                           max_new_tokens=2))
            try:
                figures.not_serving_after_s = await seconds_until("NOT_SERVING")
                await asyncio.sleep(hold_s)
                figures.liveness_during = await status("liveness")
            finally:
                gate.open()
            figures.serving_again_after_s = await seconds_until("SERVING")
            figures.held_call_tokens = (await call).usage.completion_tokens
    return figures


# --- hostile input --------------------------------------------------------------------------


@dataclass
class HostileFigures:
    cases: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    big_lut_entries: int = 0
    big_lut_train_s: float = 0.0
    big_lut_generate_ok: bool = False
    big_lut_export_mb: float = 0.0
    concurrent_acknowledged: int = 0
    concurrent_lost: int = 0

    def expect(self, case: str, got, wanted) -> None:
        self.cases[case] += 1
        if got not in (wanted if isinstance(wanted, tuple) else (wanted,)):
            self.unexpected.append(f"{case}: got {got}, expected {wanted}")


def hostile_input(stack: Stack, big_lut: int, clients: int = 10, per_client: int = 20) -> HostileFigures:
    figures = HostileFigures()
    with httpx.Client(base_url=stack.base_url, timeout=120) as http:
        for path in ("/completion", "/completion/stream", "/v1/completions:stream", "/v1/chat/completions",
                     "/train_lut", "/v1/chat/schemas", "/llm/chat/"):
            status = http.post(path, json={"prompt": "x" * 2_100_000}).status_code
            figures.expect("2 MiB JSON body -> 413", status, 413)
        figures.expect("17 KB path segment -> 414", http.get("/v1/luts/" + "a" * 17_000).status_code, 414)
        for path in ("/v1/luts/%ff", "/v1/sae/jobs/%ff", "/llm/chat/%ff/history", "/v1/luts?page_token=%ff%fe"):
            figures.expect("invalid UTF-8 in path or query -> 400", http.get(path).status_code, 400)
        figures.expect("prompt longer than the context -> 400",
                       http.post("/completion/stream", json={"prompt": "word " * 190_000}).status_code, 400)
        bomb = gzip.compress(json.dumps({"prompt": "a" * 50_000_000}).encode(), 9)
        figures.expect("gzip bomb body (50 MB inflated) -> 4xx", http.post(
            "/completion", content=bomb, headers={"content-encoding": "gzip", "content-type": "application/json"}
        ).status_code // 100, 4)
        nested = json.loads('{"type": "array", "items": ' * 199 + "{}" + "}" * 199)
        for schema in ({"type": "object", "properties": {"a": nested}},
                       {"type": "object", "properties": {"a": {"$ref": "file:///etc/passwd"}}},
                       {"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}}):
            status = http.post("/v1/chat/schemas", json={"name": f"S{uuid.uuid4().hex[:8]}",
                                                         "json_schema": json.dumps(schema)}).status_code
            figures.expect("deep or outward-pointing JSON schema -> 400", status, 400)
        cyclic = {"type": "object", "$defs": {"a": {"type": "object", "properties": {"b": {"$ref": "#/$defs/b"}}},
                                              "b": {"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}}},
                  "properties": {"root": {"$ref": "#/$defs/a"}}}
        status = http.post("/v1/chat/schemas", json={"name": f"C{uuid.uuid4().hex[:8]}",
                                                     "json_schema": json.dumps(cyclic)}).status_code
        figures.expect("cyclic $ref schema -> 200 or 400, never 5xx", status, (200, 400))
    # The server's message limits (a 10,000-entry export is ~13 MB), as llmserve's clients set them.
    limits = [("grpc.max_receive_message_length", 64 * 2**20), ("grpc.max_send_message_length", 64 * 2**20)]
    with grpc.insecure_channel(stack.target, options=limits) as channel:
        sae = sae_grpc.SaeTrainingServiceStub(channel)
        for name in ("../../etc/passwd", "a/b.txt", ".hidden", "é" * 251 + ".txt"):
            try:
                sae.UploadCorpus(iter([sae_pb.UploadCorpusRequest(filename=name),
                                       sae_pb.UploadCorpusRequest(chunk=b"text")]), timeout=30)
                code = "OK"
            except grpc.RpcError as exc:
                code = exc.code().name
            figures.expect("upload file name with a path, a dot or 502 bytes -> INVALID_ARGUMENT", code,
                           "INVALID_ARGUMENT")
        gen = gen_grpc.GenerationServiceStub(channel)
        try:
            gen.Complete(gen_pb.CompleteRequest(prompt="a" * 100_000_000, max_new_tokens=1), timeout=60,
                         compression=grpc.Compression.Gzip)
            code = "OK"
        except grpc.RpcError as exc:
            code = exc.code().name
        figures.expect("gRPC gzip message inflating to 100 MB -> RESOURCE_EXHAUSTED", code, "RESOURCE_EXHAUSTED")
        _many_entries(channel, figures, big_lut)
        _concurrent_trains(channel, figures, clients, per_client)
    return figures


def _train_all(lut, lut_name: str, labels: list[str], threads: int) -> list[str]:
    acknowledged: list[str] = []
    errors: list[str] = []

    def worker(part: list[str]) -> None:
        for label in part:
            try:
                acknowledged.append(lut.TrainLut(lut_pb.TrainLutRequest(label=label, lut_name=lut_name),
                                                 timeout=60).entry_id)
            except grpc.RpcError as exc:
                errors.append(exc.code().name)

    pool = [threading.Thread(target=worker, args=(labels[i::threads],)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return acknowledged if not errors else acknowledged + [f"error {e}" for e in errors]


def _stored(lut, lut_name: str) -> set[str]:
    stored, token = set(), ""
    while True:
        page = lut.ListLutEntries(lut_pb.ListLutEntriesRequest(lut_name=lut_name, page_size=1000, page_token=token),
                                  timeout=60)
        stored |= {e.entry_id for e in page.entries}
        token = page.next_page_token
        if not token:
            return stored


def _many_entries(channel, figures: HostileFigures, count: int) -> None:
    lut = lut_grpc.LutServiceStub(channel)
    name = f"big-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    acknowledged = _train_all(lut, name, [f"Entry {i} of a very large table." for i in range(count)], threads=8)
    figures.big_lut_train_s = time.monotonic() - started
    figures.big_lut_entries = len(_stored(lut, name))
    figures.expect(f"{count} entries in one LUT, all stored", figures.big_lut_entries, count)
    figures.unexpected += [a for a in acknowledged if a.startswith("error")]
    try:
        lut.Generate(lut_pb.GenerateRequest(prompt="Entry 7 of", lut_name=name, max_new_tokens=4), timeout=120)
        figures.big_lut_generate_ok = True
        figures.big_lut_export_mb = len(lut.ExportLut(lut_pb.ExportLutRequest(lut_name=name), timeout=300).data) / 2**20
    except grpc.RpcError as exc:
        figures.unexpected.append(f"large LUT: {exc.code().name} {exc.details()[:200]}")
    figures.expect("generate and export with the large LUT", figures.big_lut_generate_ok, True)


def _concurrent_trains(channel, figures: HostileFigures, clients: int, per_client: int) -> None:
    lut = lut_grpc.LutServiceStub(channel)
    name = f"shared-{uuid.uuid4().hex[:6]}"
    acknowledged = _train_all(lut, name, [f"Client fact {i}." for i in range(clients * per_client)], threads=clients)
    figures.concurrent_acknowledged = len([a for a in acknowledged if not a.startswith("error")])
    figures.concurrent_lost = len(set(acknowledged) - _stored(lut, name))
    figures.expect(f"{clients} clients training one LUT, no entry lost", figures.concurrent_lost, 0)
    info = lut.GetLut(lut_pb.GetLutRequest(lut_name=name)).lut
    figures.expect("its entry count and version agree", info.entry_count == info.version == clients * per_client, True)
