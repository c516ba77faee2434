"""The engine's own Llama forward computes what transformers' forward computes: the same
logits for a prompt and for each decode step after it, the same greedy tokens through the
engine, and hidden-state hooks see and edit the same layer outputs."""

from __future__ import annotations

import asyncio

import pytest
import torch
from engine_testlib import collect, make_gpt2, make_llama
from transformers import DynamicCache

from models.engine.fast_forward import LlamaFastForward
from models.sampling_policy import SamplingParams
from models.types import RowHook


def test_llama_is_supported_and_other_architectures_say_why_not(tokenizer):
    assert LlamaFastForward.supports(make_llama(len(tokenizer))) is None
    assert "GPT2LMHeadModel" in LlamaFastForward.supports(make_gpt2(len(tokenizer)))


@torch.inference_mode()
def test_prompt_and_decode_logits_match_transformers(tokenizer):
    model = make_llama(len(tokenizer)).eval()
    fast = LlamaFastForward(model)
    ids = torch.tensor([[5, 9, 13, 2, 7, 11, 3]])
    t = ids.shape[1]
    reference_cache, fast_cache = DynamicCache(), DynamicCache()
    expected = model(ids, cache=reference_cache, use_cache=True).logits
    causal = torch.ones(t, t, dtype=torch.bool).tril()[None, None]
    got = fast(ids, torch.arange(t)[None], causal, fast_cache, 0)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    for step, token in enumerate([4, 8, 1]):
        pos = t + step
        expected = model(torch.tensor([[token]]), cache=reference_cache, use_cache=True,
                         position_ids=torch.tensor([[pos]])).logits
        got = fast(torch.tensor([[token]]), torch.tensor([[pos]]), torch.ones(1, 1, 1, pos + 1, dtype=torch.bool),
                   fast_cache, 1)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


class _Shift(RowHook):
    """Adds a constant to one layer's output: changes what the model generates."""

    layers = (1,)

    def __init__(self) -> None:
        self.seen: list[tuple[int, ...]] = []

    def on_hidden(self, layer, hidden):
        self.seen.append(tuple(hidden.shape))
        return hidden + 0.5


@pytest.mark.parametrize("hooked", [False, True])
async def test_engine_generates_the_same_tokens_on_both_forwards(tokenizer, make_engine, hooked):
    model = make_llama(len(tokenizer))
    prompts = [[5, 9, 13, 2], [7, 7, 1, 4, 9, 10, 2, 3], [11]]
    params = SamplingParams(max_new_tokens=12, temperature=0)
    outputs, seen = {}, {}
    for fast in (True, False):
        engine = make_engine(model, fast_forward=fast)
        assert engine._worker.forward_path.startswith("engine" if fast else "transformers")
        hooks = [(_Shift(),) if hooked else () for _ in prompts]
        done = await asyncio.gather(*(collect(engine, p, params, hooks=h) for p, h in zip(prompts, hooks)))
        outputs[fast] = [tokens for tokens, _, _ in done]
        seen[fast] = [h[0].seen for h in hooks] if hooked else None
    assert outputs[True] == outputs[False]
    assert seen[True] == seen[False]
    if hooked:  # the hook ran on the prompt and on every decode step, with the row's own slice
        assert [len(s) for s in seen[True]] == [12, 12, 12]
        assert [s[0][1] for s in seen[True]] == [len(p) for p in prompts]
