"""Schema checks, grammar compilation and caching, and the grammar RowHook driven by
random logits: whatever the scores, the output parses and validates."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoTokenizer

from models.errors import InvalidArgument
from domain.structured.grammar import GrammarCompiler
from domain.structured.schemas import builtin_schema_texts, check_schema

UUID_EDGE = json.loads(builtin_schema_texts()["EdgeAPIRequest"])


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def compiler(tokenizer):
    return GrammarCompiler(tokenizer, len(tokenizer))


@pytest.mark.parametrize("text, why", [
    ("", "non-empty"),
    ("{oops", "not valid JSON"),
    ('{"type": "array"}', "root"),
    ('{"type": "object", "properties": {"a": {"type": "nonsense"}}}', "not a valid JSON Schema"),
    ('{"type": "object", "properties": {"a": {"type": "array", "uniqueItems": true}}}', "uniqueItems"),
    ('{"type": "object", "if": {}, "then": {}}', "if, then"),
])
def test_check_schema_refuses_with_the_reason(text, why):
    with pytest.raises(InvalidArgument, match=why) as err:
        check_schema(text, "json_schema")
    assert err.value.field == "json_schema"


def test_property_names_are_not_mistaken_for_keywords():
    spec = check_schema('{"type":"object","properties":{"not":{"type":"integer"},"if":{"enum":["x"]}}}', "s")
    assert spec.validate('{"not": 1, "if": "x"}') == ({"not": 1, "if": "x"}, None)
    assert spec.validate('{"not": "1"}')[1].startswith("does not validate")
    assert spec.validate("{")[1].startswith("not JSON")


@pytest.mark.parametrize("schema, why", [
    ({"type": "object", "properties": {"a": {"type": "integer", "minimum": 5, "maximum": 1}}}, "minimum"),
    ({"type": "object", "properties": {"a": {"type": "array", "minItems": 3, "maxItems": 1}}}, "minItems"),
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, "defs"),
])
def test_unsatisfiable_or_unresolvable_schemas_are_refused_up_front(compiler, schema, why):
    with pytest.raises(InvalidArgument, match=why):
        compiler.compile(check_schema(json.dumps(schema), "json_schema"), "json_schema")


class CountingCompiler:
    """The real xgrammar compiler, counting the schemas it is asked to compile."""

    def __init__(self, real) -> None:
        self.real, self.compiled = real, []

    def compile_json_schema(self, text, **options):
        self.compiled.append(text)
        return self.real.compile_json_schema(text, **options)


def test_second_compile_is_a_cache_hit(compiler, monkeypatch):
    counting = CountingCompiler(compiler._compiler)
    monkeypatch.setattr(compiler, "_compiler", counting)
    schema = {"type": "object", "properties": {"cache_probe": {"type": "integer"}}, "required": ["cache_probe"]}
    spec = check_schema(json.dumps(schema), "json_schema")
    first = compiler.compile(spec, "x")
    again = [compiler.compile(check_schema(json.dumps(schema, indent=2), "json_schema"), "x") for _ in range(5)]
    assert not first.cached and all(c.cached and c.grammar is first.grammar for c in again)
    assert counting.compiled == [spec.text]  # xgrammar compiled it once; the spacing did not matter


def test_cache_keeps_the_most_recently_used_schemas(compiler, monkeypatch):
    counting = CountingCompiler(compiler._compiler)
    monkeypatch.setattr(compiler, "_compiler", counting)
    monkeypatch.setattr("domain.structured.grammar.CACHE_ENTRIES", 2)
    a, b, c = (check_schema(json.dumps({"type": "object", "properties": {f"lru_{k}": {"type": "boolean"}}}), "s")
               for k in "abc")
    for spec in (a, b, a, c):  # a is used again before c arrives, so b is the one evicted
        compiler.compile(spec, "s")
    assert [compiler.compile(spec, "s").cached for spec in (a, c, b)] == [True, True, False]
    assert counting.compiled == [a.text, b.text, c.text, b.text]


@pytest.mark.parametrize("seed", range(3))
def test_hook_turns_random_logits_into_valid_json(compiler, tokenizer, seed):
    """Random scores with a bias toward quote tokens (so strings end): the hook alone
    guarantees the document, uuid format included, and ends the row when it is complete."""
    spec = check_schema(json.dumps(UUID_EDGE), "s")
    hook = compiler.compile(spec, "s").hook()
    vocab = len(tokenizer)
    quotes = torch.tensor([b'"' in t for t in compiler.info.decoded_vocab[:vocab]])
    gen = torch.Generator().manual_seed(seed)
    ids: list[int] = []
    for _ in range(400):
        logits = torch.randn(vocab, generator=gen) + quotes * 6.0
        logits = hook.on_logits(logits, ids)
        token = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
        ids.append(token)
        if hook.on_token(token):
            break
    text = tokenizer.decode(ids)
    assert hook.completed, text
    doc, why = spec.validate(text)
    assert why is None and set(doc) == {"source_block_id", "target_block_id", "edge_type"}


def test_loop_breaker_closes_a_string_a_greedy_model_would_repeat_forever(compiler, tokenizer):
    spec = check_schema('{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}', "s")
    hook = compiler.compile(spec, "s").hook()
    favourite = tokenizer.encode("ab", add_special_tokens=False)[0]
    ids: list[int] = []
    for _ in range(40):  # greedy on scores that always prefer the same in-string token
        logits = torch.zeros(len(tokenizer))
        logits[favourite] = 10.0
        token = int(hook.on_logits(logits, ids).argmax())
        ids.append(token)
        if hook.on_token(token):
            break
    assert hook.completed and hook.loops_broken >= 1
    doc, why = spec.validate(tokenizer.decode(ids))
    assert why is None and doc["a"].startswith("ab")


@pytest.mark.parametrize("seed", range(3))
def test_a_row_near_its_budget_closes_its_document(compiler, tokenizer, seed):
    """Random scores that never favour quotes would fill strings until the limit; with
    the row's budget the hook ends the document within it, and it still validates."""
    spec = check_schema('{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},'
                        '"required":["a","b"]}', "s")
    budget = 48
    hook = compiler.compile(spec, "s").hook(budget)
    gen = torch.Generator().manual_seed(seed)
    ids: list[int] = []
    for _ in range(budget):
        logits = hook.on_logits(torch.randn(len(tokenizer), generator=gen), ids)
        token = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
        ids.append(token)
        if hook.on_token(token):
            break
    assert hook.completed and hook.closing_steps + hook.forced_steps >= 1, tokenizer.decode(ids)
    doc, why = spec.validate(tokenizer.decode(ids))
    assert why is None and set(doc) == {"a", "b"}


def test_without_a_budget_nothing_is_narrowed(compiler, tokenizer):
    spec = check_schema('{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}', "s")
    hook = compiler.compile(spec, "s").hook()
    gen = torch.Generator().manual_seed(0)
    ids: list[int] = []
    for _ in range(64):
        logits = hook.on_logits(torch.randn(len(tokenizer), generator=gen), ids)
        token = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
        ids.append(token)
        if hook.on_token(token):
            break
    assert hook.closing_steps == 0
