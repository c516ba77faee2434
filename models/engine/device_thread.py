"""The one thread that does every piece of torch work of an engine: loading the weights,
packing them, allocating the KV cache, then the step loop itself.

Each thread that runs a torch parallel region keeps an OpenMP team of its own; two
teams contending for the same cores slow every product down. So nothing that starts one
may run on the event loop's thread or in `asyncio.to_thread` workers while an engine
serves (tests/integration/test_thread_teams.py checks it on the real server).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class DeviceThread:
    """A daemon thread running submitted callables one at a time, in order."""

    def __init__(self, name: str = "llmserve-engine") -> None:
        self._jobs: queue.SimpleQueue[tuple[Future, Callable[..., Any], tuple] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future:
        future: Future = Future()
        self._jobs.put((future, fn, args))
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on this thread, awaited from the event loop."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def close(self) -> None:
        """Let the thread end once the callables already submitted have run."""
        self._jobs.put(None)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _serve(self) -> None:
        while (item := self._jobs.get()) is not None:
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits the future
                future.set_exception(exc)
