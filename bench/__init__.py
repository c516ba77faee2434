"""Benchmark harness of llmserve: `python -m bench.run` (or `make bench`).

Measures HF `generate` baselines (serial and static batches), llama.cpp at batch 1
and llmserve itself over gRPC and REST-SSE (through Envoy) under concurrent,
staggered streaming clients; writes bench/results.md and bench/results.json.
Benchmarks are not tests: nothing here is collected by pytest.
"""

import importlib.util as _util
import sys as _sys
from pathlib import Path as _Path

ROOT = _Path(__file__).resolve().parent.parent
# The generated stubs live in clients/python; `make install` makes them importable
# (editable install). Without it, fall back to the source folders.
SOURCE_PATHS = [str(ROOT), str(ROOT / "clients" / "python")]
if _util.find_spec("llmserve") is None:
    _sys.path[:0] = [p for p in SOURCE_PATHS if p not in _sys.path]
