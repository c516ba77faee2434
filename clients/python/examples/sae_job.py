"""Train a sparse autoencoder on a small corpus and watch the job to its end.

    LLMSERVE_TARGET=127.0.0.1:50051 LLMSERVE_MODEL=smollm2 python sae_job.py
"""

import os

import llmserve
from llmserve.common.v1 import common_pb2

CORPUS = "The river runs past the mill and the miller grinds the grain every morning.\n" * 50

client = llmserve.Client(os.environ.get("LLMSERVE_TARGET", "127.0.0.1:50051"),
                         api_key=os.environ.get("LLMSERVE_API_KEY"))
client.sae.upload_corpus("mill.txt", CORPUS.encode())
job = client.sae.start(os.environ.get("LLMSERVE_MODEL", "smollm2"), "mill.txt", layer_number=1, expansion_factor=2,
                       max_epochs=2, max_sequence_length=64)
for event in client.sae.watch(job.job_id, min_interval_s=0.5):
    print(f"{common_pb2.JobState.Name(event.state)} {event.progress:.0%} loss {event.loss:.4f}")
result = client.sae.result(job.job_id)
print(f"{result.feature_count} features, FVU {result.metrics.fvu:.3f}, weights in {result.artifacts.weights_path}")
