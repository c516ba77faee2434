"""The mixture's math: incremental decoding equals a full pass, base routing is the
identity, hard/forced routing are one-hot, and weights survive a save/load."""

from __future__ import annotations

import pytest
import torch

from domain.specialist.mixture import Mixture, PrefixState, Routing


def _trained_like(seed: int = 1) -> Mixture:
    mixture = Mixture(("a", "b"), num_layers=3, hidden=8, rank=2, seed=seed)
    g = torch.Generator().manual_seed(seed)
    mixture.tensors["up"] = torch.randn(mixture.tensors["up"].shape, generator=g)  # a fresh one is all zeros
    return mixture


def test_chunked_and_token_by_token_equal_one_pass():
    mixture = _trained_like()
    h = torch.randn(1, 7, 8)
    whole, logits = mixture.apply(1, h, PrefixState())
    state = PrefixState()
    parts = [mixture.apply(1, h[:, :3], state)[0]] + [mixture.apply(1, h[:, i:i + 1], state)[0] for i in range(3, 7)]
    torch.testing.assert_close(torch.cat(parts, dim=1), whole)
    assert logits.shape == (1, 7, 3)


def test_fresh_mixture_and_forced_base_leave_hidden_states_unchanged():
    h = torch.randn(2, 5, 8)
    fresh = Mixture(("a",), num_layers=2, hidden=8, rank=4)
    torch.testing.assert_close(fresh.apply(0, h, PrefixState())[0], h)
    out, _ = _trained_like().apply(0, h, PrefixState(), forced=0)
    assert torch.equal(out, h)


def test_hard_and_forced_weights_are_one_hot():
    mixture = _trained_like()
    logits = torch.tensor([[[0.1, 2.0, -1.0]]])
    assert mixture.weights(logits, Routing.HARD).tolist() == [[[0.0, 1.0, 0.0]]]
    assert mixture.weights(logits, forced=2).tolist() == [[[0.0, 0.0, 1.0]]]
    soft = mixture.weights(logits)
    assert soft.sum().item() == pytest.approx(1.0) and (soft > 0).all()


def test_forcing_one_specialist_differs_from_the_other():
    mixture = _trained_like()
    h = torch.randn(1, 4, 8)
    a, _ = mixture.apply(2, h, PrefixState(), forced=1)
    b, _ = mixture.apply(2, h, PrefixState(), forced=2)
    assert not torch.allclose(a, b)


def test_save_load_round_trip(tmp_path):
    mixture = _trained_like()
    mixture.save(tmp_path / "m.safetensors")
    loaded = Mixture.load(tmp_path / "m.safetensors")
    assert loaded.experts == ("a", "b") and loaded.names == ("base", "a", "b") and loaded.rank == 2
    for key, value in mixture.tensors.items():
        assert torch.equal(loaded.tensors[key], value)


def test_wrong_shapes_are_refused():
    tensors = dict(_trained_like().tensors)
    tensors["gate_b"] = torch.zeros(3, 5)
    with pytest.raises(ValueError, match="gate_b"):
        Mixture(("a", "b"), 3, 8, 2, tensors)


def test_only_the_generalist_alone_shares_the_prefix_cache():
    from domain.specialist.hook import SpecialistHook
    from models.engine.hooks import prefix_policy

    mixture = Mixture(("law", "code"), num_layers=2, hidden=8, rank=2)
    # Forced 0 is exactly the base model: its rows share the base KV without limit.
    assert prefix_policy((SpecialistHook(mixture, forced=0),)) == ((), 1 << 62)
    # Any other routing edits hidden states through a running prefix state: no cache.
    assert prefix_policy((SpecialistHook(mixture),)) is None
    assert prefix_policy((SpecialistHook(mixture, forced=1),)) is None
