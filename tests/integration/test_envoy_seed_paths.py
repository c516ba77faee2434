"""Seed paths that need care in the gateway: seed 004's trailing-slash paths
(/llm/chat/, /llm/chat/{id}/message/, ...) and seed 002's URL-encoded model name
(/api/v1/check-memory/microsoft%2FPhi-4) must reach their RPCs.

While a service is UNIMPLEMENTED its 501 message names the RPC, which proves
the routing; once implemented, the reply's own fields do."""

from __future__ import annotations

import uuid

import httpx
import pytest

SESSION = "6f1c2a8e-4b7d-4e0a-9a55-3c2b1d0e9f11"
USER = "3f2c8d4e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"


def _rpc_reached(resp: httpx.Response, rpc: str, implemented_fields: set[str]) -> None:
    assert resp.headers["content-type"] == "application/json", (resp.status_code, resp.text)
    body = resp.json()
    if resp.status_code == 501:
        assert body["message"].startswith(f"{rpc} is not implemented yet"), body
        return
    # Implemented: an answer of this RPC (or its own error, still JSON from the server).
    assert resp.status_code != 404 or body.get("code") == 5, resp.text
    if resp.status_code == 200:
        assert implemented_fields <= set(body), body


@pytest.mark.parametrize("slash", ["/", ""])
async def test_seed_004_chat_paths(http: httpx.AsyncClient, slash: str):
    start = await http.post(f"/llm/chat{slash}", json={"user_id": USER, "initial_message": "Build me a pipeline"})
    _rpc_reached(start, "ChatService.StartConversation", {"session_id", "message"})
    session = start.json()["session_id"] if start.status_code == 200 else SESSION

    send = await http.post(f"/llm/chat/{session}/message{slash}", json={"user_message": "Add a CSV source"})
    _rpc_reached(send, "ChatService.SendMessage", {"response_message", "updated_session"})

    history = await http.get(f"/llm/chat/{session}/history{slash}")
    _rpc_reached(history, "ChatService.GetHistory", {"messages"})

    sessions = await http.get(f"/llm/chat/sessions{slash}")
    _rpc_reached(sessions, "ChatService.ListSessions", {"sessions"})

    end = await http.delete(f"/llm/chat/{session}{slash}")
    _rpc_reached(end, "ChatService.EndConversation", {"message", "session_id"})
    if end.status_code == 200:
        assert end.json()["session_id"] == session


async def test_seed_004_wrong_method_on_a_seed_path_is_404(http: httpx.AsyncClient):
    resp = await http.put(f"/llm/chat/{uuid.uuid4()}/message/", json={"user_message": "x"})
    assert resp.status_code == 404, resp.text


@pytest.mark.parametrize("path", [
    "/api/v1/check-memory/microsoft%2FPhi-4",  # seed 002's example, encoded slash
    "/api/v1/check-memory/microsoft/Phi-4",    # literal slash
    "/v1/sae/models/microsoft%2FPhi-4:checkMemory",
])
async def test_seed_002_check_memory_encoded_model_name(http: httpx.AsyncClient, path: str):
    resp = await http.get(httpx.URL(path))
    assert resp.request.url.raw_path.decode() == path  # sent as written (%2F kept)
    _rpc_reached(resp, "SaeTrainingService.CheckMemory", {"model_name"})
    if resp.status_code == 200:
        assert resp.json()["model_name"] == "microsoft/Phi-4"
