"""Baselines on plain Hugging Face `generate` (fp32, same model and sampling as the server):
A = serial, one request after another; B = one static batch of 16 or 32 rows, left padded."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import torch

from bench.stats import StreamRecord, summarize
from bench.workload import RequestSpec

ROOT = Path(__file__).resolve().parent.parent


def load_embedded() -> Any:
    """The embedded SmolLM2-135M as the server loads it (models.loading.load_model)."""
    from models.loading import load_model
    from models.registry import default_specs

    spec = next(s for s in default_specs() if s.name == "smollm2")
    return load_model(spec, ROOT / "data" / "models")


class _TimingStreamer:
    """A generate() streamer that only timestamps each new token (batch 1)."""

    def __init__(self, record: StreamRecord) -> None:
        self._record = record
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # the first put is the prompt
            self._prompt_seen = True
            return
        self._record.delta_times.append(time.perf_counter())
        self._record.delta_tokens += int(value.numel())

    def end(self) -> None:
        pass


def _sampling_kwargs(sampling: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    return {**sampling, "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None
            else tokenizer.eos_token_id}


@torch.inference_mode()
def warmup(lm: Any) -> None:
    ids = lm.tokenizer("Hello there", return_tensors="pt")
    lm.model.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=lm.tokenizer.eos_token_id)


@torch.inference_mode()
def serial(lm: Any, requests: Sequence[RequestSpec], sampling: dict[str, Any]) -> dict[str, Any]:
    """Baseline A: each request alone through generate(), exactly max_new_tokens each (EOS suppressed)."""
    tok, model = lm.tokenizer, lm.model
    kwargs = _sampling_kwargs(sampling, tok)
    records = []
    for req in requests:
        enc = tok(req.prompt, return_tensors="pt", add_special_tokens=True)
        rec = StreamRecord(t_start=time.perf_counter(), prompt_tokens_target=req.prompt_tokens,
                           max_new_tokens=req.max_new_tokens)
        torch.manual_seed(req.seed)
        out = model.generate(**enc, max_new_tokens=req.max_new_tokens, min_new_tokens=req.max_new_tokens,
                             streamer=_TimingStreamer(rec), **kwargs)
        rec.t_end = time.perf_counter()
        rec.prompt_tokens = int(enc["input_ids"].shape[1])
        rec.completion_tokens = int(out.shape[1] - enc["input_ids"].shape[1])
        rec.finish_reason = "length"
        records.append(rec)
    return {"summary": summarize(records), "requests": [r.as_dict() for r in records]}


@torch.inference_mode()
def static_batch(lm: Any, requests: Sequence[RequestSpec], new_tokens: int, sampling: dict[str, Any]) -> dict[str, Any]:
    """Baseline B: all prompts in one left-padded batch, every row generating `new_tokens`.

    `tok_s` counts every generated token (rows x new_tokens): static batching at its best,
    with equal output lengths. `useful_tok_s` counts only min(request's max_new_tokens,
    new_tokens) per row, what the same mixed requests would actually have needed.
    """
    tok, model = lm.tokenizer, lm.model
    old_side = tok.padding_side
    tok.padding_side = "left"
    try:
        enc = tok([r.prompt for r in requests], return_tensors="pt", padding=True, add_special_tokens=True)
    finally:
        tok.padding_side = old_side
    torch.manual_seed(requests[0].seed)
    t0 = time.perf_counter()
    out = model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                         **_sampling_kwargs(sampling, tok))
    wall = time.perf_counter() - t0
    rows, padded = enc["input_ids"].shape
    generated = int(out.shape[1] - padded) * rows
    useful = sum(min(r.max_new_tokens, new_tokens) for r in requests)
    return {"summary": {
        "rows": rows, "padded_prompt_tokens": int(padded),
        "prompt_tokens": int(enc["attention_mask"].sum()), "new_tokens_per_row": new_tokens,
        "completion_tokens": generated, "wall_s": wall, "tok_s": generated / wall,
        "useful_tokens": useful, "useful_tok_s": useful / wall,
    }}


def _batch_summary(kind: str, requests: Sequence[RequestSpec], new_tokens: int, generated: int,
                   wall: float) -> dict[str, Any]:
    return {"summary": {"kind": kind, "rows": len(requests), "new_tokens_per_row": new_tokens,
                        "completion_tokens": generated, "wall_s": wall, "tok_s": generated / wall}}


@torch.inference_mode()
def continuous_batch(lm: Any, requests: Sequence[RequestSpec], new_tokens: int) -> dict[str, Any]:
    """transformers' own continuous batching (`generate_batch`, paged KV cache): every
    prompt submitted at once, greedy, up to `new_tokens` each (EOS disabled)."""
    from transformers import GenerationConfig

    tok = lm.tokenizer
    inputs = [tok(r.prompt, add_special_tokens=True)["input_ids"] for r in requests]
    cfg = GenerationConfig(max_new_tokens=new_tokens, do_sample=False, eos_token_id=-1,
                           pad_token_id=tok.eos_token_id)
    lm.model.generate_batch(inputs=inputs[:2], generation_config=cfg)  # its own warm-up
    t0 = time.perf_counter()
    out = lm.model.generate_batch(inputs=inputs, generation_config=cfg)
    wall = time.perf_counter() - t0
    generated = sum(len(o.generated_tokens) for o in out.values())
    return _batch_summary("transformers generate_batch", requests, new_tokens, generated, wall)


def engine_batch(lm: Any, requests: Sequence[RequestSpec], new_tokens: int,
                 cpu_linear: str = "onednn") -> dict[str, Any]:
    """The same prompts through llmserve's engine in this process (slot KV cache), all
    submitted at once, greedy, `new_tokens` each unless EOS comes first. With
    cpu_linear="torch" the products run on the same kernels as transformers', so only
    the KV cache and scheduling differ; "onednn" packs the model's linears in place."""
    import asyncio

    from models.engine.config import EngineConfig
    from models.engine.engine import Engine
    from models.types import FinishEvent, GenerationRequest
    from models.sampling_policy import SamplingParams

    engine = Engine(lm.model, lm.tokenizer, EngineConfig(cpu_linear=cpu_linear))
    engine.start()
    params = SamplingParams(max_new_tokens=new_tokens, do_sample=False)
    inputs = [lm.tokenizer(r.prompt, add_special_tokens=True)["input_ids"] for r in requests]

    async def one(ids: list[int]) -> int:
        async for event in engine.generate(GenerationRequest(list(ids), params)):
            if isinstance(event, FinishEvent):
                return event.completion_tokens
        return 0

    async def run_all(batch: list[list[int]]) -> int:
        return sum(await asyncio.gather(*(one(ids) for ids in batch)))

    try:
        asyncio.run(run_all(inputs[:2]))  # warm-up
        t0 = time.perf_counter()
        generated = asyncio.run(run_all(inputs))
        wall = time.perf_counter() - t0
    finally:
        engine.stop()
    return _batch_summary(f"llmserve engine (in process, cpu_linear {cpu_linear})", requests, new_tokens,
                          generated, wall)
