"""Specialist corpora in the shared artifact store (deployment-wide, under
`specialists/corpora/<name>/<file>.txt`, general text under `general/`): name and file
checks, discovery, uploads, reading. The seed's layout on disk (`<corpus_dir>/<name>/*.txt`)
still works: a replica copies such folders into the store at start-up and when the
specialist is added, and from then on every replica trains on the stored copy."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from domain.artifacts import ArtifactInfo, ArtifactStore, upload_file
from domain.files import check_file_name
from domain.jobs import SHARED_TENANT
from models.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
GENERAL = "general"
PREFIX = "specialists/corpora/"


@dataclass(frozen=True)
class CorpusInfo:
    name: str
    size_bytes: int
    file_count: int
    created_at: datetime | None = None
    """When its oldest file was stored."""


def check_name(name: str, reserved: tuple[str, ...], field: str = "name") -> str:
    if not NAME_RE.match(name or ""):
        raise InvalidArgument(field, f"must be 1 to 64 characters from [A-Za-z0-9_-]; got {name!r}")
    if name in reserved:
        raise InvalidArgument(field, f"'{name}' is reserved ({', '.join(reserved)})")
    return name


def decode_text(data: bytes, where: str, field: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(field, f"{where} is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise InvalidArgument(field, f"{where} is empty")
    return text


class SpecialistCorpora:
    """Corpora in the store; names are validated before any key or path is built."""

    def __init__(self, store: ArtifactStore, local_root: Path, reserved: tuple[str, ...]) -> None:
        self._store = store
        self.root = local_root
        """The seed's folders on this replica's disk, copied into the store when seen."""
        self.reserved = reserved

    @staticmethod
    def _prefix(name: str) -> str:
        return f"{PREFIX}{name}/"

    def _files(self, name: str) -> list[ArtifactInfo]:
        return [i for i in self._store.list(SHARED_TENANT, self._prefix(name)) if i.key.endswith(".txt")]

    def info(self, name: str) -> CorpusInfo | None:
        check_name(name, self.reserved)
        return _summary(name, self._files(name))

    def discover(self) -> list[CorpusInfo]:
        """Every stored corpus with a valid, unreserved name."""
        by_name: dict[str, list[ArtifactInfo]] = {}
        for item in self._store.list(SHARED_TENANT, PREFIX):
            name, _, file_name = item.key[len(PREFIX):].partition("/")
            if file_name.endswith(".txt") and "/" not in file_name:
                by_name.setdefault(name, []).append(item)
        return [_summary(n, files) for n, files in sorted(by_name.items())
                if NAME_RE.match(n) and n not in self.reserved]

    def import_local(self, names: list[str] | None = None) -> list[str]:
        """Copy the seed's folders (`<root>/<name>/*.txt`, all of them when `names` is None,
        general text included) into the store where a file is new or changed in size.
        Returns the names that received files."""
        if not self.root.is_dir():
            return []
        if names is None:
            names = [e.name for e in sorted(self.root.iterdir()) if e.is_dir() and NAME_RE.match(e.name)
                     and (e.name == GENERAL or e.name not in self.reserved)]
        changed = []
        for name in names:
            folder = self.root / name
            stored = {i.key: i.size_bytes for i in self._files(name)}
            paths = sorted(p for p in folder.glob("*.txt") if p.is_file()) if folder.is_dir() else []
            fresh = [p for p in paths if stored.get(self._prefix(name) + p.name) != p.stat().st_size]
            for path in fresh:
                try:
                    decode_text(path.read_bytes(), f"corpus file {path.name}", "name")
                except InvalidArgument as exc:
                    raise FailedPrecondition(f"specialist '{name}': {exc.description}") from None
                upload_file(self._store, SHARED_TENANT, self._prefix(name) + path.name, path)
            if fresh:
                changed.append(name)
        return changed

    def write(self, name: str, file_name: str, data: bytes, overwrite: bool) -> str:
        """Store one uploaded file (replacing atomically); InvalidArgument for empty or
        non-UTF-8 data. Returns its key."""
        check_name(name, self.reserved)
        check_file_name(file_name, "file_name", suffix=".txt", example="notes.txt")
        decode_text(data, f"file '{file_name}'", "chunk")
        key = self._prefix(name) + file_name
        if not overwrite and self._store.stat(SHARED_TENANT, key) is not None:
            raise AlreadyExists("corpus file", f"{name}/{file_name}")
        self._store.put(SHARED_TENANT, key, data)
        return key

    def require(self, name: str) -> CorpusInfo:
        """The corpus of a specialist being added: its folder on this replica's disk, if
        any, is stored first; then the store must hold at least one file."""
        check_name(name, self.reserved)
        self.import_local([name, GENERAL])
        info = self.info(name)
        if info is None:
            raise FailedPrecondition(f"specialist '{name}' has no corpus: put one or more .txt files in "
                                     f"{self.root / name}/ or upload them with UploadSpecialistCorpus")
        return info

    def read(self, name: str) -> list[str]:
        """Texts of a corpus, one per file (general included); NotFound when it has none."""
        files = self._files(name)
        if not files:
            raise NotFound("corpus", name)
        return [self._store.get(SHARED_TENANT, f.key).decode("utf-8") for f in files]

    def has_general(self) -> bool:
        return bool(self._files(GENERAL))

    def remove(self, name: str) -> None:
        """Forget a corpus: stored files, and the seed folder on this disk (else it would
        be stored again at the next start)."""
        self._store.delete_prefix(SHARED_TENANT, self._prefix(check_name(name, self.reserved)))
        shutil.rmtree(self.root / name, ignore_errors=True)


def _summary(name: str, files: list[ArtifactInfo]) -> CorpusInfo | None:
    if not files:
        return None
    return CorpusInfo(name, sum(f.size_bytes for f in files), len(files), min(f.created_at for f in files))
