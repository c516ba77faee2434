"""OpenAI request bodies -> llmserve's terms: chat turns or prompts, the sampling overrides
of the one policy (`models.sampling_policy`), the number of choices, the stream options
and the JSON Schema of `response_format`.

Every parameter is checked here, by OpenAI's name, and an unknown one is refused (OpenAI
does the same): a client that sends `logit_bias` or a typo must not get a silently
different generation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.structured.schemas import JsonSchemaSpec, check_schema
from models.errors import InvalidArgument
from models.generation import ChatTurn

MAX_CHOICES = 16
"""`n` times the number of prompts: each choice is one row in the engine."""

COMMON = frozenset({
    "model", "max_tokens", "temperature", "top_p", "n", "stop", "seed", "presence_penalty",
    "frequency_penalty", "logprobs", "user", "stream", "stream_options",
    # llmserve's own controls, through the body (the `openai` SDK's `extra_body`).
    "top_k", "repetition_penalty",
})
LUT = frozenset({"lut_name", "threshold"})
"""llmserve's per-user lookup tables (seed 000), on completions: the LUT steers the prompt."""
STEERING = LUT | {"specialists"}
"""llmserve's features that steer a completion: a LUT, or the specialist mixture (seed 003)."""
CHAT = COMMON | STEERING | {"messages", "max_completion_tokens", "top_logprobs", "response_format"}
COMPLETION = COMMON | STEERING | {"prompt", "echo", "best_of", "suffix"}

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
"""OpenAI's roles -> the chat template's ("developer" is the newer name of "system")."""


@dataclass(frozen=True)
class OpenAIRequest:
    """A checked chat or completion request."""

    model: str
    overrides: Mapping[str, Any]
    """Sampling controls by the policy's names (max_new_tokens, stop_sequences, ...)."""
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    turns: tuple[ChatTurn, ...] = ()
    """Chat: the conversation."""
    prompts: tuple[str, ...] = ()
    """Completion: one or more prompts; each gets `n` choices."""
    echo: bool = False
    schema: JsonSchemaSpec | None = None
    """Chat with `response_format` json_object / json_schema: the reply's schema."""
    lut_name: str = ""
    """Completion: the caller's LUT that steers generation ("" for none)."""
    threshold: float | None = None
    """With lut_name: the LUT's firing threshold (the LUT settings' default when None)."""
    specialists: bool = False
    """Completion: the trained specialist mixture answers (its model, its experts' gates)."""


POLICY_NAMES = {"max_new_tokens": "max_tokens", "stop_sequences": "stop"}
"""The policy's names of controls whose OpenAI name differs: its refusals name OpenAI's."""


def openai_field(field: str) -> str:
    """`max_new_tokens` -> `max_tokens`, `stop_sequences[2]` -> `stop[2]`; others as they are."""
    head, bracket, rest = field.partition("[")
    return POLICY_NAMES.get(head, head) + bracket + rest


def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument("body", f"is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("body", "must be a JSON object")
    return data


def parse_chat(body: Mapping[str, Any]) -> OpenAIRequest:
    _known(body, CHAT)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidArgument("messages", "is required: a non-empty list of {role, content} objects")
    turns = tuple(_turn(i, m) for i, m in enumerate(messages))
    for name in sorted(STEERING):
        if body.get(name) is not None:
            raise InvalidArgument(name, "applies to /v1/completions: it steers the completion of a prompt")
    if _opt(body, "top_logprobs", int) is not None and body["top_logprobs"] != 0:
        raise InvalidArgument("top_logprobs", "log probabilities are not available on this server")
    if _opt(body, "logprobs", bool):
        raise InvalidArgument("logprobs", "log probabilities are not available on this server")
    budget = _opt(body, "max_completion_tokens", int)
    overrides = _sampling(body)
    if budget is not None:
        overrides["max_new_tokens"] = budget
    stream, include_usage = _stream(body)
    return OpenAIRequest(model=_model(body), overrides=overrides, n=_n(body, 1), stream=stream,
                         include_usage=include_usage, turns=turns, schema=_response_format(body))


def parse_completion(body: Mapping[str, Any]) -> OpenAIRequest:
    _known(body, COMPLETION)
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        prompts: tuple[str, ...] = (prompt,)
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = tuple(prompt)
    else:
        raise InvalidArgument("prompt", "is required: a string or a non-empty list of strings "
                                        "(token-id prompts are not accepted)")
    logprobs = _opt(body, "logprobs", int)
    if logprobs:
        raise InvalidArgument("logprobs", "log probabilities are not available on this server")
    if _opt(body, "suffix", str):
        raise InvalidArgument("suffix", "insertion (a suffix) is not supported by this server's models")
    n = _n(body, len(prompts))
    best_of = _opt(body, "best_of", int)
    if best_of is not None and best_of != n:
        raise InvalidArgument("best_of", f"only best_of = n ({n}) is supported")
    stream, include_usage = _stream(body)
    threshold = _opt(body, "threshold", float)
    lut_name = _opt(body, "lut_name", str) or ""
    if threshold is not None and not lut_name:
        raise InvalidArgument("threshold", "applies with lut_name only")
    specialists = bool(_opt(body, "specialists", bool))
    if specialists and lut_name:
        raise InvalidArgument("specialists", "a completion is steered by a LUT or by the specialists, not both")
    return OpenAIRequest(model=_model(body), overrides=_sampling(body), n=n, stream=stream,
                         include_usage=include_usage, prompts=prompts, echo=bool(_opt(body, "echo", bool)),
                         lut_name=lut_name, threshold=threshold, specialists=specialists)


def _known(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key in body:
        if key not in allowed:
            # OpenAI's own wording for the same mistake.
            raise InvalidArgument(str(key)[:64], "Unrecognized request argument supplied")


def _opt(body: Mapping[str, Any], name: str, kind: type) -> Any:
    """body[name] when present and not null, checked to be of `kind`."""
    value = body.get(name)
    if value is None:
        return None
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise InvalidArgument(name, f"must be a finite number, got {value}")
        return float(value)
    if kind is int and isinstance(value, bool):
        raise InvalidArgument(name, f"must be an integer, got {json.dumps(value)}")
    if not isinstance(value, kind):
        raise InvalidArgument(name, f"must be {_NAMES[kind]}, got {json.dumps(value)[:64]}")
    return value


_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "an object",
          list: "a list"}


def _model(body: Mapping[str, Any]) -> str:
    model = _opt(body, "model", str)
    if not model:
        raise InvalidArgument("model", "is required: a name from GET /v1/models")
    return model


def _n(body: Mapping[str, Any], prompts: int) -> int:
    n = _opt(body, "n", int)
    n = 1 if n is None else n
    if n < 1 or n * prompts > MAX_CHOICES:
        raise InvalidArgument("n", f"must be in [1, {MAX_CHOICES // max(prompts, 1)}] "
                                   f"(at most {MAX_CHOICES} choices per request), got {n}")
    return n


def _sampling(body: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's sampling parameters by the policy's names; ranges are the policy's checks."""
    out: dict[str, Any] = {}
    for openai_name, name, kind in (("max_tokens", "max_new_tokens", int), ("temperature", "temperature", float),
                                    ("top_p", "top_p", float), ("seed", "seed", int),
                                    ("presence_penalty", "presence_penalty", float),
                                    ("frequency_penalty", "frequency_penalty", float), ("top_k", "top_k", int),
                                    ("repetition_penalty", "repetition_penalty", float)):
        value = _opt(body, openai_name, kind)
        if value is not None:
            out[name] = value
    if "max_new_tokens" in out and out["max_new_tokens"] < 1:
        raise InvalidArgument("max_tokens", f"must be >= 1, got {out['max_new_tokens']}")
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if stop:
            out["stop_sequences"] = tuple(stop)
    elif stop is not None:
        raise InvalidArgument("stop", "must be a string or a list of strings")
    return out


def _stream(body: Mapping[str, Any]) -> tuple[bool, bool]:
    stream = bool(_opt(body, "stream", bool))
    options = _opt(body, "stream_options", dict)
    if options is None:
        return stream, False
    if not stream:
        raise InvalidArgument("stream_options", "is only allowed when stream is true")
    for key in options:
        if key != "include_usage":
            raise InvalidArgument(f"stream_options.{str(key)[:64]}", "is not a stream option; options: include_usage")
    return stream, bool(_opt(options, "include_usage", bool))


def _turn(i: int, message: Any) -> ChatTurn:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise InvalidArgument(where, "must be an object with role and content")
    for key in message:
        if key not in ("role", "content", "name"):
            raise InvalidArgument(f"{where}.{str(key)[:64]}", "is not supported (text messages only: role, content, name)")
    if not isinstance(message.get("name", ""), str):
        raise InvalidArgument(f"{where}.name", "must be a string")
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidArgument(f"{where}.role", f"must be one of {', '.join(ROLES)}; got {json.dumps(role)[:64]}")
    return ChatTurn(ROLES[role], _content(where, message.get("content")))


def _content(where: str, content: Any) -> str:
    """A string, or a list of text parts (joined; OpenAI's content-part form)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidArgument(f"{where}.content[{j}]", "must be a text part {\"type\": \"text\", \"text\": ...} "
                                                               "(this server's models read text only)")
            texts.append(part["text"])
        return "".join(texts)
    raise InvalidArgument(f"{where}.content", "must be a string or a non-empty list of text parts")


def _response_format(body: Mapping[str, Any]) -> JsonSchemaSpec | None:
    fmt = _opt(body, "response_format", dict)
    if fmt is None:
        return None
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return check_schema('{"type": "object"}', "response_format")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise InvalidArgument("response_format.json_schema.schema", "is required: a JSON Schema object")
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidArgument("response_format.json_schema.name", "is required: a non-empty string")
        return check_schema(json.dumps(spec["schema"]), "response_format.json_schema.schema")
    raise InvalidArgument("response_format.type", f"must be text, json_object or json_schema; got {json.dumps(kind)[:64]}")
