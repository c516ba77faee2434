"""Machine facts for the results (CPU, cores, versions, date) and the idle check."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import time
from typing import Any

LOAD_WARN = 0.5


def load_average() -> float:
    return os.getloadavg()[0]


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields), idle


def busy_share(seconds: float = 1.0) -> float:
    """Share of all cores busy over `seconds` (0..1), measured before our work starts."""
    total0, idle0 = _cpu_times()
    time.sleep(seconds)
    total1, idle1 = _cpu_times()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def _proc_ticks() -> dict[int, tuple[int, str]]:
    ticks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        rest = raw[raw.rindex(")") + 2:].split()
        name = cmd or raw[raw.index("(") + 1:raw.rindex(")")]
        ticks[int(entry)] = (int(rest[11]) + int(rest[12]), name)
    return ticks


def busiest_processes(seconds: float = 1.0, n: int = 5) -> list[str]:
    """Processes using >= 5% of a core over `seconds` (from /proc), to explain a busy machine."""
    hz = os.sysconf("SC_CLK_TCK")
    before = _proc_ticks()
    time.sleep(seconds)
    after = _proc_ticks()
    me = os.getpid()
    use = sorted(((t - before[pid][0]) / hz / seconds, pid, name) for pid, (t, name) in after.items()
                 if pid in before and pid != me)
    return [f"{name[:70]} (pid {pid}, {100 * share:.0f}% of a core)" for share, pid, name in reversed(use)
            if share >= 0.05][:n]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [w for w in wanted if w in have]
    except OSError:
        pass
    return []


def mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def facts() -> dict[str, Any]:
    import torch
    import transformers

    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": mem_total_gib(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
    }


def idle_check() -> dict[str, Any]:
    """Load average and a 1 s busy sample; `warning` is set when the machine is not idle."""
    load1 = load_average()
    busy = busy_share()
    out: dict[str, Any] = {"load_1min": load1, "busy_share_1s": busy, "warning": ""}
    if load1 > LOAD_WARN:
        out["warning"] = (f"1-minute load average {load1:.2f} > {LOAD_WARN}: the machine is not idle, "
                          "numbers are not representative")
        out["busiest_processes"] = busiest_processes()
    return out
