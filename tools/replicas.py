"""Several llmserve replicas behind one Envoy, on PostgreSQL and Redis, for the replica
tests and the two-replica benchmark.

Two layouts, one interface (`Cluster`):
- `netns_cluster`: each host in a network namespace of its own (database host running a
  private PostgreSQL and Redis, one per replica, one for Envoy), joined by veth pairs to a
  bridge in a hub namespace, with one veth into this namespace for the client. Traffic stays
  on those namespaces; needs root and `ip netns`.
- `loopback_cluster`: processes on loopback ports, on a PostgreSQL and Redis given by URL.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import envoy_config  # noqa: E402
from run import replica_env  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
GRPC_PORT = 50051


@dataclass
class Replica:
    name: str
    host: str
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def kill(self) -> None:
        """SIGKILL: the process dies mid-call, as on a crash."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


@dataclass
class Cluster:
    replicas: list[Replica]
    envoy: envoy_config.Envoy
    database_url: str
    redis_url: str
    layout: str
    folder: Path
    _cleanups: list = field(default_factory=list, repr=False)

    @property
    def base_url(self) -> str:
        return self.envoy.base_url

    @property
    def grpc_target(self) -> str:
        return self.envoy.grpc_target

    def replica(self, name: str) -> Replica:
        return next(r for r in self.replicas if r.name == name)

    def healthy_hosts(self) -> dict[str, str]:
        return envoy_config.hosts_health(self.envoy)


def _serving(target: str, timeout: float = 1.0) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def _wait(check, what: str, timeout: float, logs: list[Path] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tails = "".join(f"\n--- {p}:\n" + p.read_text(errors="replace")[-3000:] for p in logs if p.exists())
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s{tails}")


def _replica_config(folder: Path, host: str, port: int, model_dir: Path | None, database_url: str,
                    redis_url: str, extra: str) -> Path:
    config = folder / "llmserve.toml"
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    lines = [f'host = "{host}"', f"port = {port}", f'data_dir = "{data}"', f'database_url = "{database_url}"',
             f'redis_url = "{redis_url}"', "grace_period_s = 1.0", "metrics.port = 0"]
    if model_dir is not None:
        lines.append('default_model = "tiny"')
    text = "\n".join(lines) + "\n" + extra + "\n"
    if model_dir is not None:
        text += f'[[models]]\nname = "tiny"\nsource = "huggingface"\npath = "{model_dir}"\ndevice = "cpu"\n'
    config.write_text(text)
    return config


def _start_replicas(prefix: list[list[str]], hosts: list[str], ports: list[int], folder: Path,
                    model_dir: Path | None, database_url: str, redis_url: str, extra: str,
                    env: dict[str, str], ready_timeout: float) -> list[Replica]:
    replicas = []
    for i, (wrap, host, port) in enumerate(zip(prefix, hosts, ports)):
        own = folder / f"replica-{i}"
        own.mkdir(parents=True, exist_ok=True)
        if model_dir is None:  # the real model: share the converted copy instead of converting again
            (own / "data").mkdir(exist_ok=True)
            models = own / "data" / "models"
            if not models.exists():
                models.symlink_to(ROOT / "data" / "models", target_is_directory=True)
        config = _replica_config(own, host, port, model_dir, database_url, redis_url, extra)
        log_path = own / "server.log"
        child_env = {**replica_env(i, len(hosts)), **env, "PYTHONPATH": str(ROOT)}
        with open(log_path, "wb") as log:
            process = subprocess.Popen([*wrap, sys.executable, "-m", "server.main", "--config", str(config)],
                                       cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=child_env)
        replicas.append(Replica(f"replica-{i}", host, port, process, log_path))
    for r in replicas:
        _wait(lambda r=r: r.process.poll() is None and _serving(r.target), f"replica {r.name}", ready_timeout,
              [r.log_path])
    return replicas


def _stop(cluster_parts: list) -> None:
    for cleanup in reversed(cluster_parts):
        with contextlib.suppress(Exception):
            cleanup()


def _terminate(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _envoy(backends: list[tuple[str, int]], descriptor: Path, folder: Path, *, http_host: str, admin_host: str,
           http_port: int, admin_port: int, wrap: list[str]) -> envoy_config.Envoy:
    config = envoy_config.render(0, http_port, admin_port, descriptor, folder / "envoy.yaml", http_host=http_host,
                                 backends=backends, admin_host=admin_host)
    return envoy_config.start_envoy(config, http_port, admin_port, log_path=folder / "envoy.log",
                                    extra_args=["--base-id", str(random.randrange(1, 1 << 20))] if wrap else None,
                                    prefix=wrap, host=http_host, admin_host=admin_host)


def _wait_envoy_sees(envoy: envoy_config.Envoy, count: int, timeout: float = 30.0) -> None:
    def all_healthy() -> bool:
        return all(len([v for v in envoy_config.hosts_health(envoy, c).values() if v == "healthy"]) == count
                   for c in envoy_config.CLUSTERS)
    _wait(all_healthy, "Envoy's health checks of every replica", timeout, [envoy.log_path])


@contextlib.contextmanager
def loopback_cluster(count: int, descriptor: Path, database_url: str, redis_url: str, *,
                     model_dir: Path | None = None, extra: str = "", env: dict[str, str] | None = None,
                     ready_timeout: float = 120.0, folder: Path | None = None) -> Iterator[Cluster]:
    """`count` replicas on loopback ports behind Envoy (also on loopback)."""
    folder = folder or Path(tempfile.mkdtemp(prefix="llmserve-replicas-"))
    parts: list = []
    try:
        ports = [envoy_config.free_port() for _ in range(count)]
        replicas = _start_replicas([[] for _ in range(count)], ["127.0.0.1"] * count, ports, folder, model_dir,
                                   database_url, redis_url, extra, env or {}, ready_timeout)
        parts += [lambda r=r: _terminate(r.process) for r in replicas]
        envoy = _envoy([(r.host, r.port) for r in replicas], descriptor, folder, http_host="127.0.0.1",
                       admin_host="127.0.0.1", http_port=envoy_config.free_port(),
                       admin_port=envoy_config.free_port(), wrap=[])
        parts.append(lambda: envoy_config.stop_envoy(envoy))
        _wait_envoy_sees(envoy, count)
        yield Cluster(replicas, envoy, database_url, redis_url, "loopback", folder)
    finally:
        _stop(parts)


# ---- network namespaces ---------------------------------------------------------------

def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def netns_available() -> str:
    """Empty when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "not root"
    if not shutil.which("ip") or not (PG_BIN / "postgres").exists() or not shutil.which("redis-server"):
        return "ip, PostgreSQL 15 or redis-server missing"
    name = f"llmsprobe{os.getpid()}"
    probe = _ip("netns", "add", name, check=False)
    if probe.returncode != 0:
        return f"ip netns add failed: {probe.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return ""


class _Namespaces:
    """A hub namespace with a bridge, and hosts joined to it by veth pairs."""

    def __init__(self) -> None:
        self.tag = f"{os.getpid() % 10000}{random.randrange(100):02d}"
        self.subnet = f"10.{random.randrange(200, 250)}.{random.randrange(256)}"
        self.hub = f"llms{self.tag}hub"
        self.names: list[str] = []
        self.root_link: str | None = None
        _ip("netns", "add", self.hub)
        self.names.append(self.hub)
        self.exec(self.hub, "ip", "link", "add", "br0", "type", "bridge")
        self.exec(self.hub, "ip", "link", "set", "br0", "up")
        self.exec(self.hub, "ip", "link", "set", "lo", "up")

    def exec(self, ns: str, *argv: str) -> None:
        subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True, text=True)

    def wrap(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def host(self, label: str, index: int) -> tuple[str, str]:
        """A namespace joined to the bridge as <subnet>.<index>; returns (namespace, address)."""
        ns = f"llms{self.tag}{label}"
        _ip("netns", "add", ns)
        self.names.append(ns)
        inside, outside = f"v{self.tag}{index}a", f"v{self.tag}{index}b"
        _ip("link", "add", inside, "type", "veth", "peer", "name", outside)
        _ip("link", "set", inside, "netns", ns)
        _ip("link", "set", outside, "netns", self.hub)
        self.exec(self.hub, "ip", "link", "set", outside, "master", "br0")
        self.exec(self.hub, "ip", "link", "set", outside, "up")
        address = f"{self.subnet}.{index}"
        self.exec(ns, "ip", "addr", "add", f"{address}/24", "dev", inside)
        self.exec(ns, "ip", "link", "set", inside, "up")
        self.exec(ns, "ip", "link", "set", "lo", "up")
        return ns, address

    def client(self, index: int) -> str:
        """This namespace joined to the bridge, so the caller can reach the hosts."""
        inside, outside = f"v{self.tag}{index}a", f"v{self.tag}{index}b"
        _ip("link", "add", inside, "type", "veth", "peer", "name", outside)
        self.root_link = inside
        _ip("link", "set", outside, "netns", self.hub)
        self.exec(self.hub, "ip", "link", "set", outside, "master", "br0")
        self.exec(self.hub, "ip", "link", "set", outside, "up")
        address = f"{self.subnet}.{index}"
        _ip("addr", "add", f"{address}/24", "dev", inside)
        _ip("link", "set", inside, "up")
        return address

    def remove(self) -> None:
        if self.root_link:
            _ip("link", "del", self.root_link, check=False)
        for ns in reversed(self.names):
            _ip("netns", "del", ns, check=False)


def _start_database_host(nets: _Namespaces, ns: str, address: str, folder: Path, parts: list) -> tuple[str, str]:
    """A private PostgreSQL and Redis listening on `address` inside `ns`; returns their URLs."""
    # Its own folder: PostgreSQL runs as `postgres`, which may not enter the caller's.
    home = Path(tempfile.mkdtemp(prefix="llmserve-pg-"))
    parts.append(lambda: shutil.rmtree(home, ignore_errors=True))
    shutil.chown(home, "postgres", "postgres")
    pgdata = home / "pgdata"
    subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(pgdata), "-A", "trust",
                    "-U", "postgres", "--no-sync"], check=True, capture_output=True)
    with open(pgdata / "pg_hba.conf", "a") as f:
        f.write(f"host all all {nets.subnet}.0/24 trust\n")
    folder.mkdir(parents=True, exist_ok=True)
    pg_log = folder / "postgres.log"
    pg = subprocess.Popen([*nets.wrap(ns), "runuser", "-u", "postgres", "--", str(PG_BIN / "postgres"), "-D",
                           str(pgdata), "-c", f"listen_addresses={address}", "-c", "port=5432", "-c",
                           f"unix_socket_directories={pgdata}", "-c", "fsync=off", "-c", "max_connections=200"],
                          stdout=open(pg_log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    parts.append(lambda: _terminate(pg))
    redis = subprocess.Popen([*nets.wrap(ns), "redis-server", "--bind", address, "--port", "6379", "--save", "",
                              "--appendonly", "no", "--protected-mode", "no"],
                             stdout=open(folder / "redis.log", "wb"), stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
    parts.append(lambda: _terminate(redis))
    url = f"postgresql+psycopg://postgres@{address}:5432/postgres"

    def pg_up() -> bool:
        import psycopg

        try:
            psycopg.connect(f"host={address} port=5432 user=postgres dbname=postgres", connect_timeout=1).close()
            return True
        except psycopg.Error:
            return False
    _wait(pg_up, "PostgreSQL in its namespace", 60, [pg_log])
    return url, f"redis://{address}:6379/0"


@contextlib.contextmanager
def netns_cluster(count: int, descriptor: Path, *, model_dir: Path | None = None, extra: str = "",
                  env: dict[str, str] | None = None, ready_timeout: float = 120.0,
                  folder: Path | None = None) -> Iterator[Cluster]:
    """`count` replicas, Envoy, PostgreSQL and Redis, each host in its own namespace."""
    folder = folder or Path(tempfile.mkdtemp(prefix="llmserve-netns-"))
    os.chmod(folder, 0o755)
    nets = _Namespaces()
    parts: list = [nets.remove]
    try:
        nets.client(254)
        db_ns, db_address = nets.host("db", 2)
        database_url, redis_url = _start_database_host(nets, db_ns, db_address, folder / "db", parts)
        hosts = [nets.host(f"r{i}", 10 + i) for i in range(count)]
        replicas = _start_replicas([nets.wrap(ns) for ns, _ in hosts], [a for _, a in hosts], [GRPC_PORT] * count,
                                   folder, model_dir, database_url, redis_url, extra, env or {}, ready_timeout)
        parts += [lambda r=r: _terminate(r.process) for r in replicas]
        lb_ns, lb_address = nets.host("lb", 3)
        envoy = _envoy([(r.host, r.port) for r in replicas], descriptor, folder, http_host=lb_address,
                       admin_host=lb_address, http_port=8080, admin_port=9901, wrap=nets.wrap(lb_ns))
        parts.append(lambda: envoy_config.stop_envoy(envoy))
        _wait_envoy_sees(envoy, count)
        yield Cluster(replicas, envoy, database_url, redis_url, "netns", folder, parts)
    finally:
        _stop(parts)
