"""Learning a fact in one forward pass: run the prompt to the keyed layer on the
engine thread (between decode steps, sharing the device worker with generation) and
turn the label's distinctive tokens into keys."""

from __future__ import annotations

import torch

from models.forward import run_to_layer, run_with_layer
from domain.lut.codec import EntryPayload
from domain.lut.keys import GENERIC_TEXTS, content_positions, word_groups


@torch.inference_mode()
def hidden_at(engine, layer: int, sequences: list[list[int]]) -> list[torch.Tensor]:
    """Output hidden states of decoder `layer` for each sequence ([len, hidden], cpu)."""
    device = next(engine.model.parameters()).device
    return [run_to_layer(engine.model, layer, torch.tensor([ids], device=device))[0].float().cpu()
            for ids in sequences]


def baseline_job(engine, tokenizer, layer: int):
    """Engine job: mean hidden state of generic text at `layer` (the centering baseline)."""
    seqs = [tokenizer(t, add_special_tokens=True)["input_ids"] for t in GENERIC_TEXTS]
    states = hidden_at(engine, layer, seqs)
    # Position 0 is skipped: the first token carries outsized activations in llama models.
    return torch.cat([h[1:] for h in states]).mean(dim=0)
    yield  # a generator: the engine runs it as one unit


def label_token_ids(tokenizer, label: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Label ids following a prompt without trailing space (leading space), and bare."""
    text = label.strip()
    return (tuple(tokenizer(" " + text, add_special_tokens=False)["input_ids"]),
            tuple(tokenizer(text, add_special_tokens=False)["input_ids"]))


def key_positions(tokenizer, ctx_ids: list[int], full_ids: list[int], max_keys: int) -> list[int]:
    """Positions of the label's distinctive tokens within `full_ids`."""
    # BPE may merge the context's trailing space into the label's first token, so the
    # label starts where the two tokenizations stop agreeing.
    start = 0
    while start < min(len(ctx_ids), len(full_ids)) and ctx_ids[start] == full_ids[start]:
        start += 1
    positions = content_positions(tokenizer, full_ids, start) or list(range(start, len(full_ids)))
    if len(positions) > max_keys:
        # Byte-level BPE ids grow as merges get rarer: higher id ~ more distinctive token.
        positions = sorted(sorted(positions, key=lambda i: -full_ids[i])[:max_keys])
    return positions


def novel_keys(tokenizer, full_ids: list[int], positions: list[int], logits: torch.Tensor,
               share: float) -> tuple[int, ...]:
    """Indices (into `positions`) of keys whose word is informative: its surprisal (summed
    over the word's tokens, -log p under the model reading the label) is at least `share`
    of the most surprising key word's. Generic words the model expects score low."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    surprisal = [0.0] + [-float(logp[i - 1, full_ids[i]]) for i in range(1, len(full_ids))]
    of_word = {}
    for group in word_groups(tokenizer, full_ids):
        total = sum(surprisal[i] for i in group)
        of_word.update({i: total for i in group})
    scores = [of_word.get(p, 0.0) for p in positions]
    cut = share * max(scores, default=0.0)
    return tuple(i for i, s in enumerate(scores) if s >= cut)


def learn_job(engine, tokenizer, layer: int, label: str, label_context: str, max_keys: int,
              novelty_share: float = 0.0):
    """Engine job: one forward pass of label_context + label -> the fact's EntryPayload."""
    ctx_ids = tokenizer(label_context, add_special_tokens=True)["input_ids"] if label_context else \
        tokenizer("", add_special_tokens=True)["input_ids"]
    full_ids = tokenizer(label_context + label, add_special_tokens=True)["input_ids"]
    positions = key_positions(tokenizer, ctx_ids, full_ids, max_keys)
    if novelty_share > 0:  # the surprisal needs the whole model, not just the keyed layer
        device = next(engine.model.parameters()).device
        hidden, logits = run_with_layer(engine.model, layer, torch.tensor([full_ids], device=device))
        hidden = hidden[0].float().cpu()
        novel = novel_keys(tokenizer, full_ids, positions, logits[0].cpu(), novelty_share)
    else:
        (hidden,) = hidden_at(engine, layer, [full_ids])
        novel = None
    with_space, bare = label_token_ids(tokenizer, label)
    return EntryPayload(layer, hidden[positions].clone(), with_space, bare, novel)
    yield  # a generator: the engine runs it as one unit
