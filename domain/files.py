"""File names that clients choose (uploaded corpora): one rule for every feature, so a
name accepted here is a plain file inside the feature's folder on every filesystem."""

from __future__ import annotations

import unicodedata

from models.errors import InvalidArgument

MAX_NAME_BYTES = 255
"""Filesystems count a name's bytes (UTF-8), not its characters."""


def check_file_name(name: str, field: str, *, suffix: str = "", example: str = "corpus.txt") -> str:
    """`name` when it is a plain file name: 1 to 255 UTF-8 bytes, no path separator,
    no control character, no leading dot, ending in `suffix` when one is given."""
    if not name:
        raise InvalidArgument(field, f"is required, e.g. \"{example}\"")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise InvalidArgument(field, f"is {size} bytes in UTF-8; a file name may have at most {MAX_NAME_BYTES}")
    if ("/" in name or "\\" in name or name.startswith(".")
            or any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in name)):
        raise InvalidArgument(field, "must be a plain file name: no path separators, no control characters, "
                                     "no leading dot")
    if suffix and not name.endswith(suffix) or name == suffix:
        raise InvalidArgument(field, f"must end in {suffix}, e.g. \"{example}\"")
    return name
