"""Where a mixture meets the model: `SpecialistHook` (one generating row, through the
engine's RowHook contract) and `attached` (whole-batch forward hooks for training,
evaluation and gate inspection, run as engine background units)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from models.engine.hooks import find_decoder_layers
from models.types import RowHook
from domain.specialist.mixture import Mixture, PrefixState, Routing


class SpecialistHook(RowHook):
    """Mixes one row's hidden states at every decoder layer's output. The mixture object
    is captured when the row is prepared, so a swap never changes a running generation."""

    kind = "specialist"

    def __init__(self, mixture: Mixture, routing: Routing = Routing.SOFT, forced: int | None = None) -> None:
        self.layers = tuple(range(mixture.num_layers))
        self.mixture = mixture
        self._routing = routing
        self._forced = forced
        self._state = PrefixState()

    def prefix_reuse(self) -> tuple[None, int] | None:
        # The generalist alone (forced 0) is exactly the base model. Any other mixture edits
        # hidden states through a running prefix state that cached KV does not restore, so
        # its rows stay out of the prefix cache.
        return (None, 1 << 62) if self._forced == 0 else None

    def on_hidden(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        out, _ = self.mixture.apply(layer, hidden, self._state, self._routing, self._forced)
        return out


def _replace(output, new: torch.Tensor):
    if isinstance(output, tuple):
        return (new, *output[1:])
    return new


@contextlib.contextmanager
def attached(model, mixture: Mixture, *, routing: Routing = Routing.SOFT, forced: int | None = None,
             logits_out: list[torch.Tensor] | None = None) -> Iterator[PrefixState]:
    """Apply `mixture` to every decoder layer of `model` for the forwards inside the block
    (whole sequences, so a fresh PrefixState per forward: reset `state.sums` between them).
    Gate logits of each layer are appended to `logits_out` when given."""
    layers = find_decoder_layers(model)
    state = PrefixState()

    def make(index: int):
        def hook(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            new, logits = mixture.apply(index, hidden, state, routing, forced)
            if logits_out is not None:
                logits_out.append(logits)
            return _replace(output, new)
        return hook

    handles = [layer.register_forward_hook(make(i)) for i, layer in enumerate(layers)]
    try:
        yield state
    finally:
        for handle in handles:
            handle.remove()


def reset(state: PrefixState) -> None:
    state.sums.clear()
    state.counts.clear()
