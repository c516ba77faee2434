"""LutService: per-user LUT training, LUT-biased generation (unary and streaming) and
LUT management. Thin: proto -> models.lut / storage.luts -> proto."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import grpc

from llmserve.lut.v1 import lut_service_pb2 as pb
from llmserve.lut.v1 import lut_service_pb2_grpc as pb_grpc
from models.errors import InvalidArgument
from models.generation import PreparedRequest
from models.lut.admin import LutAdmin
from models.lut.service import LutGeneration, LutService, check_lut_name
from server.errors import servicer
from server.services.binding import ServiceBinding, ServiceContext, full_name
from server.services.convert import FINISH_REASONS, collect, token_stream, usage
from storage.luts import LutRecord, LutRepository

LABELS_IN_GET = 1000


def _overrides(request: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if request.HasField("max_new_tokens"):
        out["max_new_tokens"] = request.max_new_tokens
    elif request.HasField("length"):
        out["max_new_tokens"] = request.length
    for name in ("temperature", "top_k"):
        if request.HasField(name):
            out[name] = getattr(request, name)
    return out


def _lut(record: LutRecord, labels: list[str] = (), truncated: bool = False) -> pb.Lut:
    msg = pb.Lut(lut_name=record.lut_name, model=record.model, entry_count=record.entry_count,
                 labels=list(labels), labels_truncated=truncated, size_bytes=record.total_bytes,
                 version=record.version)
    msg.create_time.FromDatetime(record.created_at)
    msg.update_time.FromDatetime(record.updated_at)
    return msg


def _entry_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument("entry_id", "must be an entry id returned by TrainLut or ListLutEntries") from None


@servicer
class LutServicer(pb_grpc.LutServiceServicer):
    def __init__(self, service: LutService, repository: LutRepository, components: dict[str, Any]) -> None:
        self._service = service
        self._repo = repository
        self._admin = LutAdmin(service, repository)
        self._components = components

    async def _routed(self, request: Any) -> tuple[PreparedRequest, tuple[str, ...]]:
        """Seeds 000 and 003 share POST /generate: without a lut_name, the specialist mixture
        answers when one serves the requested model (and names its experts); otherwise the
        LUT path does (an empty LUT is the base model)."""
        specialists = self._components.get("specialists")
        serving = specialists.serving if specialists is not None else None
        if not request.lut_name and serving is not None and (
                not request.model or self._service.resolve_model(request.model) == serving.model):
            return await specialists.prepare(request.prompt, _overrides(request))
        return (await self._prepare(request)).prepared, ()

    async def _prepare(self, request: Any) -> LutGeneration:
        threshold = request.threshold if request.HasField("threshold") else None
        return await self._service.prepare(request.prompt, request.lut_name, request.model, threshold,
                                           _overrides(request))

    async def TrainLut(self, request: pb.TrainLutRequest, context: grpc.aio.ServicerContext) -> pb.TrainLutResponse:
        t = await self._service.train(request.label, request.label_context, request.lut_name, request.model)
        record = await self._to_thread(self._repo.get_lut, t.lut_name, t.model)
        return pb.TrainLutResponse(status="ok", lut_name=t.lut_name, model=t.model, entry_id=str(t.entry_id),
                                   entry_count=record.entry_count, version=t.version)

    async def Generate(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext) -> pb.GenerateResponse:
        prepared, experts = await self._routed(request)
        done = await collect(prepared.events())
        return pb.GenerateResponse(prompt=request.prompt, completion=done.text, full_text=request.prompt + done.text,
                                   lut_name=request.lut_name, model=prepared.model_name, specialists=experts,
                                   finish_reason=FINISH_REASONS[done.reason], usage=usage(done))

    async def StreamGenerate(self, request: pb.StreamGenerateRequest,
                             context: grpc.aio.ServicerContext) -> AsyncIterator[pb.StreamGenerateResponse]:
        prepared, _ = await self._routed(request)
        async for message in token_stream(prepared.events(), pb.StreamGenerateResponse):
            yield message

    async def ListLuts(self, request: pb.ListLutsRequest, context: grpc.aio.ServicerContext) -> pb.ListLutsResponse:
        model = self._service.resolve_model(request.model) if request.model else None
        page = await self._to_thread(self._repo.list_luts, model=model, page_size=request.page_size,
                                     page_token=request.page_token)
        return pb.ListLutsResponse(luts=[_lut(r) for r in page.items], next_page_token=page.next_page_token)

    async def GetLut(self, request: pb.GetLutRequest, context: grpc.aio.ServicerContext) -> pb.GetLutResponse:
        check_lut_name(request.lut_name, self._service.config)
        model = self._service.resolve_model(request.model)
        record = await self._to_thread(self._repo.get_lut, request.lut_name, model)
        page = await self._to_thread(self._repo.list_entries, request.lut_name, model, page_size=LABELS_IN_GET)
        return pb.GetLutResponse(lut=_lut(record, [e.label for e in page.items], bool(page.next_page_token)))

    async def ListLutEntries(self, request: pb.ListLutEntriesRequest,
                             context: grpc.aio.ServicerContext) -> pb.ListLutEntriesResponse:
        check_lut_name(request.lut_name, self._service.config)
        model = self._service.resolve_model(request.model)
        page = await self._to_thread(self._repo.list_entries, request.lut_name, model,
                                     page_size=request.page_size or 100, page_token=request.page_token)
        entries = []
        for e in page.items:
            msg = pb.LutEntry(entry_id=str(e.id), label=e.label, label_context=e.label_context or "",
                              size_bytes=e.size_bytes)
            msg.create_time.FromDatetime(e.created_at)
            entries.append(msg)
        return pb.ListLutEntriesResponse(entries=entries, next_page_token=page.next_page_token)

    async def DeleteLutEntry(self, request: pb.DeleteLutEntryRequest,
                             context: grpc.aio.ServicerContext) -> pb.DeleteLutEntryResponse:
        check_lut_name(request.lut_name, self._service.config)
        model = self._service.resolve_model(request.model)
        version = await self._to_thread(self._repo.delete_entry, request.lut_name, model, _entry_id(request.entry_id))
        self._service.forget(request.lut_name, model)
        record = await self._to_thread(self._repo.get_lut, request.lut_name, model)
        return pb.DeleteLutEntryResponse(lut_name=request.lut_name, model=model, entry_id=request.entry_id,
                                         entry_count=record.entry_count, version=version.version)

    async def DeleteLut(self, request: pb.DeleteLutRequest, context: grpc.aio.ServicerContext) -> pb.DeleteLutResponse:
        check_lut_name(request.lut_name, self._service.config)
        models, entries = await self._admin.delete_lut(request.lut_name, request.model, request.allow_missing)
        return pb.DeleteLutResponse(lut_name=request.lut_name, models=models, deleted_entry_count=entries)

    async def ExportLut(self, request: pb.ExportLutRequest, context: grpc.aio.ServicerContext) -> pb.ExportLutResponse:
        check_lut_name(request.lut_name, self._service.config)
        out = await self._admin.export(request.lut_name, request.model)
        return pb.ExportLutResponse(lut_name=request.lut_name, model=out.model, format_version=1, data=out.data,
                                    entry_count=out.entry_count, version=out.version)

    async def ImportLut(self, request: pb.ImportLutRequest, context: grpc.aio.ServicerContext) -> pb.ImportLutResponse:
        record = await self._admin.import_lut(request.lut_name, request.model, request.data, request.overwrite)
        page = await self._to_thread(self._repo.list_entries, record.lut_name, record.model, page_size=LABELS_IN_GET)
        return pb.ImportLutResponse(lut=_lut(record, [e.label for e in page.items], bool(page.next_page_token)))

    @staticmethod
    async def _to_thread(fn, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, **kwargs)


def build(ctx: ServiceContext) -> LutServicer:
    repository = LutRepository(ctx.database)
    return LutServicer(LutService(ctx.manager, ctx.generator, repository, ctx.settings.lut), repository,
                       ctx.components)


BINDING = ServiceBinding(full_name(pb, "LutService"), pb_grpc.add_LutServiceServicer_to_server, build)
