"""OpenAI request bodies -> llmserve's terms: parameter names mapped to the policy's, content
parts, stream options, response formats, and every refusal naming OpenAI's parameter."""

from __future__ import annotations

import pytest

from domain.openai_api.params import parse_body, parse_chat, parse_completion
from models.errors import InvalidArgument

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def refused(parse, body) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as err:
        parse(body)
    return err.value


def test_chat_maps_openai_names_to_the_policy():
    req = parse_chat({**CHAT, "max_tokens": 5, "temperature": 0, "top_p": 0.5, "seed": 3, "stop": "x",
                      "presence_penalty": 1, "frequency_penalty": -1, "top_k": 4, "repetition_penalty": 1.2,
                      "user": "u", "n": 2})
    assert dict(req.overrides) == {"max_new_tokens": 5, "temperature": 0.0, "top_p": 0.5, "seed": 3,
                                   "stop_sequences": ("x",), "presence_penalty": 1.0, "frequency_penalty": -1.0,
                                   "top_k": 4, "repetition_penalty": 1.2}
    assert req.n == 2 and not req.stream and req.schema is None
    assert parse_chat({**CHAT, "max_completion_tokens": 7}).overrides["max_new_tokens"] == 7


def test_content_parts_join_and_developer_is_system():
    req = parse_chat({"model": "m", "messages": [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "name": "x"}]})
    assert [(t.role, t.content) for t in req.turns] == [("system", "be brief"), ("user", "ab")]


def test_stream_options():
    req = parse_chat({**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert req.stream and req.include_usage
    assert refused(parse_chat, {**CHAT, "stream_options": {"include_usage": True}}).field == "stream_options"
    assert refused(parse_chat, {**CHAT, "stream": True, "stream_options": {"x": 1}}).field == "stream_options.x"


def test_response_formats():
    assert parse_chat({**CHAT, "response_format": {"type": "text"}}).schema is None
    assert parse_chat({**CHAT, "response_format": {"type": "json_object"}}).schema.schema == {"type": "object"}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    req = parse_chat({**CHAT, "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}})
    assert req.schema.schema == schema


@pytest.mark.parametrize(("body", "field"), [
    ({**CHAT, "frobnicate": 1}, "frobnicate"),
    ({**CHAT, "logit_bias": {"1": 2}}, "logit_bias"),
    ({"messages": CHAT["messages"]}, "model"),
    ({"model": "m"}, "messages"),
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": {"a": 1}, "content": "x"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content[0]"),
    ({"model": "m", "messages": [{"role": "user", "content": "x", "tool_calls": []}]}, "messages[0].tool_calls"),
    ({**CHAT, "n": 0}, "n"),
    ({**CHAT, "n": 17}, "n"),
    ({**CHAT, "max_tokens": 0}, "max_tokens"),
    ({**CHAT, "temperature": "hot"}, "temperature"),
    ({**CHAT, "seed": True}, "seed"),
    ({**CHAT, "stop": 5}, "stop"),
    ({**CHAT, "logprobs": True}, "logprobs"),
    ({**CHAT, "top_logprobs": 2}, "top_logprobs"),
    ({**CHAT, "response_format": {"type": "yaml"}}, "response_format.type"),
    ({**CHAT, "lut_name": "notes"}, "lut_name"),
    ({**CHAT, "specialists": True}, "specialists"),
    ({**CHAT, "response_format": {"type": "json_schema", "json_schema": {"name": "a"}}},
     "response_format.json_schema.schema"),
])
def test_chat_refusals_name_the_parameter(body, field):
    assert refused(parse_chat, body).field == field


def test_completion_prompts_and_choices():
    req = parse_completion({"model": "m", "prompt": ["a", "b"], "n": 3, "echo": True, "best_of": 3})
    assert req.prompts == ("a", "b") and req.n == 3 and req.echo
    assert refused(parse_completion, {"model": "m", "prompt": ["a", "b"], "n": 9}).field == "n"  # 18 rows
    assert refused(parse_completion, {"model": "m", "prompt": [1, 2]}).field == "prompt"
    assert refused(parse_completion, {"model": "m", "prompt": "a", "best_of": 2}).field == "best_of"
    assert refused(parse_completion, {"model": "m", "prompt": "a", "suffix": "z"}).field == "suffix"
    assert refused(parse_completion, {"model": "m", "prompt": "a", "logprobs": 2}).field == "logprobs"
    assert refused(parse_completion, {"model": "m", "prompt": "a", "messages": []}).field == "messages"
    assert refused(parse_completion, {"model": "m", "prompt": "a", "threshold": 0.5}).field == "threshold"
    lut = parse_completion({"model": "m", "prompt": "a", "lut_name": "notes", "threshold": 0.5})
    assert (lut.lut_name, lut.threshold) == ("notes", 0.5)
    assert parse_completion({"model": "m", "prompt": "a", "specialists": True}).specialists
    both = {"model": "m", "prompt": "a", "specialists": True, "lut_name": "notes"}
    assert refused(parse_completion, both).field == "specialists"


def test_body_must_be_a_json_object():
    assert refused(parse_body, b"{").field == "body"
    assert refused(parse_body, b"[1]").field == "body"
    assert parse_body(b"") == {}
