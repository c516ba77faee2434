"""The one sampling policy: defaults, client overrides (names and aliases), range checks
that name the field, and the token budget fitted to the context window."""

from __future__ import annotations

import dataclasses

import pytest

from models.errors import InvalidArgument
from models.sampling_policy import SamplingDefaults, SamplingParams, merge, resolve

OK = SamplingParams(max_new_tokens=10, temperature=0.7, top_p=0.9, top_k=50)


@pytest.mark.parametrize("change, field", [
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"max_new_tokens": -3}, "max_new_tokens"),
    ({"max_new_tokens": 1000}, "max_new_tokens"),  # beyond the 100-token window
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"top_k": -1}, "top_k"),
    ({"repetition_penalty": 0.0}, "repetition_penalty"),
    ({"seed": -1}, "seed"),
    ({"presence_penalty": 2.5}, "presence_penalty"),
    ({"frequency_penalty": -2.01}, "frequency_penalty"),
    ({"frequency_penalty": float("inf")}, "frequency_penalty"),
    ({"stop_sequences": ("",)}, "stop_sequences[0]"),
    ({"stop_sequences": ("x",) * 17}, "stop_sequences"),
])
def test_bad_values_name_their_field(change, field):
    with pytest.raises(InvalidArgument) as err:
        resolve(OK, change, prompt_tokens=10, context_window=100)
    assert err.value.field == field


def test_prompt_filling_the_window_is_rejected():
    with pytest.raises(InvalidArgument) as err:
        resolve(OK, {}, prompt_tokens=100, context_window=100)
    assert err.value.field == "prompt"


def test_client_values_override_defaults_and_pass_through():
    params = resolve(OK, {"max_new_tokens": 90, "top_p": 1.0, "temperature": 0.0, "stop_sequences": ["\n"]}, 10, 100)
    assert params == dataclasses.replace(OK, max_new_tokens=90, top_p=1.0, temperature=0.0, stop_sequences=("\n",))
    assert params.greedy


def test_default_budget_shrinks_to_the_room_left_but_a_client_budget_must_fit():
    assert resolve(dataclasses.replace(OK, max_new_tokens=512), {}, 90, 100).max_new_tokens == 10
    with pytest.raises(InvalidArgument):
        resolve(OK, {"max_new_tokens": 11}, 90, 100)


def test_alias_counts_as_the_control_and_the_own_name_wins():
    assert resolve(OK, {"length": 7}, 10, 100).max_new_tokens == 7
    assert resolve(OK, {"length": 7, "max_new_tokens": 5}, 10, 100).max_new_tokens == 5
    with pytest.raises(InvalidArgument):  # an explicit budget via the alias is not shrunk
        resolve(OK, {"length": 95}, 10, 100)


def test_unknown_control_is_a_programming_error():
    with pytest.raises(KeyError):
        merge(OK, {"temprature": 0.5})


def test_each_kind_of_request_has_its_defaults():
    d = SamplingDefaults()
    assert d.lut.greedy and not d.completion.greedy
    assert (d.completion.top_p, d.completion.top_k, d.completion.repetition_penalty) == (0.9, 50, 1.1)
    assert d.chat_structured.repetition_penalty == 1.0 and d.chat.repetition_penalty == 1.1
    assert d.specialist.max_new_tokens == 80


def test_bad_configured_defaults_are_refused_with_their_setting_name():
    with pytest.raises(InvalidArgument) as err:
        SamplingDefaults(chat=dataclasses.replace(OK, top_p=2.0))
    assert err.value.field == "sampling.chat.top_p"
