"""Domain exceptions raised below the server layer.

The server maps each of these to one gRPC status in a single table
(`server/errors.py`); nothing here knows about gRPC.
"""

from __future__ import annotations


class LlmServeError(Exception):
    """Base of every domain error; `message` is safe to show to a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(LlmServeError):
    """A request field has a bad value; `field` names it as the client sent it."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


class NotFound(LlmServeError):
    """A named resource does not exist."""

    def __init__(self, resource_type: str, name: str, message: str | None = None) -> None:
        super().__init__(message or f"{resource_type} '{name}' not found")
        self.resource_type = resource_type
        self.name = name


class ModelNotFound(NotFound):
    """A request named a model that is not in the registry."""

    def __init__(self, name: str, available: list[str]) -> None:
        listed = ", ".join(available) or "none"
        super().__init__("model", name, f"model '{name}' is not configured; available models: {listed}")
        self.available = available


class AlreadyExists(LlmServeError):
    """Creating a resource whose name is taken."""

    def __init__(self, resource_type: str, name: str) -> None:
        super().__init__(f"{resource_type} '{name}' already exists")
        self.resource_type = resource_type
        self.name = name


class FailedPrecondition(LlmServeError):
    """The system is not in a state that allows the call (e.g. model weights absent)."""


class ModelUnavailable(FailedPrecondition):
    """A configured model whose weights cannot be loaded here."""

    def __init__(self, name: str, reason: str, available: list[str]) -> None:
        listed = ", ".join(available) or "none"
        super().__init__(f"model '{name}' is configured but unavailable ({reason}); available models: {listed}")
        self.name = name
        self.available = available


class ResourceExhausted(LlmServeError):
    """Admission refused because a bounded queue is full; retry after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float, subject: str = "engine queue") -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.subject = subject


class Unavailable(LlmServeError):
    """The service cannot take work now (starting up, shutting down, engine stopped)."""


class Unimplemented(LlmServeError):
    """A contract exists but its implementation has not landed."""


class Unauthenticated(LlmServeError):
    """No API key, or one that is unknown or revoked (the same answer for all three)."""


class PermissionDenied(LlmServeError):
    """The caller's key may not make this call (e.g. an admin-only method)."""
