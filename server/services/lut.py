"""LutService: per-user LUT training, LUT-biased generation (unary and streaming) and
LUT management. Thin: proto -> domain.lut (and the shared /generate router) -> proto."""

from __future__ import annotations

from typing import AsyncIterator

import grpc

from domain.generate_router import GenerateRouter, RoutedGeneration
from domain.lut.admin import LutAdmin, LutView
from domain.lut.service import LutService
from domain.lut.store import LutRecord
from llmserve.lut.v1 import lut_service_pb2 as pb
from llmserve.lut.v1 import lut_service_pb2_grpc as pb_grpc
from server.call_context import tenant
from server.errors import servicer
from server.services.binding import ServiceBinding, ServiceContext, full_name
from server.services.convert import FINISH_REASONS, collect, sampling_overrides, token_stream, usage


def _lut(record: LutRecord, view: LutView | None = None) -> pb.Lut:
    msg = pb.Lut(lut_name=record.lut_name, model=record.model, entry_count=record.entry_count,
                 labels=view.labels if view else [], labels_truncated=view.labels_truncated if view else False,
                 size_bytes=record.total_bytes, version=record.version)
    msg.create_time.FromDatetime(record.created_at)
    msg.update_time.FromDatetime(record.updated_at)
    return msg


@servicer
class LutServicer(pb_grpc.LutServiceServicer):
    def __init__(self, service: LutService, admin: LutAdmin, router: GenerateRouter) -> None:
        self._service = service
        self._admin = admin
        self._router = router

    async def _routed(self, request: pb.GenerateRequest | pb.StreamGenerateRequest) -> RoutedGeneration:
        threshold = request.threshold if request.HasField("threshold") else None
        return await self._router.prepare(tenant(), request.prompt, request.lut_name, request.model, threshold,
                                          sampling_overrides(request))

    async def TrainLut(self, request: pb.TrainLutRequest, context: grpc.aio.ServicerContext) -> pb.TrainLutResponse:
        t = await self._service.train(tenant(), request.label, request.label_context, request.lut_name, request.model)
        return pb.TrainLutResponse(status="ok", lut_name=t.lut_name, model=t.model, entry_id=str(t.entry_id),
                                   entry_count=t.entry_count, version=t.version,
                                   superseded_entry_ids=[str(i) for i in t.superseded])

    async def Generate(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext) -> pb.GenerateResponse:
        routed = await self._routed(request)
        done = await collect(routed.prepared.events())
        return pb.GenerateResponse(prompt=request.prompt, completion=done.text, full_text=request.prompt + done.text,
                                   lut_name=request.lut_name, model=routed.prepared.model_name,
                                   specialists=routed.experts, finish_reason=FINISH_REASONS[done.reason],
                                   usage=usage(done))

    async def StreamGenerate(self, request: pb.StreamGenerateRequest,
                             context: grpc.aio.ServicerContext) -> AsyncIterator[pb.StreamGenerateResponse]:
        routed = await self._routed(request)
        async for message in token_stream(routed.prepared.events(), pb.StreamGenerateResponse):
            yield message

    async def ListLuts(self, request: pb.ListLutsRequest, context: grpc.aio.ServicerContext) -> pb.ListLutsResponse:
        page = await self._admin.list(tenant(), request.model, request.page_size, request.page_token)
        return pb.ListLutsResponse(luts=[_lut(r) for r in page.items], next_page_token=page.next_page_token)

    async def GetLut(self, request: pb.GetLutRequest, context: grpc.aio.ServicerContext) -> pb.GetLutResponse:
        view = await self._admin.view(tenant(), request.lut_name, request.model)
        return pb.GetLutResponse(lut=_lut(view.record, view))

    async def ListLutEntries(self, request: pb.ListLutEntriesRequest,
                             context: grpc.aio.ServicerContext) -> pb.ListLutEntriesResponse:
        page, newer = await self._admin.entries(tenant(), request.lut_name, request.model, request.page_size,
                                                request.page_token)
        entries = []
        for e in page.items:
            msg = pb.LutEntry(entry_id=str(e.id), label=e.label, label_context=e.label_context or "",
                              size_bytes=e.size_bytes,
                              superseded_by_entry_id=str(newer[e.id]) if e.id in newer else "")
            msg.create_time.FromDatetime(e.created_at)
            entries.append(msg)
        return pb.ListLutEntriesResponse(entries=entries, next_page_token=page.next_page_token)

    async def DeleteLutEntry(self, request: pb.DeleteLutEntryRequest,
                             context: grpc.aio.ServicerContext) -> pb.DeleteLutEntryResponse:
        version, record = await self._admin.delete_entry(tenant(), request.lut_name, request.model, request.entry_id)
        return pb.DeleteLutEntryResponse(lut_name=request.lut_name, model=record.model, entry_id=request.entry_id,
                                         entry_count=record.entry_count, version=version.version)

    async def DeleteLut(self, request: pb.DeleteLutRequest, context: grpc.aio.ServicerContext) -> pb.DeleteLutResponse:
        models, entries = await self._admin.delete_lut(tenant(), request.lut_name, request.model,
                                                       request.allow_missing)
        return pb.DeleteLutResponse(lut_name=request.lut_name, models=models, deleted_entry_count=entries)

    async def ExportLut(self, request: pb.ExportLutRequest, context: grpc.aio.ServicerContext) -> pb.ExportLutResponse:
        out = await self._admin.export(tenant(), request.lut_name, request.model)
        return pb.ExportLutResponse(lut_name=request.lut_name, model=out.model, format_version=1, data=out.data,
                                    entry_count=out.entry_count, version=out.version)

    async def ImportLut(self, request: pb.ImportLutRequest, context: grpc.aio.ServicerContext) -> pb.ImportLutResponse:
        view = await self._admin.import_lut(tenant(), request.lut_name, request.model, request.data,
                                            request.overwrite)
        return pb.ImportLutResponse(lut=_lut(view.record, view))


def build(ctx: ServiceContext) -> LutServicer:
    f = ctx.features
    return LutServicer(f.luts, f.lut_admin, f.generate_router)


BINDING = ServiceBinding(full_name(pb, "LutService"), pb_grpc.add_LutServiceServicer_to_server, build)
