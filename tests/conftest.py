"""Fixtures shared by every test: model folders, settings and in-process servers.

Servers bind port 0. The tiny model is random (fast, for mechanics); the real
embedded model is used by the few tests marked `slow`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import AsyncIterator

import pytest
import pytest_asyncio

from models.engine.config import EngineConfig
from models.loading import _embedded_cache
from models.registry import default_specs
from server.app import App
from tests.support import MODEL_CACHE, make_settings, running, tiny_specs


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    spec = next(s for s in default_specs() if s.source == "embedded")
    return _embedded_cache(spec, MODEL_CACHE)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, embedded_model_dir: Path) -> Path:
    """A 2-layer random llama with the real tokenizer and chat template: runs in milliseconds."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest_asyncio.fixture(scope="session")
async def tiny_server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> AsyncIterator[App]:
    """Server whose default model is the tiny llama; smollm2 is configured but not loaded."""
    settings = make_settings(tmp_path_factory.mktemp("tiny-server"), tiny_specs(tiny_model_dir), "tiny",
                             engine=EngineConfig(max_queued_requests=8))
    async with running(settings) as app:
        yield app


@pytest_asyncio.fixture(scope="session")
async def real_server(tmp_path_factory: pytest.TempPathFactory, embedded_model_dir: Path) -> AsyncIterator[App]:
    """Server on the real embedded SmolLM2-135M-Instruct (for the few quality tests)."""
    data = tmp_path_factory.mktemp("real-server")
    (data / "models").mkdir()
    # Reuse the converted copy instead of converting again into the test's data dir.
    (data / "models" / "smollm2").symlink_to(embedded_model_dir, target_is_directory=True)
    async with running(make_settings(data, default_specs(), "smollm2")) as app:
        yield app


@pytest.fixture(scope="session")
def grpcurl_path() -> str:
    path = shutil.which("grpcurl") or str(Path(__import__("sys").executable).parent / "grpcurl")
    if not Path(path).exists():
        pytest.fail("grpcurl not installed: run `make install`")
    return path
