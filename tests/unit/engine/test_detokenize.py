"""Incremental detokenization, stop sequences and finish reasons (no model)."""

from __future__ import annotations

from engine_testlib import byte_ids

from models.engine.detokenize import RowDetokenizer, eos_ids_of
from models.types import FinishReason


def run(detok: RowDetokenizer, ids: list[int]) -> list[str]:
    deltas = []
    for t in ids:
        deltas.append(detok.add(t))
        if detok.finish_reason is not None:
            break
    return deltas


def make(tokenizer, **kw) -> RowDetokenizer:
    kw.setdefault("max_new_tokens", 1000)
    kw.setdefault("max_seq_len", 10_000)
    kw.setdefault("eos_ids", frozenset({tokenizer.eos_token_id}))
    return RowDetokenizer(tokenizer, byte_ids(tokenizer, "prompt "), **kw)


def test_multibyte_characters_split_across_tokens_never_yield_broken_utf8(tokenizer):
    text = "naïve 東京 😀!"
    detok = make(tokenizer)
    deltas = run(detok, byte_ids(tokenizer, text))
    assert all("\ufffd" not in d for d in deltas)
    assert "".join(deltas) == text == detok.text
    # The 4-byte emoji arrives as 4 tokens: 3 empty deltas, then the character.
    emoji_at = deltas.index("😀")
    assert deltas[emoji_at - 3:emoji_at] == ["", "", ""]


def test_bpe_tokens_concatenate_to_full_decode(tokenizer):
    ids = tokenizer("the quick brown fox jumps over the lazy dog")["input_ids"]
    detok = make(tokenizer)
    assert "".join(run(detok, ids)) == tokenizer.decode(ids)


def test_stop_sequence_split_across_tokens_is_never_emitted(tokenizer):
    detok = make(tokenizer, stop_sequences=("STOP",))
    deltas = run(detok, byte_ids(tokenizer, "go ST then STOP and more"))
    assert detok.finish_reason is FinishReason.STOP_SEQUENCE
    assert "".join(deltas) == "go ST then " == detok.text
    assert detok.generated == len("go ST then STOP")  # tokens up to the end of the stop sequence


def test_possible_stop_prefix_is_held_back_until_resolved(tokenizer):
    detok = make(tokenizer, stop_sequences=("STOP",))
    out = [detok.add(t) for t in byte_ids(tokenizer, "aSTO")]
    assert out == ["a", "", "", ""]  # "STO" might become "STOP"
    assert detok.add(byte_ids(tokenizer, "x")[0]) == "STOx"  # resolved: not a stop
    assert detok.finish_reason is None


def test_earliest_of_several_stop_sequences_wins(tokenizer):
    detok = make(tokenizer, stop_sequences=("world", "o w"))
    deltas = run(detok, byte_ids(tokenizer, "hello world"))
    assert "".join(deltas) == "hell" and detok.finish_reason is FinishReason.STOP_SEQUENCE


def test_eos_finishes_and_is_counted_but_not_shown(tokenizer):
    detok = make(tokenizer)
    deltas = run(detok, byte_ids(tokenizer, "hi") + [tokenizer.eos_token_id] + byte_ids(tokenizer, "more"))
    assert detok.finish_reason is FinishReason.EOS
    assert "".join(deltas) == "hi" == detok.text
    assert detok.generated == 3


def test_held_back_text_is_released_when_finishing_for_another_reason(tokenizer):
    detok = make(tokenizer, stop_sequences=("STOP",), max_new_tokens=4)
    deltas = run(detok, byte_ids(tokenizer, "abST"))
    assert detok.finish_reason is FinishReason.LENGTH
    assert "".join(deltas) == "abST"


def test_max_new_tokens_gives_length(tokenizer):
    detok = make(tokenizer, max_new_tokens=3)
    deltas = run(detok, byte_ids(tokenizer, "abcdef"))
    assert detok.finish_reason is FinishReason.LENGTH and detok.generated == 3 and "".join(deltas) == "abc"


def test_full_context_window_gives_length(tokenizer):
    prompt = byte_ids(tokenizer, "prompt ")  # 7 tokens
    detok = RowDetokenizer(tokenizer, prompt, max_new_tokens=100, max_seq_len=10)
    run(detok, byte_ids(tokenizer, "abcdef"))
    assert detok.finish_reason is FinishReason.LENGTH and detok.generated == 3


def test_eos_ids_include_generation_config_extras(tokenizer, llama):
    class Gen:
        eos_token_id = [1, 7]

    class Model:
        generation_config = Gen()

    assert eos_ids_of(tokenizer, Model()) == {tokenizer.eos_token_id, 1, 7}
