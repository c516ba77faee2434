"""Corpora in the artifact store: names, uploads (empty, non-UTF-8, duplicates, unsafe file
names), discovery, and the seed's folders on disk copied in."""

from __future__ import annotations

import pytest

from models.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from domain.specialist.corpus import SpecialistCorpora, check_name
from storage import Database, sqlite_url
from storage.artifacts import ArtifactRepository

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


def _corpora(tmp_path) -> SpecialistCorpora:
    db = Database(sqlite_url(tmp_path / "db"))
    db.migrate()
    return SpecialistCorpora(ArtifactRepository(db), tmp_path, RESERVED)


def test_upload_checks(tmp_path):
    store = _corpora(tmp_path)
    store.write("law", "a.txt", "Contract terms.".encode(), overwrite=False)
    with pytest.raises(AlreadyExists):
        store.write("law", "a.txt", b"again", overwrite=False)
    store.write("law", "a.txt", b"replaced", overwrite=True)
    assert store.read("law") == ["replaced"] and not (tmp_path / "law").exists()  # stored, not on disk
    for data, words in ((b"", "empty"), (b"  \n", "empty"), (b"\xff\xfe bad", "not UTF-8")):
        with pytest.raises(InvalidArgument, match=words):
            store.write("law", "b.txt", data, overwrite=False)
    for bad in ("../x.txt", "a/b.txt", "notes.md", ".hidden.txt", ""):
        with pytest.raises(InvalidArgument) as err:
            store.write("law", bad, b"text", overwrite=False)
        assert err.value.field == "file_name"
    assert (store.info("law").file_count, store.info("law").size_bytes) == (1, len(b"replaced"))


def test_discovery_skips_reserved_empty_and_unsafe_folders(tmp_path):
    for folder, files in {"alpha": ["x.txt"], "general": ["g.txt"], "models": ["m.txt"], "empty": [],
                          "weights": ["w.bin"], "bad name": ["y.txt"]}.items():
        (tmp_path / folder).mkdir()
        for f in files:
            (tmp_path / folder / f).write_text("some text")
    store = _corpora(tmp_path)
    assert store.discover() == [] and not store.has_general()  # on disk only, not yet stored
    assert store.import_local() == ["alpha", "general"]
    assert [i.name for i in store.discover()] == ["alpha"]
    assert store.has_general() and store.read("alpha") == ["some text"]
    assert store.import_local() == []  # unchanged files are not stored again
    (tmp_path / "alpha" / "x.txt").write_text("some longer text")
    assert store.import_local() == ["alpha"] and store.read("alpha") == ["some longer text"]
    store.remove("alpha")
    assert store.discover() == [] and not (tmp_path / "alpha").exists()


def test_required_corpus_must_exist_and_be_utf8(tmp_path):
    store = _corpora(tmp_path)
    with pytest.raises(FailedPrecondition, match="no corpus"):
        store.require("missing")
    (tmp_path / "latin").mkdir()
    (tmp_path / "latin" / "a.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(FailedPrecondition, match="not UTF-8"):
        store.require("latin")
    (tmp_path / "fine").mkdir()
    (tmp_path / "fine" / "a.txt").write_text("Plain words.")
    assert store.require("fine").file_count == 1 and store.read("fine") == ["Plain words."]
