"""Teach a per-user lookup table a fact, then generate with it.

    LLMSERVE_TARGET=127.0.0.1:50051 python lut.py
"""

import os

import llmserve

client = llmserve.Client(os.environ.get("LLMSERVE_TARGET", "127.0.0.1:50051"),
                         api_key=os.environ.get("LLMSERVE_API_KEY"))
client.lut.train("user_123", "TLG Capital is an asset management firm.", label_context="Assistant: ")
reply = client.lut.generate("User: What is TLG Capital?\nAssistant:", lut_name="user_123", max_new_tokens=20)
print(reply.completion)
