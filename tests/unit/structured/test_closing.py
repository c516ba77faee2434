"""Closing a document by its grammar: the closing path from a matcher state, the bound on
how much one token can add to it, and the hook under budgets down to the shortest
document, with scores that would otherwise fill strings until the limit."""

from __future__ import annotations

import json

import pytest
import torch
import xgrammar as xgr
from transformers import AutoTokenizer

from domain.structured.closing import closing, max_instance_chars
from domain.structured.grammar import GrammarCompiler
from domain.structured.schemas import builtin_schema_texts, check_schema

NESTED = {  # nested objects, an array of objects with minItems, an enum and a bounded integer
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 2},
        "owner": {"type": "object", "properties": {"name": {"type": "string"}, "vip": {"type": "boolean"}},
                  "required": ["name", "vip"], "additionalProperties": False},
        "items": {"type": "array", "minItems": 1, "maxItems": 4, "items": {
            "type": "object", "properties": {"sku": {"type": "string", "minLength": 1},
                                             "qty": {"type": "integer", "minimum": 1, "maximum": 99}},
            "required": ["sku", "qty"], "additionalProperties": False}},
        "status": {"enum": ["paid", "pending"]},
    },
    "required": ["title", "owner", "items", "status"],
    "additionalProperties": False,
}
SCHEMAS = {**{k: json.loads(v) for k, v in builtin_schema_texts().items()}, "Nested": NESTED}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def compiler(tokenizer):
    return GrammarCompiler(tokenizer, len(tokenizer))


def _shortest(compiler, name):
    compiled = compiler.compile(check_schema(json.dumps(SCHEMAS[name]), "s"), "s")
    return compiled, closing(xgr.GrammarMatcher(compiled.grammar), compiled.masks.tokenizer, False)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_closing_path_from_the_start_is_a_valid_document(compiler, tokenizer, name):
    compiled, path = _shortest(compiler, name)
    assert compiled.spec.validate(path.text)[1] is None, path.text
    assert tokenizer.decode(list(path.tokens)) == path.text


def test_the_closing_path_closes_what_is_open_and_adds_only_what_is_required(compiler, tokenizer):
    compiled = compiler.compile(check_schema(builtin_schema_texts()["PipelineAPIRequest"], "s"), "s")
    matcher = xgr.GrammarMatcher(compiled.grammar)
    prefix = '{"name":"etl","blocks":[],"edges":[{"source_block_id":"12ab'
    for token in tokenizer.encode(prefix, add_special_tokens=False):
        assert matcher.accept_token(token)
    path = closing(matcher, compiled.masks.tokenizer, True)
    assert path.text == ('aaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa","target_block_id":"aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa",'
                         '"edge_type":"a"}]}')
    assert not matcher.is_completed()  # the matcher is left where it was
    assert _shortest(compiler, "PipelineAPIRequest")[1].text == '{"name":"a","blocks":[],"edges":[]}'


def test_growth_bound_is_none_for_a_recursive_schema():
    tree = {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}
    assert max_instance_chars(tree) is None
    assert max_instance_chars(SCHEMAS["EdgeAPIRequest"]) >= len(
        '{"source_block_id":"","target_block_id":"","edge_type":""}') + 2 * 36


def _run(hook, vocab, budget, seed, greedy, bias):
    gen = torch.Generator().manual_seed(seed)
    ids: list[int] = []
    for _ in range(budget):
        logits = hook.on_logits(torch.randn(vocab, generator=gen) + bias, ids)
        token = int(logits.argmax()) if greedy else int(torch.multinomial(torch.softmax(logits, -1), 1,
                                                                          generator=gen))
        ids.append(token)
        if hook.on_token(token):
            break
    return ids


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@pytest.mark.parametrize("extra", [0, 30])
@pytest.mark.parametrize("greedy", [True, False])
def test_every_budget_that_admits_a_document_ends_with_one(compiler, tokenizer, name, extra, greedy):
    """Scores that avoid quotes keep strings open forever; with a budget from the shortest
    document's length up, the reply still ends as a valid document within the budget."""
    compiled, shortest = _shortest(compiler, name)
    budget = len(shortest.tokens) + extra
    vocab = len(tokenizer)
    quotes = torch.tensor([b'"' in t for t in compiler.info.decoded_vocab[:vocab]])
    hook = compiled.hook(budget, greedy)
    ids = _run(hook, vocab, budget, seed=extra, greedy=greedy, bias=-3.0 * quotes)
    text = tokenizer.decode(ids)
    assert hook.completed and len(ids) <= budget and not hook.over_budget, text
    assert compiled.spec.validate(text)[1] is None, text
    assert hook.forced_steps + hook.closing_steps >= 1  # the closing path was needed


def test_far_from_the_budget_nothing_is_narrowed(compiler, tokenizer):
    compiled, _ = _shortest(compiler, "BlockAPIRequest")
    vocab = len(tokenizer)
    quotes = torch.tensor([b'"' in t for t in compiler.info.decoded_vocab[:vocab]])
    hook = compiled.hook(10_000, greedy=False)
    _run(hook, vocab, 200, seed=0, greedy=False, bias=4.0 * quotes)
    assert hook.completed and hook.closing_steps == 0 and hook.forced_steps == 0


def test_budget_below_the_shortest_document_is_reported(compiler, tokenizer):
    compiled, shortest = _shortest(compiler, "EdgeAPIRequest")
    hook = compiled.hook(len(shortest.tokens) - 1)
    _run(hook, len(tokenizer), len(shortest.tokens) - 1, seed=0, greedy=True, bias=0.0)
    assert hook.over_budget and not hook.completed
