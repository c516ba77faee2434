"""SpecialistRepository on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from storage import (
    AlreadyExistsError,
    Database,
    InvalidArgumentError,
    NotFoundError,
    SpecialistRepository,
    SpecialistStatus,
)


@pytest.fixture
def specialists(db: Database) -> SpecialistRepository:
    return SpecialistRepository(db)


def test_create_get_delete(specialists: SpecialistRepository) -> None:
    created = specialists.create("datascience", "gpt2", corpus_bytes=3_000_000_000, corpus_files=2)
    assert created.status is SpecialistStatus.PENDING and created.metrics == {}
    assert created.weights_path is None
    assert specialists.get("datascience") == created  # corpus_bytes above 2**31 survives
    with pytest.raises(AlreadyExistsError) as err:
        specialists.create("datascience", "mistral")
    assert (err.value.resource_type, err.value.name) == ("specialist", "datascience")
    specialists.delete("datascience")
    with pytest.raises(NotFoundError):
        specialists.get("datascience")
    with pytest.raises(NotFoundError):
        specialists.delete("datascience")


def test_status_updates(specialists: SpecialistRepository) -> None:
    created = specialists.create("marketing", "gpt2")
    training = specialists.update_status("marketing", "training")
    assert training.status is SpecialistStatus.TRAINING and training.updated_at > created.updated_at
    ready = specialists.update_status(
        "marketing", SpecialistStatus.READY, weights_path="/w/marketing.pt", metrics={"loss": 0.5}
    )
    assert (ready.weights_path, ready.metrics) == ("/w/marketing.pt", {"loss": 0.5})
    failed = specialists.update_status("marketing", "failed")
    assert (failed.weights_path, failed.metrics) == ("/w/marketing.pt", {"loss": 0.5})
    assert specialists.get("marketing") == failed
    with pytest.raises(InvalidArgumentError):
        specialists.update_status("marketing", "retired")
    with pytest.raises(NotFoundError):
        specialists.update_status("missing", "ready")


def test_update_corpus(specialists: SpecialistRepository) -> None:
    specialists.create("legal", "gpt2")
    updated = specialists.update_corpus("legal", corpus_bytes=1234, corpus_files=3)
    assert (updated.corpus_bytes, updated.corpus_files) == (1234, 3)
    with pytest.raises(InvalidArgumentError):
        specialists.update_corpus("legal", corpus_bytes=-1, corpus_files=0)
    with pytest.raises(NotFoundError):
        specialists.update_corpus("missing", corpus_bytes=1, corpus_files=1)


def test_list_pages_by_name_and_filters_by_model(specialists: SpecialistRepository) -> None:
    names = ["e", "b", "d", "a", "c"]
    for name in names:
        specialists.create(name, "gpt2" if name in "abc" else "mistral")
    first = specialists.list(page_size=3)
    second = specialists.list(page_size=3, page_token=first.next_page_token)
    assert [s.name for s in first.items + second.items] == sorted(names)
    assert second.next_page_token == ""
    assert [s.name for s in specialists.list(model="gpt2").items] == ["a", "b", "c"]
