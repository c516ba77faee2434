"""Fixtures for engine tests (helpers live in engine_testlib.py)."""

from __future__ import annotations

import pytest
import torch
from engine_testlib import build_tokenizer, make_gpt2, make_llama

from models.engine.config import EngineConfig
from models.engine.engine import Engine


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="session")
def llama(tokenizer) :
    return make_llama(len(tokenizer))


@pytest.fixture(scope="session")
def gpt2(tokenizer) :
    return make_gpt2(len(tokenizer))


@pytest.fixture
def make_engine(tokenizer, llama):
    """Factory: started engine over the tiny llama (or another model); stopped after the test."""
    engines: list[Engine] = []
    threads = torch.get_num_threads()

    def factory(model=None, kernel_plan=None, kernel_cache=None, **config) -> Engine:
        config.setdefault("kv_initial_len", 16)  # small, so tests also exercise cache growth
        # One intra-op thread: tiny matrices gain nothing from two, and on a shared
        # 2-core machine OpenMP barriers make 2-thread steps 10-40x slower.
        config.setdefault("num_threads", 1)
        engine = Engine(model if model is not None else llama, tokenizer, EngineConfig(**config), device="cpu",
                        kernel_plan=kernel_plan, kernel_cache=kernel_cache)
        engine.start()
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        engine.stop()
    torch.set_num_threads(threads)


