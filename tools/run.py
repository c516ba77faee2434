"""`make run`: the llmserve gRPC server plus Envoy (REST/JSON, SSE streams, web page).

    python tools/run.py --grpc-port 50051 --http-port 8080 --admin-port 9901 [--replicas N] [server flags...]

Flags this script does not know (e.g. --default-model, --device, --config) go to
`python -m server.main`. The servers start first, Envoy next; "ready" is printed
once every server's gRPC health (service "") is SERVING, i.e. its default model is
loaded. With `--replicas N` (`make run REPLICAS=N`), N servers listen on the N ports
from --grpc-port up, named replica-0 ... replica-<N-1>, behind one Envoy cluster; they
must share a PostgreSQL database (LLMSERVE_DATABASE_URL or --database-url). On the
CPU each gets cores/N torch threads. SIGINT/SIGTERM stop all: the servers drain
in-flight calls (their grace period), Envoy exits, and this script exits 0. If any
child dies on its own, the others are stopped and this script exits with an error.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import envoy_config  # noqa: E402


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)  # unknown flags go to the server unchanged
    parser.add_argument("--grpc-port", type=int, default=50051, help="gRPC server port (default 50051)")
    parser.add_argument("--http-port", type=int, default=8080, help="Envoy REST/web/gRPC port (default 8080)")
    parser.add_argument("--admin-port", type=int, default=9901, help="Envoy admin port, on 127.0.0.1 (default 9901)")
    parser.add_argument("--http-host", default="0.0.0.0", help="address Envoy listens on (default 0.0.0.0)")
    parser.add_argument("--descriptor", type=Path, default=envoy_config.DESCRIPTOR,
                        help="descriptor set for the transcoder (built when missing)")
    parser.add_argument("--envoy-log-level", default="warn")
    parser.add_argument("--ready-timeout", type=float, default=0.0,
                        help="give up when the server is not SERVING after this many seconds (0: wait forever)")
    parser.add_argument("--replicas", type=int, default=1, help="server processes behind Envoy (default 1)")
    return parser.parse_known_args(argv)


def replica_env(index: int, count: int) -> dict[str, str]:
    """The environment of replica `index` of `count`: its name, the count, and on the CPU
    its share of the cores (more torch threads than cores is ruinous)."""
    if count == 1:
        return dict(os.environ)
    env = {**os.environ, "LLMSERVE_REPLICA__NAME": f"replica-{index}", "LLMSERVE_REPLICA__COUNT": str(count),
           "LLMSERVE_METRICS__PORT": str(9464 + index)}
    env.setdefault("LLMSERVE_ENGINE__NUM_THREADS", str(max(1, (os.cpu_count() or 1) // count)))
    return env


def check_replicas(count: int, server_args: list[str]) -> None:
    """Refuse several replicas on a database they cannot share, before starting anything
    (the servers' own settings check, with the same message)."""
    if count < 1:
        raise SystemExit(f"--replicas must be >= 1, got {count}")
    if count > 1:
        from server.settings import load_settings

        load_settings(server_args, environ={**os.environ, "LLMSERVE_REPLICA__COUNT": str(count)})


def ensure_descriptor(path: Path) -> Path:
    if not path.exists():
        import protogen

        print(f"building {path} ...", flush=True)
        protogen.generate_descriptor(path)
    return path


def server_serving(port: int, timeout: float = 1.0) -> str:
    """The server's overall health status name, or a short reason it could not be read."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""),
                                                             timeout=timeout)
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.RpcError as exc:
        return exc.code().name


def terminate(process: subprocess.Popen, timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"pid {process.pid} did not stop in {timeout:.0f} s; killing it", flush=True)
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    args, server_args = parse_args(argv)
    check_replicas(args.replicas, server_args)
    descriptor = ensure_descriptor(args.descriptor)
    ports = [args.grpc_port + i for i in range(args.replicas)]
    config = envoy_config.render(args.grpc_port, args.http_port, args.admin_port, descriptor,
                                 ROOT / "build" / "envoy.run.yaml", http_host=args.http_host,
                                 backends=[("127.0.0.1", p) for p in ports],
                                 metrics=[("127.0.0.1", envoy_config.METRICS_PORT + i) for i in range(args.replicas)])

    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    # Children get their own sessions: a terminal's Ctrl-C reaches only this
    # script, which stops them in order (and exactly once).
    servers = []
    for index, port in enumerate(ports):
        server_cmd = [sys.executable, "-m", "server.main", "--port", str(port), *server_args]
        print(f"starting server: {' '.join(server_cmd)}", flush=True)
        servers.append(subprocess.Popen(server_cmd, cwd=ROOT, stdin=subprocess.DEVNULL, start_new_session=True,
                                        env=replica_env(index, args.replicas)))
    envoy: envoy_config.Envoy | None = None
    code = 0
    try:
        try:
            envoy = envoy_config.start_envoy(config, args.http_port, args.admin_port,
                                             log_level=args.envoy_log_level, new_session=True)
        except RuntimeError as exc:
            print(f"envoy failed to start: {exc}", file=sys.stderr, flush=True)
            return 1
        host = "localhost" if args.http_host in ("0.0.0.0", "::") else args.http_host
        print(f"envoy ready (admin http://127.0.0.1:{args.admin_port}); waiting for the model to load ...", flush=True)

        started = time.monotonic()
        last_note = started
        status = ""
        while not stop.is_set():
            dead = next((s for s in servers if s.poll() is not None), None)
            if dead is not None:
                print(f"server exited with {dead.returncode} before it was ready", file=sys.stderr, flush=True)
                return dead.returncode or 1
            if envoy.process.poll() is not None:
                print(f"envoy exited with {envoy.process.returncode}", file=sys.stderr, flush=True)
                return 1
            statuses = [server_serving(p) for p in ports]
            status = ", ".join(statuses)
            if all(s == "SERVING" for s in statuses):
                break
            now = time.monotonic()
            if args.ready_timeout and now - started > args.ready_timeout:
                print(f"server not SERVING after {args.ready_timeout:.0f} s (last: {status})", file=sys.stderr)
                return 1
            if now - last_note > 15:
                print(f"  still waiting ({now - started:.0f} s, health: {status})", flush=True)
                last_note = now
            stop.wait(0.25)

        if not stop.is_set():
            direct = ", ".join(f"localhost:{p}" for p in ports)
            print(f"gRPC:     {direct} (direct), {host}:{args.http_port} (through Envoy)")
            print(f"REST:     http://{host}:{args.http_port}  (e.g. curl http://{host}:{args.http_port}/health)")
            print(f"web page: http://{host}:{args.http_port}/")
            print("ready", flush=True)

        while not stop.is_set():
            dead = next((s for s in servers if s.poll() is not None), None)
            if dead is not None:
                print(f"server exited with {dead.returncode}", file=sys.stderr, flush=True)
                code = dead.returncode or 1
                break
            if envoy.process.poll() is not None:
                print(f"envoy exited with {envoy.process.returncode}", file=sys.stderr, flush=True)
                code = 1
                break
            stop.wait(0.5)
        return code
    finally:
        if received:
            print(f"received {signal.Signals(received[0]).name}; stopping", flush=True)
        # Server first: it marks itself NOT_SERVING and drains in-flight calls,
        # which still flow through Envoy; then Envoy.
        for server in servers:  # all drain at once, then each is waited for
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
        for server in servers:
            terminate(server, timeout=30)
        if envoy is not None:
            envoy_config.stop_envoy(envoy)
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
