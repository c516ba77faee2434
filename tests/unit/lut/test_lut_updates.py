"""Supersession of LUT entries: which restatements replace an earlier fact."""

from __future__ import annotations

import pytest

from domain.lut.updates import superseded_by, supersedes


@pytest.mark.parametrize("old,new", [
    ("My dog is called Biscuit.", "My dog is called Rex now."),
    ("My favourite drink is ginger beer.", "My favourite drink is cold brew now."),
    ("My manager is called Odile Marchetti.", "My manager is called Henrik Sato now."),
    ("My locker number at the gym is 317.", "My locker number at the gym is 902 now."),
    ("My passport is in the top drawer of the desk.", "My passport is in the safe now."),
    ("I commute to work by ferry.", "I commute to work by bicycle."),
])
def test_a_new_value_for_the_same_subject_supersedes(old, new):
    assert supersedes(old, new)


@pytest.mark.parametrize("old,new", [
    ("My brother Matteo lives in Valparaíso.", "My brother Matteo works as a helicopter pilot."),
    ("My brother Matteo lives in Valparaíso.", "My brother Matteo is allergic to peanuts."),
    ("My work laptop is a Wexford Pro 14.", "My work laptop is due for replacement in 2027."),
    ("My dog is called Biscuit.", "My cat is called Biscuit."),  # another subject
    ("My dog is called Biscuit.", "My dog is called Biscuit."),  # the same fact twice
    ("The weather is nice.", "The meeting is on Monday."),  # nothing shared but function words
])
def test_other_attributes_or_subjects_do_not_supersede(old, new):
    assert not supersedes(old, new)


def test_superseded_by_follows_insertion_order_and_chains():
    entries = [(1, "My dog is called Biscuit."), (2, "My cat is called Tom."), (3, "My dog is called Rex now."),
               (4, "My dog is called Max.")]
    assert superseded_by(entries) == {1: 3, 3: 4}
    # insertion order decides which one is newer, not the ids
    assert superseded_by([(3, "My dog is called Rex now."), (1, "My dog is called Biscuit.")]) == {3: 1}


def test_deleting_the_newer_entry_makes_the_older_active_again():
    entries = [(1, "My dog is called Biscuit."), (2, "My dog is called Rex now.")]
    assert superseded_by(entries) == {1: 2}
    assert superseded_by(entries[:1]) == {}
