"""Storage-level exceptions.

Each carries the resource type and name it concerns so that `server/` can map it to a gRPC
status (NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION/ABORTED, INVALID_ARGUMENT) without
parsing messages. Nothing here knows about gRPC.
"""

from __future__ import annotations

import enum
from typing import TypeVar

E = TypeVar("E", bound=enum.Enum)


class StorageError(Exception):
    """Base of every storage error; `message` is safe to show to a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(StorageError):
    """The named resource does not exist."""

    def __init__(self, resource_type: str, name: str) -> None:
        super().__init__(f"{resource_type} '{name}' not found")
        self.resource_type = resource_type
        self.name = name


class AlreadyExistsError(StorageError):
    """Creating a resource whose name is taken."""

    def __init__(self, resource_type: str, name: str) -> None:
        super().__init__(f"{resource_type} '{name}' already exists")
        self.resource_type = resource_type
        self.name = name


class ConflictError(StorageError):
    """The resource exists but is in a state that forbids the call (bad state transition,
    appending to an ended session, deleting a builtin schema)."""

    def __init__(self, resource_type: str, name: str, reason: str) -> None:
        super().__init__(f"{resource_type} '{name}': {reason}")
        self.resource_type = resource_type
        self.name = name
        self.reason = reason


class InvalidArgumentError(StorageError):
    """An argument has a bad value (unknown enum value, malformed page token);
    `field` names the argument."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


class UnavailableError(StorageError):
    """The database cannot be reached or is busy right now; the same call may succeed soon."""

    def __init__(self, message: str = "the database is unavailable right now; retry shortly") -> None:
        super().__init__(message)
        self.message = message


def parse_enum(cls: type[E], value: object, field: str) -> E:
    """`cls(value)`, or InvalidArgumentError naming `field` and the allowed values."""
    try:
        return cls(value)
    except ValueError:
        raise InvalidArgumentError(field, f"must be one of {[m.value for m in cls]}") from None


def check_name(field: str, value: str, max_len: int = 255, *, allow_empty: bool = False) -> str:
    """Refuse empty or over-long names here: PostgreSQL would fail on a too-long value
    with a generic error while SQLite would silently store it."""
    if (not value and not allow_empty) or len(value) > max_len:
        raise InvalidArgumentError(field, f"must be 1 to {max_len} characters")
    return value
