"""Byte formats: one entry's payload (stored by LutRepository) and the export blob.

Entry payload `lut-hs-v1`: u32 header length, JSON header (layer, shape, label ids),
then the keys as little-endian float16 rows. Export blob: magic, u32 header length,
JSON header (format version, model, entries' metadata, sha256 of the body), body =
the entries' payloads concatenated.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass

import numpy as np
import torch

from models.errors import InvalidArgument

PAYLOAD_FORMAT = "lut-hs-v1"
EXPORT_MAGIC = b"LLMSLUT\x00"
EXPORT_VERSION = 1


@dataclass(frozen=True)
class EntryPayload:
    """What one fact stores: keys at one layer and the label's token ids."""

    layer: int
    keys: torch.Tensor
    """[n, hidden] raw (uncentered) hidden states, float32 after decoding."""
    value_ids: tuple[int, ...]
    """Label tokens as they follow a prompt ending without a space ("Assistant:")."""
    value_ids_bare: tuple[int, ...]
    """Label tokens as they follow a prompt ending with whitespace."""
    novel: tuple[int, ...] | None = None
    """Indices of the keys from the label's informative words (see learn.novel_keys);
    None (payloads written before this field) puts no such condition on the fact."""


def encode_entry(p: EntryPayload) -> bytes:
    keys = p.keys.detach().to(torch.float16).cpu().numpy().astype("<f2")
    fields = {"layer": p.layer, "shape": list(keys.shape), "value_ids": list(p.value_ids),
              "value_ids_bare": list(p.value_ids_bare)}
    if p.novel is not None:
        fields["novel"] = list(p.novel)
    header = json.dumps(fields).encode()
    return struct.pack("<I", len(header)) + header + keys.tobytes()


def decode_entry(data: bytes) -> EntryPayload:
    (n,) = struct.unpack_from("<I", data, 0)
    h = json.loads(data[4:4 + n])
    keys = np.frombuffer(data[4 + n:], dtype="<f2").reshape(h["shape"])
    novel = h.get("novel")
    return EntryPayload(h["layer"], torch.from_numpy(keys.astype(np.float32)),
                        tuple(h["value_ids"]), tuple(h["value_ids_bare"]),
                        None if novel is None else tuple(int(i) for i in novel))


@dataclass(frozen=True)
class ExportedEntry:
    label: str
    label_context: str | None
    payload_format: str
    payload: bytes


def encode_export(model: str, entries: list[ExportedEntry]) -> bytes:
    body = b"".join(e.payload for e in entries)
    header = json.dumps({
        "format_version": EXPORT_VERSION, "model": model, "entry_count": len(entries),
        "sha256": hashlib.sha256(body).hexdigest(),
        "entries": [{"label": e.label, "label_context": e.label_context, "payload_format": e.payload_format,
                     "size": len(e.payload)} for e in entries]}).encode()
    return EXPORT_MAGIC + struct.pack("<I", len(header)) + header + body


def decode_export(blob: bytes) -> tuple[str, list[ExportedEntry]]:
    """(model, entries); InvalidArgument("data", ...) for anything malformed."""
    try:
        if not blob.startswith(EXPORT_MAGIC):
            raise ValueError("not a LUT export (bad magic)")
        (n,) = struct.unpack_from("<I", blob, len(EXPORT_MAGIC))
        start = len(EXPORT_MAGIC) + 4
        header = json.loads(blob[start:start + n])
        body = blob[start + n:]
        if header.get("format_version") not in range(1, EXPORT_VERSION + 1):
            raise ValueError(f"unsupported format version {header.get('format_version')}")
        if hashlib.sha256(body).hexdigest() != header["sha256"]:
            raise ValueError("checksum mismatch")
        out, offset = [], 0
        for e in header["entries"]:
            payload = body[offset:offset + e["size"]]
            offset += e["size"]
            if e["payload_format"] == PAYLOAD_FORMAT:
                decode_entry(payload)  # refuse a payload we could not use later
            out.append(ExportedEntry(e["label"], e["label_context"], e["payload_format"], payload))
        if offset != len(body) or len(out) != header["entry_count"]:
            raise ValueError("entry sizes do not match the body")
        return str(header["model"]), out
    except InvalidArgument:
        raise
    except Exception as exc:  # any parse failure is the client's corrupt blob
        raise InvalidArgument("data", f"corrupt LUT export: {exc}") from None
