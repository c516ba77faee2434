"""Updates: a fact that restates an earlier fact's subject with a new value supersedes it
("My dog is called Biscuit." then "My dog is called Rex now."). The older entry stays
stored and listed (marked superseded) but no longer fires; deleting the newer entry
makes the older one active again, because supersession is a function of the entries
that exist, computed in insertion order.

The rule is on the labels' words, not on hidden states, so it is exact and explainable:
after dropping update markers ("now", "actually") the two labels must share a prefix
that names the subject and ends at its relation ("... is", "... called", "... in"),
share whatever follows the value, and differ only in one value phrase each (a name, a
number, or up to three words without function words). "My brother lives in Lima" and
"My brother works as a pilot" differ in a verb phrase, so both stay active.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from domain.lut.keys import STOPWORDS

UPDATE_MARKERS = frozenset("now currently anymore actually instead nowadays today these days".split())
"""Words that announce a change without being part of the value."""
RELATION_WORDS = frozenset("called named".split())
"""Content words that may end the shared prefix (as function words do)."""
ARTICLES = frozenset("a an the".split())
MAX_VALUE_WORDS = 3
"""Most content words of a lowercase value phrase ("mushroom risotto", "top drawer of the
desk"); names and numbers (capitalized or digit words) may be longer."""
VALUE_JOINERS = frozenset("of the a and".split())
"""Function words a lowercase value phrase may contain ("top drawer of the desk"); others
("to", "for", "in") start another attribute ("allergic to peanuts")."""

_WORD = re.compile(r"[^\W_]+(?:[-'.:,][^\W_]+)*\.?", re.UNICODE)


def words(label: str) -> list[str]:
    """The label's words, original case, without update markers and final punctuation."""
    out = [w.rstrip(".") if i == len(_WORD.findall(label)) - 1 else w for i, w in enumerate(_WORD.findall(label))]
    return [w for w in out if w and w.lower() not in UPDATE_MARKERS]


def _is_value(phrase: list[str]) -> bool:
    if phrase and phrase[0].lower() in ARTICLES:
        phrase = phrase[1:]
    if not phrase:
        return False
    named = all(w[:1].isupper() or w[:1].isdigit() or (0 < i < len(phrase) - 1 and w.lower() in STOPWORDS)
                for i, w in enumerate(phrase))
    content = [w for w in phrase if w.lower() not in STOPWORDS]
    plain = (len(content) <= MAX_VALUE_WORDS and phrase[0].lower() not in STOPWORDS
             and all(w.lower() in VALUE_JOINERS for w in phrase if w.lower() in STOPWORDS))
    return named or plain


def supersedes(old: str, new: str) -> bool:
    """True when `new` restates `old`'s subject and relation with another value."""
    a, b = words(old), words(new)
    la, lb = [w.lower() for w in a], [w.lower() for w in b]
    if la == lb:
        return False  # the same fact taught twice: both entries agree, neither is an update
    p = 0
    while p < min(len(la), len(lb)) and la[p] == lb[p]:
        p += 1
    s = 0
    while s < min(len(la), len(lb)) - p and la[-1 - s] == lb[-1 - s]:
        s += 1
    prefix = la[:p]
    if not any(w not in STOPWORDS for w in prefix):
        return False  # no shared subject word
    if prefix[-1] not in STOPWORDS and prefix[-1] not in RELATION_WORDS:
        return False  # the labels part at a verb or noun: another attribute of the subject
    return _is_value(a[p:len(a) - s]) and _is_value(b[p:len(b) - s])


def superseded_by(entries: Iterable[tuple[int, str]]) -> dict[int, int]:
    """entry id -> id of the newer entry that supersedes it, over (id, label) pairs in
    insertion order. Entries absent from the result are active."""
    out: dict[int, int] = {}
    seen: list[tuple[int, str]] = []
    for entry_id, label in entries:
        for old_id, old_label in seen:
            if old_id not in out and supersedes(old_label, label):
                out[old_id] = entry_id
        seen.append((entry_id, label))
    return out
