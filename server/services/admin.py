"""AdminService: API keys and per-tenant quotas (admin key only; `server/auth.py`)."""

from __future__ import annotations

import dataclasses

import grpc

from domain.tenancy.config import QuotaLimits
from domain.tenancy.keys import ApiKeys, check_tenant
from domain.tenancy.quotas import Quotas
from domain.tenancy.store import ApiKeyRecord
from llmserve.admin.v1 import admin_service_pb2 as pb
from llmserve.admin.v1 import admin_service_pb2_grpc as pb_grpc
from server.errors import servicer
from server.services.binding import ServiceBinding, full_name
from server.services.convert import mirror

QUOTA_FIELDS = tuple(f.name for f in dataclasses.fields(QuotaLimits))


def _key(record: ApiKeyRecord) -> pb.ApiKey:
    msg = pb.ApiKey(key_id=record.key_id, tenant=record.tenant, description=record.description,
                    revoked=record.revoked)
    msg.create_time.FromDatetime(record.created_at)
    if record.revoked_at is not None:
        msg.revoke_time.FromDatetime(record.revoked_at)
    return msg


@servicer
class AdminServicer(pb_grpc.AdminServiceServicer):
    def __init__(self, keys: ApiKeys, quotas: Quotas) -> None:
        self._keys = keys
        self._quotas = quotas

    async def CreateApiKey(self, request: pb.CreateApiKeyRequest, context: grpc.aio.ServicerContext
                           ) -> pb.CreateApiKeyResponse:
        created = await self._keys.create(request.tenant, request.description)
        return pb.CreateApiKeyResponse(api_key=_key(created.record), key=created.key)

    async def ListApiKeys(self, request: pb.ListApiKeysRequest, context: grpc.aio.ServicerContext
                          ) -> pb.ListApiKeysResponse:
        page = await self._keys.list(request.tenant, request.page_size, request.page_token)
        return pb.ListApiKeysResponse(api_keys=[_key(r) for r in page.items], next_page_token=page.next_page_token)

    async def RevokeApiKey(self, request: pb.RevokeApiKeyRequest, context: grpc.aio.ServicerContext
                           ) -> pb.RevokeApiKeyResponse:
        return pb.RevokeApiKeyResponse(api_key=_key(await self._keys.revoke(request.key_id)))

    async def GetTenantQuotas(self, request: pb.GetTenantQuotasRequest, context: grpc.aio.ServicerContext
                              ) -> pb.GetTenantQuotasResponse:
        limits = await self._quotas.limits(check_tenant(request.tenant))
        return pb.GetTenantQuotasResponse(tenant=request.tenant, quotas=mirror(limits, pb.TenantQuotas))

    async def SetTenantQuotas(self, request: pb.SetTenantQuotasRequest, context: grpc.aio.ServicerContext
                              ) -> pb.SetTenantQuotasResponse:
        values = {name: getattr(request.quotas, name) for name in QUOTA_FIELDS if request.quotas.HasField(name)}
        limits = await self._quotas.set_limits(request.tenant, values)
        return pb.SetTenantQuotasResponse(tenant=request.tenant, quotas=mirror(limits, pb.TenantQuotas))


BINDING = ServiceBinding(full_name(pb, "AdminService"), pb_grpc.add_AdminServiceServicer_to_server,
                         lambda ctx: AdminServicer(ctx.features.api_keys, ctx.features.quotas))
