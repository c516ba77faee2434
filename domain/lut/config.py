"""Typed configuration of the LUT mechanism (embedded in Settings as `settings.lut`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LutConfig:
    """How facts are keyed, matched and applied. Defaults were chosen on aggregate
    statistics of SmolLM2-135M (never per fact); see bench/lut_eval.md."""

    default_threshold: float = 0.65
    """Match score a fact needs to fire when a request sets no threshold, in [0, 1].
    The score is the second-best cosine between the fact's key tokens and the prompt's
    tokens (one key only when the fact has one), so 0.65 asks that at least two
    distinctive tokens of the fact reappear in the prompt in a similar sense."""
    layer_fraction: float = 0.25
    """Depth of the keyed layer as a fraction of the decoder layers (SmolLM2: layer 7
    of 30). Early-middle layers keep token identity plus some context; deeper ones
    blur subject tokens into the question's generic meaning."""
    min_keys: int = 2
    """How many distinct key tokens must match: the score is the min_keys-th best key
    match. 1 is plain nearest-key (fires on any shared word); 2 scopes by subject phrase."""
    novelty_share: float = 0.3
    """A fact's informative words are the key words whose surprisal under the model (in
    the label, summed over the word's tokens) is at least this share of its most
    surprising key word's; a fact fires only if one of them also matches the prompt at
    the threshold. 0 makes every key word informative (no extra condition)."""
    adaptive_keys: bool = True
    """A first-person prompt with fewer content words than min_keys ("Where do I work?")
    needs only as many matching keys as it has content words ("my"/"I" already scopes it
    to the user's own facts, see person_scope). Other prompts keep min_keys, so "What is
    a quill?" does not fire "Quillmark makes ink"."""
    person_scope: bool = True
    """A fact told in the first person ("My dog is called Rex.") fires only on prompts in
    the first person: it answers "what is my dog called?", not "what is a dog?"."""
    max_keys_per_entry: int = 16
    """Keys kept per fact (the most distinctive tokens), bounding match cost and storage."""
    interpolation: float = 0.95
    """kNN-LM mixing weight of the fact's next label token once a fact fired:
    p = (1 - w) * p_model + w * onehot(label token). Above 0.5 greedy decoding follows
    the label; lower values only nudge sampling."""
    stop_after_label: bool = True
    """End the generation (finish reason EOS) once the whole label has been emitted."""
    max_lut_name_length: int = 128
    """Longest accepted lut_name, in characters."""
    max_label_chars: int = 4096
    """Longest accepted label plus label_context, in characters."""
    max_export_bytes: int = 48 * 1024 * 1024
    """Largest export blob; kept under the server's 64 MiB message limit so a too-large LUT
    gets a clear FAILED_PRECONDITION instead of a transport error."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.default_threshold <= 1.0:
            raise ValueError("LutConfig.default_threshold must be in [0, 1]")
        if not 0.0 <= self.novelty_share <= 1.0:
            raise ValueError("LutConfig.novelty_share must be in [0, 1]")
