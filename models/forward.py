"""Partial and patched forward passes over a decoder stack: run a model only up to a
layer (activation capture, LUT keys), or with one layer's output replaced (SAE
CE-loss evaluation). Architecture-agnostic through `find_decoder_layers`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from models.engine.hooks import find_decoder_layers


class _Stop(Exception):
    """Raised by the capture hook: layers past the captured one are not needed."""


def _hidden(output):
    return output[0] if isinstance(output, tuple) else output


@torch.inference_mode()
def run_to_layer(model, layer: int, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Output hidden states of decoder `layer`, [batch, seq, hidden] on the model's device.
    Layers after `layer` and the LM head never run."""
    captured: list[torch.Tensor] = []

    def capture(module, args, output):
        captured.append(_hidden(output))
        raise _Stop

    handle = find_decoder_layers(model)[layer].register_forward_hook(capture)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _Stop:
        pass
    finally:
        handle.remove()
    return captured[0]


@torch.inference_mode()
def run_with_layer(model, layer: int, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(output hidden states of decoder `layer`, logits) of one full forward pass."""
    captured: list[torch.Tensor] = []

    def capture(module, args, output):
        captured.append(_hidden(output))

    handle = find_decoder_layers(model)[layer].register_forward_hook(capture)
    try:
        logits = model(input_ids=input_ids, use_cache=False).logits
    finally:
        handle.remove()
    return captured[0], logits


@contextlib.contextmanager
def layer_output_replaced(model, layer: int, replace: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Within the block, decoder `layer`'s output hidden states h become replace(h)."""

    def patch(module, args, output):
        if isinstance(output, tuple):
            return (replace(output[0]), *output[1:])
        return replace(output)

    handle = find_decoder_layers(model)[layer].register_forward_hook(patch)
    try:
        yield
    finally:
        handle.remove()
