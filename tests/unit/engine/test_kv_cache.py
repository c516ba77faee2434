"""SlotKVCache storage: writes, growth, compaction, budget (no model)."""

from __future__ import annotations

import torch

from models.engine.kv_cache import SlotKVCache

LAYERS, HEADS, DIM = 2, 2, 4


def cache(**kw) -> SlotKVCache:
    c = SlotKVCache(**kw)
    c.allocate(LAYERS, HEADS, DIM, DIM, torch.float32, torch.device("cpu"))
    return c


def test_decode_writes_each_row_at_its_own_column_and_returns_attended_view():
    c = cache(max_rows=4, max_len=16, init_rows=4, init_len=8)
    lens = torch.tensor([2, 5])
    c.begin_decode(2, lens, attend_len=6)
    k = torch.arange(2 * HEADS * DIM, dtype=torch.float32).view(2, HEADS, 1, DIM) + 1
    keys, values = c.update(k, -k, layer_idx=1)
    assert keys.shape == (2, HEADS, 6, DIM)
    assert torch.equal(keys[0, :, 2], k[0, :, 0]) and torch.equal(keys[1, :, 5], k[1, :, 0])
    assert torch.equal(values[1, :, 5], -k[1, :, 0])
    assert c.keys[0].abs().sum() == 0  # other layers untouched


def test_packed_prefill_scatters_tokens_to_their_slots():
    c = cache(max_rows=4, max_len=16, init_rows=4, init_len=8)
    slots = torch.tensor([0, 0, 0, 2, 2])
    pos = torch.tensor([0, 1, 2, 0, 1])
    k = torch.randn(1, HEADS, 5, DIM)
    c.begin_packed(slots, pos, None)
    out_k, _ = c.update(k, k, layer_idx=0)
    assert out_k is k  # fresh rows attend to the chunk itself
    assert torch.equal(c.keys[0, 2, :, 1], k[0, :, 4])
    # A continuing chunk gathers earlier columns too.
    c.begin_packed(torch.tensor([2]), torch.tensor([2]), (torch.tensor([2, 2, 2]), torch.tensor([0, 1, 2])))
    k2 = torch.randn(1, HEADS, 1, DIM)
    out_k, _ = c.update(k2, k2, layer_idx=0)
    assert out_k.shape == (1, HEADS, 3, DIM)
    assert torch.equal(out_k[0, :, :2], k[0, :, 3:5]) and torch.equal(out_k[0, :, 2], k2[0, :, 0])


def test_growth_keeps_content_and_move_rows_compacts():
    c = cache(max_rows=8, max_len=64, init_rows=2, init_len=4)
    c.keys[:, :2, :, :4] = torch.randn(LAYERS, 2, HEADS, 4, DIM)
    before = c.keys[:, :2, :, :4].clone()
    c.ensure_capacity(rows=3, length=9, used_rows=2, used_len=4)
    assert c.rows_capacity >= 3 and c.len_capacity >= 9
    assert torch.equal(c.keys[:, :2, :, :4], before)
    c.move_rows([1], [0], length=4)
    assert torch.equal(c.keys[:, 0, :, :4], before[:, 1])


def test_growth_respects_the_token_budget():
    c = cache(max_rows=32, max_len=1024, init_rows=32, init_len=16, budget=32 * 64)
    c.ensure_capacity(rows=2, length=512, used_rows=2, used_len=16)
    assert c.len_capacity >= 512
    assert c.rows_capacity * c.len_capacity <= 32 * 64  # shrank the row capacity instead
    c.reset_if_oversized()
    assert (c.rows_capacity, c.len_capacity) == (32, 16)
