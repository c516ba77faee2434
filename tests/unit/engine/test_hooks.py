"""RowHook: per-row logits and hidden-state hooks affect only their own row."""

from __future__ import annotations

import asyncio

import pytest
import torch
from engine_testlib import collect

from models.engine.hooks import find_decoder_layers
from models.types import RowHook
from models.types import FinishReason
from models.sampling_policy import SamplingParams

GREEDY = SamplingParams(max_new_tokens=12, temperature=0.0)
PROMPTS = ["the quick brown fox", "hello world, hello engine", "one two three"]


class BanToken(RowHook):
    def __init__(self, token: int) -> None:
        self.token = token

    def on_logits(self, logits, generated_ids):
        logits[self.token] = float("-inf")
        return logits


class Steer(RowHook):
    """Adds a large vector to one layer's output and records the slices it saw."""

    def __init__(self, layer: int, scale: float = 5.0) -> None:
        self.layers = (layer,)
        # Not a constant: LayerNorm (GPT-2) would subtract a uniform shift right away.
        self.direction = torch.linspace(-scale, scale, 64)
        self.shapes: list[tuple[int, ...]] = []

    def on_hidden(self, layer, hidden):
        self.shapes.append(tuple(hidden.shape))
        return hidden + self.direction


class StopAfter(RowHook):
    def __init__(self, n: int) -> None:
        self.n = n
        self.seen: list[int] = []
        self.finished: list[FinishReason] = []

    def on_token(self, token_id):
        self.seen.append(token_id)
        return len(self.seen) >= self.n

    def on_finish(self, reason):
        self.finished.append(reason)


async def alone_and_mixed(engine, tokenizer, hooked_index: int, hook: RowHook):
    ids = [tokenizer(p)["input_ids"] for p in PROMPTS]
    alone = [await collect(engine, i, GREEDY) for i in ids]
    # The same prompts in one batch; only one row carries the hook.
    mixed = await asyncio.gather(*(collect(engine, i, GREEDY, hooks=[hook] if n == hooked_index else [])
                                   for n, i in enumerate(ids)))
    return [a[0] for a in alone], [m[0] for m in mixed]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
async def test_banned_token_affects_only_its_row(arch, request, make_engine, tokenizer):
    engine = make_engine(request.getfixturevalue(arch))
    first_prompt_ids = tokenizer(PROMPTS[0])["input_ids"]
    unhooked = (await collect(engine, first_prompt_ids, GREEDY))[0]
    banned = unhooked[0]
    alone, mixed = await alone_and_mixed(engine, tokenizer, 0, BanToken(banned))
    assert banned not in mixed[0] and mixed[0] != alone[0]
    assert mixed[1:] == alone[1:]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
async def test_hidden_state_hook_affects_only_its_row(arch, request, make_engine, tokenizer):
    engine = make_engine(request.getfixturevalue(arch))
    hook = Steer(layer=0)
    alone, mixed = await alone_and_mixed(engine, tokenizer, 1, hook)
    assert mixed[1] != alone[1]
    assert mixed[0] == alone[0] and mixed[2] == alone[2]
    # Prefill shows the whole prompt, then one position per decode step.
    prompt_len = len(tokenizer(PROMPTS[1])["input_ids"])
    assert hook.shapes[0] == (1, prompt_len, 64)
    assert hook.shapes[1:] == [(1, 1, 64)] * (len(mixed[1]) - 1)


async def test_hidden_hook_sees_chunked_prompt_in_order(make_engine, tokenizer):
    engine = make_engine(prefill_token_budget=4)
    seen = []

    class Capture(RowHook):
        layers = (-1,)  # negative = from the end

        def on_hidden(self, layer, hidden):
            seen.append((layer, hidden.shape[1], hidden.clone()))

    ids = tokenizer(PROMPTS[1])["input_ids"]
    await collect(engine, ids, SamplingParams(max_new_tokens=2, temperature=0), hooks=[Capture()])
    chunks = [n for _, n, _ in seen]
    assert {layer for layer, _, _ in seen} == {1}
    assert sum(chunks[:-1]) == len(ids) and max(chunks) <= 4 and chunks[-1] == 1


async def test_on_token_can_finish_the_row(make_engine, tokenizer):
    engine = make_engine()
    hook = StopAfter(3)
    tokens, fin, events = await collect(engine, tokenizer(PROMPTS[0])["input_ids"],
                                        SamplingParams(max_new_tokens=20, temperature=0), hooks=[hook])
    assert fin.reason is FinishReason.EOS and fin.completion_tokens == 3 and tokens == hook.seen
    assert hook.finished == [FinishReason.EOS]
    assert fin.text == "".join(e.text for e in events)


async def test_rows_without_hooks_install_no_layer_hooks(make_engine, tokenizer, llama):
    engine = make_engine()
    layers = find_decoder_layers(llama)
    await collect(engine, tokenizer(PROMPTS[0])["input_ids"], GREEDY, hooks=[Steer(layer=1)])
    await collect(engine, tokenizer(PROMPTS[0])["input_ids"], GREEDY)
    assert all(len(layer._forward_hooks) == 0 for layer in layers)


def test_find_decoder_layers(llama, gpt2):
    assert len(find_decoder_layers(llama)) == 2 and len(find_decoder_layers(gpt2)) == 2
    assert find_decoder_layers(gpt2) is gpt2.transformer.h
