"""Keys of a fact: hidden states of its distinctive tokens at one decoder layer, and the
matching score between a prompt's hidden states and a LUT's keys.

Why distinctive tokens and not the last prompt token: on SmolLM2 the last token of
"User: ...?\nAssistant:" encodes the chat format more than the subject, so related and
unrelated prompts score alike. A fact is scoped by its content tokens (stopwords,
punctuation and chat-format words removed); hidden states are centered on the model's
mean hidden state over generic text before normalizing, because raw hidden states
share a large common direction that makes every cosine high.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

# Common words carry no identity of a fact; chat-format words appear in every prompt.
STOPWORDS = frozenset("""
a an the is are was were be been being am do does did done of in on at to for from by with
and or but not no nor so if then than as into onto over under about after before up down out
my your our their his her its i you we they he she it me us them this that these those
what who whom whose which when where why how whats can could would should will shall may
might must have has had tell please user assistant system s t ll re ve d m
""".split())

# Generic sentences whose mean hidden state is the centering baseline of a model.
GENERIC_TEXTS = (
    "The weather today is mild and sunny.",
    "User: How are you?\nAssistant: I am fine, thank you.",
    "Water boils at one hundred degrees.",
    "The meeting was moved to next week because of the holiday.",
    "She read a book about history and science.",
)


FIRST_PERSON = re.compile(r"\b(my|mine|i|me|our|ours|we|us)\b", re.IGNORECASE)


def first_person(text: str) -> bool:
    """Whether the text speaks of the user ("my dog", "where do I work"). A fact told in the
    first person is about the user's own dog, so it must not answer "What is a dog?"."""
    return FIRST_PERSON.search(text) is not None


def keyed_layer(num_layers: int, fraction: float) -> int:
    """0-based decoder layer whose output is keyed."""
    return min(num_layers - 1, max(0, int(num_layers * fraction)))


def _alnum(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def word_groups(tokenizer, ids: list[int], start: int = 0) -> list[list[int]]:
    """Positions >= start grouped into words: a word starts at a token that begins with
    whitespace or follows one that ends with it (byte-level BPE marks word starts so)."""
    special = set(getattr(tokenizer, "all_special_ids", ()) or ())
    groups: list[list[int]] = []
    prev = " "
    for i in range(start, len(ids)):
        text = tokenizer.decode([ids[i]])
        if ids[i] in special:
            prev = " "
            continue
        if not groups or text[:1].isspace() or prev[-1:].isspace():
            groups.append([])
        groups[-1].append(i)
        prev = text or prev
    return groups


def content_positions(tokenizer, ids: list[int], start: int = 0) -> list[int]:
    """Positions >= start of the tokens of content words: words that are not stopwords,
    punctuation or single letters. The test is on the whole word, so the pieces of a
    split stopword ("Ass" + "istant") are not content and a rare word's pieces are."""
    out = []
    for group in word_groups(tokenizer, ids, start):
        word = _alnum(tokenizer.decode([ids[i] for i in group]).strip())
        if (len(word) >= 2 or word.isdigit()) and word not in STOPWORDS:
            out += [i for i in group if _alnum(tokenizer.decode([ids[i]]))]
    return out


def prompt_words(tokenizer, ids: list[int], content: list[int]) -> int:
    """How many content words (see content_positions) the prompt has."""
    have = set(content)
    return sum(1 for group in word_groups(tokenizer, ids) if have.intersection(group))


def center(hidden: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Centered, unit-norm rows (float32)."""
    return torch.nn.functional.normalize(hidden.float() - mean, dim=-1)


@dataclass(frozen=True)
class CompiledLut:
    """A LUT's entries ready for matching: centered unit keys of every fact stacked."""

    keys: torch.Tensor
    """[num_keys, hidden] centered, normalized."""
    owner: torch.Tensor
    """[num_keys] index of the fact each key belongs to."""
    values: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
    """Per fact: label ids (with leading space, without)."""
    layer: int
    min_keys: int
    novel: torch.Tensor | None = None
    """[num_keys] bool: keys of the facts' informative words (all True for older entries)."""
    personal: torch.Tensor | None = None
    """[num_facts] bool: facts told in the first person (see `first_person`); None: none."""

    @property
    def num_facts(self) -> int:
        return len(self.values)

    def fact_scores(self, best_per_key: torch.Tensor, prompt_words: int | None = None,
                    first_person_prompt: bool = True) -> torch.Tensor:
        """Per fact: its min_keys-th best key match (fewer keys, or a prompt with fewer
        content words: that many), at most the best match among its informative keys: two
        shared generic words ("bridge", "completed") do not fire a fact whose news
        ("Veltrona") is absent. First-person facts score -1 unless the prompt is too."""
        scores = torch.full((self.num_facts,), -1.0)
        need = self.min_keys if prompt_words is None else max(1, min(self.min_keys, prompt_words))
        for f in range(self.num_facts):
            if not first_person_prompt and self.personal is not None and bool(self.personal[f]):
                continue
            own = self.owner == f
            mine = best_per_key[own]
            if mine.numel():
                k = min(need, mine.numel())
                scores[f] = mine.topk(k).values[-1]
                if self.novel is not None:
                    informative = best_per_key[own & self.novel]
                    if informative.numel():
                        scores[f] = torch.minimum(scores[f], informative.max())
        return scores


def compile_lut(entries, mean: torch.Tensor, layer: int, min_keys: int,
                personal: list[bool] | None = None) -> CompiledLut | None:
    """Stack decoded entries (`codec.EntryPayload`) keyed at `layer`; None when empty.
    Entries keyed at another layer (the config changed since) are skipped. `personal`:
    per entry, whether its label is in the first person."""
    keys, owner, values, novel, mine = [], [], [], [], []
    for i, e in enumerate(entries):
        if e.layer != layer or e.keys.shape[-1] != mean.shape[-1]:
            continue
        mine.append(bool(personal[i]) if personal is not None else False)
        n = e.keys.shape[0]
        keys.append(center(e.keys, mean))
        owner += [len(values)] * n
        values.append((e.value_ids, e.value_ids_bare))
        novel.append(torch.ones(n, dtype=torch.bool) if e.novel is None
                     else torch.isin(torch.arange(n), torch.tensor(e.novel, dtype=torch.long)))
    if not values:
        return None
    return CompiledLut(torch.cat(keys), torch.tensor(owner), tuple(values), layer, min_keys, torch.cat(novel),
                       torch.tensor(mine, dtype=torch.bool))
