"""Closing a JSON document by its grammar: the shortest way from a matcher's state to a
complete document, in bytes and in tokens, and a bound on how much one token can add to it.

`closing_path` walks the real xgrammar matcher (then rolls it back), so the path it finds
is valid by construction, required properties, formats and enums included. At each byte
it takes the grammar's forced text when there is one (`find_jump_forward_string`) and
otherwise the first legal byte in a fixed order that ends things first: outside a string
'}' and ']' before ',' and any new value; inside a string the closing quote before any
content. That is the shortest completion for schemas whose choices are "close now or add
more" (objects, arrays, strings, numbers); where the grammar offers alternatives of
different lengths (enum values, optional keys after a comma) it is an upper bound.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import xgrammar as xgr

_OUTSIDE = '}],:"0-ntf[{'
_INSIDE = '"a0-'
ORDER_OUTSIDE = _OUTSIDE + "".join(c for c in string.printable[:-5] if c not in _OUTSIDE)
ORDER_INSIDE = _INSIDE + "".join(c for c in string.printable[:-5] if c not in _INSIDE)
MAX_PATH_STEPS = 4096
"""A closing path longer than this is given up (never seen with a real schema)."""


@dataclass(frozen=True)
class Closing:
    """The shortest known way to complete the document from one grammar state."""

    text: str
    tokens: tuple[int, ...]
    """`text` as tokens the matcher accepts one after the other."""


class Tokenizer:
    """Greedy longest-match tokenization over the grammar's decoded vocabulary: every
    token it returns spells exactly its bytes, so the matcher accepts the sequence
    whenever it accepts the text (special and stop tokens are never used)."""

    def __init__(self, decoded_vocab: Sequence[bytes], excluded: set[int]) -> None:
        self._ids: dict[bytes, int] = {}
        for token_id, text in enumerate(decoded_vocab):
            if text and token_id not in excluded and text not in self._ids:
                self._ids[text] = token_id
        self._longest = max((len(t) for t in self._ids), default=1)

    def encode(self, text: str) -> tuple[int, ...] | None:
        data, ids, i = text.encode(), [], 0
        while i < len(data):
            for size in range(min(self._longest, len(data) - i), 0, -1):
                token_id = self._ids.get(data[i:i + size])
                if token_id is not None:
                    ids.append(token_id)
                    i += size
                    break
            else:
                return None  # a byte no token spells
        return tuple(ids)


def follow_strings(text: bytes | str, in_string: bool, escaped: bool) -> tuple[bool, bool]:
    """(in_string, escaped) after `text`: the grammar admits only valid JSON, so quotes
    and backslashes tell whether the document is inside a string."""
    for ch in (text.decode("latin-1") if isinstance(text, bytes) else text):
        if escaped:
            escaped = False
        elif in_string and ch == "\\":
            escaped = True
        elif ch == '"':
            in_string = not in_string
    return in_string, escaped


def closing_text(matcher: xgr.GrammarMatcher, in_string: bool, escaped: bool = False) -> str | None:
    """The completion text from `matcher`'s state (the matcher is left as it was), or
    None when none is found within MAX_PATH_STEPS. `in_string`/`escaped`: where the
    document is now (the caller follows quotes; the grammar does not say)."""
    out: list[str] = []
    steps = 0
    try:
        while not matcher.is_completed():
            if steps >= MAX_PATH_STEPS:
                return None
            forced = matcher.find_jump_forward_string()
            if forced and matcher.accept_string(forced):
                chosen = forced
            else:
                for chosen in (ORDER_INSIDE if in_string else ORDER_OUTSIDE):
                    if matcher.accept_string(chosen):
                        break
                else:
                    return None
            steps += 1
            out.append(chosen)
            in_string, escaped = follow_strings(chosen, in_string, escaped)
        return "".join(out)
    finally:
        if steps:
            matcher.rollback(steps)


def closing(matcher: xgr.GrammarMatcher, tokenizer: Tokenizer, in_string: bool,
            escaped: bool = False) -> Closing | None:
    text = closing_text(matcher, in_string, escaped)
    if text is None:
        return None
    tokens = tokenizer.encode(text)
    return None if tokens is None else Closing(text, tokens)


# --- how much one token can add to the closing path ----------------------------------
NUMBER_CHARS = 24
"""Room for one number the closing path writes (it picks the shortest legal digits)."""


def max_instance_chars(schema: dict[str, Any]) -> int | None:
    """Characters of the largest document that holds every property once and one item per
    array (strings at their minimum length): an upper bound on what the closing path can
    grow by when one token opens new values, since everything one token opens lies on one
    path of such a document. None when the schema recurses (no bound)."""
    defs = schema

    def size(node: Any, seen: tuple[str, ...]) -> int | None:
        if not isinstance(node, dict):
            return NUMBER_CHARS
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in seen:
                return None
            target: Any = defs
            for part in filter(None, ref[1:].split("/")):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            return size(target, seen + (ref,))
        options = [*node.get("anyOf", []), *node.get("oneOf", []), *node.get("allOf", [])]
        if options:
            sizes = [size(o, seen) for o in options]
            return None if None in sizes else max(sizes) + sum(sizes) * ("allOf" in node)
        if "enum" in node or "const" in node:
            values = node.get("enum", [node.get("const")])
            return max(len(json.dumps(v, separators=(",", ":"))) for v in values)
        kind = node.get("type")
        if isinstance(kind, list):
            sizes = [size({**node, "type": k}, seen) for k in kind]
            return None if None in sizes else max(sizes)
        if kind == "object":
            total = 2
            for key, sub in node.get("properties", {}).items():
                inner = size(sub, seen)
                if inner is None:
                    return None
                total += len(json.dumps(key)) + 2 + inner
            return total
        if kind == "array":
            inner = size(node.get("items", {}), seen)
            return None if inner is None else 2 + inner * max(1, node.get("minItems", 1))
        if kind == "string":
            if node.get("format") == "uuid":
                return 38
            return 2 + max(1, node.get("minLength", 0)) + (4096 if "pattern" in node else 0)
        if kind in ("boolean", "null"):
            return 5
        return NUMBER_CHARS

    return size(schema, ())
