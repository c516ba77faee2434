"""Slot KV cache: the engine's own key/value storage for continuous batching.

Every running row owns one *slot* (an index along the row axis of two preallocated
tensors `keys`/`values` of shape [layers, rows_cap, kv_heads, len_cap, head_dim]).
Rows are left-aligned (a row's token at position p lives in column p), running rows
occupy slots 0..n-1 contiguously, and a row that leaves is replaced by the last one
(`move_rows`), so a decode step attends over the plain view `[:n, :, :L]` with no
gather and no `torch.cat`. The cache plugs into any Hugging Face model through the
`Cache.update(key, value, layer_idx)` call its attention layers make; the worker
passes an explicit 4-D attention mask and explicit position ids, so the model never
asks the cache for lengths.

Two write modes, chosen by the worker before each forward:

* decode (`begin_decode`): batch of n rows, one new token each, written at
  column `lens[i]` of slot i; attention sees columns [0, L).
* packed prefill (`begin_packed`): the prompt chunks of several rows concatenated into
  ONE sequence of T tokens (batch 1, no padding); token t goes to (slot[t], pos[t]).
  Rows starting from scratch attend only to the chunk itself (block-diagonal causal
  mask); a row continuing a chunked prompt also needs its earlier columns, which are
  gathered from the cache.

Measured on SmolLM2-135M fp32, 2 CPU threads (numbers in `models/engine/worker.py`).
Capacity grows by doubling (rare copies) up to `max_rows` x `max_len`, so memory
follows the actual work instead of the worst case.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache

_DECODE, _PACKED = 0, 1


def _grow(current: int, needed: int, hard_max: int) -> int:
    return current if needed <= current else min(max(needed, 2 * current), hard_max)


class SlotKVCache(Cache):
    """Per-row KV slots in two preallocated tensors; see the module docstring."""

    def __init__(self, max_rows: int, max_len: int, init_rows: int = 4, init_len: int = 256,
                 budget: int | None = None) -> None:
        super().__init__(layers=[])
        self.max_rows = max_rows
        self.max_len = max_len
        self.budget = budget if budget is not None else max_rows * max_len
        self._init = (min(init_rows, max_rows), min(init_len, max_len))
        # Requested capacity; the tensors themselves are created on the first
        # `update` because only then do we know heads/head_dim/dtype/device for sure.
        self._rows_cap = min(init_rows, max_rows)
        self._len_cap = min(init_len, max_len)
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self._num_layers = 0
        self._mode = _DECODE
        self._n = 0
        self._arange: torch.Tensor | None = None
        self._wpos: torch.Tensor | None = None
        self._attend_len = 0
        self._slots: torch.Tensor | None = None
        self._gather: tuple[torch.Tensor, torch.Tensor] | None = None

    # ---- capacity ---------------------------------------------------------
    def allocate(self, num_layers: int, kv_heads: int, head_dim: int, v_head_dim: int,
                 dtype: torch.dtype, device: torch.device) -> None:
        """Create the storage up front (the worker knows the shapes from the config)."""
        self._num_layers = num_layers
        shape_k = (num_layers, self._rows_cap, kv_heads, self._len_cap, head_dim)
        shape_v = (num_layers, self._rows_cap, kv_heads, self._len_cap, v_head_dim)
        # zeros, not empty: masked columns are multiplied by 0 attention weight and
        # garbage NaN bit patterns would turn 0 * NaN into NaN.
        self.keys = torch.zeros(shape_k, dtype=dtype, device=device)
        self.values = torch.zeros(shape_v, dtype=dtype, device=device)

    @property
    def rows_capacity(self) -> int:
        return self._rows_cap

    @property
    def len_capacity(self) -> int:
        return self._len_cap

    def nbytes(self) -> int:
        if self.keys is None:
            return 0
        return self.keys.nbytes + self.values.nbytes

    def ensure_capacity(self, rows: int, length: int, used_rows: int, used_len: int) -> None:
        """Make room for `rows` slots of `length` columns, keeping the content of the first
        `used_rows` rows and `used_len` columns. Grows by doubling (rare copies) but keeps
        rows_cap x len_cap within `budget` where the request allows it, shrinking the row
        capacity if a much longer row arrives after many short ones."""
        if rows > self.max_rows or length > self.max_len:
            raise ValueError(f"KV cache request {rows}x{length} exceeds {self.max_rows}x{self.max_len}")
        if rows <= self._rows_cap and length <= self._len_cap:
            return
        new_len = _grow(self._len_cap, length, self.max_len)
        new_rows = _grow(self._rows_cap, rows, self.max_rows)
        if new_rows * new_len > self.budget:
            new_len = max(length, min(new_len, self.budget // max(rows, 1)))
            new_rows = max(rows, min(new_rows, self.budget // new_len))
        self._reallocate(new_rows, new_len, used_rows, used_len)

    def reset_if_oversized(self) -> None:
        """With no rows running, give back memory grown for an earlier burst."""
        if (self._rows_cap, self._len_cap) != self._init:
            self._reallocate(*self._init, 0, 0)

    def _reallocate(self, new_rows: int, new_len: int, used_rows: int, used_len: int) -> None:
        if self.keys is None:
            self._rows_cap, self._len_cap = new_rows, new_len
            return
        old_k, old_v = self.keys, self.values
        L, old_rows, H, old_len, D = old_k.shape
        new_k = old_k.new_zeros((L, new_rows, H, new_len, D))
        new_v = old_v.new_zeros((L, new_rows, H, new_len, old_v.shape[-1]))
        r, c = min(used_rows, old_rows, new_rows), min(used_len, old_len, new_len)
        if r and c:
            new_k[:, :r, :, :c] = old_k[:, :r, :, :c]
            new_v[:, :r, :, :c] = old_v[:, :r, :, :c]
        self.keys, self.values = new_k, new_v
        self._rows_cap, self._len_cap = new_rows, new_len

    def move_rows(self, src: list[int], dst: list[int], length: int) -> None:
        """Copy slots `src` onto slots `dst` (columns [0, length)); compaction when rows leave."""
        if not src or length == 0 or self.keys is None:
            return
        s = torch.tensor(src, device=self.keys.device)
        d = torch.tensor(dst, device=self.keys.device)
        self.keys[:, d, :, :length] = self.keys[:, s, :, :length]
        self.values[:, d, :, :length] = self.values[:, s, :, :length]

    # ---- per-forward modes -----------------------------------------------
    def begin_decode(self, n_rows: int, write_pos: torch.Tensor, attend_len: int) -> None:
        """Next forward: rows 0..n-1 each write one token at column write_pos[i]."""
        self._mode = _DECODE
        self._n = n_rows
        if self._arange is None or self._arange.numel() < n_rows or self._arange.device != write_pos.device:
            self._arange = torch.arange(self.max_rows, device=write_pos.device)
        self._rows_idx = self._arange[:n_rows]
        self._wpos = write_pos
        self._attend_len = attend_len

    def begin_packed(self, slots: torch.Tensor, positions: torch.Tensor,
                     gather: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        """Next forward: one packed sequence; token t is stored at (slots[t], positions[t]).

        `gather`, when given, is (slots, positions) of every key column the packed
        queries may attend to (earlier chunks included), in mask column order.
        """
        self._mode = _PACKED
        self._slots = slots
        self._wpos = positions
        self._gather = gather

    # ---- Cache API used by HF attention layers -----------------------------
    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int,
               *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        k_l = self.keys[layer_idx]
        v_l = self.values[layer_idx]
        if self._mode == _DECODE:
            n = self._n
            k_l = k_l[:n]
            v_l = v_l[:n]
            # index_put on (row, :, column): one small write per layer instead of a cat.
            k_l[self._rows_idx, :, self._wpos] = key_states[:, :, 0]
            v_l[self._rows_idx, :, self._wpos] = value_states[:, :, 0]
            L = self._attend_len
            return k_l[:, :, :L], v_l[:, :, :L]
        # packed: key_states is [1, H, T, D]
        k_l[self._slots, :, self._wpos] = key_states[0].transpose(0, 1)
        v_l[self._slots, :, self._wpos] = value_states[0].transpose(0, 1)
        if self._gather is None:
            return key_states, value_states
        gs, gp = self._gather
        return (k_l[gs, :, gp].transpose(0, 1).unsqueeze(0),
                v_l[gs, :, gp].transpose(0, 1).unsqueeze(0))

    def get_seq_length(self, layer_idx: int = 0) -> int:
        # Only consulted by models when position_ids are missing; the worker always passes them.
        return 0

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        return query_length, 0

    def get_query_offset(self, layer_idx: int = 0) -> int:
        return 0

    @property
    def is_compileable(self) -> bool:
        return False

    def __len__(self) -> int:
        return self._num_layers
