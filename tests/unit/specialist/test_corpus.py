"""Corpus folders: names, uploads (empty, non-UTF-8, duplicates, unsafe file names), discovery."""

from __future__ import annotations

import pytest

from models.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from models.specialist.corpus import CorpusStore, check_name

RESERVED = ("general", "base", "trainingJobs", "models")


@pytest.mark.parametrize("name", ["", "../etc", "a/b", "with space", "x" * 65, "naïve", "base", "general",
                                  "trainingJobs"])
def test_bad_or_reserved_names_are_invalid(name):
    with pytest.raises(InvalidArgument) as err:
        check_name(name, RESERVED)
    assert err.value.field == "name"


@pytest.mark.parametrize("name", ["marketing", "data_science", "Biz-2", "x" * 64])
def test_safe_names_pass(name):
    assert check_name(name, RESERVED) == name


def test_upload_checks(tmp_path):
    store = CorpusStore(tmp_path, RESERVED)
    store.write("law", "a.txt", "Contract terms.".encode(), overwrite=False)
    with pytest.raises(AlreadyExists):
        store.write("law", "a.txt", b"again", overwrite=False)
    store.write("law", "a.txt", b"replaced", overwrite=True)
    assert (tmp_path / "law" / "a.txt").read_bytes() == b"replaced"
    for data, words in ((b"", "empty"), (b"  \n", "empty"), (b"\xff\xfe bad", "not UTF-8")):
        with pytest.raises(InvalidArgument, match=words):
            store.write("law", "b.txt", data, overwrite=False)
    for bad in ("../x.txt", "a/b.txt", "notes.md", ".hidden.txt", ""):
        with pytest.raises(InvalidArgument) as err:
            store.write("law", bad, b"text", overwrite=False)
        assert err.value.field == "file_name"
    assert [p.name for p in store.files(tmp_path / "law")] == ["a.txt"]


def test_discovery_skips_reserved_empty_and_unsafe_folders(tmp_path):
    for folder, files in {"alpha": ["x.txt"], "general": ["g.txt"], "models": ["m.txt"], "empty": [],
                          "weights": ["w.bin"], "bad name": ["y.txt"]}.items():
        (tmp_path / folder).mkdir()
        for f in files:
            (tmp_path / folder / f).write_text("some text")
    store = CorpusStore(tmp_path, RESERVED)
    assert [i.name for i in store.discover()] == ["alpha"]
    assert store.has_general()


def test_required_corpus_must_exist_and_be_utf8(tmp_path):
    store = CorpusStore(tmp_path, RESERVED)
    with pytest.raises(FailedPrecondition, match="no corpus"):
        store.require("missing")
    (tmp_path / "latin").mkdir()
    (tmp_path / "latin" / "a.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(FailedPrecondition, match="not UTF-8"):
        store.require("latin")
