"""Trained specialist mixtures in the shared artifact store
(`specialists/mixtures/mixture-<job>.safetensors`), cached as files on each replica, so a
mixture trained on one replica is served by all."""

from __future__ import annotations

import logging
from pathlib import Path

from domain.artifacts import ArtifactStore, download, key_of, upload_file, uri
from domain.jobs import SHARED_TENANT, JobRecord
from domain.specialist.mixture import Mixture

log = logging.getLogger(__name__)

PREFIX = "specialists/mixtures/"


class MixtureWeights:
    def __init__(self, store: ArtifactStore, cache_dir: Path) -> None:
        self._store = store
        self.cache_dir = cache_dir

    @staticmethod
    def file_name(job_id: str) -> str:
        return f"mixture-{job_id}.safetensors"

    def save(self, mixture: Mixture, job_id: str) -> str:
        """Write the mixture to the local cache and the store; returns its `artifact://` name."""
        path = self.cache_dir / self.file_name(job_id)
        mixture.save(path)
        key = PREFIX + path.name
        upload_file(self._store, SHARED_TENANT, key, path)
        return uri(key)

    def load(self, record: JobRecord) -> Mixture | None:
        """The mixture a completed job trained: from the local cache, else from the store;
        None when neither has it."""
        result = record.result or {}
        path = self.cache_dir / self.file_name(record.job_id)
        if not path.is_file():
            key = key_of(result.get("weights", "")) or PREFIX + path.name
            if self._store.stat(SHARED_TENANT, key) is not None:
                download(self._store, SHARED_TENANT, key, path)
            elif Path(result.get("weights_path", "")).is_file():  # trained before mixtures were stored
                path = Path(result["weights_path"])
            else:
                log.warning("specialist mixture of job %s is in neither the store nor %s", record.job_id, path)
                return None
        return Mixture.load(path)
