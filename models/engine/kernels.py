"""Linear-layer kernels chosen by measurement at start-up, per batch-row bucket, cached.

Which CPU linear is faster depends on the machine and on the rows of the product: on a
2-core AMD EPYC (AVX2) oneDNN's packed product beat MKL at every decode batch size, on
a 2-core Xeon (AVX-512, AMX) MKL won at one row and oneDNN at 16. So with
`engine.cpu_linear = "auto"` (the default) an engine on a CPU times every linear of its
model through each candidate kernel at one row count per bucket, and each bucket takes
the faster. Candidates share the precision the weight format sets (fp32: "torch" (MKL
through `F.linear`) and "onednn"; bf16: "torch-bf16" (torch's bf16 linear, oneDNN with
AMX where the CPU has it) and "onednn-bf16"; int8: "torch-int8" (torch's weight-only
`_weight_int8pack_mm`) and "onednn-int8" (oneDNN's fp32 product on the integer weights)),
so the choice changes speed, not results beyond float rounding.

The choice is cached beside the model copy, keyed by what decides it (CPU model and ISA
flags, torch version and CPU capability, model and its linear shapes, dtype, weight
format, thread count): a later start on the same machine reads it instead of measuring.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.engine.config import EngineConfig
from models.engine.packed import (
    PackedLinear,
    RowDispatch,
    check_weight_format,
    onednn_available,
    pack_linears,
    packed_layers,
)

log = logging.getLogger(__name__)

BUCKETS: tuple[tuple[int, int | None, int], ...] = (
    (1, 1, 1), (2, 2, 2), (3, 4, 4), (5, 8, 8), (9, 16, 16), (17, 32, 32), (33, None, 64))
"""(min rows, max rows (None: no bound), rows measured) of each bucket. A forward's rows are
its tokens: the decoding rows of a step, or the tokens of a packed prefill (up to
`prefill_token_budget`; past 64 rows both kernels are bound by arithmetic, and measuring
there would cost a first start seconds)."""

SCHEME = 1
"""Version of the buckets and of the measurement; part of the cache key."""

MARGIN = 0.05
"""torch's linear replaces the packed one only when more than 5% faster: oneDNN gives a row
the same bits whatever shares its batch, and a margin keeps noise from flipping the choice."""

_REPEATS = 3
"""Timed passes per kernel and bucket (the fastest counts: a descheduled OpenMP thread on a
shared machine stalls a pass by a time slice, which says nothing of the kernel)."""

_LAYERS_PER_UNIT = 32
"""Layers timed per unit of the measurement: the engine serves between units, so a unit
stays short (a few tens of ms at small row counts)."""

_ISA_PREFIXES = ("avx", "amx", "fma", "f16c", "sse4")


def kernel_name(packed: bool, weight_format: str = "fp32") -> str:
    return ("onednn" if packed else "torch") + ("" if weight_format == "fp32" else f"-{weight_format}")


@dataclass(frozen=True)
class BucketChoice:
    """The kernel of one range of row counts."""

    min_rows: int
    max_rows: int | None
    """None: no upper bound."""
    kernel: str
    measured_ms: dict[str, float] = field(default_factory=dict)
    """Milliseconds of one pass over every linear of the model at the probe's rows, per
    kernel; empty when the kernel was not measured (configured, cached plans keep theirs)."""


@dataclass(frozen=True)
class KernelPlan:
    """The linear kernel per bucket of an engine on a CPU, and where the choice came from."""

    buckets: tuple[BucketChoice, ...]
    source: str
    """"measured" (at this start), "cache" (an earlier start's measurement), "configured"
    (`engine.cpu_linear` names a kernel), "only" (one kernel available) or "pending"
    (`pending_plan` until the measurement, run between the engine's first steps, is done)."""
    key: dict[str, Any] = field(default_factory=dict)
    """What the choice depends on (machine, torch, model, dtype, threads)."""
    measure_s: float = 0.0
    """Seconds the measurement took (when it was made)."""
    load: float = 0.0
    """1-minute load average of the machine when measured (the engine's own work included)."""
    other_cpu: float = 0.0
    """Share of the machine's CPU time that other processes used while the measurement ran
    (a busy machine blurs the choice)."""

    @classmethod
    def fixed(cls, kernel: str, source: str, key: dict[str, Any] | None = None) -> KernelPlan:
        return cls((BucketChoice(1, None, kernel),), source, key or {})

    def kernel_for(self, rows: int) -> str:
        for b in self.buckets:
            if b.min_rows <= rows and (b.max_rows is None or rows <= b.max_rows):
                return b.kernel
        return self.buckets[-1].kernel

    @property
    def kernels(self) -> set[str]:
        return {b.kernel for b in self.buckets}

    def dispatch_table(self) -> tuple[tuple[bool, ...], bool]:
        """`RowDispatch` arguments: packed or not per row count up to the last bounded bucket."""
        limit = max((b.max_rows or b.min_rows) for b in self.buckets)
        table = tuple(self.kernel_for(max(r, 1)).startswith("onednn") for r in range(limit + 1))
        return table, self.kernel_for(limit + 1).startswith("onednn")

    def describe(self) -> str:
        parts = []
        for b in self.buckets:
            rows = f"{b.min_rows}" if b.max_rows == b.min_rows else f"{b.min_rows}-{b.max_rows or ''}"
            timing = ", ".join(f"{k} {ms:.1f} ms" for k, ms in sorted(b.measured_ms.items()))
            parts.append(f"rows {rows}: {b.kernel}" + (f" ({timing})" if timing else ""))
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "measure_s": self.measure_s, "load": self.load, "other_cpu": self.other_cpu,
                "buckets": [asdict(b) for b in self.buckets]}

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str) -> KernelPlan:
        buckets = tuple(BucketChoice(int(b["min_rows"]), None if b["max_rows"] is None else int(b["max_rows"]),
                                     str(b["kernel"]), {str(k): float(v) for k, v in b["measured_ms"].items()})
                        for b in data["buckets"])
        if not buckets:
            raise ValueError("no buckets")
        return cls(buckets, source, dict(data["key"]), float(data.get("measure_s", 0.0)),
                   float(data.get("load", 0.0)), float(data.get("other_cpu", 0.0)))


def _cpuinfo() -> tuple[str, list[str]]:
    model, flags = platform.processor() or "unknown", []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                if model != "unknown" and flags:
                    break
    except OSError:
        pass
    return model, sorted(f for f in set(flags) if f.startswith(_ISA_PREFIXES))


def _linear_shapes(model: nn.Module) -> str:
    shapes: Counter[str] = Counter()
    for m in model.modules():
        w = getattr(m, "weight", None)
        if isinstance(m, PackedLinear):
            shapes[f"{m.in_features}x{m.out_features}"] += 1
        elif isinstance(w, torch.Tensor) and w.dim() == 2 and (isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D"):
            # transformers' Conv1D keeps its weight as [in, out].
            k, n = (w.shape[0], w.shape[1]) if type(m).__name__ == "Conv1D" else (w.shape[1], w.shape[0])
            shapes[f"{k}x{n}"] += 1
    return ",".join(f"{s}:{c}" for s, c in sorted(shapes.items()))


def choice_key(model: nn.Module, config: EngineConfig, model_name: str) -> dict[str, Any]:
    """Everything the kernel choice depends on; a different value means measuring again."""
    cpu, flags = _cpuinfo()
    params = next(model.parameters(), None)
    return {
        "scheme": SCHEME, "cpu": cpu, "isa": flags, "cores": os.cpu_count(),
        "torch": torch.__version__, "capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(), "model": model_name,
        "architecture": type(model).__name__, "linears": _linear_shapes(model),
        "dtype": str(params.dtype if params is not None else None).removeprefix("torch."),
        "weight_format": config.weight_format,
    }


class KernelCache:
    """Kernel plans of one model, one JSON file per key, in `folder` (beside the model copy)."""

    def __init__(self, folder: Path, model_name: str, max_other_cpu: float = 0.25) -> None:
        self.folder = folder
        self.model_name = model_name
        self.max_other_cpu = max_other_cpu
        """Highest share of the CPU that other processes may have used during a measurement
        that is kept: they stall an OpenMP team's barriers, which favours single-threaded
        kernels: right for that moment, wrong once the machine is quiet. (Not the load
        average: the engine's own serving, between whose steps the measurement runs, counts
        in it, so on a small machine no measurement made while serving would ever be kept.)"""

    def path(self, key: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return self.folder / f"kernels-{digest}.json"

    def read(self, key: dict[str, Any]) -> KernelPlan | None:
        path = self.path(key)
        try:
            plan = KernelPlan.from_json(json.loads(path.read_text()), "cache")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:  # damaged: measure again
            log.warning("ignoring the kernel choice cached in %s: %s", path, exc)
            return None
        return plan if plan.key == key else None

    def write(self, plan: KernelPlan) -> None:
        path = self.path(plan.key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # Written beside and renamed, so a reader never sees half a file.
            fd, tmp = tempfile.mkstemp(prefix=".kernels-", dir=self.folder)
            with os.fdopen(fd, "w") as f:
                json.dump(plan.to_json(), f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except OSError as exc:  # a read-only cache costs a measurement per start, nothing else
            log.warning("could not cache the kernel choice in %s: %s", path, exc)


def _cpu_busy_s() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    ticks = [int(v) for v in fields[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def pending_plan(weight_format: str, key: dict[str, Any]) -> KernelPlan:
    """What serves until the measurement is done: oneDNN for every batch size, except int8's
    few rows, where torch's int8 kernel was 2x faster than oneDNN on both CPU kinds measured
    (AVX2 EPYC, AVX-512 Xeon; `bench/kernels.md`)."""
    if weight_format != "int8":
        return KernelPlan.fixed(kernel_name(True, weight_format), "pending", key)
    return KernelPlan((BucketChoice(1, 8, kernel_name(False, weight_format)),
                       BucketChoice(9, None, kernel_name(True, weight_format))), "pending", key)


class OtherProcessesCpu:
    """CPU time other processes take while this one works: the machine's busy time less
    this process's own (every thread of it), summed over the intervals `start`..`stop`."""

    def __init__(self) -> None:
        self._others = self._wall = 0.0
        self._mark: tuple[float, float, float] | None = None

    def start(self) -> None:
        busy = _cpu_busy_s()
        self._mark = None if busy is None else (busy, time.process_time(), time.perf_counter())

    def stop(self) -> None:
        if self._mark is None or (busy := _cpu_busy_s()) is None:
            return
        busy0, own0, t0 = self._mark
        self._others += max(0.0, (busy - busy0) - (time.process_time() - own0))
        self._wall += time.perf_counter() - t0
        self._mark = None

    def share(self) -> float:
        """Their share of all cores' time over the intervals (0 where it cannot be read)."""
        return self._others / (self._wall * (os.cpu_count() or 1)) if self._wall else 0.0


class Measurement:
    """Times every packed layer of a model through both paths per bucket, in small units
    (`units()`: a generator, so the engine runs them between its steps and keeps serving
    meanwhile), then puts the choice in force, caches it and returns it. The layers must
    hold both paths' weights while it runs."""

    def __init__(self, model: nn.Module, dispatch: RowDispatch, weight_format: str, key: dict[str, Any],
                 cache: KernelCache | None) -> None:
        self.layers = packed_layers(model)
        self.dispatch = dispatch
        self.weight_format = weight_format
        self.key = key
        self.cache = cache
        self._others = OtherProcessesCpu()

    def run(self) -> KernelPlan:
        """All units at once (a benchmark, a test, an engine not serving yet)."""
        units = self.units()
        while True:
            try:
                next(units)
            except StopIteration as done:
                return done.value

    def units(self) -> Iterator[None]:
        spent = 0.0
        choices: list[BucketChoice] = []
        for lo, hi, rows in BUCKETS:
            # Each layer's fastest call per path, summed: a pass walks every weight, so each
            # is cold as in a step, and a stall on a busy machine spoils one call, not the sum.
            best = [[math.inf, math.inf] for _ in self.layers]
            xs = self._inputs(rows)
            spent += self._timed_unit(self._warm_up, xs)
            yield
            for r in range(_REPEATS):
                for start in range(0, len(self.layers), _LAYERS_PER_UNIT):
                    spent += self._timed_unit(self._pass, xs, best, r, start)
                    yield
            packed_s, plain_s = sum(b[True] for b in best), sum(b[False] for b in best)
            plain_wins = plain_s < (1 - MARGIN) * packed_s
            choices.append(BucketChoice(lo, hi, kernel_name(not plain_wins, self.weight_format),
                                        {kernel_name(True, self.weight_format): round(1e3 * packed_s, 3),
                                         kernel_name(False, self.weight_format): round(1e3 * plain_s, 3)}))
        plan = KernelPlan(tuple(choices), "measured", self.key, round(spent, 3), os.getloadavg()[0],
                          round(self._others.share(), 3))
        self.dispatch.set(*plan.dispatch_table())
        for layer in self.layers:  # the copies of a path no bucket takes are dropped
            layer.keep(packed=self.dispatch.uses(True), plain=self.dispatch.uses(False))
        if self.cache is not None and plan.other_cpu > self.cache.max_other_cpu:
            log.warning("kernel choice measured while other processes used %.0f%% of the CPU: used, not cached",
                        100 * plan.other_cpu)
        elif self.cache is not None:
            self.cache.write(plan)
        _log_plan(plan)
        return plan

    def _inputs(self, rows: int) -> dict[int, torch.Tensor]:
        gen = torch.Generator().manual_seed(rows)
        dtype = self.layers[0].weight.dtype
        return {k: torch.randn(rows, k, generator=gen).to(dtype) for k in {m.in_features for m in self.layers}}

    @torch.inference_mode()
    def _timed_unit(self, fn, *args) -> float:
        # The engine serves between units: its own choice is back in force after each.
        saved = self.dispatch.state()
        self._others.start()
        t0 = time.perf_counter()
        try:
            fn(*args)
        finally:
            self.dispatch.set(*saved)
            self._others.stop()
        return time.perf_counter() - t0

    def _warm_up(self, xs: dict[int, torch.Tensor]) -> None:
        # oneDNN builds a primitive on the first call of a shape: one untimed call per shape.
        for m in {(m.in_features, m.out_features): m for m in self.layers}.values():
            for packed in (True, False):
                self.dispatch.set((), packed)
                m(xs[m.in_features])

    def _pass(self, xs: dict[int, torch.Tensor], best: list[list[float]], r: int, start: int) -> None:
        for i in range(start, min(start + _LAYERS_PER_UNIT, len(self.layers))):
            m = self.layers[i]
            for packed in ((True, False) if (i + r) % 2 else (False, True)):
                self.dispatch.set((), packed)
                t0 = time.perf_counter()
                m(xs[m.in_features])
                best[i][packed] = min(best[i][packed], time.perf_counter() - t0)


def _log_plan(plan: KernelPlan) -> None:
    log.info("linear kernels of %s (%s%s): %s", plan.key.get("model") or plan.key.get("architecture"), plan.source,
             f" in {plan.measure_s:.2f} s of measurement, 1-minute load {plan.load:.1f}"
             if plan.source == "measured" else "", plan.describe())


def install_linear_kernels(model: nn.Module, config: EngineConfig, device: torch.device,
                           cache: KernelCache | None = None, plan: KernelPlan | None = None,
                           model_name: str = "") -> tuple[KernelPlan | None, Measurement | None]:
    """Put the linear kernels of `plan` (else the configured one, else the cached choice)
    into `model` on a CPU. Without any, oneDNN serves every batch size (source "pending")
    and the returned `Measurement` chooses, for the engine to run between its steps.
    Runs on the engine's thread, after its thread count is set: the measurement must see
    the threads the engine will run with. Returns (plan, measurement); (None, None) off the CPU."""
    fmt = config.weight_format
    check_weight_format(device, fmt)
    if device.type != "cpu":
        return None, None
    if not onednn_available():
        return KernelPlan.fixed(kernel_name(False, fmt), "only"), None
    key = choice_key(model, config, cache.model_name if cache else model_name)
    if plan is None and config.cpu_linear != "auto":
        plan = KernelPlan.fixed(kernel_name(config.cpu_linear == "onednn", fmt), "configured", key)
    if plan is None and cache is not None:
        plan = cache.read(key)
    if plan is not None and plan.kernels == {"torch"} and not packed_layers(model):
        _log_plan(plan)
        return plan, None  # fp32 through torch's own linear: the model stays as it is
    compute_dtype = None if fmt == "fp32" else torch.bfloat16
    pending = plan is None
    if pending:
        plan = pending_plan(fmt, key)
    dispatch = RowDispatch(*plan.dispatch_table())
    pack_linears(model, compute_dtype, dispatch, int8=fmt == "int8")
    layers = packed_layers(model)
    for layer in layers:  # layers packed by an earlier engine on this model follow this one
        layer.configure(dispatch, compute_dtype, int8=fmt == "int8")
        if pending:
            layer.keep(packed=True, plain=True)  # both paths' weights, for the measurement
    if not layers:
        return KernelPlan.fixed(kernel_name(False, fmt), "only", key), None
    if not pending:
        _log_plan(plan)
    return plan, Measurement(model, dispatch, fmt, key, cache) if pending else None
