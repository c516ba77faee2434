"""envoy.yaml's replica routes against the protos: the retry-on-reset route takes exactly
the idempotent unary methods, and chat session calls go to the ring-hash cluster."""

from __future__ import annotations

import re
import sys

from google.protobuf import descriptor_pb2

from tests.support import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import envoy_config  # noqa: E402
import protogen  # noqa: E402

WRITES = {"TrainLut", "DeleteLut", "DeleteLutEntry", "ImportLut", "StartConversation", "SendMessage",
          "EndConversation", "RegisterSchema", "DeleteSchema", "CreateTrainingJob", "CancelTrainingJob",
          "AddSpecialist", "DeleteSpecialist", "CreateApiKey", "RevokeApiKey", "SetTenantQuotas",
          "UploadCorpusMultipart"}


def _methods(tmp_path) -> list[tuple[str, bool]]:
    """('/pkg.Service/Method', unary both ways) for every llmserve method."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(protogen.generate_descriptor(tmp_path / "d.pb").read_bytes())
    out = []
    for f in fds.file:
        if f.package.startswith("llmserve."):
            for service in f.service:
                for m in service.method:
                    out.append((f"/{f.package}.{service.name}/{m.name}", not (m.client_streaming or m.server_streaming)))
    return out


def _route(name: str) -> dict:
    return next(r for r in envoy_config.routes(envoy_config.load()) if r["name"] == name)


def test_only_idempotent_unary_methods_are_retried_after_a_reset(tmp_path):
    pattern = re.compile(_route("idempotent_unary")["match"]["safe_regex"]["regex"])
    methods = _methods(tmp_path)
    retried = {path for path, unary in methods if pattern.fullmatch(path)}
    assert all(unary for path, unary in methods if path in retried)  # never a stream
    assert not {p.rsplit("/", 1)[1] for p in retried} & WRITES
    expected = {"/llmserve.lut.v1.LutService/Generate", "/llmserve.generation.v1.GenerationService/Complete",
                "/llmserve.generation.v1.GenerationService/Chat", "/llmserve.sae.v1.SaeTrainingService/GetTrainingJob",
                "/llmserve.lut.v1.LutService/ListLuts", "/llmserve.specialist.v1.SpecialistService/Generate"}
    assert expected <= retried
    assert "reset" in _route("idempotent_unary")["route"]["retry_policy"]["retry_on"]
    assert "reset" not in _route("llmserve")["route"]["retry_policy"]["retry_on"]


def test_chat_session_calls_hash_on_the_session(tmp_path):
    paths = {p for p, _ in _methods(tmp_path)}
    for name in ("chat_session_writes", "chat_session_reads"):
        route = _route(name)
        assert route["route"]["cluster"] == "llmserve_grpc_sessions"
        pattern = re.compile(route["match"]["safe_regex"]["regex"])
        assert {p for p in paths if pattern.fullmatch(p)}, name
        rewrite = route["route"]["hash_policy"][1]["header"]["regex_rewrite"]
        extract = re.compile(rewrite["pattern"]["regex"])
        for path in ("/llm/chat/abc-123/message/", "/v1/chat/sessions/abc-123:sendMessage",
                     "/v1/chat/sessions/abc-123/messages", "/llm/chat/abc-123/history/"):
            assert extract.sub(rewrite["substitution"].replace("\\1", r"\1"), path) == "abc-123"
    clusters = {c["name"]: c for c in envoy_config.load()["static_resources"]["clusters"]}
    assert clusters["llmserve_grpc_sessions"]["lb_policy"] == "RING_HASH"
    # Every cluster of replicas (the metrics one is plain HTTP to the same hosts).
    assert all("outlier_detection" in clusters[n] and clusters[n]["health_checks"] for n in envoy_config.CLUSTERS)


def test_render_puts_every_replica_in_both_clusters(tmp_path):
    out = envoy_config.render(0, 8080, 9901, tmp_path / "d.pb", tmp_path / "e.yaml",
                              backends=[("10.0.0.1", 50051), ("10.0.0.2", 50051)])
    clusters = envoy_config.load(out)["static_resources"]["clusters"]
    for cluster in clusters:
        hosts = [e["endpoint"]["address"]["socket_address"] for e in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]]
        # GET /metrics reaches the same hosts on their metrics port.
        port = envoy_config.METRICS_PORT if cluster["name"] == envoy_config.METRICS_CLUSTER else 50051
        assert [(h["address"], h["port_value"]) for h in hosts] == [("10.0.0.1", port), ("10.0.0.2", port)]
    dns = envoy_config.load(envoy_config.render(0, 8080, 9901, tmp_path / "d.pb", tmp_path / "f.yaml",
                                                backends=[("llmserve-replicas", 50051)], dns=True))
    assert {c["type"] for c in dns["static_resources"]["clusters"]} == {"STRICT_DNS"}
