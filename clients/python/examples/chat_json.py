"""A chat session whose reply follows a JSON schema.

    LLMSERVE_TARGET=127.0.0.1:50051 python chat_json.py
"""

import json
import os
import uuid

import llmserve

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 40}, "population_millions": {"type": "number"}},
    "required": ["city", "population_millions"],
    "additionalProperties": False,
}

client = llmserve.Client(os.environ.get("LLMSERVE_TARGET", "127.0.0.1:50051"),
                         api_key=os.environ.get("LLMSERVE_API_KEY"))
session = client.chat_sessions.start(str(uuid.uuid4()), "Hello!", max_new_tokens=30)
print("assistant:", session.message)
reply = client.chat_sessions.send(session.session_id, "Name a large city and its population as JSON.",
                                  json_schema=SCHEMA, max_new_tokens=80)
print(json.dumps(json.loads(reply.response_message), indent=2))
client.chat_sessions.end(session.session_id)
