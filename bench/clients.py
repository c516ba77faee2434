"""Streaming load generators: concurrent clients over gRPC (StreamComplete) or
REST-SSE through Envoy (POST /v1/completions:stream), each client starting at its
planned offset and sending its requests back to back, every event timestamped."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Awaitable, Callable, Sequence

import grpc
import httpx

from bench.stats import StreamRecord
from bench.workload import ClientPlan, RequestSpec
from llmserve.common.v1 import common_pb2
from llmserve.generation.v1 import generation_service_pb2 as pb
from llmserve.generation.v1 import generation_service_pb2_grpc as pb_grpc

FINISH = {v.number: v.name.removeprefix("FINISH_REASON_").lower()
          for v in common_pb2.DESCRIPTOR.enum_types_by_name["FinishReason"].values}

Sender = Callable[[RequestSpec, dict[str, Any]], Awaitable[StreamRecord]]


def _fields(req: RequestSpec, sampling: dict[str, Any]) -> dict[str, Any]:
    return {"prompt": req.prompt, "max_new_tokens": req.max_new_tokens, "seed": req.seed, **sampling}


class GrpcSender:
    """StreamComplete over one shared channel (HTTP/2 multiplexes the streams)."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.aio.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 << 20)])
        self._stub = pb_grpc.GenerationServiceStub(self._channel)

    async def __call__(self, req: RequestSpec, sampling: dict[str, Any]) -> StreamRecord:
        rec = StreamRecord(t_start=time.perf_counter(), prompt_tokens_target=req.prompt_tokens,
                           max_new_tokens=req.max_new_tokens)
        try:
            async for msg in self._stub.StreamComplete(pb.StreamCompleteRequest(**_fields(req, sampling)),
                                                       timeout=600):
                kind = msg.WhichOneof("event")
                if kind == "delta":
                    if msg.delta.token_ids or msg.delta.text:
                        rec.delta_times.append(time.perf_counter())
                        rec.delta_tokens += len(msg.delta.token_ids)
                        rec.token_ids.extend(msg.delta.token_ids)
                elif kind == "final":
                    rec.t_end = time.perf_counter()
                    rec.completion_tokens = msg.final.usage.completion_tokens
                    rec.prompt_tokens = msg.final.usage.prompt_tokens
                    rec.finish_reason = FINISH.get(msg.final.finish_reason, str(msg.final.finish_reason))
                else:
                    rec.error = f"in-band error: {msg.error.status.message}"
        except grpc.aio.AioRpcError as exc:
            rec.error = f"{exc.code().name}: {exc.details()}"
        if rec.t_end is None and not rec.error:
            rec.error = "stream ended without a final event"
        return rec

    async def close(self) -> None:
        await self._channel.close()


class SseSender:
    """POST /v1/completions:stream through Envoy; parses `data:` lines of the SSE body."""

    def __init__(self, base_url: str, connections: int) -> None:
        limits = httpx.Limits(max_connections=connections + 4, max_keepalive_connections=connections + 4)
        self._client = httpx.AsyncClient(base_url=base_url, limits=limits, timeout=httpx.Timeout(600.0))

    async def __call__(self, req: RequestSpec, sampling: dict[str, Any]) -> StreamRecord:
        rec = StreamRecord(t_start=time.perf_counter(), prompt_tokens_target=req.prompt_tokens,
                           max_new_tokens=req.max_new_tokens)
        try:
            async with self._client.stream("POST", "/v1/completions:stream", json=_fields(req, sampling)) as resp:
                if resp.status_code != 200:
                    rec.error = f"HTTP {resp.status_code}: {(await resp.aread())[:200]!r}"
                    return rec
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    event = json.loads(line[5:])
                    if "delta" in event:
                        delta = event["delta"]
                        if delta.get("token_ids") or delta.get("text"):
                            rec.delta_times.append(time.perf_counter())
                            rec.delta_tokens += len(delta.get("token_ids") or ())
                            rec.token_ids.extend(int(t) for t in delta.get("token_ids") or ())
                    elif "final" in event:
                        rec.t_end = time.perf_counter()
                        usage = event["final"].get("usage") or {}
                        rec.completion_tokens = int(usage.get("completion_tokens", 0))
                        rec.prompt_tokens = int(usage.get("prompt_tokens", 0))
                        rec.finish_reason = str(event["final"].get("finish_reason", "")).removeprefix(
                            "FINISH_REASON_").lower()
                    elif "error" in event:
                        rec.error = f"in-band error: {event['error']}"
        except httpx.HTTPError as exc:
            rec.error = f"{type(exc).__name__}: {exc}"
        if rec.t_end is None and not rec.error:
            rec.error = "stream ended without a final event"
        return rec

    async def close(self) -> None:
        await self._client.aclose()


async def drive(send: Sender, plans: Sequence[ClientPlan], sampling: dict[str, Any]) -> list[StreamRecord]:
    """Run every client plan concurrently; returns the records in completion order per client."""
    t0 = time.perf_counter()

    async def client(plan: ClientPlan) -> list[StreamRecord]:
        delay = t0 + plan.start_s - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        return [await send(req, sampling) for req in plan.requests]

    results = await asyncio.gather(*(client(p) for p in plans))
    return [r for group in results for r in group]


async def sequential(send: Sender, requests: Sequence[RequestSpec], sampling: dict[str, Any]) -> list[StreamRecord]:
    return [await send(req, sampling) for req in requests]
