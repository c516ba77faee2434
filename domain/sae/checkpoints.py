"""SAE checkpoints in the shared artifact store, so a job whose replica died resumes on
another from its last epoch: each checkpoint the trainer writes locally is copied into the
store off the engine thread (newest first; the job row names it once it is there), and a
resuming job takes the newest one found in the store or on local disk."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from domain.artifacts import ArtifactStore, download, uri
from domain.sae.results import Progress

log = logging.getLogger(__name__)

KEEP_STORED = 2  # as on disk: each holds weights plus two Adam moments


def _epoch(name: str) -> int:
    return int(name.rsplit("/", 1)[-1].removesuffix(".pt").rsplit("_", 1)[1])


class CheckpointSync:
    """Copies a job's checkpoints into the store under `<prefix>checkpoint_<epoch>.pt`."""

    def __init__(self, store: ArtifactStore, tenant: str, prefix: str, folder: Path, progress: Progress) -> None:
        self._store, self._tenant, self._prefix = store, tenant, prefix
        self.folder = folder
        self._progress = progress
        self._loop = asyncio.get_running_loop()
        self._latest: Path | None = None
        self._task: asyncio.Task | None = None

    def saved(self, path: Path) -> None:
        """The trainer wrote `path` (called on the engine thread)."""
        self._loop.call_soon_threadsafe(self._kick, path)

    def _kick(self, path: Path) -> None:
        self._latest = path
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self._latest is not None:
            path, self._latest = self._latest, None
            try:
                await asyncio.to_thread(self._upload, path)
            except FileNotFoundError:
                continue  # pruned on disk already: a newer checkpoint is queued behind it

    def _upload(self, path: Path) -> None:
        data = path.read_bytes()
        key = self._prefix + path.name
        self._store.put(self._tenant, key, data)
        self._progress.checkpoint = uri(key)
        stored = sorted((i.key for i in self._store.list(self._tenant, self._prefix)), key=_epoch)
        for old in stored[:-KEEP_STORED]:
            self._store.delete(self._tenant, old)

    async def flush(self) -> None:
        """Wait until the newest checkpoint written so far is in the store."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    def newest(self) -> Path | None:
        """The newest checkpoint of the job, from the store (downloaded into `folder`) or
        from local disk, whichever is later; None when it has none."""
        local = {_epoch(p.name): p for p in self.folder.glob("checkpoint_*.pt")}
        stored = {_epoch(i.key): i.key for i in self._store.list(self._tenant, self._prefix)}
        if not local and not stored:
            return None
        epoch = max([*local, *stored])
        if epoch in local:
            path = local[epoch]
        else:
            path = download(self._store, self._tenant, stored[epoch], self.folder / f"checkpoint_{epoch}.pt")
            log.info("resuming from stored checkpoint %s", stored[epoch])
        self._progress.checkpoint = uri(stored[epoch]) if epoch in stored else None
        return path
