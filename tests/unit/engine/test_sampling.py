"""Vectorised per-row sampling (no model)."""

from __future__ import annotations

import torch

from models.engine.sampling import RowSampling, SamplingBatch
from models.sampling_policy import SamplingParams

CPU = torch.device("cpu")
V = 50


def batch(*params: SamplingParams, prompts=None) -> SamplingBatch:
    prompts = prompts or [[] for _ in params]
    return SamplingBatch.build([RowSampling(p, ids) for p, ids in zip(params, prompts)], V, CPU)


def logits_for(n_rows: int, seed: int = 0) -> torch.Tensor:
    return torch.randn((n_rows, V), generator=torch.Generator().manual_seed(seed)) * 3


def draw(b: SamplingBatch, logits: torch.Tensor, n: int) -> list[list[int]]:
    out = []
    for _ in range(n):
        tokens = b.sample(logits.clone())
        b.observe(tokens)
        out.append(tokens.tolist())
    return [list(col) for col in zip(*out)]


def test_greedy_rows_take_argmax_next_to_sampled_rows():
    logits = logits_for(3)
    b = batch(SamplingParams(temperature=0), SamplingParams(temperature=1.5, seed=1), SamplingParams(do_sample=False))
    rows = draw(b, logits, 20)
    argmax = logits.argmax(-1).tolist()
    assert set(rows[0]) == {argmax[0]} and set(rows[2]) == {argmax[2]}
    assert len(set(rows[1])) > 1


def test_top_k_restricts_candidates():
    logits = logits_for(1)
    rows = draw(batch(SamplingParams(temperature=5.0, top_k=3, seed=2)), logits, 300)
    assert set(rows[0]) <= set(torch.topk(logits[0], 3).indices.tolist())
    assert len(set(rows[0])) == 3
    greedy_like = draw(batch(SamplingParams(temperature=1.0, top_k=1, seed=2)), logits, 20)
    assert set(greedy_like[0]) == {int(logits[0].argmax())}


def test_top_p_keeps_only_the_nucleus():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05] + [0.0] * (V - 4))
    logits = torch.log(probs.clamp(min=1e-12)).unsqueeze(0)
    for params in (SamplingParams(temperature=1.0, top_p=0.7, seed=3),
                   SamplingParams(temperature=1.0, top_p=0.7, top_k=10, seed=3)):
        rows = draw(batch(params), logits, 300)
        assert set(rows[0]) == {0, 1}


def test_sampling_follows_the_distribution():
    probs = torch.tensor([0.6, 0.3, 0.1] + [0.0] * (V - 3))
    logits = torch.log(probs.clamp(min=1e-12)).unsqueeze(0)
    rows = draw(batch(SamplingParams(temperature=1.0, seed=4)), logits, 2000)
    freq = [rows[0].count(i) / 2000 for i in range(3)]
    assert abs(freq[0] - 0.6) < 0.05 and abs(freq[1] - 0.3) < 0.05 and abs(freq[2] - 0.1) < 0.04


def test_repetition_penalty_discourages_seen_tokens():
    logits = torch.zeros((1, V))
    logits[0, 7] = 2.0
    logits[0, 8] = 1.5
    b = batch(SamplingParams(temperature=0, repetition_penalty=2.0), prompts=[[7]])
    assert b.sample(logits.clone()).tolist() == [8]  # 2.0 / 2 < 1.5
    b.observe(torch.tensor([8]))
    assert b.sample(logits.clone()).tolist() == [7]  # both seen: 1.0 > 0.75
    plain = batch(SamplingParams(temperature=0))
    assert plain.sample(logits.clone()).tolist() == [7]


def test_presence_and_frequency_penalties_follow_openais_formula():
    # logit - frequency * count - presence * (count > 0), over the tokens this row generated.
    logits = torch.zeros((1, V))
    logits[0, 7], logits[0, 8], logits[0, 9] = 3.0, 2.5, 0.0
    presence = batch(SamplingParams(temperature=0, presence_penalty=1.0), prompts=[[8]])
    assert presence.sample(logits.clone()).tolist() == [7]  # the prompt does not count
    presence.observe(torch.tensor([7]))
    assert presence.sample(logits.clone()).tolist() == [8]  # 3 - 1 < 2.5
    frequency = batch(SamplingParams(temperature=0, frequency_penalty=0.4))
    picks = draw(frequency, logits, 4)[0]
    # 7 until its count makes 3 - 0.4 * n fall below 2.5 (n = 2), then 8, then 7 again (2.2 vs 2.1).
    assert picks == [7, 7, 8, 7]
    negative = batch(SamplingParams(temperature=0, presence_penalty=-2.0))
    negative.observe(torch.tensor([9]))
    assert negative.sample(logits.clone()).tolist() == [7]  # 0 + 2 < 3: still 7
    mixed = batch(SamplingParams(temperature=0, frequency_penalty=1.0), SamplingParams(temperature=0))
    mixed.observe(torch.tensor([7, 7]))
    assert mixed.sample(torch.cat([logits, logits]).clone()).tolist() == [8, 7]  # other rows untouched


def test_penalty_counts_survive_a_batch_rebuild():
    logits = torch.zeros((1, V))
    logits[0, 7], logits[0, 8] = 3.0, 2.5
    row = RowSampling(SamplingParams(temperature=0, frequency_penalty=1.0), [])
    first = SamplingBatch.build([row], V, CPU)
    token = first.sample(logits.clone())
    first.observe(token)
    row.observe(int(token))
    rebuilt = SamplingBatch.build([row], V, CPU)  # the set of rows changed
    assert rebuilt.sample(logits.clone()).tolist() == [8]


def test_same_seed_same_tokens_alone_or_batched():
    params = SamplingParams(temperature=1.0, top_p=0.9, seed=42)
    logits = logits_for(4, seed=9)
    alone = draw(batch(params), logits[2:3], 30)[0]
    others = [SamplingParams(temperature=0.5, seed=1), SamplingParams(temperature=0),
              SamplingParams(temperature=1.3, top_k=5, seed=2)]
    in_batch = draw(batch(others[0], others[1], params, others[2]), logits, 30)[2]
    assert in_batch == alone
    other_seed = draw(batch(SamplingParams(temperature=1.0, top_p=0.9, seed=43)), logits[2:3], 30)[0]
    assert other_seed != alone
