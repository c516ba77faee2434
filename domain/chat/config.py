"""Typed settings of the chat service; the server embeds one as `Settings.chat`."""

from __future__ import annotations

from dataclasses import dataclass

from domain.secret import Secret


@dataclass(frozen=True)
class ChatConfig:
    """How chat replies are produced and where hot session state is cached."""

    provider: str = "local"
    """Who writes replies: "local" (this server's engine) or "openai" (an OpenAI-compatible
    HTTP API at `openai_base_url`)."""
    default_system_prompt: str = ""
    """System prompt of sessions that set none; empty leaves the chat template's default."""
    min_reply_tokens: int = 64
    """Room kept for the reply when trimming history for a request without max_new_tokens."""
    redis_url: str = ""
    """Redis URL of the history cache, e.g. redis://127.0.0.1:6379/0; empty falls back to
    `Settings.redis_url`, and both empty disables the cache."""
    history_cache_ttl_s: int = 3600
    """Seconds a cached history lives without use."""
    openai_base_url: str = ""
    """Base URL of the OpenAI-compatible API, e.g. https://api.openai.com/v1 (the
    provider POSTs to <base>/chat/completions)."""
    openai_api_key: Secret = Secret()
    """Bearer token sent to that API; empty sends none."""
    openai_model: str = ""
    """Model name sent to that API (sessions store it as their model)."""
    openai_timeout_s: float = 60.0
    """Timeout of one HTTP attempt, seconds."""
    openai_max_retries: int = 3
    """Retries after the first attempt on 429, 5xx and connection errors."""
    openai_backoff_s: float = 0.5
    """First retry delay, doubled per retry (a Retry-After header wins when larger)."""
    openai_backoff_max_s: float = 8.0
    """Upper bound of one retry delay."""
    openai_context_tokens: int = 8192
    """Context window assumed for the remote model when trimming history."""
