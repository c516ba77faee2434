"""Specialist corpora on disk (seed layout: `<corpus_dir>/<name>/*.txt`, general text in
`<corpus_dir>/general/`): name and file checks, discovery, uploads, reading."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from models.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FILE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,123}\.txt$")
GENERAL = "general"


@dataclass(frozen=True)
class CorpusInfo:
    name: str
    size_bytes: int
    file_count: int


def check_name(name: str, reserved: tuple[str, ...], field: str = "name") -> str:
    if not NAME_RE.match(name or ""):
        raise InvalidArgument(field, f"must be 1 to 64 characters from [A-Za-z0-9_-]; got {name!r}")
    if name in reserved:
        raise InvalidArgument(field, f"'{name}' is reserved ({', '.join(reserved)})")
    return name


def check_file_name(file_name: str) -> str:
    if not FILE_RE.match(file_name or ""):
        raise InvalidArgument("file_name", "must be a plain file name ending in .txt (1 to 128 characters from "
                                           f"[A-Za-z0-9_.-], no path separators); got {file_name!r}")
    return file_name


def decode_text(data: bytes, where: str, field: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(field, f"{where} is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise InvalidArgument(field, f"{where} is empty")
    return text


class CorpusStore:
    """Corpus folders under one root; names are validated before any path is built."""

    def __init__(self, root: Path, reserved: tuple[str, ...]) -> None:
        self.root = root
        self.reserved = reserved

    def folder(self, name: str) -> Path:
        return self.root / check_name(name, self.reserved)

    def files(self, folder: Path) -> list[Path]:
        return sorted(p for p in folder.glob("*.txt") if p.is_file()) if folder.is_dir() else []

    def info(self, name: str) -> CorpusInfo | None:
        files = self.files(self.folder(name))
        if not files:
            return None
        return CorpusInfo(name, sum(p.stat().st_size for p in files), len(files))

    def discover(self) -> list[CorpusInfo]:
        """Every folder under the root that holds .txt files and has a valid, unreserved name."""
        if not self.root.is_dir():
            return []
        out = []
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and NAME_RE.match(entry.name) and entry.name not in self.reserved:
                info = self.info(entry.name)
                if info is not None:
                    out.append(info)
        return out

    def write(self, name: str, file_name: str, data: bytes, overwrite: bool) -> Path:
        """Store one uploaded file atomically; InvalidArgument for empty or non-UTF-8 data."""
        folder = self.folder(name)
        check_file_name(file_name)
        decode_text(data, f"file '{file_name}'", "chunk")
        target = folder / file_name
        if target.exists() and not overwrite:
            raise AlreadyExists("corpus file", f"{name}/{file_name}")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{file_name}.{uuid.uuid4().hex}.part"  # not *.txt: never read half-written
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return target

    def require(self, name: str) -> CorpusInfo:
        """The corpus of an added specialist must exist, and every file must be UTF-8 text."""
        folder = self.folder(name)
        files = self.files(folder)
        if not files:
            raise FailedPrecondition(f"specialist '{name}' has no corpus: put one or more .txt files in "
                                     f"{folder}/ or upload them with UploadSpecialistCorpus")
        for path in files:
            try:
                decode_text(path.read_bytes(), f"corpus file {path.name}", "name")
            except InvalidArgument as exc:
                raise FailedPrecondition(f"specialist '{name}': {exc.description}") from None
        return CorpusInfo(name, sum(p.stat().st_size for p in files), len(files))

    def read(self, name: str) -> list[str]:
        """Texts of a corpus, one per file (general included); NotFound when it has none."""
        folder = self.root / name
        files = self.files(folder)
        if not files:
            raise NotFound("corpus", name)
        return [p.read_text(encoding="utf-8") for p in files]

    def has_general(self) -> bool:
        return bool(self.files(self.root / GENERAL))

    def remove(self, name: str) -> None:
        shutil.rmtree(self.folder(name), ignore_errors=True)
