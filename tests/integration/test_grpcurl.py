"""The real grpcurl against the server, directly and through Envoy's gRPC
passthrough (port shared with REST): reflection, describe, health, a streamed
completion, and an error's exit code."""

from __future__ import annotations

import json
import re

import pytest

SERVICES = {
    "llmserve.generation.v1.GenerationService",
    "llmserve.server.v1.ServerService",
    "llmserve.lut.v1.LutService",
    "llmserve.specialist.v1.SpecialistService",
    "llmserve.sae.v1.SaeTrainingService",
    "llmserve.chat.v1.ChatService",
    "llmserve.admin.v1.AdminService",
    "llmserve.openai.v1.OpenAIService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
}


def _target(which: str, tiny_server, envoy) -> str:
    return f"127.0.0.1:{tiny_server.port}" if which == "direct" else envoy.grpc_target


def _json_stream(text: str) -> list[dict]:
    """grpcurl prints one pretty JSON object per message, back to back."""
    decoder, out, i = json.JSONDecoder(), [], 0
    text = text.strip()
    while i < len(text):
        obj, end = decoder.raw_decode(text, i)
        out.append(obj)
        i = end
        while i < len(text) and text[i].isspace():
            i += 1
    return out


@pytest.mark.parametrize("which", ["direct", "envoy"])
async def test_list_shows_every_service(grpcurl, tiny_server, envoy, which):
    result = await grpcurl(_target(which, tiny_server, envoy), "list")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == SERVICES


async def test_describe_streaming_method_and_message(grpcurl, envoy):
    result = await grpcurl(envoy.grpc_target, "describe", "llmserve.generation.v1.GenerationService")
    assert result.returncode == 0, result.stderr
    assert re.search(r"rpc StreamComplete \( \.llmserve\.generation\.v1\.StreamCompleteRequest \) "
                     r"returns \( stream \.llmserve\.generation\.v1\.StreamCompleteResponse \)", result.stdout)
    assert "rpc ListModels" in result.stdout
    message = await grpcurl(envoy.grpc_target, "describe", "llmserve.generation.v1.CompleteRequest")
    assert message.returncode == 0, message.stderr
    assert "string prompt = 1;" in message.stdout
    assert "optional int32 max_new_tokens = 3;" in message.stdout


@pytest.mark.parametrize("which", ["direct", "envoy"])
async def test_health_check_serving(grpcurl, tiny_server, envoy, which):
    result = await grpcurl(_target(which, tiny_server, envoy), "grpc.health.v1.Health/Check")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "SERVING"}
    generation = await grpcurl("-d", '{"service": "llmserve.generation.v1.GenerationService"}',
                               _target(which, tiny_server, envoy), "grpc.health.v1.Health/Check")
    assert json.loads(generation.stdout) == {"status": "SERVING"}


async def test_streaming_completion_prints_deltas_then_one_final(grpcurl, envoy):
    result = await grpcurl(envoy.grpc_target, "llmserve.generation.v1.GenerationService/StreamComplete",
                           data={"prompt": "Once upon a time", "max_new_tokens": 12, "do_sample": False})
    assert result.returncode == 0, result.stderr
    events = _json_stream(result.stdout)
    deltas = [e for e in events if "delta" in e]
    finals = [e for e in events if "final" in e]
    assert len(deltas) >= 3, events
    assert len(finals) == 1 and events[-1] is finals[0], events
    assert "error" not in json.dumps(events)
    final = finals[0]["final"]
    completion_tokens = final["usage"]["completion_tokens"]  # grpcurl keeps proto field names
    assert len(deltas) <= completion_tokens <= 12
    if final["finish_reason"] == "FINISH_REASON_LENGTH":
        assert completion_tokens == 12
    assert final["text"] == "".join(d["delta"].get("text", "") for d in deltas)


async def test_error_exit_code_and_message(grpcurl, envoy):
    result = await grpcurl(envoy.grpc_target, "llmserve.generation.v1.GenerationService/Complete",
                           data={"prompt": ""})
    assert result.returncode == 64 + 3, (result.returncode, result.stdout, result.stderr)  # INVALID_ARGUMENT
    assert "InvalidArgument" in result.stderr and "prompt" in result.stderr
