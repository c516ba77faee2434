"""The real stack for the reliability scenarios: a private PostgreSQL, llmserve as its own
process (restartable on the same port) and Envoy in front of it.

The private PostgreSQL (initdb/pg_ctl of the system's PostgreSQL 15, run as the `postgres`
user, in a temporary folder, on a free port) can be stopped and started at will; the
machine's shared PostgreSQL and Redis are never touched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import envoy_config  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    """A PostgreSQL cluster of our own; `stop()` and `start()` simulate a database restart."""

    def __init__(self) -> None:
        self.port = envoy_config.free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="llmserve-pg-"))
        self.data = self.folder / "data"
        shutil.chown(self.folder, "postgres", "postgres")
        self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                           "--no-sync", "-E", "UTF8"])

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, argv: list[str]) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, cwd=self.folder,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                           str(self.folder / "pg.log"), "-w", "-t", "60", "start"])

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as in a restart or failover."""
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop()
            except subprocess.SubprocessError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)


class PrivateRedis:
    """A redis-server of our own (the machine's shared one must keep running for others)."""

    def __init__(self, folder: Path) -> None:
        self.port = envoy_config.free_port()
        self.folder = folder
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port),
                                      "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                      "--dir", str(self.folder)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """kill -9, as a crash or an evicted pod: nothing is flushed."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


class Stack:
    """llmserve (tiny or real model) as a process on a fixed port, Envoy in front."""

    def __init__(self, folder: Path, model_dir: Path | None, database_url: str = "", descriptor: Path | None = None,
                 extra_config: str = "", redis_url: str = "") -> None:
        self.folder = folder
        self.grpc_port = envoy_config.free_port()
        self.metrics_port = envoy_config.free_port()
        self.descriptor = descriptor or _descriptor(folder)
        self.proc: subprocess.Popen | None = None
        self.envoy: envoy_config.Envoy | None = None
        self.log = folder / "server.log"
        model = ('default_model = "tiny"\n' if model_dir else 'default_model = "smollm2"\n')
        self.config = folder / "llmserve.toml"
        text = (f'{model}host = "127.0.0.1"\nport = {self.grpc_port}\ndata_dir = "{folder / "data"}"\n'
                f'database_url = "{database_url}"\nredis_url = "{redis_url}"\ngrace_period_s = 15.0\n'
                f'metrics.port = {self.metrics_port}\n{extra_config}\n[engine]\nmax_queued_requests = 512\n')
        if model_dir:
            text += f'[[models]]\nname = "tiny"\nsource = "huggingface"\npath = "{model_dir}"\n'
        # The embedded model (named by fuzzed requests too): reuse the converted copy
        # instead of converting the GGUF again into this data folder.
        (folder / "data" / "models").mkdir(parents=True, exist_ok=True)
        link = folder / "data" / "models" / "smollm2"
        if not link.exists():
            link.symlink_to(ROOT / "data" / "models" / "smollm2", target_is_directory=True)
        self.config.write_text(text)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def base_url(self) -> str:
        assert self.envoy is not None
        return self.envoy.base_url

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start_server(self, timeout: float = 180.0) -> float:
        """Start llmserve and wait until SERVING; returns the seconds it took."""
        started = time.monotonic()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "server.main", "--config", str(self.config)],
                                         cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        wait_serving(self.target, timeout, self.proc)
        return time.monotonic() - started

    def kill_server(self) -> None:
        """kill -9: no drain, no clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def start_envoy(self) -> None:
        http_port, admin_port = envoy_config.free_port(), envoy_config.free_port()
        config = envoy_config.render(self.grpc_port, http_port, admin_port, self.descriptor,
                                     self.folder / "envoy.yaml", http_host="127.0.0.1",
                                     metrics=[("127.0.0.1", self.metrics_port)])
        self.envoy = envoy_config.start_envoy(config, http_port, admin_port, log_path=self.folder / "envoy.log",
                                              log_level="warn")

    def start(self) -> Stack:
        self.start_server()
        self.start_envoy()
        return self

    def stop(self) -> None:
        if self.envoy is not None:
            envoy_config.stop_envoy(self.envoy)
            self.envoy = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def healthy(self) -> bool:
        """gRPC health SERVING and Envoy's REST /health answering 200."""
        try:
            with grpc.insecure_channel(self.target) as channel:
                status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
            rest = httpx.get(f"{self.base_url}/health", timeout=10).status_code
        except (grpc.RpcError, httpx.HTTPError):
            return False
        return status == health_pb2.HealthCheckResponse.SERVING and rest == 200

    def running_rows(self) -> float:
        """llmserve_requests_running summed over its label sets, from /metrics."""
        text = httpx.get(self.metrics_url, timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("llmserve_requests_running"))


def _descriptor(folder: Path) -> Path:
    import protogen

    return protogen.generate_descriptor(folder / "llmserve.pb")


def wait_serving(target: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"llmserve exited with {proc.returncode} before SERVING")
        with grpc.insecure_channel(target) as channel:
            try:
                status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2).status
            except grpc.RpcError:
                status = None
        if status == health_pb2.HealthCheckResponse.SERVING:
            return
        time.sleep(0.2)
    raise RuntimeError(f"llmserve on {target} not SERVING after {timeout} s")
