"""Per-stream timing records and the aggregate metrics computed from them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence


@dataclass
class StreamRecord:
    """What one client saw of one streamed request (times from time.perf_counter())."""

    t_start: float
    prompt_tokens_target: int
    max_new_tokens: int
    delta_times: list[float] = field(default_factory=list)
    """Arrival time of every delta event that carried at least one token."""
    delta_tokens: int = 0
    token_ids: list[int] = field(default_factory=list)
    """Token ids of the delta events, in order (used by the greedy agreement check)."""
    """Token ids counted over the delta events (cross-check of usage)."""
    t_end: float | None = None
    completion_tokens: int = 0
    """From the final event's usage: the tokens actually produced."""
    prompt_tokens: int = 0
    finish_reason: str = ""
    error: str = ""

    @property
    def ttft(self) -> float | None:
        return self.delta_times[0] - self.t_start if self.delta_times else None

    @property
    def gaps(self) -> list[float]:
        d = self.delta_times
        return [b - a for a, b in zip(d, d[1:])]

    @property
    def decode_tok_s(self) -> float | None:
        """Tokens after the first / time from first to last token: the stream's decode speed."""
        d = self.delta_times
        if len(d) < 2 or d[-1] <= d[0]:
            return None
        return (max(self.completion_tokens, self.delta_tokens) - 1) / (d[-1] - d[0])

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("delta_times")
        out.pop("token_ids")
        out["ttft_s"] = self.ttft
        out["decode_tok_s"] = self.decode_tok_s
        return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile, q in [0, 100]; None for no values."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def ms(value: float | None) -> float | None:
    return None if value is None else value * 1000.0


def summarize(records: Sequence[StreamRecord]) -> dict[str, Any]:
    """Aggregate tok/s (completion tokens / first start to last finish), TTFT and inter-token latency."""
    ok = [r for r in records if not r.error and r.t_end is not None]
    tokens = sum(r.completion_tokens for r in ok)
    t0 = min((r.t_start for r in records), default=0.0)
    t1 = max((r.t_end for r in ok), default=t0)
    wall = t1 - t0
    ttfts = [r.ttft for r in ok if r.ttft is not None]
    gaps = [g for r in ok for g in r.gaps]
    decode = [r.decode_tok_s for r in ok if r.decode_tok_s is not None]
    return {
        "requests": len(records),
        "errors": len(records) - len(ok),
        "error_samples": sorted({r.error for r in records if r.error})[:3],
        "completion_tokens": tokens,
        "requested_tokens": sum(r.max_new_tokens for r in records),
        "finished_by_length": sum(1 for r in ok if r.finish_reason == "length"),
        "token_count_mismatches": sum(1 for r in ok if r.delta_tokens and r.delta_tokens != r.completion_tokens),
        "wall_s": wall,
        "tok_s": tokens / wall if wall > 0 else None,
        "ttft_p50_ms": ms(percentile(ttfts, 50)),
        "ttft_p99_ms": ms(percentile(ttfts, 99)),
        "itl_p50_ms": ms(percentile(gaps, 50)),
        "itl_p99_ms": ms(percentile(gaps, 99)),
        "stream_decode_tok_s_p50": percentile(decode, 50),
    }
