"""Training corpora: plain UTF-8 text uploaded whole (streamed in chunks or as a
multipart form), checked, and kept in the shared artifact store so every replica can
train on it."""

from __future__ import annotations

import asyncio
import codecs
import email.parser
import email.policy
import logging
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from domain.artifacts import ArtifactStore, upload_file, uri
from domain.files import check_file_name
from domain.tenancy.config import DEFAULT_TENANT
from domain.tenancy.keys import check_tenant
from domain.tenancy.quotas import Quotas
from models.errors import InvalidArgument, ResourceExhausted

log = logging.getLogger(__name__)
PREFIX = "sae/corpora/"


@dataclass(frozen=True)
class StoredCorpus:
    filename: str
    location: str
    """Where it is kept (`artifact://sae/corpora/<filename>`)."""
    size_bytes: int
    lines: int


class UploadedCorpora:
    """Corpora uploaded for SAE training, per tenant, in the artifact store. `spool_dir`
    holds an upload while it is checked; `legacy_dir` is where corpora lived as local
    files (imported once at start-up)."""

    def __init__(self, store: ArtifactStore, max_bytes: int, spool_dir: Path, quotas: Quotas | None = None,
                 legacy_dir: Path | None = None) -> None:
        self._store = store
        self.max_bytes = max_bytes
        self._spool = spool_dir
        self._quotas = quotas
        self._legacy = legacy_dir

    @staticmethod
    def key(filename: str) -> str:
        return PREFIX + filename

    def stored_bytes(self, tenant: str) -> int:
        return self._store.total_bytes(tenant, PREFIX)

    def require(self, tenant: str, filename: str, field: str = "corpus_file") -> int:
        """Size of an existing corpus; InvalidArgument (the seed's 400) when it is absent or empty."""
        check_file_name(filename, field, example="customer_reviews.txt")
        info = self._store.stat(tenant, self.key(filename))
        if info is None:
            raise InvalidArgument(field, f"Corpus file '{filename}' not found. Please upload it first "
                                         f"(POST /api/v1/upload or UploadCorpus)")
        if info.size_bytes == 0:
            raise InvalidArgument(field, f"Corpus file '{filename}' is empty")
        return info.size_bytes

    async def save(self, tenant: str, filename: str, chunks: AsyncIterator[bytes],
                   field: str = "filename") -> StoredCorpus:
        """Spool `chunks` to a local file, checking size and UTF-8 as they arrive; only a
        whole valid upload (within the tenant's corpus_bytes quota) replaces the stored one."""
        check_file_name(filename, field, example="customer_reviews.txt")
        check_tenant(tenant)
        self._spool.mkdir(parents=True, exist_ok=True)
        decoder = codecs.getincrementaldecoder("utf-8")()
        size = lines = 0
        last = b""
        with tempfile.NamedTemporaryFile(dir=self._spool, prefix=".upload-") as out:
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
            out.flush()
            if size == 0:
                raise InvalidArgument("file", f"'{filename}' is empty: a corpus needs at least one line of text")
            if self._quotas is not None:
                old = await asyncio.to_thread(self._store.stat, tenant, self.key(filename))
                held = await asyncio.to_thread(self.stored_bytes, tenant)
                await self._quotas.check_stored(tenant, "corpus_bytes", held - (old.size_bytes if old else 0), size)
            await asyncio.to_thread(upload_file, self._store, tenant, self.key(filename), Path(out.name))
        return StoredCorpus(filename, uri(self.key(filename)), size, lines + (last != b"\n"))

    def lines(self, tenant: str, filename: str) -> Iterator[str]:
        """The corpus's lines (with their newlines), streamed from the store."""
        self.require(tenant, filename)
        decoder = codecs.getincrementaldecoder("utf-8")()
        rest = ""
        for chunk in self._store.chunks(tenant, self.key(filename)):
            text = rest + decoder.decode(chunk)
            *whole, rest = text.split("\n")
            for line in whole:
                yield line + "\n"
        rest += decoder.decode(b"", final=True)
        if rest:
            yield rest

    def import_legacy(self) -> int:
        """Copy corpora left as local files (`<legacy_dir>/*` for the default tenant,
        `<legacy_dir>/.tenants/<tenant>/*`) into the store, unless already there."""
        if self._legacy is None or not self._legacy.is_dir():
            return 0
        folders = [(DEFAULT_TENANT, self._legacy)]
        tenants = self._legacy / ".tenants"
        if tenants.is_dir():
            folders += [(p.name, p) for p in sorted(tenants.iterdir()) if p.is_dir()]
        copied = 0
        for tenant, folder in folders:
            for path in sorted(folder.iterdir()):
                if path.is_file() and not path.name.startswith(".") \
                        and self._store.stat(tenant, self.key(path.name)) is None:
                    upload_file(self._store, tenant, self.key(path.name), path)
                    copied += 1
        if copied:
            log.info("imported %d SAE corpora from %s into the artifact store", copied, self._legacy)
        return copied


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
