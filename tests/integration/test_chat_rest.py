"""Seed 004's curl flow through Envoy (REST -> gRPC transcoding) on the tiny server:
start, send (with trailing slashes), structured reply as a nested JSON object, history,
sessions, end; plus the streaming route as server-sent events and error statuses."""

from __future__ import annotations

import json
import uuid

import httpx
import jsonschema

USER = str(uuid.uuid4())
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"enum": [1, 2, 3]}},
          "required": ["ok", "n"], "additionalProperties": False}


async def test_seed_curl_flow(http: httpx.AsyncClient):
    start = await http.post("/llm/chat/", json={"user_id": USER, "initial_message": "Build me a pipeline",
                                                "max_new_tokens": 4})
    assert start.status_code == 200, start.text
    session = start.json()["session_id"]
    assert uuid.UUID(session) and "message" in start.json()

    send = await http.post(f"/llm/chat/{session}/message/", json={"user_message": "Add a CSV source",
                                                                  "max_new_tokens": 4})
    assert send.status_code == 200, send.text
    assert send.json()["updated_session"] == session

    structured = await http.post(f"/llm/chat/{session}/message/", json={
        "user_message": "As JSON please", "json_schema": json.dumps(SCHEMA), "max_new_tokens": 40, "seed": 3})
    body = structured.json()
    assert structured.status_code == 200 and body["finish_reason"] == "FINISH_REASON_EOS", body
    assert body["response_json"] == json.loads(body["response_message"])  # a nested object, not a string
    jsonschema.Draft202012Validator(SCHEMA).validate(body["response_json"])  # the reply obeys its schema

    history = await http.get(f"/llm/chat/{session}/history/")
    assert history.status_code == 200, history.text
    messages = history.json()["messages"]
    assert [m["sender"] for m in messages] == ["user", "llm"] * 3
    assert messages[2]["content"] == "Add a CSV source" and "timestamp" in messages[2]
    assert messages[5]["response_json"] == body["response_json"]

    sessions = await http.get("/llm/chat/sessions/")
    assert sessions.status_code == 200
    assert session in [s["session_id"] for s in sessions.json()["sessions"]]
    mine = await http.get("/v1/chat/sessions", params={"user_id": USER})
    assert [s["session_id"] for s in mine.json()["sessions"]] == [session]

    end = await http.delete(f"/llm/chat/{session}/")
    assert end.status_code == 200 and end.json()["session_id"] == session
    again = await http.delete(f"/llm/chat/{session}/")
    assert again.status_code == 200 and again.json()["already_ended"] is True
    gone = await http.post(f"/llm/chat/{session}/message/", json={"user_message": "hello?"})
    assert gone.status_code == 400 and gone.json()["code"] == 9  # FAILED_PRECONDITION


async def test_errors_over_rest(http: httpx.AsyncClient, field_violations):
    unknown = await http.post(f"/llm/chat/{uuid.uuid4()}/message/", json={"user_message": "hi"})
    assert unknown.status_code == 404 and unknown.json()["code"] == 5
    empty = await http.post("/llm/chat/", json={"user_id": USER, "initial_message": ""})
    assert empty.status_code == 400 and field_violations(empty.json()) == ["initial_message"]
    bad = await http.post("/llm/chat/", json={"user_id": USER, "initial_message": "x", "json_schema": "[1]"})
    assert bad.status_code == 400 and field_violations(bad.json()) == ["json_schema"]


async def test_stream_message_as_server_sent_events(http: httpx.AsyncClient, read_sse):
    start = await http.post("/llm/chat/", json={"user_id": USER, "initial_message": "hi", "max_new_tokens": 2})
    session = start.json()["session_id"]
    async with http.stream("POST", f"/v1/chat/sessions/{session}:streamMessage",
                           json={"user_message": "stream", "max_new_tokens": 6}) as resp:
        assert resp.status_code == 200
        events = await read_sse(resp)
    kinds = [next(iter(e)) for e in events]
    assert kinds[-2:] == ["reply", "final"] and set(kinds[:-2]) == {"delta"}
    assert "".join(e["delta"]["text"] for e in events[:-2]) == events[-1]["final"]["text"]


async def test_stream_conversation_starts_a_session_and_streams_its_first_reply(http: httpx.AsyncClient, read_sse,
                                                                                 field_violations):
    async with http.stream("POST", "/v1/chat/sessions:stream",
                           json={"user_id": USER, "initial_message": "hello", "max_new_tokens": 6}) as resp:
        assert resp.status_code == 200
        events = await read_sse(resp)
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "session_id" and kinds[-2:] == ["reply", "final"] and set(kinds[1:-2]) == {"delta"}
    session = events[0]["session_id"]
    assert events[-2]["reply"]["updated_session"] == session
    text = events[-1]["final"]["text"]
    assert "".join(e["delta"]["text"] for e in events[1:-2]) == text
    history = (await http.get(f"/v1/chat/sessions/{session}/messages")).json()["messages"]
    assert [(m["sender"], m["content"]) for m in history] == [("user", "hello"), ("llm", text)]

    # A refused request is an HTTP error before any event, and creates no session.
    before = (await http.get(f"/v1/chat/sessions?user_id={USER}&page_size=1000")).json()["sessions"]
    bad = await http.post("/v1/chat/sessions:stream", json={"user_id": USER, "initial_message": "x", "json_schema": "[1]"})
    assert bad.status_code == 400 and field_violations(bad.json()) == ["json_schema"]
    after = (await http.get(f"/v1/chat/sessions?user_id={USER}&page_size=1000")).json()["sessions"]
    assert len(after) == len(before)
