"""Prefix cache: the KV of token prefixes that rows already computed, kept after they
leave, so a prompt that starts with a cached prefix (a chat's history, a shared system
prompt) prefills only the rest.

Structure: a tree per namespace whose nodes are blocks of `block_tokens` tokens (SGLang's
radix cache at vLLM's block granularity); the path from a root to a node spells the prefix
whose last block's KV the node holds. Children are keyed by their exact token tuple, so
there are no hash collisions. Only full blocks are cached.

Eviction is LRU over blocks. A lookup or an insert touches its path leaf first and root
last, so a parent is always more recent than each of its children and the least recently
used block is a leaf: evicting it never strands a descendant. A matched path is pinned
until the worker has copied it into the row's slot, so an insert in the same step cannot
evict it.

Namespaces: a block's KV depends on its tokens and on anything that changes the forward
(row hooks that edit hidden states); rows share blocks only within one namespace (see
`models.engine.hooks.prefix_policy`).

The KV lives in two tensors [layers, blocks, kv_heads, block_tokens, head_dim] beside the
slot cache; a hit is copied into the row's slot (one gather per tensor), and a row's new
full blocks are copied out of its slot when its prompt is prefilled and when it leaves.
Storage grows by doubling up to the configured number of blocks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch

from models.engine.kv_cache import SlotKVCache


class _Node:
    __slots__ = ("block", "parent", "tokens", "children", "pins", "namespace")

    def __init__(self, block: int, parent: _Node | None, tokens: tuple[int, ...], namespace: Hashable) -> None:
        self.block = block
        self.parent = parent
        self.tokens = tokens
        self.children: dict[tuple[int, ...], _Node] = {}
        self.pins = 0
        self.namespace = namespace


@dataclass
class PrefixStats:
    """Counters of one prefix cache since start."""

    lookups: int = 0
    hits: int = 0
    """Lookups that found at least one block."""
    hit_tokens: int = 0
    """Prompt tokens whose prefill was skipped."""
    lookup_tokens: int = 0
    """Prompt tokens of all lookups (hit_tokens / lookup_tokens is the token hit rate)."""
    stored_blocks: int = 0
    evicted_blocks: int = 0


class PrefixIndex:
    """The block tree and its LRU order; pure Python (the KV itself is `PrefixCache`'s)."""

    def __init__(self, capacity_blocks: int, block_tokens: int) -> None:
        if capacity_blocks < 1 or block_tokens < 1:
            raise ValueError("a prefix index needs at least one block of at least one token")
        self.capacity = capacity_blocks
        self.block_tokens = block_tokens
        self._roots: dict[Hashable, dict[tuple[int, ...], _Node]] = {}
        self._lru: OrderedDict[int, _Node] = OrderedDict()  # block id -> node, least recent first
        self._free = list(range(capacity_blocks - 1, -1, -1))  # pop() gives the lowest id
        self.stats = PrefixStats()

    @property
    def used_blocks(self) -> int:
        return len(self._lru)

    def _blocks(self, tokens: Sequence[int], limit: int) -> list[tuple[int, ...]]:
        b = self.block_tokens
        return [tuple(tokens[i:i + b]) for i in range(0, (min(limit, len(tokens)) // b) * b, b)]

    def _walk(self, namespace: Hashable, blocks: list[tuple[int, ...]]) -> list[_Node]:
        path: list[_Node] = []
        children = self._roots.get(namespace, {})
        for key in blocks:
            node = children.get(key)
            if node is None:
                break
            path.append(node)
            children = node.children
        return path

    def _touch(self, path: list[_Node]) -> None:
        for node in reversed(path):  # leaf first: parents end up more recent than children
            self._lru.move_to_end(node.block)

    def match(self, namespace: Hashable, tokens: Sequence[int], limit: int) -> list[_Node]:
        """The longest cached path of full blocks within tokens[:limit], pinned (call
        `unpin`); counted in the stats."""
        path = self._walk(namespace, self._blocks(tokens, limit))
        self._touch(path)
        for node in path:
            node.pins += 1
        s = self.stats
        s.lookups += 1
        s.lookup_tokens += len(tokens)
        s.hits += bool(path)
        s.hit_tokens += len(path) * self.block_tokens
        return path

    @staticmethod
    def unpin(path: list[_Node]) -> None:
        for node in path:
            node.pins -= 1

    def insert(self, namespace: Hashable, tokens: Sequence[int]) -> tuple[int, list[int]]:
        """Add the full blocks of `tokens` that are not cached yet, evicting LRU leaves as
        needed: (index of the first new block in the sequence, new block ids in order).
        The caller fills those blocks now. Fewer (or none) are added when every block is
        pinned or on this path."""
        blocks = self._blocks(tokens, len(tokens))
        path = self._walk(namespace, blocks)
        self._touch(path)
        first = len(path)
        on_path = {id(n) for n in path}
        new: list[int] = []
        for key in blocks[first:]:
            block = self._allocate(on_path)
            if block is None:
                break
            parent = path[-1] if path else None
            node = _Node(block, parent, key, namespace)
            (parent.children if parent else self._roots.setdefault(namespace, {}))[key] = node
            self._lru[block] = node
            path.append(node)
            on_path.add(id(node))
            new.append(block)
        self._touch(path)
        self.stats.stored_blocks += len(new)
        return first, new

    def _allocate(self, keep: set[int]) -> int | None:
        if self._free:
            return self._free.pop()
        for node in self._lru.values():
            if not node.children and not node.pins and id(node) not in keep:
                self._evict(node)
                return self._free.pop()
        return None

    def _evict(self, node: _Node, count: bool = True) -> None:
        siblings = node.parent.children if node.parent else self._roots[node.namespace]
        del siblings[node.tokens]
        if not siblings and node.parent is None:
            del self._roots[node.namespace]
        del self._lru[node.block]
        self._free.append(node.block)
        self.stats.evicted_blocks += count

    def clear(self) -> None:
        """Forget every unpinned block (pinned paths stay valid until unpinned)."""
        while True:
            leaves = [n for n in self._lru.values() if not n.children and not n.pins]
            if not leaves:
                return
            for node in leaves:
                self._evict(node, count=False)


@dataclass
class PrefixHit:
    """A pinned match waiting to be copied into a row's slot."""

    path: list[_Node]
    tokens: int


class PrefixCache:
    """The block index plus the blocks' KV on the device. Engine-thread only."""

    def __init__(self, capacity_tokens: int, block_tokens: int, *, num_layers: int, kv_heads: int,
                 head_dim: int, v_head_dim: int, dtype: torch.dtype, device: torch.device,
                 initial_blocks: int = 64) -> None:
        self.index = PrefixIndex(max(1, capacity_tokens // block_tokens), block_tokens)
        self.block_tokens = block_tokens
        self._shape = (num_layers, kv_heads, head_dim, v_head_dim)
        self._dtype, self._device = dtype, device
        self._allocated = 0
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self._reserve(min(initial_blocks, self.index.capacity))

    @property
    def stats(self) -> PrefixStats:
        return self.index.stats

    def nbytes(self) -> int:
        return 0 if self.keys is None else self.keys.nbytes + self.values.nbytes

    @property
    def capacity_tokens(self) -> int:
        return self.index.capacity * self.block_tokens

    @property
    def used_tokens(self) -> int:
        return self.index.used_blocks * self.block_tokens

    def _reserve(self, blocks: int) -> None:
        if blocks <= self._allocated:
            return
        new = min(self.index.capacity, max(blocks, 2 * self._allocated))
        layers, heads, dk, dv = self._shape
        b = self.block_tokens
        keys = torch.zeros((layers, new, heads, b, dk), dtype=self._dtype, device=self._device)
        values = torch.zeros((layers, new, heads, b, dv), dtype=self._dtype, device=self._device)
        if self._allocated:
            keys[:, :self._allocated] = self.keys
            values[:, :self._allocated] = self.values
        self.keys, self.values, self._allocated = keys, values, new

    def lookup(self, namespace: Hashable, tokens: Sequence[int], limit: int) -> PrefixHit:
        path = self.index.match(namespace, tokens, limit)
        return PrefixHit(path, len(path) * self.block_tokens)

    def release(self, hit: PrefixHit) -> None:
        self.index.unpin(hit.path)
        hit.path = []

    def load(self, hit: PrefixHit, cache: SlotKVCache, slot: int) -> None:
        """Copy the hit's blocks into columns [0, hit.tokens) of `slot`, then unpin them."""
        if hit.path:
            ids = torch.tensor([n.block for n in hit.path], device=self._device)
            for pool, dest in ((self.keys, cache.keys), (self.values, cache.values)):
                blocks = pool[:, ids]  # [layers, k, heads, block, dim]
                dest[:, slot, :, :hit.tokens] = blocks.transpose(1, 2).flatten(2, 3)
        self.release(hit)

    def store(self, namespace: Hashable, tokens: Sequence[int], cache: SlotKVCache, slot: int) -> int:
        """Keep the KV of `tokens` (columns [0, len) of `slot`) for later rows; only blocks
        not cached yet are copied. Returns the number of blocks added."""
        first, new = self.index.insert(namespace, tokens)
        if not new:
            return 0
        self._reserve(max(new) + 1)
        b = self.block_tokens
        ids = torch.tensor(new, device=self._device)
        cols = slice(first * b, (first + len(new)) * b)
        for pool, src in ((self.keys, cache.keys), (self.values, cache.values)):
            part = src[:, slot, :, cols]  # [layers, heads, n * block, dim]
            pool[:, ids] = part.unflatten(2, (len(new), b)).transpose(1, 2)
        return len(new)
