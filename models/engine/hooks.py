"""Plumbing of the engine's per-row extension point (`models.types.RowHook`): which
hook methods a hook overrides, where the decoder layers are, and the forward hooks that
route each layer's hidden states to the rows that asked for them."""

from __future__ import annotations

import torch
from torch import nn

from models.types import RowHook


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
    hook is installed only on layers that have routes and removed when none remain. A
    forward that does not go through the layer modules (the engine's fast path) asks for
    no module hooks and calls `apply` after each layer instead.
    Hook errors are collected in `errors` (keyed by the route's row key) instead of
    aborting the forward for every row.
    """

    def __init__(self, layers: nn.ModuleList, module_hooks: bool = True) -> None:
        self._layers = layers
        self._module_hooks = module_hooks
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
        if not self._module_hooks:
            return
        for layer in list(self._handles):
            if layer not in routes:
                self._handles.pop(layer).remove()
        for layer in routes:
            if layer not in self._handles:
                self._handles[layer] = self._layers[layer].register_forward_hook(self._make_hook(layer))

    def clear(self) -> None:
        self.set_routes({})

    @property
    def active(self) -> bool:
        """Whether some layer has routes in this forward."""
        return bool(self._routes)

    def apply(self, layer: int, hidden: torch.Tensor) -> None:
        """Run the routed rows' `on_hidden` on layer `layer`'s output, editing it in place."""
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

    def _make_hook(self, layer: int):
        def hook(module, args, output):
            self.apply(layer, output[0] if isinstance(output, tuple) else output)
            return None  # hidden was edited in place

        return hook


def prefix_policy(hooks: tuple[RowHook, ...]) -> tuple[tuple, int] | None:
    """How a row with these hooks may use the prefix cache: None (not at all), or
    (namespace, most prompt tokens it may take from the cache). See `RowHook.prefix_reuse`."""
    keys: list = []
    limit = 1 << 62
    for hook in hooks:
        if not hook.layers:
            continue  # sees no hidden state: the forward is the base model's
        reuse = hook.prefix_reuse()
        if reuse is None:
            return None
        key, most = reuse
        limit = min(limit, most)
        if key is not None:
            keys.append(key)
    return tuple(keys), limit
