"""Training corpora: plain UTF-8 text files in the samples directory, uploaded
whole (streamed in chunks or as a multipart form) and written atomically."""

from __future__ import annotations

import codecs
import email.parser
import email.policy
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from models.errors import InvalidArgument, ResourceExhausted

_SAFE_NAME = re.compile(r"^[^/\\\x00-\x1f]{1,255}$")


@dataclass(frozen=True)
class StoredCorpus:
    filename: str
    path: Path
    size_bytes: int
    lines: int


def check_filename(name: str, field: str = "filename") -> str:
    if not name:
        raise InvalidArgument(field, "is required, e.g. \"customer_reviews.txt\"")
    if not _SAFE_NAME.match(name) or name.startswith(".") or name in ("..", "."):
        raise InvalidArgument(field, "must be a plain file name of 1 to 255 characters: no path separators, "
                                     "no control characters, no leading dot")
    return name


class CorpusStore:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes

    def path(self, filename: str, field: str = "corpus_file") -> Path:
        """Path of an existing corpus; InvalidArgument (the seed's 400) when it is absent or empty."""
        check_filename(filename, field)
        path = self.directory / filename
        if not path.is_file():
            raise InvalidArgument(field, f"Corpus file '{filename}' not found. Please upload it first "
                                         f"(POST /api/v1/upload or UploadCorpus)")
        if path.stat().st_size == 0:
            raise InvalidArgument(field, f"Corpus file '{filename}' is empty")
        return path

    async def save(self, filename: str, chunks: AsyncIterator[bytes], field: str = "filename") -> StoredCorpus:
        """Stream `chunks` into `filename`, checking size and UTF-8 as they arrive. Nothing
        replaces an existing file unless the whole upload is valid."""
        check_filename(filename, field)
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".upload-{uuid.uuid4().hex}"
        decoder = codecs.getincrementaldecoder("utf-8")()
        size = lines = 0
        last = b""
        try:
            with tmp.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ResourceExhausted(f"corpus is larger than the server's limit of {self.max_bytes} "
                                                f"bytes", 0.0, subject="corpus upload size")
                    _decode(decoder, chunk, filename, final=False)
                    lines += chunk.count(b"\n")
                    last = chunk[-1:] or last
                    out.write(chunk)
                _decode(decoder, b"", filename, final=True)
            if size == 0:
                raise InvalidArgument("file", f"'{filename}' is empty: a corpus needs at least one line of text")
            os.replace(tmp, self.directory / filename)
        finally:
            tmp.unlink(missing_ok=True)
        return StoredCorpus(filename, (self.directory / filename).resolve(), size, lines + (last != b"\n"))

    def lines(self, filename: str) -> Iterator[str]:
        with self.path(filename).open(encoding="utf-8") as f:
            yield from f


def _decode(decoder, chunk: bytes, filename: str, final: bool) -> None:
    try:
        decoder.decode(chunk, final=final)
    except UnicodeDecodeError as exc:
        raise InvalidArgument("file", f"'{filename}' is not valid UTF-8 text ({exc.reason}); "
                                      f"save it as UTF-8 and upload again") from None


def parse_multipart(content_type: str, body: bytes) -> tuple[str, bytes]:
    """(filename, content) of the part named `file` of a multipart/form-data body."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidArgument("content_type", f"must be multipart/form-data with a part named 'file' "
                                              f"(got '{content_type or 'none'}')")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            filename = part.get_filename() or ""
            return filename, part.get_payload(decode=True) or b""
    raise InvalidArgument("file", "the multipart body has no part named 'file'")
