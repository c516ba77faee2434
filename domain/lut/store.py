"""What LUTs need from storage: the interface the LUT feature owns
(`storage.luts.LutRepository` implements it) and the records it returns."""

from __future__ import annotations

from typing import Protocol

from storage.luts import (
    LutEntryAdded,
    LutEntryRecord,
    LutRecord,
    LutSnapshot,
    LutVersion,
    NewLutEntry,
)
from storage.pagination import Page

__all__ = ["LutEntryAdded", "LutEntryRecord", "LutRecord", "LutSnapshot", "LutStore", "LutVersion", "NewLutEntry",
           "Page"]


class LutStore(Protocol):
    def add_entry(self, tenant: str, lut_name: str, model: str, label: str, payload: bytes, *, payload_format: str,
                  label_context: str | None = None) -> LutEntryAdded: ...
    def get_version(self, tenant: str, lut_name: str, model: str) -> LutVersion | None: ...
    def load_entries(self, tenant: str, lut_name: str, model: str) -> LutSnapshot | None: ...
    def get_lut(self, tenant: str, lut_name: str, model: str) -> LutRecord: ...
    def list_luts(self, tenant: str, *, model: str | None = None, page_size: int = 0, page_token: str = "") -> Page[LutRecord]: ...
    def list_entries(self, tenant: str, lut_name: str, model: str, *, page_size: int = 0,
                     page_token: str = "") -> Page[LutEntryRecord]: ...
    def delete_entry(self, tenant: str, lut_name: str, model: str, entry_id: int) -> LutVersion: ...
    def delete_lut(self, tenant: str, lut_name: str, model: str) -> None: ...
    def replace_entries(self, tenant: str, lut_name: str, model: str, entries: list[NewLutEntry], *,
                        overwrite: bool) -> LutVersion: ...
    def count_entries(self, tenant: str) -> int: ...
