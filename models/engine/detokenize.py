"""Per-row incremental detokenization and finish detection (stop sequences, EOS ids,
max_new_tokens, full context window).

Text deltas never contain broken UTF-8: only the tail is decoded (a few tokens of
context plus the new ones), and a delta ending in U+FFFD (an incomplete multi-byte
character) waits for the next token. Text that could be the beginning of a stop
sequence is held back until it is resolved; the stop sequence itself is never
emitted. Concatenating every delta gives exactly the final text.
"""

from __future__ import annotations

from collections.abc import Iterable

from models.types import FinishReason

# Prompt tokens decoded together with the first new ones, so tokenizers that drop a
# leading space on the first token of a string (SentencePiece) still get it right.
_CONTEXT_TOKENS = 5


def eos_ids_of(tokenizer, model=None) -> frozenset[int]:
    """The tokenizer's EOS id plus any extra EOS ids of the model's generation_config."""
    ids: set[int] = set()
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen = getattr(model, "generation_config", None)
    extra = getattr(gen, "eos_token_id", None) if gen is not None else None
    if isinstance(extra, int):
        ids.add(extra)
    elif isinstance(extra, Iterable):
        ids.update(int(i) for i in extra)
    return frozenset(i for i in ids if i >= 0)


class RowDetokenizer:
    """Turns one row's token stream into text deltas and decides when it finishes."""

    def __init__(self, tokenizer, prompt_ids: list[int], *, stop_sequences: tuple[str, ...] = (),
                 eos_ids: frozenset[int] = frozenset(), max_new_tokens: int, max_seq_len: int) -> None:
        self._tok = tokenizer
        self._ids: list[int] = list(prompt_ids[-_CONTEXT_TOKENS:])
        self._prefix_offset = 0
        self._read_offset = len(self._ids)
        self._stops = tuple(s for s in stop_sequences if s)
        self._max_stop = max((len(s) for s in self._stops), default=0)
        self._eos = eos_ids
        self._max_new = max_new_tokens
        self._len_limit = max_seq_len - len(prompt_ids)  # new tokens allowed by the context
        self.text = ""
        """Text decoded so far (truncated before the stop sequence once one matched)."""
        self.generated = 0
        self._emitted = 0
        self.finish_reason: FinishReason | None = None

    def add(self, token_id: int) -> str:
        """Consume one generated token; return the text delta that may be shown now.
        Sets `finish_reason` when the row must stop."""
        self.generated += 1
        if token_id in self._eos:
            self.finish_reason = FinishReason.EOS
            return self.flush()
        self._ids.append(token_id)
        before = len(self.text)
        self.text += self._decode_tail()
        if self._stops:
            hit = self._find_stop(before)
            if hit is not None:
                self.text = self.text[:hit]
                self.finish_reason = FinishReason.STOP_SEQUENCE
                return self._take(len(self.text))
        if self.generated >= self._max_new or self.generated >= self._len_limit:
            self.finish_reason = FinishReason.LENGTH
            return self.flush()
        return self._take(len(self.text) - self._holdback())

    def flush(self) -> str:
        """Finish now (any reason): decode what is pending, release held-back text."""
        if self._read_offset < len(self._ids):
            # Incomplete UTF-8 at the very end is emitted as U+FFFD rather than lost.
            prefix = self._decode(self._ids[self._prefix_offset:self._read_offset])
            full = self._decode(self._ids[self._prefix_offset:])
            self.text += full[len(prefix):]
            self._read_offset = len(self._ids)
        return self._take(len(self.text))

    # ---- internals ----------------------------------------------------------
    def _decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _decode_tail(self) -> str:
        prefix = self._decode(self._ids[self._prefix_offset:self._read_offset])
        full = self._decode(self._ids[self._prefix_offset:])
        if len(full) > len(prefix) and not full.endswith("\ufffd"):
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            return full[len(prefix):]
        return ""

    def _find_stop(self, before: int) -> int | None:
        # Only a match that includes new text can be new: start max_stop-1 chars back.
        start = max(0, before - self._max_stop + 1)
        hits = [i for i in (self.text.find(s, start) for s in self._stops) if i >= 0]
        return min(hits) if hits else None

    def _holdback(self) -> int:
        """Length of the longest text suffix that is a proper prefix of a stop sequence."""
        best = 0
        text = self.text
        for s in self._stops:
            for k in range(min(len(s) - 1, len(text)), best, -1):
                if text.endswith(s[:k]):
                    best = k
                    break
        return best

    def _take(self, upto: int) -> str:
        upto = max(upto, self._emitted)
        delta = self.text[self._emitted:upto]
        self._emitted = upto
        return delta
