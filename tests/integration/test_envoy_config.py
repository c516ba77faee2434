"""The committed envoy.yaml and web page: Envoy accepts them, the transcoder
covers every REST-bound service of the descriptor, and render() only moves
ports and paths. No server needed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

import envoy_config

ROOT = Path(__file__).resolve().parents[2]


def test_committed_envoy_yaml_validates(descriptor: Path, tmp_path: Path):
    # The committed file names build/llmserve.pb and web/index.html relative to
    # where `make run` runs; lay those out in a scratch folder, unchanged file.
    (tmp_path / "build").mkdir()
    shutil.copy(descriptor, tmp_path / "build" / "llmserve.pb")
    (tmp_path / "web").mkdir()
    shutil.copy(ROOT / "web" / "index.html", tmp_path / "web" / "index.html")
    result = envoy_config.validate(ROOT / "envoy.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr


def test_validate_catches_a_missing_descriptor(tmp_path: Path):
    (tmp_path / "web").mkdir()
    shutil.copy(ROOT / "web" / "index.html", tmp_path / "web" / "index.html")
    result = envoy_config.validate(ROOT / "envoy.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "llmserve.pb" in result.stdout + result.stderr


def test_render_moves_ports_and_paths_only(descriptor: Path, tmp_path: Path):
    out = envoy_config.render(50123, 18123, 19123, descriptor, tmp_path / "envoy.yaml", http_host="127.0.0.1")
    rendered, original = yaml.safe_load(out.read_text()), envoy_config.load()
    assert rendered["admin"]["address"]["socket_address"]["port_value"] == 19123
    listener = rendered["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listener == {"address": "127.0.0.1", "port_value": 18123}
    cluster = rendered["static_resources"]["clusters"][0]
    assert cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"]["port_value"] == 50123
    assert envoy_config.transcoder(rendered)["proto_descriptor"] == str(descriptor.resolve())
    pages = {r["direct_response"]["body"]["filename"] for r in envoy_config.routes(rendered) if "direct_response" in r}
    assert pages == {str((ROOT / "web" / "index.html").resolve())}
    # Everything else is the committed behaviour.
    original_transcoder = envoy_config.transcoder(original)
    for key, value in envoy_config.transcoder(rendered).items():
        if key != "proto_descriptor":
            assert value == original_transcoder[key], key
    result = envoy_config.validate(out, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def _rest_services(descriptor: Path) -> set[str]:
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    services = set()
    for file in files.file:
        for service in file.service:
            if any(m.options.HasExtension(annotations_pb2.http) for m in service.method):
                services.add(f"{file.package}.{service.name}")
    return services


def test_transcoder_covers_every_rest_service(descriptor: Path):
    config = envoy_config.load()
    transcoder = envoy_config.transcoder(config)
    assert set(transcoder["services"]) == _rest_services(descriptor)
    assert {"llmserve.generation.v1.GenerationService", "llmserve.server.v1.ServerService",
            "llmserve.lut.v1.LutService", "llmserve.specialist.v1.SpecialistService",
            "llmserve.sae.v1.SaeTrainingService", "llmserve.chat.v1.ChatService"} <= set(transcoder["services"])
    options = transcoder["print_options"]
    assert options["stream_sse_style_delimited"] and options["preserve_proto_field_names"]
    assert options["always_print_primitive_fields"]
    assert transcoder["convert_grpc_status"]
    assert transcoder["request_validation_options"] == {"reject_unknown_method": True,
                                                        "reject_unknown_query_parameters": True}


def test_backend_routes_never_time_out_and_backend_is_health_checked():
    config = envoy_config.load()
    backend = [r for r in envoy_config.routes(config) if "route" in r and r["route"]["cluster"] in envoy_config.CLUSTERS]
    assert backend, "no route to the gRPC backend"
    for route in backend:
        assert route["route"]["timeout"] == "0s", route["name"]
    clusters = [c for c in config["static_resources"]["clusters"] if c["name"] != envoy_config.METRICS_CLUSTER]
    assert [c["name"] for c in clusters] == list(envoy_config.CLUSTERS)
    for cluster in clusters:
        options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
        assert "http2_protocol_options" in options["explicit_http_config"]
        assert "http2_protocol_options" not in cluster  # the deprecated spelling
        (check,) = cluster["health_checks"]
        assert check["grpc_health_check"]["service_name"] == ""


def test_web_page_is_self_contained():
    html = (ROOT / "web" / "index.html").read_text()
    assert "<title>llmserve</title>" in html
    assert "/v1/completions:stream" in html and "getReader" in html
    assert 'href="/v1/models"' in html and 'href="/health"' in html
    # Nothing is loaded from elsewhere: no absolute URLs in src/href/fetch/@import.
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", html)
    assert not re.search(r"""(fetch\(|@import|url\()\s*["']?(https?:)?//""", html)

