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
    # The committed file names build/llmserve.pb, build/openapi.json, the docs' assets and
    # the pages in web/ relative to where `make run` runs; lay those out in a scratch
    # folder, unchanged file.
    (tmp_path / "build").mkdir()
    shutil.copy(descriptor, tmp_path / "build" / "llmserve.pb")
    shutil.copy(envoy_config.openapi_for(descriptor), tmp_path / "build" / "openapi.json")
    shutil.copytree(ROOT / "build" / "docs", tmp_path / "build" / "docs")
    shutil.copytree(ROOT / "web", tmp_path / "web")
    result = envoy_config.validate(ROOT / "envoy.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr


def test_validate_catches_a_missing_descriptor(descriptor: Path, tmp_path: Path):
    shutil.copytree(ROOT / "web", tmp_path / "web")
    (tmp_path / "build").mkdir()
    shutil.copy(envoy_config.openapi_for(descriptor), tmp_path / "build" / "openapi.json")
    shutil.copytree(ROOT / "build" / "docs", tmp_path / "build" / "docs")
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
    assert pages >= {str(path.resolve()) for path in (ROOT / "web").rglob("*") if path.is_file()}
    assert str(envoy_config.openapi_for(descriptor).resolve()) in pages  # built beside the descriptor
    assert all(Path(p).is_absolute() and Path(p).exists() for p in pages)
    # Everything else is the committed behaviour.
    original_transcoder = envoy_config.transcoder(original)
    for key, value in envoy_config.transcoder(rendered).items():
        if key != "proto_descriptor":
            assert value == original_transcoder[key], key
    result = envoy_config.validate(out, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_render_reads_the_page_from_another_folder(descriptor: Path, tmp_path: Path):
    # deploy/k8s mounts web/'s files flat in one folder (a ConfigMap).
    out = envoy_config.render(50123, 18123, 19123, descriptor, tmp_path / "envoy.yaml", web_dir="/etc/envoy")
    pages = {r["direct_response"]["body"]["filename"] for r in envoy_config.routes(yaml.safe_load(out.read_text()))
             if "direct_response" in r}
    assert {p for p in pages if p.startswith("/etc/envoy/")} == {f"/etc/envoy/{path.name}" for path in (ROOT / "web").iterdir()}
    # With files_dir, every page and asset (the docs' too) comes from that one folder.
    out = envoy_config.render(50123, 18123, 19123, descriptor, tmp_path / "envoy.yaml", files_dir="/srv/files")
    pages = {r["direct_response"]["body"]["filename"] for r in envoy_config.routes(yaml.safe_load(out.read_text()))
             if "direct_response" in r}
    assert all(p.startswith("/srv/files/") for p in pages) and "/srv/files/openapi.json" in pages


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
            "llmserve.sae.v1.SaeTrainingService", "llmserve.chat.v1.ChatService",
            "llmserve.openai.v1.OpenAIService"} <= set(transcoder["services"])
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
    assert '<script type="module" src="/web/main.js">' in html
    api = (ROOT / "web" / "api.js").read_text()
    assert "getReader" in api and "text/event-stream" in api
    # Nothing is loaded from elsewhere: no absolute URLs in src/href/fetch/import/@import.
    for path in (ROOT / "web").rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", text), path
            assert not re.search(r"""(fetch\(|@import|url\(|from)\s*["']?(https?:)?//""", text), path


def test_every_page_file_has_a_route_and_every_route_a_file():
    served = {r["match"]["path"]: r["direct_response"]["body"]["filename"]
              for r in envoy_config.routes(envoy_config.load()) if "direct_response" in r}
    files = {str(p.relative_to(ROOT)) for p in (ROOT / "web").rglob("*") if p.is_file()}
    assert {name for name in served.values() if name.startswith("web/")} == files
    pages = {"/": "web/index.html", "/index.html": "web/index.html", "/docs": "web/docs.html",
             "/redoc": "web/redoc.html", "/openapi.json": "build/openapi.json"}
    for path, name in served.items():
        assert pages.get(path) == name or path == "/" + name.removeprefix("build/"), (path, name)
