"""The artifact store every replica shares: uploaded corpora, SAE checkpoints and results,
specialist corpora and weights. The features own this interface; `storage.artifacts.
ArtifactRepository` implements it in the database (chunked blobs, SQLite or PostgreSQL).

The contract an implementation keeps (an S3-compatible one included, see README):
- keys are relative slash-separated paths, per tenant (`SHARED_TENANT` for deployment-wide
  files); `put` replaces a key atomically: a reader gets the whole old file or the whole new
  one, never a mix, and a `put` that returned is visible to every replica's next read;
- `chunks` streams a file; if it is replaced mid-read it raises `ConflictError` (read again);
  a missing key is `NotFoundError`;
- `list(prefix)` returns keys in order; `delete_prefix` removes a folder.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from storage.artifacts import ArtifactInfo

__all__ = ["ArtifactInfo", "ArtifactStore", "download", "upload_file", "uri"]

URI_SCHEME = "artifact://"
READ_BYTES = 1024 * 1024


class ArtifactStore(Protocol):
    def put(self, tenant: str, key: str, data: bytes | Iterable[bytes]) -> ArtifactInfo: ...
    def get(self, tenant: str, key: str) -> bytes: ...
    def chunks(self, tenant: str, key: str) -> Iterator[bytes]: ...
    def stat(self, tenant: str, key: str) -> ArtifactInfo | None: ...
    def list(self, tenant: str, prefix: str = "") -> list[ArtifactInfo]: ...
    def total_bytes(self, tenant: str, prefix: str = "") -> int: ...
    def delete(self, tenant: str, key: str) -> bool: ...
    def delete_prefix(self, tenant: str, prefix: str) -> int: ...


def uri(key: str) -> str:
    """How a stored file is named to clients (`artifact://sae/jobs/<id>/sae.pt`)."""
    return URI_SCHEME + key


def key_of(name: str) -> str | None:
    """The key inside an `artifact://` name; None for anything else (a local path)."""
    return name[len(URI_SCHEME):] if name.startswith(URI_SCHEME) else None


def _read(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(READ_BYTES):
            yield block


def upload_file(store: ArtifactStore, tenant: str, key: str, path: Path) -> ArtifactInfo:
    """Copy a local file into the store, streamed."""
    return store.put(tenant, key, _read(path))


def download(store: ArtifactStore, tenant: str, key: str, path: Path) -> Path:
    """Copy a stored file to `path` (written whole, then renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        with tmp.open("wb") as f:
            for chunk in store.chunks(tenant, key):
                f.write(chunk)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
