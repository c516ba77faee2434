"""Generation input checks name the offending field."""

from __future__ import annotations

import dataclasses

import pytest

from models.errors import InvalidArgument
from models.types import SamplingParams
from models.validation import validate_sampling

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
    ({"stop_sequences": ("",)}, "stop_sequences[0]"),
    ({"stop_sequences": ("x",) * 17}, "stop_sequences"),
])
def test_bad_values_name_their_field(change, field):
    with pytest.raises(InvalidArgument) as err:
        validate_sampling(dataclasses.replace(OK, **change), prompt_tokens=10, context_window=100)
    assert err.value.field == field


def test_prompt_filling_the_window_is_rejected():
    with pytest.raises(InvalidArgument) as err:
        validate_sampling(OK, prompt_tokens=100, context_window=100)
    assert err.value.field == "prompt"


def test_valid_values_pass():
    validate_sampling(dataclasses.replace(OK, max_new_tokens=90, top_p=1.0, temperature=0.0), 10, 100)
