"""LUT management: read a LUT and its entries, delete entries or a whole name across
models (right to be forgotten), export a LUT as one blob and import it back. Every
change also drops the local compiled-LUT cache."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from domain.lut import codec
from domain.lut.service import LutService, check_lut_name
from domain.lut.updates import superseded_by
from domain.lut.store import LutEntryRecord, LutRecord, LutStore, LutVersion, NewLutEntry, Page
from models.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from storage.errors import AlreadyExistsError, NotFoundError

LABELS_IN_VIEW = 1000


@dataclass(frozen=True)
class LutView:
    """A LUT with the labels of its first entries."""

    record: LutRecord
    labels: list[str]
    labels_truncated: bool


@dataclass(frozen=True)
class Exported:
    model: str
    data: bytes
    entry_count: int
    version: int


def parse_entry_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument("entry_id", "must be an entry id returned by TrainLut or ListLutEntries") from None


class LutAdmin:
    """Management operations over the LUT store."""

    def __init__(self, service: LutService, store: LutStore) -> None:
        self._service = service
        self._store = store

    def _checked(self, lut_name: str, model: str) -> str:
        check_lut_name(lut_name, self._service.config)
        return self._service.resolve_model(model)

    async def view(self, tenant: str, lut_name: str, model: str) -> LutView:
        model = self._checked(lut_name, model)
        record = await asyncio.to_thread(self._store.get_lut, tenant, lut_name, model)
        return await self._view(tenant, record)

    async def _view(self, tenant: str, record: LutRecord) -> LutView:
        page = await asyncio.to_thread(self._store.list_entries, tenant, record.lut_name, record.model,
                                       page_size=LABELS_IN_VIEW)
        return LutView(record, [e.label for e in page.items], bool(page.next_page_token))

    async def list(self, tenant: str, model: str, page_size: int, page_token: str) -> Page[LutRecord]:
        resolved = self._service.resolve_model(model) if model else None
        return await asyncio.to_thread(self._store.list_luts, tenant, model=resolved, page_size=page_size,
                                       page_token=page_token)

    async def entries(self, tenant: str, lut_name: str, model: str, page_size: int,
                      page_token: str) -> tuple[Page[LutEntryRecord], dict[int, int]]:
        """A page of entries and, for the whole LUT, superseded entry id -> newer entry id
        (supersession depends on entries outside the page, so it is computed over all labels)."""
        model = self._checked(lut_name, model)
        page = await asyncio.to_thread(self._store.list_entries, tenant, lut_name, model, page_size=page_size or 100,
                                       page_token=page_token)
        labels = await asyncio.to_thread(self._store.entry_labels, tenant, lut_name, model)
        return page, superseded_by(labels)

    async def delete_entry(self, tenant: str, lut_name: str, model: str,
                           entry_id: str) -> tuple[LutVersion, LutRecord]:
        model = self._checked(lut_name, model)
        version = await asyncio.to_thread(self._store.delete_entry, tenant, lut_name, model, parse_entry_id(entry_id))
        self._service.forget(tenant, lut_name, model)
        return version, await asyncio.to_thread(self._store.get_lut, tenant, lut_name, model)

    async def delete_lut(self, tenant: str, lut_name: str, model: str, allow_missing: bool) -> tuple[list[str], int]:
        """Delete (lut_name, model) or, with no model, the name for every model."""
        check_lut_name(lut_name, self._service.config)
        models = [self._service.resolve_model(model)] if model else self._service.configured_models()
        deleted, entries = [], 0
        for name in models:
            try:
                record = await asyncio.to_thread(self._store.get_lut, tenant, lut_name, name)
                await asyncio.to_thread(self._store.delete_lut, tenant, lut_name, name)
            except NotFoundError:
                continue
            deleted.append(name)
            entries += record.entry_count
        self._service.forget(tenant, lut_name)
        if not deleted and not allow_missing:
            raise NotFoundError("lut", f"{model + '/' if model else ''}{lut_name}")
        return deleted, entries

    async def export(self, tenant: str, lut_name: str, model: str) -> Exported:
        name = self._checked(lut_name, model)
        snapshot = await asyncio.to_thread(self._store.load_entries, tenant, lut_name, name)
        if snapshot is None:
            raise NotFoundError("lut", f"{name}/{lut_name}")
        entries = [codec.ExportedEntry(e.label, e.label_context, e.payload_format, e.payload)
                   for e in snapshot.entries]
        size = sum(len(e.payload) + len(e.label) for e in entries)
        limit = self._service.config.max_export_bytes
        if size > limit:  # checked before encoding: the blob would be at least this large
            raise FailedPrecondition(f"LUT {name}/{lut_name} holds {size} bytes, more than one export may carry "
                                     f"({limit}); delete entries (DeleteLutEntry) or raise lut.max_export_bytes")
        return Exported(name, codec.encode_export(name, entries), len(entries), snapshot.version.version)

    async def import_lut(self, tenant: str, lut_name: str, model: str, data: bytes, overwrite: bool) -> LutView:
        check_lut_name(lut_name, self._service.config)
        blob_model, entries = codec.decode_export(data)
        if model and self._service.resolve_model(model) != blob_model:
            raise InvalidArgument("model", f"the blob was exported from model '{blob_model}'")
        self._service.resolve_model(blob_model)  # the blob's model must be configured here
        rows = [NewLutEntry(e.label, e.label_context, e.payload_format, e.payload) for e in entries]
        await self._service.check_entry_quota(tenant, len(rows), replacing=(lut_name, blob_model))
        try:
            await asyncio.to_thread(self._store.replace_entries, tenant, lut_name, blob_model, rows,
                                    overwrite=overwrite)
        except AlreadyExistsError:
            raise AlreadyExists("lut", f"{blob_model}/{lut_name}") from None
        self._service.forget(tenant, lut_name, blob_model)
        return await self._view(tenant, await asyncio.to_thread(self._store.get_lut, tenant, lut_name, blob_model))
