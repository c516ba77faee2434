"""The hand-written part of the OpenAPI document: paths whose body is raw JSON
(google.api.HttpBody) and so has no schema in the protos (seed 001's /completion and
/chat, OpenAI's /v1 API), and the pages Envoy serves itself (envoy.yaml direct_response)."""

from __future__ import annotations

from typing import Any

PAGES = {
    "/": "The web page (browsers: Accept text/html)",
    "/index.html": "The web page",
    "/openapi.json": "This document",
    "/docs": "Swagger UI on this document",
    "/redoc": "ReDoc on this document",
}
ASSETS_PREFIX = "/docs/assets/"
"""Scripts and styles of /docs and /redoc: served, not documented as API paths."""

NUMBER = {"type": "number"}
INT = {"type": "integer"}
STRING = {"type": "string"}
NULL_STRING = {"type": "string", "nullable": True}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


COMMON_PARAMS: dict[str, Any] = {
    "model": {**STRING, "description": "Required. A model id from GET /v1/models."},
    "max_tokens": {**INT, "minimum": 1, "description": "Optional. Token budget (chat: defaults to what the "
                                                       "context window leaves; completions: 16)."},
    "temperature": {**NUMBER, "minimum": 0, "maximum": 2, "description": "Optional. Default 1; 0 is greedy."},
    "top_p": {**NUMBER, "exclusiveMinimum": True, "minimum": 0, "maximum": 1, "description": "Optional. Default 1."},
    "n": {**INT, "minimum": 1, "maximum": 16, "description": "Optional. Choices per prompt (at most 16 in all)."},
    "stop": {"oneOf": [STRING, {"type": "array", "items": {**STRING, "minLength": 1, "maxLength": 256},
                                "maxItems": 16}], "description": "Optional. Strings that end the text."},
    "seed": {**INT, "minimum": 0, "description": "Optional. Reproducible sampling (choice i uses seed + i)."},
    "presence_penalty": {**NUMBER, "minimum": -2, "maximum": 2},
    "frequency_penalty": {**NUMBER, "minimum": -2, "maximum": 2},
    "user": {**STRING, "description": "Optional. Accepted, not used."},
    "stream": {"type": "boolean", "description": "Optional. Server-Sent Events ending with `data: [DONE]`."},
    "stream_options": {"type": "object", "additionalProperties": False,
                       "properties": {"include_usage": {"type": "boolean"}},
                       "description": "Optional, with stream only. include_usage adds a last chunk with usage."},
    "top_k": {**INT, "minimum": 0, "description": "Optional (llmserve). Keep the k most likely tokens; 0 disables."},
    "repetition_penalty": {**NUMBER, "exclusiveMinimum": True, "minimum": 0, "maximum": 10,
                           "description": "Optional (llmserve). CTRL-style penalty; 1 disables."},
}
TEXT_PART = {"type": "object", "required": ["type", "text"], "additionalProperties": False,
             "properties": {"type": {"type": "string", "enum": ["text"]}, "text": STRING}}

SCHEMAS: dict[str, Any] = {
    "openai.ChatMessage": {
        "type": "object", "required": ["role", "content"], "additionalProperties": False,
        "properties": {"role": {"type": "string", "enum": ["system", "developer", "user", "assistant"]},
                       "content": {"oneOf": [STRING, {"type": "array", "items": TEXT_PART, "minItems": 1}]},
                       "name": STRING}},
    "openai.ChatCompletionRequest": {
        "type": "object", "required": ["model", "messages"], "additionalProperties": False,
        "description": "OpenAI's chat completion request. Unknown parameters are refused (400).",
        "properties": {
            **COMMON_PARAMS,
            "messages": {"type": "array", "minItems": 1, "items": _ref("openai.ChatMessage")},
            "max_completion_tokens": {**INT, "minimum": 1},
            "logprobs": {"type": "boolean", "enum": [False], "description": "Not available on this server."},
            "top_logprobs": {**INT, "enum": [0]},
            "response_format": {
                "type": "object", "required": ["type"],
                "properties": {"type": {"type": "string", "enum": ["text", "json_object", "json_schema"]},
                               "json_schema": {"type": "object", "required": ["name", "schema"],
                                               "properties": {"name": STRING, "description": STRING,
                                                              "schema": {"type": "object"},
                                                              "strict": {"type": "boolean"}}}},
                "description": "Optional. json_object / json_schema: decoding constrained to the schema."}}},
    "openai.CompletionRequest": {
        "type": "object", "required": ["model", "prompt"], "additionalProperties": False,
        "description": "OpenAI's (legacy) completion request. Unknown parameters are refused (400).",
        "properties": {
            **COMMON_PARAMS,
            "prompt": {"oneOf": [STRING, {"type": "array", "items": STRING, "minItems": 1}]},
            "echo": {"type": "boolean"}, "best_of": {**INT, "description": "Only best_of = n."},
            "suffix": {**NULL_STRING, "enum": [None]}, "logprobs": {**INT, "nullable": True, "enum": [0, None]},
            "lut_name": {**STRING, "description": "Optional (llmserve). The caller's LUT (seed 000) steers the text."},
            "threshold": {**NUMBER, "description": "Optional (llmserve), with lut_name. The LUT's firing threshold."},
            "specialists": {"type": "boolean", "description": "Optional (llmserve). The trained specialist mixture "
                                                             "(seed 003) answers; 400 while none is trained."}}},
    "openai.Usage": {"type": "object", "properties": {"prompt_tokens": INT, "completion_tokens": INT,
                                                      "total_tokens": INT}},
    "openai.ChatCompletion": {
        "type": "object", "properties": {
            "id": STRING, "object": {"type": "string", "enum": ["chat.completion"]}, "created": INT, "model": STRING,
            "system_fingerprint": NULL_STRING, "usage": _ref("openai.Usage"),
            "choices": {"type": "array", "items": {"type": "object", "properties": {
                "index": INT, "finish_reason": {"type": "string", "enum": ["stop", "length"]},
                "logprobs": {"nullable": True, "type": "object"},
                "message": {"type": "object", "properties": {"role": {"type": "string", "enum": ["assistant"]},
                                                             "content": STRING, "refusal": NULL_STRING}}}}}}},
    "openai.ChatCompletionChunk": {
        "type": "object", "description": "One `data:` event of a chat stream; the stream ends with `data: [DONE]`.",
        "properties": {
            "id": STRING, "object": {"type": "string", "enum": ["chat.completion.chunk"]}, "created": INT,
            "model": STRING, "usage": {"allOf": [_ref("openai.Usage")], "nullable": True},
            "choices": {"type": "array", "items": {"type": "object", "properties": {
                "index": INT, "finish_reason": {"type": "string", "nullable": True, "enum": ["stop", "length", None]},
                "delta": {"type": "object", "properties": {"role": STRING, "content": STRING}}}}}}},
    "openai.Completion": {
        "type": "object", "description": "A completion, or one `data:` event of a completion stream.",
        "properties": {
            "id": STRING, "object": {"type": "string", "enum": ["text_completion"]}, "created": INT, "model": STRING,
            "usage": {"allOf": [_ref("openai.Usage")], "nullable": True},
            "choices": {"type": "array", "items": {"type": "object", "properties": {
                "index": INT, "text": STRING,
                "finish_reason": {"type": "string", "nullable": True, "enum": ["stop", "length", None]}}}}}},
    "openai.Error": {
        "type": "object", "properties": {"error": {"type": "object", "properties": {
            "message": STRING, "type": STRING, "param": NULL_STRING, "code": NULL_STRING}}}},
}


def _retryable(error: str) -> dict[str, Any]:
    """The 429 and 503 any call can meet (as every transcoded operation documents them)."""
    content = {"application/json": {"schema": _ref(error)}}
    return {"429": {"description": "The queue or a quota is full; retry after the Retry-After header.",
                    "content": content},
            "503": {"description": "A dependency (the database, a model) is not ready or not reachable; "
                                   "retry later.", "content": content}}


def _openai(summary: str, request: str, reply: str, chunk: str) -> dict[str, Any]:
    return {
        "tags": ["OpenAI"], "summary": summary,
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(request)}}},
        "responses": {
            "200": {"description": "The reply, or its stream when `stream` is true.",
                    "content": {"application/json": {"schema": _ref(reply)},
                                "text/event-stream": {"schema": STRING, "x-event": _ref(chunk)}}},
            "default": {"description": "OpenAI's error object (400 bad parameter, 401, 404 unknown model, 429).",
                        "content": {"application/json": {"schema": _ref("openai.Error")}}},
            **_retryable("openai.Error")}}


def _seed(summary: str, request: str, reply: str) -> dict[str, Any]:
    return {
        "tags": ["Seed"], "summary": summary,
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(request)}}},
        "responses": {
            "200": {"description": "The reply; with \"stream\": true, one `data: <text>` event per piece of text "
                                   "(multi-line text as several `data:` lines) and a last `data: [DONE]`.",
                    "content": {"application/json": {"schema": _ref(reply)}, "text/event-stream": {"schema": STRING}}},
            "default": {"description": "An error (google.rpc.Status as JSON).",
                        "content": {"application/json": {"schema": _ref("google.rpc.Status")}}},
            **_retryable("google.rpc.Status")}}


def apply(paths: dict[str, dict[str, Any]], builder: Any) -> None:
    """Replace the raw-body operations with their real schemas."""
    for name in ("CompleteRequest", "CompleteResponse", "ChatRequest", "ChatResponse"):
        builder.ref(f".llmserve.generation.v1.{name}")
    builder.ref(".google.rpc.Status")
    builder.schemas.update(SCHEMAS)
    pieces = {
        ("/completion", "post"): _seed("Complete a prompt (seed 001)", "llmserve.generation.v1.CompleteRequest",
                                       "llmserve.generation.v1.CompleteResponse"),
        ("/chat", "post"): _seed("Answer a conversation (seed 001)", "llmserve.generation.v1.ChatRequest",
                                 "llmserve.generation.v1.ChatResponse"),
        ("/v1/chat/completions", "post"): _openai("Create a chat completion (OpenAI)", "openai.ChatCompletionRequest",
                                                  "openai.ChatCompletion", "openai.ChatCompletionChunk"),
        ("/v1/completions", "post"): _openai("Create a completion (OpenAI)", "openai.CompletionRequest",
                                             "openai.Completion", "openai.Completion"),
    }
    for (path, verb), operation in pieces.items():
        generated = paths[path][verb]
        paths[path][verb] = {"operationId": generated["operationId"], **operation,
                             "description": generated.get("description", "")}
    models = paths["/v1/models"]["get"]
    models["tags"] = ["OpenAI"]


def static_routes(config: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(path, verb, content type) of the pages Envoy answers itself (direct_response, exact
    path), but the docs' scripts and styles."""
    import envoy_config

    out = []
    for route in envoy_config.routes(config):
        path = route.get("match", {}).get("path")
        if "direct_response" not in route or not path or path.startswith(ASSETS_PREFIX):
            continue
        headers = {h["header"]["key"]: h["header"]["value"] for h in route.get("response_headers_to_add", [])}
        out.append((path, "get", headers.get("content-type", "text/plain").split(";")[0]))
    return out
