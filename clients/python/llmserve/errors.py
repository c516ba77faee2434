"""Exceptions for failed calls: one class per gRPC status code, each carrying the
`google.rpc.Status` details the server attached (BadRequest, ResourceInfo, RetryInfo,
QuotaFailure, PreconditionFailure, RequestInfo), unpacked into their message types."""

from __future__ import annotations

from typing import Any, TypeVar

import grpc
from google.protobuf import message as _message
from google.protobuf import message_factory, symbol_database
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
M = TypeVar("M", bound=_message.Message)


class LlmserveError(Exception):
    """A call that ended with a non-OK status. `details` holds the unpacked `google.rpc`
    messages; `detail(Type)` finds one of them."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None,
                 details: list[_message.Message] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: list[_message.Message] = list(details or [])

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    def detail(self, kind: type[M]) -> M | None:
        """The first detail of type `kind`, or None."""
        return next((d for d in self.details if isinstance(d, kind)), None)

    @property
    def field_violations(self) -> dict[str, str]:
        """Bad request fields (as the server named them) -> what is wrong with each."""
        bad = self.detail(error_details_pb2.BadRequest)
        return {v.field: v.description for v in bad.field_violations} if bad else {}

    @property
    def retry_delay(self) -> float | None:
        """Seconds the server asked the client to wait before retrying (RetryInfo), if any."""
        info = self.detail(error_details_pb2.RetryInfo)
        if info is None or not info.HasField("retry_delay"):
            return None
        return info.retry_delay.seconds + info.retry_delay.nanos / 1e9

    @property
    def request_id(self) -> str | None:
        """The id under which the server logged an internal error (RequestInfo)."""
        info = self.detail(error_details_pb2.RequestInfo)
        return info.request_id if info else None


class Cancelled(LlmserveError):
    code = grpc.StatusCode.CANCELLED


class InvalidArgument(LlmserveError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(LlmserveError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(LlmserveError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(LlmserveError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(LlmserveError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(LlmserveError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(LlmserveError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unimplemented(LlmserveError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(LlmserveError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(LlmserveError):
    code = grpc.StatusCode.UNAVAILABLE


class Unauthenticated(LlmserveError):
    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[LlmserveError]] = {
    cls.code: cls for cls in (Cancelled, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
                              PermissionDenied, ResourceExhausted, FailedPrecondition, Unimplemented,
                              Internal, Unavailable, Unauthenticated)
}
_CODE_BY_NUMBER = {c.value[0]: c for c in grpc.StatusCode}


def _unpack(any_msg: Any) -> _message.Message | None:
    name = any_msg.type_url.rsplit("/", 1)[-1]
    try:
        descriptor = symbol_database.Default().pool.FindMessageTypeByName(name)
    except KeyError:
        return None  # a detail type this client does not know: kept out rather than guessed
    detail = message_factory.GetMessageClass(descriptor)()
    return detail if any_msg.Unpack(detail) else None


def from_status(status: status_pb2.Status) -> LlmserveError:
    """The exception for a `google.rpc.Status` (a stream's in-band error event)."""
    code = _CODE_BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)
    details = [d for d in (_unpack(a) for a in status.details) if d is not None]
    return _BY_CODE.get(code, LlmserveError)(status.message, code=code, details=details)


def from_rpc_error(error: grpc.RpcError) -> LlmserveError:
    """The exception for a failed call (sync or asyncio), details read from its trailers."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = (error.details() if hasattr(error, "details") else None) or ""
    trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailers or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            if status.code == code.value[0]:
                status.message = status.message or message
                return from_status(status)
    return _BY_CODE.get(code, LlmserveError)(message, code=code)


__all__ = ["AlreadyExists", "Cancelled", "DeadlineExceeded", "FailedPrecondition", "Internal", "InvalidArgument",
           "LlmserveError", "NotFound", "PermissionDenied", "ResourceExhausted", "Unauthenticated", "Unavailable",
           "Unimplemented", "from_rpc_error", "from_status"]
