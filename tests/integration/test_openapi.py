"""The OpenAPI document through Envoy: it validates as OpenAPI 3, it names exactly the
routes Envoy serves (and Envoy has a route for each of its operations), /docs and /redoc
load with their assets served locally, and a short schemathesis run on the generation
and OpenAI paths gets no 5xx."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from pathlib import Path

import httpx
import pytest
from google.protobuf import descriptor_pb2
from openapi_spec_validator import validate

from tests.support import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import envoy_config
import openapi_doc
import openapi_paths


@pytest.fixture
async def document(http: httpx.AsyncClient) -> dict:
    resp = await http.get("/openapi.json")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    return resp.json()


async def test_document_is_valid_openapi_3(document):
    assert document["openapi"].startswith("3.")
    validate(document)


def _served_routes(descriptor: Path) -> set[tuple[str, str]]:
    """What Envoy serves, from its own inputs: the HTTP bindings of the services its
    transcoder names, and its direct_response pages (not the docs' scripts)."""
    config = envoy_config.load()
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    routes = {(verb, openapi_doc.openapi_path(path))
              for verb, path, *_ in openapi_doc.http_routes(fds, envoy_config.transcoder(config)["services"])}
    for route in envoy_config.routes(config):
        path = route["match"].get("path")
        if "direct_response" in route and path and not path.startswith(openapi_paths.ASSETS_PREFIX):
            routes.add(("get", path))
    return routes


async def test_document_and_envoy_routes_match(document, descriptor: Path, http: httpx.AsyncClient):
    documented = {(verb, path) for path, item in document["paths"].items() for verb in item}
    assert documented == _served_routes(descriptor)
    # And Envoy has a route for each operation: no "Could not resolve" 404. Bodies are
    # malformed JSON, so nothing is created; path variables name nothing that exists.
    for verb, path in sorted(documented):
        url = re.sub(r"\{[^}]+\}", "no-such-thing", path)
        resp = await http.request(verb.upper(), url, content=b"{" if verb != "get" else None,
                                  headers={"content-type": "application/json", "accept": "*/*"})
        assert not (resp.status_code == 404 and "Could not resolve" in resp.text), (verb, path)


async def test_docs_and_redoc_load_local_assets(http: httpx.AsyncClient):
    for page, assets in (("/docs", ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css")),
                         ("/redoc", ("/docs/assets/redoc.standalone.js",))):
        resp = await http.get(page)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        assert "/openapi.json" in resp.text
        assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", resp.text)  # no CDN
        for asset in assets:
            assert asset in resp.text
            got = await http.get(asset)
            assert got.status_code == 200 and len(got.content) > 100_000, asset
            assert got.headers["content-type"].startswith(("text/javascript", "text/css"))


SCHEMATHESIS_PATHS = r"^/(completion|chat|health|v1/(models|completions|chat/completions|generation/.*|info))$"


async def test_schemathesis_finds_no_server_error(envoy, tmp_path: Path):
    # A subprocess: its blocking HTTP calls must not stall the in-process server's event loop.
    argv = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{envoy.base_url}/openapi.json",
            "--url", envoy.base_url, "--checks", "not_a_server_error", "--max-examples", "6",
            "--include-path-regex", SCHEMATHESIS_PATHS, "--phases", "examples,coverage,fuzzing", "--seed", "1",
            "--workers", "1", "--request-timeout", "120", "--no-color"]
    proc = await asyncio.create_subprocess_exec(*argv, cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    async with asyncio.timeout(540):
        out, _ = await proc.communicate()
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-6000:]
    assert re.search(r"\b([1-9]\d*) (passed|operations?)", report), report[-2000:]


BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.parametrize(("page", "rendered"), [
    ("/docs", ("OpenAIService_CreateChatCompletion", "/v1/chat/completions")),  # Swagger UI's operation list
    ("/redoc", ("Create a chat completion (OpenAI)", "/v1/chat/completions")),  # ReDoc's sidebar and operations
])
async def test_docs_pages_render_in_a_browser(envoy, tmp_path: Path, page: str, rendered: tuple[str, ...]):
    assert BROWSER, "a headless Chromium is needed to render /docs and /redoc: apt-get install chromium"
    argv = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path}", "--virtual-time-budget=20000", "--dump-dom", f"{envoy.base_url}{page}"]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(180):
        dom, err = await proc.communicate()
    html = dom.decode(errors="replace")
    for text in rendered:  # present only once the script fetched /openapi.json and rendered it
        assert text in html, (page, text, err.decode(errors="replace")[-2000:])
