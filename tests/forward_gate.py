"""A gate on a model's forward passes, for tests that must observe a generation mid-way."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Self


def decode_step(kwargs: dict[str, Any]) -> bool:
    """A pass that feeds one token per row: a decode step, not a prefill or a training batch."""
    ids = kwargs.get("input_ids")
    return ids is not None and ids.shape[-1] == 1


class ForwardGate:
    """Holds a model's forward passes after the first `let_through` until `open()`.

    The engine runs every forward on its own thread, so while the gate holds, no row
    advances and no background unit runs: a test can look at what clients received, or
    what the server answered, while a generation provably has not finished. A hold that
    outlasts `max_hold_s` lets the pass through and sets `timed_out`, so a test whose
    expectation fails ends with a failed assert instead of a hang; a short `max_hold_s`
    turns the gate into a brake. With `when`, only passes whose keyword arguments it
    accepts are counted and held."""

    def __init__(self, model, let_through: int = 0, max_hold_s: float = 60.0,
                 when: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self._model, self.let_through, self.max_hold_s, self._when = model, let_through, max_hold_s, when
        self._opened = threading.Event()
        self.holding = threading.Event()
        """Set once a pass is being held."""
        self.passes = 0
        self.timed_out = False
        self._handle = None

    def _pass(self, module, args, kwargs) -> None:
        if self._when is not None and not self._when(kwargs):
            return
        self.passes += 1
        if self.passes > self.let_through and not self._opened.is_set():
            self.holding.set()
            if not self._opened.wait(self.max_hold_s):
                self.timed_out = True

    def open(self) -> None:
        self._opened.set()

    def __enter__(self) -> Self:
        self._handle = self._model.register_forward_pre_hook(self._pass, with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        self.open()
        self._handle.remove()
