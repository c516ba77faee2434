"""The shared inference engine (one per device): continuous batching of generation
requests from every service, plus background work between steps.

engine.py (step loop, async API) -> scheduler.py (pure Python: what runs each step)
-> worker.py (model + kv_cache.py on the device) with sampling.py, detokenize.py and
the per-row extension point in hooks.py. Nothing is imported here so that the
scheduler stays importable without torch.
"""
