"""The Python client's transport options for real: TLS (a real Envoy terminating TLS with a
self-signed certificate in front of the server), and UNAVAILABLE retried with backoff."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

import llmserve
from llmserve import errors
from tests.support import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import envoy_config  # noqa: E402


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def _tls_proxy_config(folder: Path, grpc_port: int, tls_port: int, admin_port: int, cert: Path, key: Path) -> Path:
    """Envoy terminating TLS (h2) and passing gRPC through to the plaintext server."""
    address = lambda port: {"socket_address": {"address": "127.0.0.1", "port_value": port}}  # noqa: E731
    config = {
        "admin": {"address": address(admin_port)},
        "static_resources": {
            "listeners": [{"name": "tls", "address": address(tls_port), "filter_chains": [{
                "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                    "common_tls_context": {"alpn_protocols": ["h2"], "tls_certificates": [
                        {"certificate_chain": {"filename": str(cert)}, "private_key": {"filename": str(key)}}]}}},
                "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                             ".HttpConnectionManager",
                    "stat_prefix": "tls", "codec_type": "AUTO",
                    "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                        {"match": {"prefix": "/"}, "route": {"cluster": "llmserve", "timeout": "0s"}}]}]},
                    "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}],
            "clusters": [{"name": "llmserve", "type": "STATIC", "load_assignment": {
                "cluster_name": "llmserve",
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address(grpc_port)}}]}]},
                "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}}}}],
        },
    }
    path = folder / "tls-envoy.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


async def test_tls_through_a_terminating_proxy(tmp_path: Path, client_app, tenant_key: str):
    cert, key = _self_signed(tmp_path)
    tls_port, admin_port = envoy_config.free_port(), envoy_config.free_port()
    config = _tls_proxy_config(tmp_path, client_app.port, tls_port, admin_port, cert, key)
    # A thread: the server Envoy forwards to runs on this test's event loop.
    proxy = await asyncio.to_thread(envoy_config.start_envoy, config, tls_port, admin_port,
                                    log_path=tmp_path / "envoy.log")
    try:
        trusted = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        async with llmserve.AsyncClient(f"localhost:{tls_port}", tls=trusted, api_key=tenant_key) as client:
            reply = await client.complete("Hello", max_new_tokens=3, do_sample=False)
            assert reply.usage.completion_tokens == 3
            stream = client.stream_complete("Hello", max_new_tokens=4, do_sample=False)
            assert await stream.text() == stream.final.text
        # The system roots do not trust the self-signed certificate: the handshake fails.
        async with llmserve.AsyncClient(f"localhost:{tls_port}", tls=True, retry=llmserve.NO_RETRY) as untrusted:
            with pytest.raises(errors.Unavailable):
                await untrusted.complete("Hello", max_new_tokens=1, timeout=10)
    finally:
        await asyncio.to_thread(envoy_config.stop_envoy, proxy)


async def test_unavailable_is_retried_with_backoff_within_the_attempts():
    port = envoy_config.free_port()  # nobody listens there
    waits: list[tuple[grpc.StatusCode, float]] = []
    policy = llmserve.RetryPolicy(max_attempts=3, initial_backoff_s=0.02,
                                  on_retry=lambda error, wait: waits.append((error.code, wait)))
    async with llmserve.AsyncClient(f"127.0.0.1:{port}", retry=policy) as client:
        with pytest.raises(errors.Unavailable):
            await client.complete("Hello")
    assert [code for code, _ in waits] == [grpc.StatusCode.UNAVAILABLE] * 2
    assert 0.01 <= waits[0][1] <= 0.02 and 0.02 <= waits[1][1] <= 0.04  # jittered, doubling


def test_the_blocking_client_retries_unavailable_too():
    port = envoy_config.free_port()
    waits: list[float] = []
    policy = llmserve.RetryPolicy(max_attempts=2, initial_backoff_s=0.02, on_retry=lambda _e, wait: waits.append(wait))
    with llmserve.Client(f"127.0.0.1:{port}", retry=policy) as client, pytest.raises(errors.Unavailable):
        list(client.stream_complete("Hello"))
    assert len(waits) == 1
