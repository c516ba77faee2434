"""Helpers for engine tests: a tiny byte-level BPE tokenizer and tiny random llama /
GPT-2 models, built in milliseconds with no files. Weights are random: tests check
mechanics, not quality."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, PreTrainedTokenizerFast

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, hello engine; stop here. END of line",
    "naïve café déjà vu — 東京 😀 ünïcödé",
    "one two three four five six seven eight nine ten",
] * 4


def build_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")


def _init_large(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    # Wide weights make logits far apart, so argmax is not decided by float rounding
    # (batch composition changes the order of float sums by ~1e-7).
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.15)
    return model.eval()


def make_llama(vocab_size: int, seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=vocab_size, max_position_embeddings=256,
                      eos_token_id=1, pad_token_id=0, bos_token_id=None, **overrides)
    return _init_large(AutoModelForCausalLM.from_config(cfg), seed)


def make_gpt2(vocab_size: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = GPT2Config(n_embd=64, n_layer=2, n_head=4, n_inner=128, vocab_size=vocab_size, n_positions=256,
                     eos_token_id=1, bos_token_id=1)
    return _init_large(AutoModelForCausalLM.from_config(cfg), seed)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table used by byte-level BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


_BYTE_CHARS = _bytes_to_unicode()


def byte_ids(tokenizer, text: str) -> list[int]:
    """One token per UTF-8 byte of `text` (so multi-byte characters span several tokens)."""
    return [tokenizer.convert_tokens_to_ids(_BYTE_CHARS[b]) for b in text.encode("utf-8")]


async def collect(engine, ids: list[int], params, hooks=()):
    """Run one request to the end: (token ids, FinishEvent, [TokenEvent...])."""
    from models.types import FinishEvent, GenerationRequest

    tokens: list[int] = []
    events = []
    async for event in engine.generate(GenerationRequest(list(ids), params, hooks=tuple(hooks))):
        if isinstance(event, FinishEvent):
            return tokens, event, events
        tokens += event.token_ids
        events.append(event)
    raise AssertionError("stream ended without a FinishEvent")


async def wait_steps(engine, n: int, timeout: float = 120.0) -> None:
    """Wait until the engine has run `n` more model steps."""
    import asyncio

    target = engine.stats().steps + n
    async with asyncio.timeout(timeout):
        while engine.stats().steps < target:
            await asyncio.sleep(0.001)


async def wait_until(predicate, timeout: float = 120.0) -> None:
    import asyncio

    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)
