"""The one per-row extension point of the engine, `RowHook`, and the plumbing that
routes decoder-layer hidden states to the rows that asked for them.

Features (per-user LUT biasing, JSON-grammar masks, specialist adapters, SAE
activation capture) attach `RowHook` objects to a `GenerationRequest.hooks`; the
engine loop never changes for them.

Contract (all calls happen on the engine thread, in this order within a step):

* `layers`: decoder-layer indices (0-based, negative allowed: -1 is the last layer)
  whose OUTPUT hidden states this hook wants to see. Read once when the row is admitted.
* `on_hidden(layer, hidden)`: called during every forward pass that includes this
  row, once per requested layer, with `hidden` = this row's slice of that layer's
  output, shape [1, q, hidden_size]: q = the prompt-chunk length during prefill
  (chunks arrive in order and cover the whole prompt), q = 1 for each decode step.
  Return None to leave it, or a tensor of the same shape to replace this row's hidden
  states (other rows are never affected). The tensor is a view into the batch: copy it
  (`.clone()`/`.cpu()`) if you keep it.
* `on_logits(logits, generated_ids)`: called once per generated token with this row's
  next-token logits [vocab] (float, on the model's device) and the ids generated so far;
  return the logits to use (modify in place or return a new tensor). Set a token to
  -inf to forbid it. Runs before repetition penalty, temperature, top-k and top-p.
* `on_token(token_id)`: called with every token chosen for this row (after sampling);
  return True to end the generation now (FinishReason.EOS: the hook declared the
  output complete; the token itself is kept).
* `on_finish(reason)`: called once when the row ends for any reason (also cancellation
  and errors), to release per-row state.

Rows without hooks pay nothing: layer taps are installed only while some running row
asked for a layer, and `on_logits`/`on_token` are only called for rows with hooks.
An exception raised by a hook ends only that row, with FinishReason.ERROR.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from models.types import FinishReason


class RowHook:
    """Base class with no-op defaults; override what you need (see module docstring)."""

    layers: tuple[int, ...] = ()

    def on_hidden(self, layer: int, hidden: torch.Tensor) -> torch.Tensor | None:
        return None

    def on_logits(self, logits: torch.Tensor, generated_ids: Sequence[int]) -> torch.Tensor:
        return logits

    def on_token(self, token_id: int) -> bool:
        return False

    def on_finish(self, reason: "FinishReason") -> None:
        return None


def overrides(hook: RowHook, name: str) -> bool:
    """True if `hook` overrides method `name` (so the no-op default can be skipped)."""
    return getattr(type(hook), name, None) is not getattr(RowHook, name)


def find_decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's list of decoder blocks (llama: model.layers, gpt2: transformer.h, ...)."""
    n = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    best = None
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0 and (n is None or len(module) == n):
            best = module
            break
    if best is None:
        raise ValueError("cannot find the decoder layer list of this model")
    return best


# A route: this row's hidden states are hidden[batch_index, start:end] in this forward.
Route = tuple[int, int, int, RowHook, object]


class HiddenTaps:
    """Forward hooks on decoder layers that call `RowHook.on_hidden` for routed rows.

    Before each forward the worker calls `set_routes({layer: [route, ...]})`; a module
    hook is installed only on layers that have routes and removed when none remain.
    Hook errors are collected in `errors` (keyed by the route's row key) instead of
    aborting the forward for every row.
    """

    def __init__(self, layers: nn.ModuleList) -> None:
        self._layers = layers
        self._routes: dict[int, list[Route]] = {}
        self._handles: dict[int, torch.utils.hooks.RemovableHandle] = {}
        self.errors: dict[object, BaseException] = {}

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    def normalize(self, layer: int) -> int:
        n = len(self._layers)
        idx = layer + n if layer < 0 else layer
        if not 0 <= idx < n:
            raise ValueError(f"hook asks for layer {layer}, model has {n}")
        return idx

    def set_routes(self, routes: dict[int, list[Route]]) -> None:
        self._routes = routes
        for layer in list(self._handles):
            if layer not in routes:
                self._handles.pop(layer).remove()
        for layer in routes:
            if layer not in self._handles:
                self._handles[layer] = self._layers[layer].register_forward_hook(self._make_hook(layer))

    def clear(self) -> None:
        self.set_routes({})

    def _make_hook(self, layer: int):
        def hook(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            for b, start, end, row_hook, key in self._routes.get(layer, ()):
                if key in self.errors:
                    continue
                view = hidden[b:b + 1, start:end]
                try:
                    new = row_hook.on_hidden(layer, view)
                    if new is not None and new is not view:
                        if new.shape != view.shape:
                            raise ValueError(f"on_hidden returned shape {tuple(new.shape)}, expected {tuple(view.shape)}")
                        view.copy_(new)
                except Exception as exc:  # one row's hook must not fail the batch
                    self.errors[key] = exc
            return None  # hidden was edited in place

        return hook
