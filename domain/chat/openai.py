"""OpenAI-compatible chat provider: POST <base_url>/chat/completions with httpx, with a
timeout per attempt and retries with exponential backoff on 429, 5xx and connection
errors. Structured replies are requested with `response_format: json_schema`; the
session layer validates them like local ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx

from domain.chat.config import ChatConfig
from models.errors import FailedPrecondition, Unavailable
from models.generation import ChatTurn
from domain.structured.schemas import JsonSchemaSpec
from models.types import FinishEvent, FinishReason, GenerationEvent, TokenEvent
from models.sampling_policy import SamplingParams

log = logging.getLogger(__name__)

FINISH = {"stop": FinishReason.EOS, "length": FinishReason.LENGTH, "content_filter": FinishReason.STOP_SEQUENCE}


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


class OpenAIProvider:
    """One HTTP client shared by every reply; `bind` ignores the requested model name
    except to refuse a different one (the remote model is configured)."""

    def __init__(self, config: ChatConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not config.openai_base_url or not config.openai_model:
            raise ValueError("the openai provider needs chat.openai_base_url and chat.openai_model")
        self.config = config
        headers = {"Authorization": f"Bearer {config.openai_api_key.value}"} if config.openai_api_key else {}
        self._client = httpx.AsyncClient(base_url=config.openai_base_url.rstrip("/") + "/", headers=headers,
                                         timeout=config.openai_timeout_s, transport=transport)
        self.attempts = 0
        """HTTP attempts made (for tests and metrics)."""

    async def bind(self, model: str | None) -> "OpenAIModel":
        if model and model != self.config.openai_model:
            raise FailedPrecondition(f"this server answers with '{self.config.openai_model}' only; got '{model}'")
        return OpenAIModel(self)

    async def close(self) -> None:
        await self._client.aclose()

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON response of one completion, retrying transient failures."""
        cfg = self.config
        last, last_retry_after = "", None
        for attempt in range(cfg.openai_max_retries + 1):
            if attempt:
                await asyncio.sleep(self._delay(attempt, last_retry_after))
            last_retry_after = None
            self.attempts += 1
            try:
                response = await self._client.post("chat/completions", json=body)
            except httpx.TransportError as exc:  # connect/read errors and timeouts
                last = f"{type(exc).__name__}"
                log.warning("chat provider attempt %d failed: %s", attempt + 1, last)
                continue
            if response.status_code == 200:
                return response.json()
            last = f"HTTP {response.status_code}"
            if not _transient(response.status_code):
                raise FailedPrecondition(f"chat provider refused the request ({last}): {response.text[:200]}")
            last_retry_after = _retry_after(response)
            log.warning("chat provider attempt %d failed: %s", attempt + 1, last)
        raise Unavailable(f"chat provider failed after {cfg.openai_max_retries + 1} attempts (last: {last})")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self.config.openai_backoff_s * 2 ** (attempt - 1), self.config.openai_backoff_max_s)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.config.openai_backoff_max_s))
        return delay


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


class OpenAIModel:
    def __init__(self, provider: OpenAIProvider) -> None:
        self._provider = provider
        self.name = provider.config.openai_model
        self.context_window = provider.config.openai_context_tokens

    def count(self, turns: list[ChatTurn]) -> int:
        # No tokenizer for a remote model: ~4 characters per token plus per-message framing.
        return sum(len(t.content) // 4 + 4 for t in turns) + 2

    async def compile(self, spec: JsonSchemaSpec, field: str) -> None:
        return None  # the remote API constrains (or not); replies are validated afterwards

    async def generate(self, turns: list[ChatTurn], params: SamplingParams, spec: JsonSchemaSpec | None,
                       compiled: Any) -> AsyncIterator[GenerationEvent]:
        body: dict[str, Any] = {
            "model": self.name, "messages": [{"role": t.role, "content": t.content} for t in turns],
            "max_tokens": params.max_new_tokens, "temperature": params.temperature if not params.greedy else 0.0,
            "top_p": params.top_p,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if spec is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": spec.name or "reply", "schema": spec.schema, "strict": True}}
        data = await self._provider.complete(body)
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise Unavailable("chat provider sent a malformed response") from None
        usage = data.get("usage") or {}
        yield TokenEvent((), text)
        yield FinishEvent(FINISH.get(choice.get("finish_reason"), FinishReason.EOS), text,
                          int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
