"""LUT management beyond single calls to the store: erase a name across models (right to
be forgotten), export a LUT as one blob and import it back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from models.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from models.lut import codec
from models.lut.service import LutService, check_lut_name
from storage.errors import AlreadyExistsError, NotFoundError
from storage.luts import NewLutEntry


@dataclass(frozen=True)
class Exported:
    model: str
    data: bytes
    entry_count: int
    version: int


class LutAdmin:
    """Management operations; every change also drops the local compiled-LUT cache."""

    def __init__(self, service: LutService, repository) -> None:
        self._service = service
        self._repo = repository

    async def delete_lut(self, lut_name: str, model: str, allow_missing: bool) -> tuple[list[str], int]:
        """Delete (lut_name, model) or, with no model, the name for every model."""
        models = [self._service.resolve_model(model)] if model else self._service_models()
        deleted, entries = [], 0
        for name in models:
            try:
                record = await asyncio.to_thread(self._repo.get_lut, lut_name, name)
                await asyncio.to_thread(self._repo.delete_lut, lut_name, name)
            except NotFoundError:
                continue
            deleted.append(name)
            entries += record.entry_count
        self._service.forget(lut_name)
        if not deleted and not allow_missing:
            raise NotFoundError("lut", f"{model + '/' if model else ''}{lut_name}")
        return deleted, entries

    def _service_models(self) -> list[str]:
        return self._service._manager.registry.names()  # every configured model, loaded or not

    async def export(self, lut_name: str, model: str) -> Exported:
        name = self._service.resolve_model(model)
        snapshot = await asyncio.to_thread(self._repo.load_entries, lut_name, name)
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

    async def import_lut(self, lut_name: str, model: str, data: bytes, overwrite: bool):
        check_lut_name(lut_name, self._service.config)
        blob_model, entries = codec.decode_export(data)
        if model and self._service.resolve_model(model) != blob_model:
            raise InvalidArgument("model", f"the blob was exported from model '{blob_model}'")
        self._service.resolve_model(blob_model)  # the blob's model must be configured here
        rows = [NewLutEntry(e.label, e.label_context, e.payload_format, e.payload) for e in entries]
        try:
            await asyncio.to_thread(self._repo.replace_entries, lut_name, blob_model, rows, overwrite=overwrite)
        except AlreadyExistsError:
            raise AlreadyExists("lut", f"{blob_model}/{lut_name}") from None
        self._service.forget(lut_name, blob_model)
        return await asyncio.to_thread(self._repo.get_lut, lut_name, blob_model)
