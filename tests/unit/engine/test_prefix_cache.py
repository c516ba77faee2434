"""Prefix cache: the block tree (longest match, namespaces, LRU of leaves, pins, bounded
size), the KV copies in and out of slots, and the engine: a prompt served from cached KV
gives the same tokens as a cold prefill (multi-turn chat, concurrent rows sharing a
system prompt, chunked prompts), and rows whose hooks edit hidden states stay out."""

from __future__ import annotations

import asyncio
import copy

import pytest
import torch
from engine_testlib import collect

from models.engine.config import EngineConfig
from models.engine.engine import Engine
from models.engine.kv_cache import SlotKVCache
from models.engine.prefix_cache import PrefixCache, PrefixIndex
from models.generation import ChatTurn, chat_prompt_ids
from models.loading import load_model
from models.registry import default_specs
from models.sampling_policy import SamplingParams
from models.types import RowHook
from tests.support import MODEL_CACHE

B = 4  # tokens per block in the structure tests


def test_match_finds_the_longest_cached_run_of_whole_blocks():
    index = PrefixIndex(capacity_blocks=16, block_tokens=B)
    first, new = index.insert("ns", list(range(10)))  # 2 whole blocks; 2 tokens left over
    assert (first, len(new)) == (0, 2)
    path = index.match("ns", list(range(8)) + [99, 98, 97, 96], limit=100)
    assert len(path) == 2
    index.unpin(path)
    assert len(index.match("ns", [0, 1, 2, 3, 4, 5, 6, 99], limit=100)) == 1  # second block differs
    assert len(index.match("ns", list(range(12)), limit=7)) == 1  # the limit cuts the match
    assert index.match("other", list(range(12)), limit=100) == []  # namespaces never share
    assert index.stats.lookups == 4 and index.stats.hits == 3 and index.stats.hit_tokens == 16


def test_insert_adds_only_the_blocks_not_cached_yet():
    index = PrefixIndex(capacity_blocks=16, block_tokens=B)
    index.insert("ns", list(range(8)))
    first, new = index.insert("ns", list(range(16)))
    assert first == 2 and len(new) == 2
    assert index.insert("ns", list(range(16))) == (4, [])
    assert index.used_blocks == 4


def test_lru_evicts_leaves_of_the_least_recent_prefix_and_keeps_the_size_bound():
    index = PrefixIndex(capacity_blocks=4, block_tokens=B)
    system = [7] * B
    index.insert("ns", system + [1] * B + [2] * B)  # a chat: system, turn 1, turn 2
    index.insert("ns", system + [3] * B)  # another chat sharing the system block
    index.unpin(index.match("ns", system + [3] * B, limit=100))  # the second chat is recent
    index.insert("ns", system + [4] * B)  # room for one: the oldest leaf goes ([2]*B)
    assert index.used_blocks == 4
    assert len(index.match("ns", system + [1] * B + [2] * B, limit=100)) == 2
    index.insert("ns", [9] * B)  # needs a block: evicts a leaf, never the shared system block
    assert index.match("ns", system, limit=100)
    assert index.used_blocks == 4 and index.stats.evicted_blocks == 2


def test_pinned_blocks_are_never_evicted():
    index = PrefixIndex(capacity_blocks=2, block_tokens=B)
    index.insert("ns", list(range(8)))
    pinned = index.match("ns", list(range(8)), limit=100)
    assert index.insert("ns", [50] * 8) == (0, [])  # everything pinned: nothing added
    index.unpin(pinned)
    assert len(index.insert("ns", [50] * 8)[1]) == 2


def test_store_and_load_copy_a_rows_kv_through_the_blocks():
    torch.manual_seed(0)
    cache = SlotKVCache(max_rows=4, max_len=32, init_rows=4, init_len=32)
    cache.allocate(2, 3, 8, 8, torch.float32, torch.device("cpu"))
    cache.keys.normal_()
    cache.values.normal_()
    prefix = PrefixCache(64, B, num_layers=2, kv_heads=3, head_dim=8, v_head_dim=8, dtype=torch.float32,
                         device=torch.device("cpu"), initial_blocks=1)
    tokens = list(range(14))
    assert prefix.store("ns", tokens[:6], cache, slot=1) == 1
    assert prefix.store("ns", tokens, cache, slot=1) == 2  # only the new blocks (storage grows)
    hit = prefix.lookup("ns", tokens + [5, 5], limit=100)
    assert hit.tokens == 12
    prefix.load(hit, cache, slot=3)
    assert torch.equal(cache.keys[:, 3, :, :12], cache.keys[:, 1, :, :12])
    assert torch.equal(cache.values[:, 3, :, :12], cache.values[:, 1, :, :12])
    assert all(n.pins == 0 for n in prefix.index._lru.values())


# ---- the engine -------------------------------------------------------------------

GREEDY = SamplingParams(max_new_tokens=12, temperature=0.0)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text)["input_ids"]


async def _chat(engine, tokenizer, turns: list[str]) -> list[list[int]]:
    """A chat whose every prompt is the previous prompt, its reply and the next message."""
    history: list[int] = []
    replies = []
    for text in turns:
        history = history + _ids(tokenizer, text)
        tokens, _, _ = await collect(engine, history, GREEDY)
        replies.append(tokens)
        history = history + tokens
    return replies


TURNS = ["the quick brown fox jumps over the lazy dog. hello", " one two three", " stop here. END of",
         " naïve café", " seven eight nine ten", " hello world, hello engine;"]


@pytest.mark.parametrize("budget", [512, 5])
async def test_multi_turn_chat_with_cache_hits_equals_cold_prefill(budget, make_engine, tokenizer):
    cold = make_engine(prefix_cache=False, prefill_token_budget=budget)
    warm = make_engine(prefix_block_tokens=4, prefill_token_budget=budget)
    lookups: list[tuple[int, int]] = []
    warm.observer = Lookups(lookups)
    expected = await _chat(cold, tokenizer, TURNS)
    got = await _chat(warm, tokenizer, TURNS)
    assert got == expected
    assert sum(map(len, expected)) > 40
    assert cold._worker.prefix_cache is None
    # Each turn reuses its whole history (the previous prompt and reply but the reply's
    # last token, whose KV was never computed), in whole blocks of 4.
    assert lookups[0][1] == 0
    for (prev_prompt, _), reply, (_, cached) in zip(lookups, got, lookups[1:]):
        assert cached == (prev_prompt + len(reply) - 1) // 4 * 4


class Lookups:
    """Observer that records (prompt tokens, cached tokens) of each prefix lookup."""

    def __init__(self, out: list) -> None:
        self.out = out

    def prefix_lookup(self, prompt_tokens: int, cached_tokens: int) -> None:
        self.out.append((prompt_tokens, cached_tokens))

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


async def test_concurrent_rows_sharing_a_system_prompt_equal_cold_prefill(make_engine, tokenizer):
    system = _ids(tokenizer, "one two three four five six seven eight nine ten, hello world. ")
    questions = [system + _ids(tokenizer, q) for q in ("the quick", "naïve café déjà", "stop", "lazy dog jumps")]
    cold = make_engine(prefix_cache=False)
    warm = make_engine(prefix_block_tokens=4)
    expected = [await collect(cold, ids, GREEDY) for ids in questions]
    await collect(warm, system + [5], SamplingParams(max_new_tokens=1, temperature=0.0))  # caches the system prompt
    got = await asyncio.gather(*(collect(warm, ids, GREEDY) for ids in questions))
    assert [g[0] for g in got] == [e[0] for e in expected]
    assert [g[1].text for g in got] == [e[1].text for e in expected]
    assert warm._worker.prefix_cache.stats.hits >= len(questions)


class Steer(RowHook):
    """Edits hidden states: its rows must neither take nor give cached KV."""

    layers = (0,)

    def on_hidden(self, layer, hidden):
        return hidden + 0.5


class Reader(RowHook):
    """Only reads hidden states and opts in, needing to see tokens from `need_from` on."""

    layers = (1,)

    def __init__(self, need_from: int) -> None:
        self.need_from = need_from
        self.cached = None
        self.seen_from: int | None = None
        self.seen = 0

    def prefix_reuse(self):
        return None, self.need_from

    def on_prefix_cached(self, tokens: int) -> None:
        self.cached = tokens
        self.seen = tokens

    def on_hidden(self, layer, hidden):
        if self.seen_from is None:
            self.seen_from = self.seen
        self.seen += hidden.shape[1]
        return None


async def test_rows_whose_hooks_edit_hidden_states_do_not_use_the_cache(make_engine, tokenizer):
    prompt = _ids(tokenizer, "one two three four five six seven eight nine ten, hello world")
    cold = make_engine(prefix_cache=False)
    warm = make_engine(prefix_block_tokens=4)
    plain = await collect(warm, prompt, GREEDY)  # plain KV of the prompt is cached
    stats = warm._worker.prefix_cache.stats
    steered = await collect(warm, prompt, GREEDY, hooks=(Steer(),))
    assert steered[0] == (await collect(cold, prompt, GREEDY, hooks=(Steer(),)))[0]
    # A row leaves its slot (and would store its KV) at the step after its last token:
    # one more plain request makes the steered row leave.
    await collect(warm, prompt, SamplingParams(max_new_tokens=1, temperature=0.0))
    assert stats.lookups == 2  # the steered row never looked
    # Only the first plain row's blocks (its prompt and all but its last token) were stored.
    assert stats.stored_blocks == (len(prompt) + len(plain[0]) - 1) // 4
    assert steered[0] != (await collect(cold, prompt, GREEDY))[0]  # the hook really changes the output


async def test_a_reading_hook_skips_only_what_it_allows_and_sees_the_rest(make_engine, tokenizer):
    prompt = _ids(tokenizer, "one two three four five six seven eight nine ten, hello world")
    warm = make_engine(prefix_block_tokens=4)
    plain = await collect(warm, prompt, GREEDY)
    reader = Reader(need_from=9)
    with_hook = await collect(warm, prompt, GREEDY, hooks=(reader,))
    assert with_hook[0] == plain[0]
    assert reader.cached == 8  # two whole blocks fit below token 9
    assert reader.seen_from == 8 and reader.seen >= len(prompt)


async def test_a_prompt_extending_a_finished_row_reuses_its_generated_tokens_kv(make_engine, tokenizer):
    """A row's KV (prompt and generated tokens) is kept when it leaves its slot."""
    engine = make_engine(prefix_block_tokens=4)
    prompt = _ids(tokenizer, "one two three four five six seven eight nine ten, hello world")
    first = await collect(engine, prompt, GREEDY)
    again = await collect(engine, prompt + first[0][:6], GREEDY)
    assert engine._worker.prefix_cache.stats.hit_tokens >= 16
    cold = make_engine(prefix_cache=False)
    assert again[0] == (await collect(cold, prompt + first[0][:6], GREEDY))[0]


# ---- the real model -------------------------------------------------------------------

REAL_SYSTEM = "You are a concise assistant. Answer in one or two sentences."
REAL_TURNS = ["What is the capital of France?", "And of Italy?", "Which of the two is larger?",
              "Name a river in each."]
REAL_QUESTIONS = ["What is 2 + 2?", "Name a primary colour.", "What do bees make?"]


async def _real_session(engine, tokenizer) -> tuple[list[list[int]], list[list[int]]]:
    """A 4-turn chat (replies go back as text through the chat template, as a chat client
    does), then three concurrent questions under the same system prompt."""
    turns = [ChatTurn("system", REAL_SYSTEM)]
    chat = []
    params = SamplingParams(max_new_tokens=24, temperature=0.0)
    for text in REAL_TURNS:
        turns.append(ChatTurn("user", text))
        tokens, _, _ = await collect(engine, chat_prompt_ids(tokenizer, turns), params)
        chat.append(tokens)
        turns.append(ChatTurn("assistant", tokenizer.decode(tokens, skip_special_tokens=True)))
    prompts = [chat_prompt_ids(tokenizer, [ChatTurn("system", REAL_SYSTEM), ChatTurn("user", q)])
               for q in REAL_QUESTIONS]
    concurrent = await asyncio.gather(*(collect(engine, ids, params) for ids in prompts))
    return chat, [c[0] for c in concurrent]


@pytest.mark.slow
async def test_smollm2_chat_and_shared_system_prompt_with_the_cache_equal_cold_prefill():
    loaded = load_model(next(s for s in default_specs() if s.source == "embedded"), MODEL_CACHE)
    results, hits = [], []
    for enabled in (False, True):
        engine = Engine(copy.deepcopy(loaded.model), loaded.tokenizer, EngineConfig(prefix_cache=enabled),
                        device=loaded.device)
        engine.start()
        try:
            results.append(await _real_session(engine, loaded.tokenizer))
            cache = engine._worker.prefix_cache
            hits.append(0 if cache is None else cache.stats.hit_tokens)
        finally:
            engine.stop()
    (cold_chat, cold_shared), (warm_chat, warm_shared) = results
    decode = loaded.tokenizer.decode
    assert [decode(t) for t in warm_chat] == [decode(t) for t in cold_chat]
    assert warm_chat == cold_chat and warm_shared == cold_shared
    assert "Paris" in decode(cold_chat[0])  # the real model, answering
    assert hits[1] > 100  # later turns and the concurrent questions really reused KV
