"""The short version of `make reliability` (bench/reliability.py): the same scenarios on
the tiny model against the real stack (llmserve as its own process, Envoy, a private
PostgreSQL this module starts and restarts), sized to run in well under a minute each. The kill -9, Redis and engine-stall
rows have their short versions in test_job_durability.py and test_lut_durability.py,
test_dependency_faults.py and test_observability.py."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import grpc
import pytest

from bench import grpc_fuzz
from bench.reliability_faults import hostile_input, sigterm_drain
from bench.reliability_scenarios import load_with_cancels, pg_restart, rest_fuzz, server_restart
from bench.reliability_stack import PrivatePostgres, Stack
import httpx

from llmserve.chat.v1 import chat_service_pb2 as chat_pb
from llmserve.chat.v1 import chat_service_pb2_grpc as chat_grpc
from llmserve.sae.v1 import sae_service_pb2 as sae_pb
from llmserve.sae.v1 import sae_service_pb2_grpc as sae_grpc
from llmserve.specialist.v1 import specialist_service_pb2 as sp_pb
from llmserve.specialist.v1 import specialist_service_pb2_grpc as sp_grpc


@pytest.fixture(scope="module")
def pg() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def stack(pg: PrivatePostgres, tiny_model_dir: Path, descriptor: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("reliability"), tiny_model_dir, pg.url, descriptor).start()
    try:
        yield running
    finally:
        running.stop()


def test_grpc_fuzz_gets_no_internal_error_and_no_hang(stack: Stack):
    figures = grpc_fuzz.fuzz(stack.target, examples_per_method=10, deadline_s=20, seed=19)
    assert len(figures.by_method) == len(grpc_fuzz.unary_methods()), figures  # every unary RPC was called
    assert figures.faults == [], "\n".join(figures.faults)
    assert figures.hangs == [], "\n".join(figures.hangs)
    assert stack.healthy()


@pytest.mark.parametrize(("stub", "method", "request_message", "field"), [
    (sae_grpc.SaeTrainingServiceStub, "ListTrainingJobs", sae_pb.ListTrainingJobsRequest(state=552), "state"),
    (sae_grpc.SaeTrainingServiceStub, "CreateTrainingJob",
     sae_pb.CreateTrainingJobRequest(model_name="tiny", corpus_file="c.txt", architecture=77), "architecture"),
    (sp_grpc.SpecialistServiceStub, "Generate", sp_pb.GenerateRequest(prompt="Hi", routing_mode=53), "routing_mode"),
    (sp_grpc.SpecialistServiceStub, "StreamGenerate", sp_pb.StreamGenerateRequest(prompt="Hi", routing_mode=1000),
     "routing_mode"),
    (sp_grpc.SpecialistServiceStub, "ListTrainingJobs", sp_pb.ListTrainingJobsRequest(state=9), "state"),
    # NUL in a string field: PostgreSQL cannot store it; these were INTERNAL (psycopg DataError).
    (chat_grpc.ChatServiceStub, "GetSchema", chat_pb.GetSchemaRequest(name="\x00"), "name"),
    (chat_grpc.ChatServiceStub, "DeleteSchema", chat_pb.DeleteSchemaRequest(name="a\x00b"), "name"),
    (sae_grpc.SaeTrainingServiceStub, "GetTrainingJob", sae_pb.GetTrainingJobRequest(job_id="\x00"), "job_id"),
    (chat_grpc.ChatServiceStub, "StartConversation",
     chat_pb.StartConversationRequest(user_id="u", initial_message="hi\x00", max_new_tokens=1), "initial_message"),
])
def test_bad_values_found_by_the_fuzzer_are_invalid_argument(stack: Stack, stub, method, request_message,
                                                                       field):
    # Proto3 enums are open: these numbers reach the server, which used to fail with
    # INTERNAL (KeyError, ValueError) or silently ignore the filter.
    with grpc.insecure_channel(stack.target) as channel:
        call = getattr(stub(channel), method)
        with pytest.raises(grpc.RpcError) as caught:
            reply = call(request_message, timeout=30)
            if method.startswith("Stream"):
                list(reply)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert field in caught.value.details()


def test_every_operation_documents_its_503_and_429(stack: Stack):
    # The REST fuzzer met an undocumented 503 (inspectGates before any mixture is trained);
    # any call can meet UNAVAILABLE (database down) or RESOURCE_EXHAUSTED (queue full).
    document = httpx.get(f"{stack.base_url}/openapi.json", timeout=30).json()
    for path, item in document["paths"].items():
        for verb, operation in item.items():
            if "default" in operation["responses"]:  # calls that can fail, not the static pages
                assert {"429", "503"} <= set(operation["responses"]), (verb, path)


def test_rest_fuzz_over_every_operation(stack: Stack, tmp_path: Path):
    # The coverage phase alone sends ~5,000 requests: it runs in `make reliability`.
    figures = rest_fuzz(stack, max_examples=3, folder=tmp_path, seed=19, timeout_s=300, phases="examples,fuzzing")
    assert figures.requests > figures.operations, figures
    assert figures.server_errors == [], figures.server_errors
    assert figures.bad_error_shape == [], figures.bad_error_shape
    assert figures.healthy_after


def test_load_with_cancels_frees_every_slot(stack: Stack):
    figures = load_with_cancels(stack, streams=12, duration_s=8, seed=19)
    assert figures.unexpected == [], figures.unexpected
    assert figures.cancelled > 0 and figures.deadline_cut + figures.completed > 0, figures
    assert figures.running_after == 0, figures
    assert stack.healthy()


def test_postgres_restart_fails_fast_then_recovers_without_restarting_llmserve(stack: Stack, pg: PrivatePostgres):
    figures = pg_restart(stack, pg, outage_s=3, calls=4)
    assert figures.unexpected == [], figures
    assert figures.during["UNAVAILABLE"] > 0, figures
    assert figures.slowest_failure_s < 30, figures  # each failure came back before the client's deadline
    assert figures.recovered_after_s >= 0 and figures.ok_after == 4, figures
    assert figures.writes_acknowledged > 0 and figures.writes_lost == 0, figures
    assert not figures.server_restarted


def test_server_restart_behind_envoy_is_503_then_recovers(stack: Stack):
    figures = server_restart(stack, restarts=1)
    assert figures.unexpected == [], figures
    assert figures.by_status[503] > 0 and figures.by_status[200] > 0, figures
    assert figures.slowest_down_answer_s < 30, figures  # answered, not left hanging to the client's timeout
    assert stack.healthy()


def test_sigterm_lets_every_stream_in_flight_finish(stack: Stack):
    figures = sigterm_drain(stack, streams=4)
    assert figures.in_flight_at_sigterm > 0, figures
    assert figures.finished_whole == figures.streams and not figures.cut, figures
    assert figures.refused_after_sigterm == "UNAVAILABLE", figures
    assert figures.exit_code == 0, figures
    assert stack.healthy()  # restarted by the scenario


def test_hostile_input_is_refused_and_many_entries_are_kept(stack: Stack):
    figures = hostile_input(stack, big_lut=200, clients=10, per_client=5)
    assert figures.unexpected == [], figures.unexpected
    assert figures.big_lut_entries == 200 and figures.big_lut_generate_ok, figures
    assert figures.concurrent_acknowledged == 50 and figures.concurrent_lost == 0, figures
    assert stack.healthy()
