"""Weight formats of the engine (EngineConfig.weight_format, e.g. fp32 vs bf16):
which exist, and the greedy-token agreement of one format with another."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Sequence

FALLBACK_FORMATS = ("fp32", "bf16")


def formats() -> tuple[str | None, tuple[str, ...], str]:
    """(default format, other formats to measure, reason when the field does not exist)."""
    try:
        from models.engine.config import EngineConfig
    except ImportError as exc:
        return None, (), f"models.engine.config not importable: {exc}"
    fields = {f.name: f for f in dataclasses.fields(EngineConfig)}
    if "weight_format" not in fields:
        return None, (), "EngineConfig has no weight_format field"
    default = EngineConfig().weight_format
    hints = typing.get_type_hints(EngineConfig)
    choices = typing.get_args(hints.get("weight_format")) if typing.get_origin(
        hints.get("weight_format")) is typing.Literal else ()
    choices = tuple(str(c) for c in choices) or FALLBACK_FORMATS
    return str(default), tuple(c for c in choices if c != default), ""


def refused(fmt: str) -> str | None:
    """Why the engine refuses `fmt` on this machine's CPU, or None."""
    import torch

    from models.engine.packed import check_weight_format

    try:
        check_weight_format(torch.device("cpu"), fmt)
    except ValueError as exc:
        return str(exc)
    return None


def agreement(reference: Sequence[Sequence[int]], other: Sequence[Sequence[int]], n: int) -> dict[str, Any]:
    """Share of the first `n` positions where both token sequences hold the same token
    (a position only one of them reached counts as a mismatch; both ended counts as neither)."""
    same = counted = 0
    prefixes, per_prompt = [], []
    for a, b in zip(reference, other):
        a, b = list(a)[:n], list(b)[:n]
        positions = max(len(a), len(b))
        matches = sum(1 for x, y in zip(a, b) if x == y)
        prefix = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        same += matches
        counted += positions
        prefixes.append(prefix)
        per_prompt.append(matches / positions if positions else 1.0)
    return {"tokens_compared": counted, "identical_share": same / counted if counted else None,
            "per_prompt": per_prompt, "common_prefix_lengths": prefixes,
            "mean_common_prefix": sum(prefixes) / len(prefixes) if prefixes else None}
