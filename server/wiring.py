"""The composition root: every domain service built once from Settings, with the
storage repositories that implement the interfaces the features own. Servicers get
these objects explicitly; nothing is looked up by name at call time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from domain.chat.factory import build_chat_sessions
from domain.chat.sessions import ChatSessions
from domain.generate_router import GenerateRouter
from domain.jobs import JobStore
from domain.lut.admin import LutAdmin
from domain.openai_api.service import OpenAICompletions
from domain.lut.service import LutService
from domain.sae.corpus import UploadedCorpora
from domain.sae.jobs import SaeJobs
from domain.specialist.service import SpecialistService
from domain.structured.compilers import GrammarCompilers
from domain.tenancy.counters import Counters, MemoryCounters, RedisCounters
from domain.tenancy.counters import close as close_counters
from domain.tenancy.keys import ApiKeys
from domain.tenancy.quotas import Quotas
from models.engine.observer import EngineObserver
from models.generation import TextGenerator
from models.manager import ModelManager
from models.registry import ModelRegistry
from server.settings import Settings
from storage import (
    ChatRepository,
    Database,
    JobRepository,
    LutRepository,
    SpecialistRepository,
    TenantRepository,
)
from storage.artifacts import ArtifactRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Features:
    """The domain services one server runs, over one model manager and one database."""

    manager: ModelManager
    generator: TextGenerator
    luts: LutService
    lut_admin: LutAdmin
    specialists: SpecialistService
    generate_router: GenerateRouter
    """What the shared `POST /generate` (seeds 000 and 003) routes to."""
    chat: ChatSessions
    openai: OpenAICompletions
    sae: SaeJobs
    sae_corpora: UploadedCorpora
    api_keys: ApiKeys
    quotas: Quotas
    counters: Counters
    jobs: JobStore
    """Durable training jobs of every kind (the metrics read their states)."""

    async def start(self) -> None:
        """Run once the default model is loaded: built-in schemas, the specialist mixture
        and the job runners. A specialist failure leaves its service UNAVAILABLE only."""
        await self.chat.start()
        try:
            await self.specialists.start()
        except Exception:
            log.exception("specialist service failed to start")
        await self.sae.start()

    async def close(self) -> None:
        await asyncio.gather(self.chat.close(), self.specialists.close(), self.sae.close())
        await close_counters(self.counters)


def build_features(settings: Settings, database: Database,
                   observer: Callable[[str], EngineObserver] | None = None) -> Features:
    """`observer`: model name -> the observer of its engine (the metrics)."""
    registry = ModelRegistry(settings.models, settings.default_model)
    manager = ModelManager(registry, settings.model_cache_dir, settings.engine, observer)
    generator = TextGenerator(manager, settings.sampling)
    grammars = GrammarCompilers()
    jobs = JobRepository(database)
    tenants = TenantRepository(database)
    counters: Counters = RedisCounters(settings.redis_url) if settings.redis_url else MemoryCounters()
    quotas = Quotas(tenants, settings.auth.quotas, counters)
    luts = LutService(manager, generator, LutRepository(database), settings.lut, quotas)
    artifacts = ArtifactRepository(database)
    spec_cfg = settings.specialist
    specialists = SpecialistService(manager, generator, SpecialistRepository(database), jobs, artifacts, spec_cfg,
                                    Path(spec_cfg.corpus_dir or settings.data_dir),
                                    Path(spec_cfg.weights_dir or settings.data_dir / "specialists"), settings.replica)
    sae_cfg = settings.sae
    samples = settings.data_dir / "samples"
    sae_corpora = UploadedCorpora(artifacts, sae_cfg.max_upload_bytes, samples / ".spool", quotas, legacy_dir=samples)
    return Features(
        manager=manager, generator=generator, luts=luts, lut_admin=LutAdmin(luts, LutRepository(database)),
        specialists=specialists, generate_router=GenerateRouter(luts, specialists),
        chat=build_chat_sessions(settings.chat, ChatRepository(database), manager, settings.sampling,
                                 redis_url=settings.redis_url, compilers=grammars),
        openai=OpenAICompletions(generator, manager, grammars, luts, specialists),
        sae=SaeJobs(manager, jobs, sae_corpora, artifacts, sae_cfg, settings.data_dir / "sae", settings.replica.lease()),
        sae_corpora=sae_corpora,
        api_keys=ApiKeys(tenants), quotas=quotas, counters=counters, jobs=jobs)
