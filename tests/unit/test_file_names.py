"""The one file-name rule (domain/files.py) every upload goes through: plain names only,
counted in UTF-8 bytes, with the feature's suffix."""

from __future__ import annotations

import pytest

from domain.files import MAX_NAME_BYTES, check_file_name
from models.errors import InvalidArgument


def refused(name: str, **kwargs) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as err:
        check_file_name(name, "file_name", **kwargs)
    assert err.value.field == "file_name"
    return err.value


@pytest.mark.parametrize("name", ["../etc/passwd", "..\\boot.ini", "a/b.txt", "/abs.txt", "dir\\x.txt"])
def test_path_separators_and_traversal_are_refused(name):
    assert "no path separators" in str(refused(name))


@pytest.mark.parametrize("name", [".hidden.txt", "..txt", ".."])
def test_a_leading_dot_is_refused(name):
    assert "no leading dot" in str(refused(name))


@pytest.mark.parametrize("name", ["a\nb.txt", "a\x00.txt", "tab\t.txt", "bell\x07.txt", "del\x7f.txt",
                                  "rtl\u202eexe.txt", "zero\u200bwidth.txt"])
def test_control_and_format_characters_are_refused(name):
    assert "no control characters" in str(refused(name))


def test_the_limit_counts_utf8_bytes_not_characters():
    name = "é" * 251 + ".txt"  # 255 characters, 506 bytes
    assert len(name) == MAX_NAME_BYTES
    err = refused(name)
    assert "506 bytes" in str(err) and str(MAX_NAME_BYTES) in str(err)
    fits = "é" * 125 + ".txt"  # 254 bytes
    assert check_file_name(fits, "file_name", suffix=".txt") == fits
    assert "256 bytes" in str(refused("é" * 126 + ".txt"))
    ascii_max = "a" * (MAX_NAME_BYTES - 4) + ".txt"
    assert check_file_name(ascii_max, "file_name", suffix=".txt") == ascii_max
    assert "256 bytes" in str(refused("a" + ascii_max))


def test_suffix_rule():
    assert check_file_name("notes.txt", "file_name", suffix=".txt") == "notes.txt"
    assert check_file_name("notes.md", "file_name") == "notes.md"  # no suffix asked: any ending
    for name in ("notes.md", "notes.txt.bak", "notes", "notestxt"):
        assert "must end in .txt" in str(refused(name, suffix=".txt", example="reviews.txt"))
    assert "reviews.txt" in str(refused("notes.md", suffix=".txt", example="reviews.txt"))


def test_empty_name_names_an_example():
    assert 'e.g. "reviews.txt"' in str(refused("", example="reviews.txt"))


@pytest.mark.parametrize("name", ["corpus.txt", "naïve café.txt", "東京.txt", "a b-c_d.1.txt", "x.txt"])
def test_plain_names_pass_unchanged(name):
    assert check_file_name(name, "file_name", suffix=".txt") == name
