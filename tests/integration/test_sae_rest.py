"""Seed 002's curl flow through the real Envoy (upload, validate, check memory,
train, poll status, result, list), its error codes, and a Watch over grpcurl."""

from __future__ import annotations

import asyncio

import httpx
import torch

CORPUS = "".join(f"Review {i}: the product arrived on time and works as described.\n" for i in range(60))


async def _poll_status(http: httpx.AsyncClient, job_id: str, timeout: float = 120.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            status = (await http.get(f"/api/v1/train/{job_id}/status")).json()
            if status["status"] in ("completed", "failed", "cancelled"):
                return status
            await asyncio.sleep(0.1)


async def _start_job(http: httpx.AsyncClient, name: str, **overrides) -> str:
    upload = await http.post("/api/v1/upload", files={"file": (name, CORPUS.encode(), "text/plain")})
    assert upload.status_code == 200, upload.text
    body = {"model_name": "tiny", "corpus_file": name, "layer_number": 1, "hidden_dim": 128, "batch_size": 8,
            "max_epochs": 2, "min_loss": 0.01, "gpu_id": None, "max_sequence_length": 64, **overrides}
    created = await http.post("/api/v1/train", json=body)
    assert created.status_code == 200, created.text
    return created.json()["job_id"]


async def test_seed_002_flow(http: httpx.AsyncClient):
    upload = await http.post("/api/v1/upload", files={"file": ("reviews.txt", CORPUS.encode(), "text/plain")})
    assert upload.status_code == 200, upload.text
    up = upload.json()
    assert up["message"] == "File uploaded successfully" and up["filename"] == "reviews.txt"
    assert (up["size_bytes"], up["lines_count"]) == (len(CORPUS), 60) and up["path"] == "artifact://sae/corpora/reviews.txt"

    valid = (await http.post("/api/v1/validate-model", json={"model_name": "tiny"})).json()
    assert valid["valid"] and valid["accessible"] and valid["model_info"]["total_layers"] == 2
    assert valid["memory_requirements"]["minimum_gb"] > 0

    memory = await http.get("/api/v1/check-memory/tiny")
    assert memory.status_code == 200, memory.text
    assert memory.json()["memory_check"]["sufficient"] is True

    created = await http.post("/api/v1/train", json={
        "model_name": "tiny", "corpus_file": "reviews.txt", "layer_number": 1, "hidden_dim": 128, "batch_size": 8,
        "max_epochs": 2, "min_loss": 0.01, "gpu_id": None, "max_sequence_length": 64})
    assert created.status_code == 200, created.text
    job = created.json()
    assert job["status"] == "queued" and job["memory_check"] == "passed" and job["model_name"] == "tiny"

    status = await _poll_status(http, job["job_id"])
    assert status["status"] == "completed", status
    assert status["progress"] == 1 and status["current_epoch"] >= 1 and "model_info" in status

    result = (await http.get(f"/api/v1/train/{job['job_id']}/result")).json()
    assert result["status"] == "completed" and result["feature_count"] == 128
    assert result["training_stats"]["feature_statistics"]["total_features"] == 128
    assert {"fvu", "l0", "dead_fraction", "ce_loss_score", "loss_curve"} <= set(result["metrics"])
    assert result["model_info"]["selected_layer"] == 1 and result["ready_for_find_service"] is True

    jobs = (await http.get("/api/v1/jobs")).json()
    mine = [j for j in jobs["jobs"] if j["job_id"] == job["job_id"]]
    assert jobs["total_jobs"] >= 1 and mine and mine[0]["status"] == "completed" and mine[0]["completed_at"]

    gpu = (await http.get("/gpu/status")).json()
    assert gpu["cuda_available"] is torch.cuda.is_available() and gpu["host_memory"]["total_gb"] > 0
    assert len(gpu.get("gpus", {})) == gpu["device_count"] == (torch.cuda.device_count() if gpu["cuda_available"] else 0)


async def test_seed_002_errors(http: httpx.AsyncClient):
    missing = await http.post("/api/v1/train", json={"model_name": "tiny", "corpus_file": "nonexistent.txt",
                                                     "layer_number": 1})
    assert missing.status_code == 400 and "nonexistent.txt" in missing.json()["message"]
    unknown_job = await http.get("/api/v1/train/train_invalid_job_id/status")
    assert unknown_job.status_code == 404 and "train_invalid_job_id" in unknown_job.json()["message"]
    unknown_model = await http.post("/api/v1/train", json={"model_name": "microsoft/Phi-4",
                                                           "corpus_file": "reviews.txt"})
    assert unknown_model.status_code == 404
    bad_batch = await http.post("/api/v1/train", json={"model_name": "tiny", "corpus_file": "reviews.txt",
                                                       "layer_number": 1, "batch_size": 500})
    assert bad_batch.status_code == 400 and "batch_size" in bad_batch.json()["message"]
    not_multipart = await http.post("/api/v1/upload", content=b"plain", headers={"content-type": "text/plain"})
    assert not_multipart.status_code == 400 and "multipart/form-data" in not_multipart.json()["message"]
    binary = await http.post("/api/v1/upload", files={"file": ("bin.txt", b"\xff\xfe\x00bad", "text/plain")})
    assert binary.status_code == 400 and "UTF-8" in binary.json()["message"]


async def test_cancel_over_rest(http: httpx.AsyncClient):
    job_id = await _start_job(http, "cancel.txt", max_epochs=10_000)
    cancelled = await http.post(f"/v1/sae/jobs/{job_id}:cancel", json={})
    assert cancelled.status_code == 200, cancelled.text
    status = await _poll_status(http, job_id)
    assert status["status"] == "cancelled"
    result = await http.get(f"/api/v1/train/{job_id}/result")
    assert result.status_code == 400 and "cancelled" in result.json()["message"]  # FAILED_PRECONDITION


async def test_watch_over_grpcurl_shows_progress(http: httpx.AsyncClient, grpcurl_stream, envoy):
    job_id = await _start_job(http, "watch.txt", max_epochs=10_000)  # runs until cancelled
    events = []
    async with grpcurl_stream(envoy.grpc_target, "llmserve.sae.v1.SaeTrainingService/WatchTrainingJob",
                              data={"job_id": job_id, "min_interval_seconds": 0.1}) as (stream, process):
        async with asyncio.timeout(120):
            async for event in stream:  # progress arrives while the job runs ...
                events.append(event)
                if event.get("progress", {}).get("epoch", 0) >= 1:
                    break
            cancelled = await http.post(f"/v1/sae/jobs/{job_id}:cancel", json={})
            assert cancelled.status_code == 200, cancelled.text
            events += [event async for event in stream]  # ... then the end
            assert await process.wait() == 0, (await process.stderr.read()).decode()
    kinds = [next(iter(e)) for e in events]
    assert kinds[-1] == "final" and set(kinds[:-1]) == {"progress"}, kinds
    epochs = [e["progress"].get("epoch", 0) for e in events[:-1]]  # grpcurl omits zero values
    assert epochs[-1] >= 1 and epochs == sorted(epochs), epochs
    assert events[-1]["final"]["status"] == "cancelled" and events[-1]["final"]["state"] == "JOB_STATE_CANCELLED"
