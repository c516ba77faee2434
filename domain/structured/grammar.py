"""xgrammar grammars for JSON Schemas, compiled once per (tokenizer, schema text), and
`JsonGrammarHook`, the engine `RowHook` that constrains one row's decoding to a grammar.

The hook works on the engine thread: `on_logits` applies the token bitmask prepared for
the current grammar state; `on_token` advances the matcher, prepares the next bitmask
and returns True as soon as the JSON document is complete, so a finished reply does not
wait for the model to choose an end-of-sequence token. With the row's budget it also
closes the document by the grammar before max_new_tokens (`closing.py`).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xgrammar as xgr

from models.types import RowHook
from models.errors import InvalidArgument
from domain.structured.closing import Tokenizer, closing, follow_strings, max_instance_chars
from domain.structured.schemas import JsonSchemaSpec

# Compact JSON: no free whitespace, so a sampled model cannot spend its token budget on
# spaces and newlines (xgrammar's default with any_whitespace=False is ", " and ": ").
SEPARATORS = (",", ":")
CACHE_ENTRIES = 256
_LOCATION = re.compile(r"^\[[^\]]*\]\s*\S+\.cc:\d+:\s*")


@dataclass(frozen=True)
class CompiledSchema:
    """A checked schema and its grammar for one tokenizer."""

    spec: JsonSchemaSpec
    grammar: xgr.CompiledGrammar
    compile_ms: float
    """Time this lookup took: the real compile on first use, the cache hit afterwards."""
    cached: bool

    masks: "TokenMasks | None" = None

    growth_bound: int | None = None
    """Most bytes one token can add to the closing path (`closing.max_instance_chars`);
    None when the schema recurses."""

    def hook(self, budget: int | None = None, greedy: bool = True) -> "JsonGrammarHook":
        """A fresh row hook; `budget` (the row's max_new_tokens) lets it close the document
        by the grammar before the limit instead of being cut mid-string; `greedy` rows
        check only their favourite token near the limit."""
        return JsonGrammarHook(self.grammar, self.masks, budget, greedy, self.growth_bound)


@dataclass(frozen=True)
class TokenMasks:
    """Per-tokenizer token classes the hook narrows to (xgrammar bitmask layout)."""

    quote: torch.Tensor
    """Tokens whose text contains a double quote (inside a string: the ones that end it)."""
    plain: torch.Tensor
    """Tokens without control characters: the grammar lets a raw tab or newline into a
    string, which JSON parsers refuse, and compact JSON has no whitespace elsewhere."""
    vocab: Sequence[bytes]
    """Decoded bytes of every token, to follow whether the document is inside a string."""
    tokenizer: Tokenizer
    """Spells a closing path as tokens."""


class GrammarCompiler:
    """One tokenizer's xgrammar compiler plus an LRU of compiled schemas by canonical text.

    Thread-safe: compiles run in worker threads (`asyncio.to_thread`) so the event loop and
    the engine thread never wait for one.
    """

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        self.info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self._compiler = xgr.GrammarCompiler(self.info, max_threads=2, cache_enabled=False)
        vocab = self.info.decoded_vocab
        excluded = set(self.info.stop_token_ids) | set(getattr(tokenizer, "all_special_ids", ()))
        self.masks = TokenMasks(_char_mask(vocab, vocab_size, b'"'), _char_mask(vocab, vocab_size, bytes(range(32)), True),
                                vocab,
                                Tokenizer(vocab[:vocab_size], excluded))
        self._cache: OrderedDict[str, xgr.CompiledGrammar] = OrderedDict()
        self._lock = threading.Lock()

    def compile(self, spec: JsonSchemaSpec, field: str) -> CompiledSchema:
        """The grammar of `spec`; InvalidArgument naming `field` when xgrammar refuses it
        (unsatisfiable constraints such as minimum > maximum, unresolvable $ref, a regex
        it cannot handle)."""
        start = time.perf_counter()
        with self._lock:
            grammar = self._cache.get(spec.text)
            if grammar is not None:
                self._cache.move_to_end(spec.text)
                return CompiledSchema(spec, grammar, (time.perf_counter() - start) * 1e3, True, self.masks,
                                      max_instance_chars(spec.schema))
        try:
            grammar = self._compiler.compile_json_schema(spec.text, any_whitespace=False, separators=SEPARATORS,
                                                         strict_mode=True)
        except RuntimeError as exc:
            raise InvalidArgument(field, f"cannot be used for constrained decoding: {_reason(exc)}") from None
        _check_satisfiable(grammar, self.info, field)
        with self._lock:
            self._cache[spec.text] = grammar
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return CompiledSchema(spec, grammar, (time.perf_counter() - start) * 1e3, False, self.masks,
                              max_instance_chars(spec.schema))


def _char_mask(decoded_vocab: Sequence[bytes], vocab_size: int, chars: bytes, without: bool = False) -> torch.Tensor:
    """Bitmask (xgrammar layout: bit j of word i is token 32*i + j) of the tokens whose
    text contains any of `chars` (`without`: contains none of them). Built with numpy: a torch op this size would start an
    OpenMP team in the calling thread, next to the engine thread's."""
    words = xgr.get_bitmask_shape(1, vocab_size)[1]
    flags = np.zeros(words * 32, dtype=bool)
    flags[:min(vocab_size, len(decoded_vocab))] = [any(c in t for c in chars) != without
                                                   for t in decoded_vocab[:vocab_size]]
    return torch.from_numpy(np.packbits(flags, bitorder="little").view("<i4").astype(np.int32).reshape(1, -1))


def _reason(exc: Exception) -> str:
    # xgrammar prefixes "[time] /path/file.cc:line: "; the client only needs the reason.
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _LOCATION.sub("", text)


def _check_satisfiable(grammar: xgr.CompiledGrammar, info: xgr.TokenizerInfo, field: str) -> None:
    """A grammar that allows no first token accepts no document at all."""
    matcher = xgr.GrammarMatcher(grammar)
    bitmask = xgr.allocate_token_bitmask(1, info.vocab_size)
    matcher.fill_next_token_bitmask(bitmask)
    if not bool(bitmask.any()):
        raise InvalidArgument(field, "no JSON document satisfies this schema")


LOOP_MAX_PERIOD = 16
LOOP_REPEATS = 3
SAMPLED_CANDIDATES = 8
"""Near the budget, how many of a sampled row's most likely tokens are checked against the
closing path (a greedy row checks only its favourite)."""


def _looping(ids: Sequence[int]) -> bool:
    """True when the last tokens are one short cycle repeated LOOP_REPEATS times."""
    n = len(ids)
    for period in range(1, LOOP_MAX_PERIOD + 1):
        span = period * LOOP_REPEATS
        if n >= span and all(ids[n - 1 - i] == ids[n - 1 - i - period] for i in range(span - period)):
            return True
    return False


class JsonGrammarHook(RowHook):
    """Constrains one row to a compiled grammar (see module docstring).

    Two guards keep a small model from running into max_new_tokens with an unfinished
    document (a cut reply does not parse):
    - loop breaker: a greedy model can repeat a short cycle inside a string forever
      ("report_email_report_email_..."); when the last tokens are a repeated cycle, only
      tokens containing a quote (inside a string: the ones that close it) stay;
    - closing by the grammar (with a budget): the row keeps a token only if the document
      can still be completed within the tokens left after it, measured by the grammar's
      closing path from the state that token leads to (`closing.py`); when none of the
      checked candidates fits, the first token of the current closing path is the only
      one left. Far from the budget nothing is checked: `bound` (the most characters one
      token can add to the closing path) says when a check is needed at all. So a row
      whose budget admits the closing path at its first step always ends with a
      complete document.
    """

    kind = "json_grammar"

    def __init__(self, grammar: xgr.CompiledGrammar, masks: TokenMasks | None = None,
                 budget: int | None = None, greedy: bool = True, bound: int | None = None) -> None:
        self._matcher = xgr.GrammarMatcher(grammar)
        self._bitmask = xgr.allocate_token_bitmask(1, grammar.tokenizer_info.vocab_size)
        self._matcher.fill_next_token_bitmask(self._bitmask)
        self._device_mask: torch.Tensor | None = None
        self._masks = masks
        self._budget = None if masks is None else budget
        self._candidates = 1 if greedy else SAMPLED_CANDIDATES
        self._bound = bound
        self._in_string = False
        self._escaped = False
        self.loops_broken = 0
        self.closing_steps = 0
        """Steps where the budget removed the row's favourite token but another candidate fit."""
        self.forced_steps = 0
        """Steps where only the closing path's next token was left."""
        self.over_budget = False
        """True if the closing path ever needed more tokens than were left (the budget was
        too small for any complete document from the first token on)."""
        self.completed = False
        """True once the document is complete (the reply then parses)."""

    def _narrowed(self, generated_ids: Sequence[int]) -> torch.Tensor:
        mask, masks = self._bitmask, self._masks
        if masks is not None:
            mask = mask & masks.plain
        if masks is not None and _looping(generated_ids):
            narrowed = mask & masks.quote
            if bool(narrowed.any()):
                self.loops_broken += 1
                return narrowed
        return mask

    def on_logits(self, logits: torch.Tensor, generated_ids: Sequence[int]) -> torch.Tensor:
        mask = self._narrowed(generated_ids)
        self._apply(logits, mask)
        if self._budget is not None:
            keep = self._within_budget(logits, self._budget - len(generated_ids))
            if keep is not None:
                # A bitmask of the few kept tokens (numpy), applied like the grammar's: a torch
                # fill of the whole row costs tens of ms on a busy CPU (an OpenMP team).
                words = np.zeros(self._bitmask.shape[-1], dtype=np.uint32)
                for token_id in keep:
                    words[token_id >> 5] |= np.uint32(1 << (token_id & 31))
                self._apply(logits, torch.from_numpy(words.view(np.int32)).reshape(1, -1))
        return logits

    def _apply(self, logits: torch.Tensor, mask: torch.Tensor) -> None:
        if logits.device.type != "cpu":
            # One small copy per step (vocab / 32 int32s) to the logits' device.
            if self._device_mask is None:
                self._device_mask = torch.empty_like(mask, device=logits.device)
            self._device_mask.copy_(mask, non_blocking=True)
            mask = self._device_mask
        xgr.apply_token_bitmask_inplace(logits.view(1, -1), mask)

    def _within_budget(self, logits: torch.Tensor, left: int) -> list[int] | None:
        """The tokens this step may choose so that the document still ends within `left`
        tokens (this one included), or None when every legal token may be chosen."""
        now = closing(self._matcher, self._masks.tokenizer, self._in_string, self._escaped)
        if now is None or not now.tokens:
            return None
        # A token spans at least one byte, so the path's bytes bound its tokens; when even
        # the largest growth one token can cause leaves room, nothing needs checking.
        if self._bound is not None and left - 1 >= len(now.text.encode()) + self._bound:
            return None
        if len(now.tokens) > left:
            self.over_budget = True
        top = torch.topk(logits, min(self._candidates, logits.numel()))
        candidates = [t for v, t in zip(top.values.tolist(), top.indices.tolist()) if v != float("-inf")]
        keep = [t for t in candidates if self._fits(t, left - 1)]
        first = now.tokens[0]
        if not keep:
            self.forced_steps += 1
        elif candidates[0] not in keep:
            self.closing_steps += 1
        if first not in keep and (not keep or self._candidates > 1):
            keep.append(first)  # the closing path itself always fits when anything does
        return keep

    def _fits(self, token_id: int, room: int) -> bool:
        """True if after `token_id` the closing path takes at most `room` tokens."""
        if not self._matcher.accept_token(token_id):
            return False
        try:
            if self._matcher.is_completed():
                return True
            in_string, escaped = follow_strings(self._masks.vocab[token_id], self._in_string, self._escaped)
            after = closing(self._matcher, self._masks.tokenizer, in_string, escaped)
            return after is not None and len(after.tokens) <= room
        finally:
            self._matcher.rollback(1)

    def on_token(self, token_id: int) -> bool:
        if not self._matcher.accept_token(token_id):
            raise RuntimeError(f"token {token_id} violates the JSON grammar")
        if self._budget is not None:  # only the closing path needs the string state
            self._in_string, self._escaped = follow_strings(self._masks.vocab[token_id], self._in_string,
                                                            self._escaped)
        if self._matcher.is_completed() or self._matcher.is_terminated():
            # Root is an object: after its closing brace only end-of-sequence could follow.
            self.completed = True
            return True
        self._matcher.fill_next_token_bitmask(self._bitmask)
        return False
