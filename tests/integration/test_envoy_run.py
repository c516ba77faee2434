"""tools/run.py (what `make run` calls): starts the server and Envoy, says
"ready" once the model serves, answers REST through Envoy, and stops both
cleanly on SIGINT (Ctrl-C) and SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import httpx

import envoy_config

ROOT = Path(__file__).resolve().parents[2]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_run_serves_rest_and_stops_on_ctrl_c(tmp_path: Path, tiny_model_dir: Path, descriptor: Path):
    # SIGINT (Ctrl-C in `make run`); SIGTERM takes the same handler.
    stop_signal = signal.SIGINT
    config = tmp_path / "llmserve.toml"
    config.write_text(f'default_model = "tiny"\ndata_dir = "{tmp_path}"\ngrace_period_s = 1.0\n'
                      f'[[models]]\nname = "tiny"\nsource = "huggingface"\npath = "{tiny_model_dir}"\ndevice = "cpu"\n')
    grpc_port, http_port, admin_port = (envoy_config.free_port() for _ in range(3))
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "tools" / "run.py"), "--grpc-port", str(grpc_port), "--http-port", str(http_port),
        "--admin-port", str(admin_port), "--http-host", "127.0.0.1", "--descriptor", str(descriptor),
        # Not run.py's flags: passed through to `python -m server.main`.
        "--config", str(config), "--host", "127.0.0.1",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output: list[str] = []
    try:
        async def until_ready() -> None:
            while line := (await process.stdout.readline()).decode():
                output.append(line)
                if line.strip() == "ready":
                    return
            raise AssertionError("run.py ended before ready:\n" + "".join(output))

        await asyncio.wait_for(until_ready(), 120)
        text = "".join(output)
        assert f"127.0.0.1:{http_port}" in text and f":{grpc_port}" in text  # gRPC, REST and page addresses
        assert "web page:" in text

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=60) as http:
            health = await http.get("/health")
            assert health.status_code == 200 and health.json()["status"] == "ok", health.text
            assert health.json()["model"] == "tiny"
            page = await http.get("/", headers={"accept": "text/html"})
            assert "<title>llmserve</title>" in page.text
            completion = await http.post("/completion", json={"prompt": "Hi", "max_new_tokens": 3})
            assert completion.status_code == 200 and completion.json()["model"] == "tiny"

        process.send_signal(stop_signal)
        rest, _ = await asyncio.wait_for(process.communicate(), 60)
        output.append(rest.decode())
        assert process.returncode == 0, "".join(output)
        assert "stopped" in "".join(output)
        for port in (grpc_port, http_port, admin_port):
            assert not _port_open(port), f"port {port} still open after run.py exited"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
