"""Checks of client-supplied text inputs; each failure names the field. Sampling
controls are checked by `models.sampling_policy`."""

from __future__ import annotations

from models.errors import InvalidArgument


def require_text(field: str, value: str) -> None:
    if not value or not value.strip():
        raise InvalidArgument(field, "must be a non-empty string")
