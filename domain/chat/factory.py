"""Builds the chat domain service from its configuration and the shared components."""

from __future__ import annotations

from domain.chat.cache import HistoryCache, NoCache, RedisHistoryCache
from domain.chat.config import ChatConfig
from domain.chat.openai import OpenAIProvider
from domain.chat.providers import ChatProvider, LocalProvider
from domain.chat.schemas import SchemaRegistry
from domain.chat.sessions import ChatSessions
from models.manager import ModelManager
from domain.structured.schemas import JsonSchemaSpec
from domain.chat.store import ChatStore
from domain.structured.compilers import GrammarCompilers
from models.sampling_policy import SamplingDefaults

PROVIDERS = ("local", "openai")


def build_provider(config: ChatConfig, manager: ModelManager, compilers: GrammarCompilers | None = None
                   ) -> ChatProvider:
    if config.provider == "local":
        return LocalProvider(manager, compilers)
    if config.provider == "openai":
        return OpenAIProvider(config)
    raise ValueError(f"chat.provider must be one of {PROVIDERS}, got {config.provider!r}")


def build_chat_sessions(config: ChatConfig, repo: ChatStore, manager: ModelManager, defaults: SamplingDefaults,
                        redis_url: str = "", provider: ChatProvider | None = None,
                        compilers: GrammarCompilers | None = None) -> ChatSessions:
    """`redis_url` is the server-wide Redis, used when `config.redis_url` is empty;
    `compilers` the server's grammar compilers (shared with other features)."""
    provider = provider or build_provider(config, manager, compilers)

    async def compile_check(spec: JsonSchemaSpec, field: str) -> None:
        # A registered schema must compile for the default model, or it would only fail later.
        bound = await provider.bind(None)
        await bound.compile(spec, field)

    url = config.redis_url or redis_url
    cache: HistoryCache = RedisHistoryCache(url, config.history_cache_ttl_s) if url else NoCache()
    return ChatSessions(repo, provider, SchemaRegistry(repo, compile_check), cache, config, defaults)
