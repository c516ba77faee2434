"""A server for the client packages' tests: the tiny model, API keys on, small SAE and
specialist jobs, and an admin client that makes tenants and keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

import llmserve
from domain.sae.config import SaeConfig
from domain.secret import Secret
from domain.specialist.config import SpecialistConfig
from domain.tenancy.config import AuthConfig
from llmserve.admin.v1 import admin_service_pb2 as admin_pb
from models.engine.config import EngineConfig
from server.app import App
from tests.support import make_settings, running, tiny_specs

ADMIN_KEY = "admin-key-for-client-tests-0123456789"
SAE = SaeConfig(train_batch_tokens=256, checkpoint_interval_s=0.0, progress_interval_s=0.1, dead_steps_for_aux=5,
                ce_eval_sequences=2)
SPECIALISTS = SpecialistConfig(steps=3, batch_size=2, micro_batch=2, seq_len=16, eval_sequences=2,
                               poll_interval_s=0.05, general_samples=2)


@pytest_asyncio.fixture(scope="session")
async def client_app(tmp_path_factory, tiny_model_dir: Path) -> AsyncIterator[App]:
    settings = make_settings(tmp_path_factory.mktemp("client-server"), tiny_specs(tiny_model_dir), "tiny",
                             engine=EngineConfig(max_queued_requests=32), sae=SAE, specialist=SPECIALISTS,
                             auth=AuthConfig(mode="api_key", admin_key=Secret(ADMIN_KEY)))
    async with running(settings) as app:
        yield app


@pytest_asyncio.fixture(scope="session")
async def admin(client_app: App) -> AsyncIterator[llmserve.AsyncClient]:
    async with llmserve.AsyncClient(f"127.0.0.1:{client_app.port}", api_key=ADMIN_KEY) as client:
        yield client


async def new_tenant_key(admin: llmserve.AsyncClient, prefix: str = "tenant") -> tuple[str, str]:
    """A fresh tenant and an API key of it."""
    tenant = f"{prefix}-{uuid.uuid4().hex[:8]}"
    reply = await admin.call(admin.stubs.admin.CreateApiKey,
                             admin_pb.CreateApiKeyRequest(tenant=tenant, description="client tests"))
    return tenant, reply.key


@pytest_asyncio.fixture
async def tenant_key(admin: llmserve.AsyncClient) -> str:
    return (await new_tenant_key(admin))[1]


@pytest_asyncio.fixture
async def client(client_app: App, tenant_key: str) -> AsyncIterator[llmserve.AsyncClient]:
    async with llmserve.AsyncClient(f"127.0.0.1:{client_app.port}", api_key=tenant_key) as c:
        yield c
