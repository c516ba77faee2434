"""What the specialist catalogue needs from storage: the interface the specialist
feature owns (`storage.specialists.SpecialistRepository` implements it) and its records."""

from __future__ import annotations

from typing import Any, Protocol

from storage.pagination import Page
from storage.specialists import SpecialistRecord, SpecialistStatus

__all__ = ["Page", "SpecialistRecord", "SpecialistStatus", "SpecialistStore"]


class SpecialistStore(Protocol):
    def create(self, name: str, model: str, *, corpus_bytes: int = 0, corpus_files: int = 0,
               status: SpecialistStatus | str = SpecialistStatus.PENDING) -> SpecialistRecord: ...
    def get(self, name: str) -> SpecialistRecord: ...
    def list(self, *, model: str | None = None, page_size: int = 0, page_token: str = "") -> Page[SpecialistRecord]: ...
    def update_status(self, name: str, status: SpecialistStatus | str, *, weights_path: str | None = None,
                      metrics: dict[str, Any] | None = None) -> SpecialistRecord: ...
    def update_corpus(self, name: str, *, corpus_bytes: int, corpus_files: int) -> SpecialistRecord: ...
    def delete(self, name: str) -> None: ...
