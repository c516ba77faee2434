"""A streamed completion: print the pieces as they come, then the usage.

    LLMSERVE_TARGET=127.0.0.1:50051 python stream_completion.py "Once upon a time"
"""

import os
import sys

import llmserve

client = llmserve.Client(os.environ.get("LLMSERVE_TARGET", "127.0.0.1:50051"),
                         api_key=os.environ.get("LLMSERVE_API_KEY"))
stream = client.stream_complete(sys.argv[1] if len(sys.argv) > 1 else "Once upon a time", max_new_tokens=40)
for piece in stream:
    print(piece, end="", flush=True)
print(f"\n[{stream.usage.completion_tokens} tokens]")
