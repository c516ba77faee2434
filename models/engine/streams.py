"""Cross-thread plumbing between the engine thread and asyncio callers: per-request
event streams and background jobs, delivered with `call_soon_threadsafe` in batches
(one callback per event loop per step, not one per event)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from models.engine.detokenize import RowDetokenizer
from models.types import FinishEvent, FinishReason, GenerationRequest, TokenEvent


@dataclass(eq=False)
class RowStream:
    """Engine-side state of one generate() call."""

    request: GenerationRequest
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue
    detok: RowDetokenizer
    done: bool = False
    """The engine has produced this stream's FinishEvent (set on the engine thread)."""
    submitted_at: float = 0.0
    """time.monotonic() at admission to the queue (the observer's queue wait)."""
    admitted_at: float | None = None
    """time.monotonic() when the row got a batch slot (set on the engine thread)."""

    def finish_event(self, reason: FinishReason, error: str | None = None) -> FinishEvent:
        self.done = True
        for hook in self.request.hooks:
            try:
                hook.on_finish(reason)
            except Exception:  # a hook's cleanup must not break the engine loop
                pass
        return FinishEvent(reason=reason, text=self.detok.text, prompt_tokens=len(self.request.prompt_ids),
                           completion_tokens=self.detok.generated, error=error)


class Outbox:
    """Events collected during one step, handed to each caller's loop in one callback."""

    def __init__(self) -> None:
        self._by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue, Any]]] = defaultdict(list)

    def put(self, stream: RowStream, event: TokenEvent | FinishEvent) -> None:
        self._by_loop[stream.loop].append((stream.queue, event))

    def flush(self) -> None:
        for loop, items in self._by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # the caller's loop is closed: nobody is listening
                pass
        self._by_loop.clear()


def _deliver(items: list[tuple[asyncio.Queue, Any]]) -> None:
    for queue, event in items:
        queue.put_nowait(event)


@dataclass(eq=False)
class BackgroundJob:
    """A background job: an iterator whose every `next()` is one small unit of work."""

    units: Iterator[Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    cancelled: bool = False
    units_run: int = field(default=0)

    def run_unit(self) -> bool:
        """Run one unit on the engine thread; False once the job is over."""
        if self.cancelled:
            self._close()
            return False
        try:
            next(self.units)
            self.units_run += 1
            return True
        except StopIteration as stop:
            self._resolve(stop.value, None)
        except Exception as exc:  # the job's failure goes to its awaiting caller
            self._resolve(None, exc)
        return False

    def fail(self, exc: BaseException) -> None:
        self._close()
        self._resolve(None, exc)

    def _close(self) -> None:
        close = getattr(self.units, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                pass

    def _resolve(self, value: Any, exc: BaseException | None) -> None:
        def settle() -> None:
            if self.future.done():
                return
            if exc is not None:
                self.future.set_exception(exc)
            else:
                self.future.set_result(value)

        try:
            self.loop.call_soon_threadsafe(settle)
        except RuntimeError:
            pass
