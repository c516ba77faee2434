"""The real SmolLM2 tokenizer (no weights) for key-selection tests."""

import pytest


@pytest.fixture(scope="session")
def tokenizer(embedded_model_dir):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(embedded_model_dir)
