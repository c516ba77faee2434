"""The caller's tenant reaches the engine: generation requests made during a call are
scheduled as that tenant's (fair share), and the tenant is cleared when the call ends."""

from __future__ import annotations

from models.sampling_policy import SamplingParams
from models.types import GenerationRequest
from server import call_context


def test_generation_requests_made_in_a_call_carry_its_tenant():
    _, tokens = call_context.begin(call_context.Caller(tenant="alice", key_id="k1"))
    try:
        inside = GenerationRequest([1, 2], SamplingParams())
    finally:
        call_context.end(tokens)
    outside = GenerationRequest([1, 2], SamplingParams())
    assert inside.tenant == "alice" and outside.tenant == ""
