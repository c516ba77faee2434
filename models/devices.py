"""Device and memory facts for health and capacity reports (CUDA when present, host always)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

GB = 1e9


@dataclass(frozen=True)
class MemoryInfo:
    name: str
    free_bytes: int
    total_bytes: int


def host_memory() -> MemoryInfo:
    """System memory from /proc/meminfo (MemAvailable counts as free)."""
    fields: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, value = line.split(":", 1)
                fields[key] = int(value.split()[0]) * 1024
    except OSError:
        return MemoryInfo("host", 0, 0)
    return MemoryInfo("host", fields.get("MemAvailable", 0), fields.get("MemTotal", 0))


def gpu_memory() -> list[MemoryInfo]:
    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        out.append(MemoryInfo(f"gpu_{i}", int(free), int(total)))
    return out
