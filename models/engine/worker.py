"""Model runner: owns the Hugging Face model and its KV cache on one device and
executes one SchedulerOutput per step (drop rows, packed prefill of prompt chunks,
one decode step for every running row, sampling, hooks) -> ModelRunnerOutput.

KV-cache choice, by measurement (the `kvcache` section of `make bench`, same prompts
all at once, in process): transformers' own continuous batching (`generate_batch`,
paged cache; on CPU it has no paged kernels and falls back to gathers) makes a fraction
of this engine's tok/s even when both run on the same linear kernels, so the engine
keeps its own `SlotKVCache` (preallocated left-aligned slots, explicit position ids and
4-D masks, rows compacted when they leave).

Layout invariant: `self.rows[i].slot == i`; decoding rows occupy slots [0, n_decode),
then at most one row whose prompt is still being prefilled in chunks.

Prefix cache (`prefix_cache.py`): the scheduler asks `reserve_prefix` when it admits a row
and prefills from the returned position; the worker copies the cached blocks into the
row's slot in the same step, and stores a row's KV when its prompt is complete, when it
finishes (`keep_kv`, before the next step's admissions look) and when it leaves its slot
(cancelled, preempted), before slots are compacted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from models.engine.fast_forward import LlamaFastForward
from models.engine.hooks import HiddenTaps, find_decoder_layers, overrides, prefix_policy
from models.engine.kv_cache import SlotKVCache
from models.engine.prefix_cache import PrefixCache, PrefixHit
from models.engine.sampling import RowSampling, SamplingBatch
from models.engine.scheduler import SchedulerOutput
from models.types import GenerationRequest, RowHook


@dataclass
class ModelRunnerOutput:
    """Tokens produced by one step, aligned lists (one entry per row that produced one)."""

    request_ids: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    hook_finished: set[str] = field(default_factory=set)
    """Rows whose hook's `on_token` asked to finish."""
    errors: dict[str, str] = field(default_factory=dict)
    """Rows that failed in this step (a hook raised), with a message."""


class _Row:
    __slots__ = ("request_id", "prompt_ids", "hooks", "sampling", "slot", "length",
                 "generated", "decoding", "layer_hooks", "logit_hooks", "token_hooks",
                 "prefix", "replayed")

    def __init__(self, request: GenerationRequest, slot: int, taps: HiddenTaps) -> None:
        self.request_id = request.request_id
        self.prompt_ids = request.prompt_ids
        self.hooks: tuple[RowHook, ...] = tuple(request.hooks)
        self.sampling = RowSampling(request.params, request.prompt_ids)
        self.slot = slot
        self.length = 0  # tokens whose KV is in the cache
        self.generated: list[int] = []
        self.decoding = False
        self.layer_hooks = [(taps.normalize(layer), h) for h in self.hooks for layer in h.layers]
        self.logit_hooks = [h for h in self.hooks if overrides(h, "on_logits")]
        self.token_hooks = [h for h in self.hooks if overrides(h, "on_token")]
        self.prefix = prefix_policy(self.hooks)
        """(namespace, most prompt tokens taken from the prefix cache), or None: no cache."""
        self.replayed = 0  # generated tokens already part of prompt_ids (resumed rows)

    def sequence(self) -> list[int]:
        """Every token of the row in order: the prompt, then what it generated since."""
        return self.prompt_ids + self.generated[self.replayed:]


class Worker:
    """Executes scheduler decisions on the model; single-threaded (the engine thread)."""

    def __init__(self, model, *, max_rows: int, max_seq_len: int, kv_cache_tokens: int,
                 kv_initial_len: int, prefix_cache_tokens: int = 0, prefix_block_tokens: int = 16,
                 fast_forward: bool = True) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        cfg = model.config
        head = model.get_output_embeddings()
        self.vocab_size = getattr(head, "out_features", None) or cfg.vocab_size
        self.cache = SlotKVCache(max_rows, max_seq_len, init_rows=min(4, max_rows),
                                 init_len=min(kv_initial_len, max_seq_len), budget=kv_cache_tokens)
        heads = getattr(cfg, "num_attention_heads", None) or cfg.n_head
        kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        dtype = next(model.parameters()).dtype if next(model.parameters()).is_floating_point() else torch.float32
        self.cache.allocate(cfg.num_hidden_layers, kv_heads, head_dim, head_dim, dtype, self.device)
        self.prefix_cache = None if prefix_cache_tokens <= 0 else PrefixCache(
            prefix_cache_tokens, prefix_block_tokens, num_layers=cfg.num_hidden_layers, kv_heads=kv_heads,
            head_dim=head_dim, v_head_dim=head_dim, dtype=dtype, device=self.device)
        self._hits: dict[str, PrefixHit] = {}
        """Matches reserved by the scheduler this step, copied into slots by `execute`."""
        unsupported = LlamaFastForward.supports(model) if fast_forward else "turned off"
        self._fast = LlamaFastForward(model) if unsupported is None else None
        """The engine's own forward (`fast_forward.py`), or None: transformers' forward."""
        self.forward_path = "engine" if self._fast else f"transformers ({unsupported})"
        self.taps = HiddenTaps(find_decoder_layers(model), module_hooks=self._fast is None)
        # SDPA/flash take boolean masks; eager attention adds the mask to the scores.
        self._bool_mask = self._fast is not None or getattr(cfg, "_attn_implementation", "sdpa") in (
            "sdpa", "flash_attention_2")
        self._mask_dtype = dtype
        self.rows: list[_Row] = []
        self._by_id: dict[str, _Row] = {}
        self._parked: dict[str, _Row] = {}
        """Preempted rows: their slot is gone, their output and sampling state are kept."""
        self._decode_batch: SamplingBatch | None = None
        self._decode_key: tuple[str, ...] = ()
        self._arange = torch.arange(max_seq_len + 1, device=self.device)

    # ---- the step -----------------------------------------------------------
    @torch.inference_mode()
    def execute(self, sched: SchedulerOutput) -> ModelRunnerOutput:
        try:
            return self._execute(sched)
        except BaseException:
            # KV written by a failed forward is not trusted: these rows store nothing.
            for rid in [r.request_id for r in sched.decode] + [c.row.request_id for c in sched.prefill]:
                row = self._by_id.get(rid)
                if row is not None:
                    row.prefix = None
            raise
        finally:
            for hit in self._hits.values():
                self.prefix_cache.release(hit)
            self._hits.clear()

    def _execute(self, sched: SchedulerOutput) -> ModelRunnerOutput:
        self.remove_rows([r.request_id for r in sched.dropped + sched.cancelled_waiting])
        self._park([r.request_id for r in sched.preempted])
        for srow in sched.admitted:
            self._add_row(srow.payload)
        out = ModelRunnerOutput()
        self.taps.errors.clear()
        # Decode first: its rows are slots [0, n) before any prefill row turns decoding.
        # The worker's slot order (not the scheduler's list order) is the batch order.
        decode_rows = self.rows[:len(sched.decode)]
        if not all(r.decoding for r in decode_rows) or any(r.decoding for r in self.rows[len(decode_rows):]):
            raise RuntimeError("worker and scheduler disagree on the decoding rows")
        need_len = max([r.length + 1 for r in decode_rows] + [c.end for c in sched.prefill] + [1])
        self.cache.ensure_capacity(len(self.rows), need_len, len(self.rows), self._used_len())
        self._load_hits()
        if decode_rows:
            self._decode(decode_rows, out)
        if sched.prefill:
            self._prefill(sched, out)
        for key, exc in self.taps.errors.items():
            out.errors[key] = f"{type(exc).__name__}: {exc}"
            if key in self._by_id:
                self._by_id[key].prefix = None
        return out

    # ---- prefix cache -----------------------------------------------------------
    def reserve_prefix(self, request: GenerationRequest) -> tuple[int, bool]:
        """Called by the scheduler as it admits `request` (engine thread): (prompt tokens
        whose KV comes from the prefix cache, whether the row may use the cache at all).
        The match stays pinned until this step's `execute` copies it into the row's slot."""
        if self.prefix_cache is None:
            return 0, False
        # A preempted row (parked, or leaving its slot in this same step) resumes with its
        # prompt and everything it generated so far.
        known = self._parked.get(request.request_id) or self._by_id.get(request.request_id)
        policy = known.prefix if known else prefix_policy(tuple(request.hooks))
        if policy is None:
            return 0, False
        tokens = request.prompt_ids + known.generated if known else request.prompt_ids
        # At least the last prompt token is prefilled: its logits give the first new token.
        hit = self.prefix_cache.lookup(policy[0], tokens, min(policy[1], len(tokens) - 1))
        old = self._hits.pop(request.request_id, None)
        if old is not None:
            self.prefix_cache.release(old)
        self._hits[request.request_id] = hit
        return hit.tokens, True

    def _load_hits(self) -> None:
        for rid, hit in self._hits.items():
            row = self._by_id.get(rid)
            if row is None or not hit.tokens:
                continue
            self.prefix_cache.load(hit, self.cache, row.slot)
            row.length = hit.tokens
            for hook in row.hooks:
                hook.on_prefix_cached(hit.tokens)

    @torch.inference_mode()
    def keep_kv(self, request_ids: list[str]) -> None:
        """Store the KV of rows that just finished now, so a request admitted at the next
        step (a chat's next turn) finds it; their slots are freed at that step."""
        for rid in request_ids:
            row = self._by_id.get(rid)
            if row is not None:
                self._store(row, row.length)

    def _store(self, row: _Row, length: int) -> None:
        if self.prefix_cache is not None and row.prefix is not None and length:
            self.prefix_cache.store(row.prefix[0], row.sequence()[:length], self.cache, row.slot)

    def remove_rows(self, request_ids: list[str], keep_kv: bool = True) -> None:
        """Drop rows and compact the remaining ones into slots [0, n); with `keep_kv`,
        their KV goes to the prefix cache first."""
        for rid in request_ids:
            self._parked.pop(rid, None)
        gone = {rid for rid in request_ids if rid in self._by_id}
        if not gone:
            return
        for rid in gone:
            row = self._by_id.pop(rid)
            if keep_kv:
                self._store(row, row.length)
        keep = [r for r in self.rows if r.request_id not in gone]
        dec = [r for r in keep if r.decoding]
        rest = [r for r in keep if not r.decoding]
        n_dec = len(dec)
        fixed = {r.slot for r in dec if r.slot < n_dec}
        holes = iter(s for s in range(n_dec) if s not in fixed)
        moves: list[tuple[_Row, int]] = [(r, next(holes)) for r in dec if r.slot >= n_dec]
        moves += [(r, n_dec + i) for i, r in enumerate(rest) if r.slot != n_dec + i]
        length = max((r.length for r, _ in moves), default=0)
        self.cache.move_rows([r.slot for r, _ in moves], [s for _, s in moves], length)
        for r, s in moves:
            r.slot = s
        self.rows = sorted(keep, key=lambda r: r.slot)
        self._refresh_taps()

    # ---- prefill --------------------------------------------------------------
    def _prefill(self, sched: SchedulerOutput, out: ModelRunnerOutput) -> None:
        tokens, slots, positions, routes = [], [], [], {}
        last_index, finishing = [], []
        needs_past = False
        for chunk in sched.prefill:
            row = self._by_id[chunk.row.request_id]
            a = len(tokens)
            tokens += row.prompt_ids[chunk.start:chunk.end]
            slots += [row.slot] * (chunk.end - chunk.start)
            positions += range(chunk.start, chunk.end)
            needs_past |= chunk.start > 0
            for layer, hook in row.layer_hooks:
                routes.setdefault(layer, []).append((0, a, len(tokens), hook, row.request_id))
            row.length = chunk.end
            if chunk.completes_prompt:
                last_index.append(len(tokens) - 1)
                finishing.append(row)
        dev = self.device
        slot_t = torch.tensor(slots, device=dev)
        pos_t = torch.tensor(positions, device=dev)
        if needs_past:
            # Key columns: every cached position of each row in the pack, earlier chunks included.
            key_rows = [self._by_id[c.row.request_id] for c in sched.prefill]
            ks = torch.tensor([r.slot for r in key_rows for _ in range(r.length)], device=dev)
            kp = torch.tensor([p for r in key_rows for p in range(r.length)], device=dev)
            self.cache.begin_packed(slot_t, pos_t, (ks, kp))
        else:
            ks, kp = slot_t, pos_t
            self.cache.begin_packed(slot_t, pos_t, None)
        # Block-diagonal causal mask over the packed sequence: same row and not in the future.
        allowed = (slot_t[:, None] == ks[None, :]) & (kp[None, :] <= pos_t[:, None])
        self.taps.set_routes(routes)
        keep = torch.tensor(last_index or [len(tokens) - 1], device=dev)
        logits = self._forward(torch.tensor([tokens], device=dev), pos_t[None], allowed[None, None], keep)
        logits = logits[0]
        if finishing:
            batch = SamplingBatch.build([r.sampling for r in finishing], self.vocab_size, dev)
            self._sample_and_record(finishing, logits, batch, out)
            for row in finishing:
                row.decoding = True
                if row.request_id not in self.taps.errors:
                    self._store(row, row.length)
        self._refresh_taps()

    # ---- decode ---------------------------------------------------------------
    def _decode(self, rows: list[_Row], out: ModelRunnerOutput) -> None:
        dev = self.device
        n = len(rows)
        lens = torch.tensor([r.length for r in rows], device=dev)
        attend = int(max(r.length for r in rows)) + 1
        allowed = (self._arange[:attend][None, :] <= lens[:, None])[:, None, None, :]
        self.cache.begin_decode(n, lens, attend)
        routes: dict[int, list] = {}
        for r in rows:
            for layer, hook in r.layer_hooks:
                routes.setdefault(layer, []).append((r.slot, 0, 1, hook, r.request_id))
        self.taps.set_routes(routes)
        ids = torch.tensor([[r.generated[-1]] for r in rows], device=dev)
        logits = self._forward(ids, lens[:, None], allowed, 1)[:, -1]
        for r in rows:
            r.length += 1
        key = tuple(r.request_id for r in rows)
        if key != self._decode_key or self._decode_batch is None:
            self._decode_batch = SamplingBatch.build([r.sampling for r in rows], self.vocab_size, dev)
            self._decode_key = key
        self._sample_and_record(rows, logits, self._decode_batch, out)

    # ---- shared -----------------------------------------------------------------
    def _forward(self, input_ids, position_ids, allowed, logits_to_keep) -> torch.Tensor:
        if self._bool_mask:
            mask = allowed
        else:
            mask = torch.zeros(allowed.shape, dtype=self._mask_dtype, device=self.device)
            mask.masked_fill_(~allowed, torch.finfo(self._mask_dtype).min)
        if self._fast is not None:
            return self._fast.call_through(self.model, input_ids=input_ids, position_ids=position_ids,
                                           attention_mask=mask, cache=self.cache, logits_to_keep=logits_to_keep,
                                           on_layer=self.taps.apply if self.taps.active else None)
        result = self.model(input_ids=input_ids, position_ids=position_ids, attention_mask=mask,
                            cache=self.cache, use_cache=True, logits_to_keep=logits_to_keep)
        return result.logits

    def _sample_and_record(self, rows: list[_Row], logits: torch.Tensor, batch: SamplingBatch,
                           out: ModelRunnerOutput) -> None:
        for i, r in enumerate(rows):
            for hook in r.logit_hooks:
                if r.request_id in self.taps.errors:
                    break
                try:
                    logits[i] = hook.on_logits(logits[i], r.generated)
                except Exception as exc:
                    self.taps.errors[r.request_id] = exc
        tokens_t = batch.sample(logits)
        batch.observe(tokens_t)
        tokens = tokens_t.tolist()
        for r, tok in zip(rows, tokens):
            r.generated.append(tok)
            r.sampling.observe(tok)
            out.request_ids.append(r.request_id)
            out.token_ids.append(tok)
            for hook in r.token_hooks:
                try:
                    if hook.on_token(tok):
                        out.hook_finished.add(r.request_id)
                except Exception as exc:
                    self.taps.errors[r.request_id] = exc

    def _park(self, request_ids: list[str]) -> None:
        """Give the slots of preempted rows back, keeping each row to resume it later."""
        rows = [self._by_id[rid] for rid in request_ids]
        self.remove_rows(request_ids)
        for row in rows:
            self._parked[row.request_id] = row

    def _add_row(self, request: GenerationRequest) -> None:
        row = self._parked.pop(request.request_id, None)
        if row is None:
            row = _Row(request, len(self.rows), self.taps)
        else:
            # Resume by recompute: the prompt and every token produced so far are prefilled
            # again; the last one's logits give the next token, as a decode step would.
            row.prompt_ids = request.prompt_ids + row.generated
            row.replayed = len(row.generated)
            row.slot, row.length, row.decoding = len(self.rows), 0, False
        self.rows.append(row)
        self._by_id[row.request_id] = row

    def _used_len(self) -> int:
        return max((r.length for r in self.rows), default=0)

    def _refresh_taps(self) -> None:
        if not any(r.layer_hooks for r in self.rows):
            self.taps.clear()

    def close(self) -> None:
        """Detach from the model (layer hooks) and drop all rows."""
        self.taps.clear()
        self.remove_rows(list(self._by_id), keep_kv=False)
        self._parked.clear()

    @property
    def num_layers(self) -> int:
        return self.taps.num_layers

    @property
    def num_rows(self) -> int:
        return len(self.rows)
