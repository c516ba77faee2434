"""The LUT mechanism without a server: byte formats, key selection, input checks and
the per-row hook's firing and steering on real tensors."""

from __future__ import annotations

import pytest
import torch

from models.errors import InvalidArgument
from domain.lut import codec
from domain.lut.config import LutConfig
from domain.lut.hook import LutHook
from domain.lut.keys import compile_lut, content_positions, first_person, prompt_words, word_groups
from domain.lut.learn import key_positions, novel_keys
from domain.lut.service import check_lut_name, check_threshold


def _payload(seed: int, n: int = 3, layer: int = 1, label=(5, 6, 7)) -> codec.EntryPayload:
    g = torch.Generator().manual_seed(seed)
    return codec.EntryPayload(layer, torch.randn(n, 8, generator=g), tuple(label), tuple(label[1:]))


def test_entry_payload_roundtrip_keeps_float16_keys_and_labels():
    p = _payload(0)
    back = codec.decode_entry(codec.encode_entry(p))
    assert back.layer == 1 and back.value_ids == (5, 6, 7) and back.value_ids_bare == (6, 7)
    assert torch.allclose(back.keys, p.keys.half().float())


def test_novel_key_indices_roundtrip_and_older_payloads_have_none():
    p = codec.EntryPayload(1, torch.randn(3, 8), (5, 6), (6,), novel=(0, 2))
    assert codec.decode_entry(codec.encode_entry(p)).novel == (0, 2)
    assert codec.decode_entry(codec.encode_entry(_payload(0))).novel is None


def test_export_blob_roundtrip_and_corruption_is_rejected():
    entries = [codec.ExportedEntry("a fact", "Assistant: ", codec.PAYLOAD_FORMAT, codec.encode_entry(_payload(1))),
               codec.ExportedEntry("b fact", None, codec.PAYLOAD_FORMAT, codec.encode_entry(_payload(2)))]
    blob = codec.encode_export("tiny", entries)
    model, back = codec.decode_export(blob)
    assert model == "tiny" and back == entries
    flipped = blob[:-1] + bytes([blob[-1] ^ 1])
    for bad in (flipped, b"garbage", blob[:20]):
        with pytest.raises(InvalidArgument) as err:
            codec.decode_export(bad)
        assert err.value.field == "data"


def test_keys_skip_context_stopwords_and_punctuation(tokenizer):
    ctx = tokenizer("Assistant: ")["input_ids"]
    full = tokenizer("Assistant: The Veltrona Bridge was completed in 2031.")["input_ids"]
    words = [tokenizer.decode([full[i]]).strip() for i in key_positions(tokenizer, ctx, full, 16)]
    assert "Assistant" not in words and "The" not in words and "was" not in words and "." not in words
    assert any("Bridge" in w for w in words) and any(w.isdigit() for w in words)
    assert len(key_positions(tokenizer, ctx, full, 2)) == 2


def test_prompt_content_excludes_chat_format_words(tokenizer):
    ids = tokenizer("User: What is Quorvex?\nAssistant:")["input_ids"]
    words = {tokenizer.decode([ids[i]]).strip() for i in content_positions(tokenizer, ids)}
    assert not words & {"User", "What", "is", "Assistant", ":", "?"} and words


def test_content_is_decided_per_word_not_per_piece(tokenizer):
    # "\nAssistant" is split into pieces that are not stopwords on their own; "Astarus"
    # is split too, and all its letter pieces stay (a rare word keys as a whole).
    ids = tokenizer("User: What is Astarus?\nAssistant:")["input_ids"]
    kept = content_positions(tokenizer, ids)
    assert tokenizer.decode([ids[i] for i in kept]).strip() == "Astarus"
    assert len(kept) >= 2


@pytest.mark.parametrize("name", ["", "x" * 129, "bad\x07name", "a/b", "tab\tname"])
def test_bad_lut_names_name_the_field(name):
    with pytest.raises(InvalidArgument) as err:
        check_lut_name(name, LutConfig())
    assert err.value.field == "lut_name"


@pytest.mark.parametrize("value", [-0.01, 1.01, float("nan")])
def test_threshold_outside_unit_interval_is_rejected(value):
    with pytest.raises(InvalidArgument) as err:
        check_threshold(value, LutConfig())
    assert err.value.field == "threshold"


def test_threshold_default_comes_from_config():
    assert check_threshold(None, LutConfig(default_threshold=0.4)) == 0.4 and check_threshold(1.0, LutConfig()) == 1.0


def _run_hook(lut, prompt_hidden: torch.Tensor, threshold: float, prompt_words: int | None = None,
              first_person_prompt: bool = True) -> tuple[LutHook, list[int], bool]:
    """Feed a prompt in two prefill chunks, then decode 4 greedy steps over flat logits."""
    hook = LutHook(lut, torch.zeros(8), prompt_hidden.shape[0], list(range(prompt_hidden.shape[0])),
                   threshold, 0.95, True, False, prompt_words, first_person_prompt)
    hook.on_hidden(1, prompt_hidden[None, :2])
    hook.on_hidden(1, prompt_hidden[None, 2:])
    out, ended = [], False
    for step in range(4):
        logits = torch.zeros(16)
        logits[3] = 5.0  # the "base model" wants token 3
        new = hook.on_logits(logits, out)
        tok = int(new.argmax())
        out.append(tok)
        if step == 0 and hook.fired_fact is None:
            assert new is logits and bool((new == torch.zeros(16).index_fill(0, torch.tensor([3]), 5.0)).all())
        ended = hook.on_token(tok)
        if ended:
            break
        hook.on_hidden(1, torch.randn(1, 1, 8))  # decode-step hidden states are ignored
    return hook, out, ended


def test_hook_fires_on_matching_keys_follows_label_and_stops():
    a, b = _payload(10), _payload(11, label=(9, 8))
    lut = compile_lut([a, b], torch.zeros(8), layer=1, min_keys=2)
    prompt = torch.cat([torch.randn(2, 8), b.keys[:2]])  # two of fact b's keys reappear
    hook, out, ended = _run_hook(lut, prompt, threshold=0.9)
    assert hook.fired_fact == 1 and out == [9, 8] and ended


def test_hook_needs_two_matching_keys_and_leaves_logits_alone_otherwise():
    a = _payload(12)
    lut = compile_lut([a], torch.zeros(8), layer=1, min_keys=2)
    prompt = torch.cat([torch.randn(3, 8), a.keys[:1]])  # only one key matches
    hook, out, ended = _run_hook(lut, prompt, threshold=0.9)
    assert hook.fired_fact is None and out == [3, 3, 3, 3] and not ended


def test_firing_never_increases_with_threshold():
    facts = [_payload(s) for s in range(20, 26)]
    lut = compile_lut(facts, torch.zeros(8), layer=1, min_keys=2)
    g = torch.Generator().manual_seed(3)
    prompts = [torch.cat([torch.randn(3, 8, generator=g), facts[i % 6].keys[:2] + 0.7 * i * torch.randn(2, 8, generator=g)])
               for i in range(6)]
    rates = []
    for thr in (0.0, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0):
        rates.append(sum(_run_hook(lut, p, thr)[0].fired_fact is not None for p in prompts))
    assert rates == sorted(rates, reverse=True) and rates[0] == 6 and rates[-1] < 6


def test_entries_keyed_at_another_layer_are_ignored():
    assert compile_lut([_payload(1, layer=3)], torch.zeros(8), layer=1, min_keys=2) is None


def test_two_generic_matches_do_not_fire_a_fact_whose_informative_key_is_absent():
    p = _payload(30, n=3)
    informative = codec.EntryPayload(p.layer, p.keys, p.value_ids, p.value_ids_bare, novel=(2,))
    prompt = torch.cat([torch.randn(2, 8), p.keys[:2]])  # keys 0 and 1 reappear, key 2 does not
    fired = _run_hook(compile_lut([p], torch.zeros(8), layer=1, min_keys=2), prompt, 0.9)[0]
    capped = _run_hook(compile_lut([informative], torch.zeros(8), layer=1, min_keys=2), prompt, 0.9)[0]
    assert fired.fired_fact == 0 and capped.fired_fact is None
    with_news = torch.cat([torch.randn(2, 8), p.keys[1:]])  # keys 1 and 2 reappear
    assert _run_hook(compile_lut([informative], torch.zeros(8), layer=1, min_keys=2), with_news, 0.9)[0].fired_fact == 0


def test_informative_words_are_the_surprising_ones(tokenizer):
    ids = tokenizer("Assistant: The Veltrona Bridge was completed in 2031.")["input_ids"]
    positions = key_positions(tokenizer, tokenizer("Assistant: ")["input_ids"], ids, 16)
    name = next(g for g in word_groups(tokenizer, ids) if "Veltrona" in tokenizer.decode([ids[i] for i in g]))
    logits = torch.zeros(len(ids), len(tokenizer))  # uniform: ~10.8 nats a token
    for i in range(1, len(ids)):
        if i not in name:
            logits[i - 1, ids[i]] = 30.0  # the model is sure of every token but the name's
    novel = novel_keys(tokenizer, ids, positions, logits, share=0.3)
    assert {positions[i] for i in novel} == set(name) & set(positions) and novel
    assert novel_keys(tokenizer, ids, positions, logits, share=0.0) == tuple(range(len(positions)))


def test_hook_taking_its_non_content_prefix_from_the_prefix_cache_matches_the_same():
    b = _payload(11, label=(9, 8))
    lut = compile_lut([_payload(10), b], torch.zeros(8), layer=1, min_keys=2)
    prompt = torch.cat([torch.randn(3, 8), b.keys[:2], torch.randn(1, 8)])
    full = LutHook(lut, torch.zeros(8), 6, [3, 4, 5], 0.9, 0.95, True, False)
    cached = LutHook(lut, torch.zeros(8), 6, [3, 4, 5], 0.9, 0.95, True, False)
    assert full.prefix_reuse() == (None, 3)  # the KV is the base model's; content starts at 3
    full.on_hidden(1, prompt[None])
    cached.on_prefix_cached(3)  # positions 0-2 came from the cache: the hook sees 3..5 only
    cached.on_hidden(1, prompt[None, 3:])
    assert torch.equal(full._best, cached._best)
    logits = torch.zeros(16)
    assert torch.equal(full.on_logits(logits.clone(), []), cached.on_logits(logits.clone(), []))
    assert full.fired_fact == cached.fired_fact == 1


def test_first_person_facts_fire_only_on_first_person_prompts():
    mine, entity = _payload(40), _payload(41, label=(9, 8))
    lut = compile_lut([mine, entity], torch.zeros(8), layer=1, min_keys=2, personal=[True, False])
    about_mine = torch.cat([torch.randn(2, 8), mine.keys[:2]])
    assert _run_hook(lut, about_mine, 0.9)[0].fired_fact == 0
    assert _run_hook(lut, about_mine, 0.9, first_person_prompt=False)[0].fired_fact is None
    about_entity = torch.cat([torch.randn(2, 8), entity.keys[:2]])
    assert _run_hook(lut, about_entity, 0.9, first_person_prompt=False)[0].fired_fact == 1


def test_a_prompt_with_one_content_word_needs_one_matching_key():
    a = _payload(42)
    lut = compile_lut([a], torch.zeros(8), layer=1, min_keys=2)
    prompt = torch.cat([torch.randn(3, 8), a.keys[:1]])  # "Where do I work?": one word, one key
    assert _run_hook(lut, prompt, 0.9)[0].fired_fact is None
    assert _run_hook(lut, prompt, 0.9, prompt_words=1)[0].fired_fact == 0
    assert _run_hook(lut, prompt, 0.9, prompt_words=3)[0].fired_fact is None


def test_first_person_and_prompt_words(tokenizer):
    assert first_person("User: Where do I work?\nAssistant:") and first_person("My dog is called Rex.")
    assert not first_person("User: What is a dog?\nAssistant:") and not first_person("Quillmark makes ink.")
    ids = tokenizer("User: Where do I work?\nAssistant:")["input_ids"]
    assert prompt_words(tokenizer, ids, content_positions(tokenizer, ids)) == 1
