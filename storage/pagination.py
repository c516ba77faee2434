"""Keyset pagination shared by the repositories: opaque page tokens and the `Page` record.

A token encodes the sort key of the last row returned plus a fingerprint of the filters it
was issued for, so a token replayed with different filters is refused rather than silently
returning the wrong rows. Keyset (not OFFSET) keeps pages stable while rows are inserted.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement

from storage.errors import InvalidArgumentError

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing."""

    items: tuple[T, ...]
    """Rows of this page, in the listing's order."""
    next_page_token: str = ""
    """Pass back to get the next page; empty when this is the last page."""


def clamp_page_size(page_size: int) -> int:
    """0 means the default (AIP-158); larger than the maximum is silently capped."""
    if page_size < 0:
        raise InvalidArgumentError("page_size", "must not be negative")
    return min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(scope: str, key: Sequence[Any]) -> str:
    """Token for the row whose sort key is `key`; datetimes are encoded as ISO strings."""
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    raw = json.dumps({"s": scope, "k": values}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, scope: str, types: Sequence[type]) -> list[Any] | None:
    """The sort key inside `token` (None for an empty token, i.e. the first page).

    `types` gives the Python type of each key part, so datetimes come back as datetimes.
    """
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        if data["s"] != scope:
            raise InvalidArgumentError("page_token", "was issued for a different query")
        values = data["k"]
        if len(values) != len(types):
            raise ValueError("wrong key length")
        return [
            datetime.fromisoformat(v) if t is datetime else t(v) for v, t in zip(values, types)
        ]
    except InvalidArgumentError:
        raise
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InvalidArgumentError("page_token", "is malformed") from exc


def after_key(
    columns: Sequence[Any], key: Sequence[Any], *, descending: bool = False
) -> ColumnElement[bool]:
    """WHERE clause selecting rows strictly after `key` in (columns...) order.

    Spelled out as (a > x) OR (a = x AND b > y) rather than a row-value comparison so each
    value binds with its column's type (UTC datetimes on SQLite) on every dialect.
    """
    clauses = []
    for i, (column, value) in enumerate(zip(columns, key)):
        step = column < value if descending else column > value
        equal_prefix = [c == v for c, v in zip(columns[:i], key[:i])]
        clauses.append(and_(*equal_prefix, step))
    return or_(*clauses)


def make_page(rows: Sequence[T], page_size: int, scope: str, key_of: Any) -> Page[T]:
    """Build a page from up to `page_size + 1` rows; the extra row only signals more."""
    if len(rows) <= page_size:
        return Page(tuple(rows))
    items = tuple(rows[:page_size])
    return Page(items, encode_token(scope, key_of(items[-1])))
