"""Who may call what: one interceptor authenticates every call (API key in `authorization:
Bearer <key>` or `x-api-key`), applies the method's policy from one table, counts the call
against the tenant's quotas, and makes the caller known to the servicer (`call_context`).

Open to everyone: health, reflection and ServerService (`GET /`, `GET /health`). Admin key
only: AdminService and the methods that change the deployment-wide specialist set."""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from domain.tenancy.config import DEFAULT_TENANT, AuthConfig
from domain.tenancy.keys import ApiKeys
from domain.tenancy.quotas import Quotas
from models.errors import PermissionDenied, Unauthenticated
from server import call_context
from server.call_context import Caller
from server.errors import abort
from server.handlers import wrap_handler

log = logging.getLogger(__name__)

OPEN_SERVICES = frozenset({
    "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection",
    "llmserve.server.v1.ServerService",
})
ADMIN_METHODS = frozenset({
    "/llmserve.specialist.v1.SpecialistService/AddSpecialist",
    "/llmserve.specialist.v1.SpecialistService/DeleteSpecialist",
    "/llmserve.specialist.v1.SpecialistService/UploadSpecialistCorpus",
    "/llmserve.specialist.v1.SpecialistService/CreateTrainingJob",
    "/llmserve.specialist.v1.SpecialistService/CancelTrainingJob",
})
ADMIN_SERVICES = frozenset({"llmserve.admin.v1.AdminService"})
GENERATION_METHODS = frozenset({
    f"/llmserve.generation.v1.GenerationService/{m}"
    for m in ("Complete", "StreamComplete", "Chat", "StreamChat", "CompleteCompat", "ChatCompat")
} | {f"/llmserve.lut.v1.LutService/{m}" for m in ("Generate", "StreamGenerate")}
  | {f"/llmserve.specialist.v1.SpecialistService/{m}" for m in ("Generate", "StreamGenerate")}
  | {f"/llmserve.chat.v1.ChatService/{m}" for m in ("StartConversation", "StreamConversation", "SendMessage",
                                                    "StreamMessage")}
  | {f"/llmserve.openai.v1.OpenAIService/{m}" for m in ("CreateChatCompletion", "CreateCompletion")})
"""Calls that generate tokens: they take a concurrent-generation slot and are refused while
the tenant's token budget is used up."""

UNAUTHENTICATED = "missing or invalid API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`"


def _presented_key(metadata: Any) -> str:
    for name, value in metadata or ():
        if name == "x-api-key":
            return value.strip()
        if name == "authorization" and value[:7].lower() == "bearer ":
            return value[7:].strip()
    return ""


class Authenticator:
    def __init__(self, config: AuthConfig, keys: ApiKeys) -> None:
        self._config = config
        self._keys = keys

    async def caller(self, metadata: Any) -> Caller:
        if self._config.mode == "off":
            return Caller(DEFAULT_TENANT, None, admin=True)
        presented = _presented_key(metadata)
        admin = self._config.admin_key.value
        if presented and admin and hmac.compare_digest(presented.encode(), admin.encode()):
            return Caller(DEFAULT_TENANT, None, admin=True)
        record = await self._keys.verify(presented)
        if record is None:
            raise Unauthenticated(UNAUTHENTICATED)
        return Caller(record.tenant, record.key_id, admin=False)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, authenticator: Authenticator, quotas: Quotas) -> None:
        self._auth = authenticator
        self._quotas = quotas

    async def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        method = details.method
        if handler is None or method.split("/")[1] in OPEN_SERVICES:
            return handler
        return wrap_handler(handler, lambda context: self._guard(method, details.invocation_metadata, context))

    @contextlib.asynccontextmanager
    async def _guard(self, method: str, metadata: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        try:
            who = await self._auth.caller(metadata)
            if not who.admin and (method in ADMIN_METHODS or method.split("/")[1] in ADMIN_SERVICES):
                raise PermissionDenied(f"{method.rsplit('/', 1)[1]} needs the admin key")
            await self._quotas.admit_request(who.tenant)
            generation = method in GENERATION_METHODS
            if generation:
                await self._quotas.check_tokens(who.tenant)
            holds_slot = generation and await self._quotas.open_stream(who.tenant)
        except Exception as exc:  # noqa: BLE001 - every refusal goes out through the error table
            await abort(context, exc)
        usage, tokens = call_context.begin(who)
        try:
            yield
        finally:
            call_context.end(tokens)
            if holds_slot:
                await self._quotas.close_stream(who.tenant)
            await self._quotas.charge_tokens(who.tenant, usage.completion_tokens)
