"""The one table that maps domain exceptions to gRPC status codes with
`google.rpc` error details, and the decorator that applies it to servicers.

INTERNAL never carries exception text: the client gets a generic message and a
request id; the traceback goes to the log under that id. Every other error carries the
call's request id too (`google.rpc.RequestInfo`, after the other details).
"""

from __future__ import annotations

import functools
import inspect
import math
import logging
import uuid
from typing import Any, Callable

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from models import errors as domain
from server import call_context
from storage import errors as stored

log = logging.getLogger(__name__)

DOMAIN = "llmserve"
MAX_MESSAGE_CHARS = 1024
MAX_DETAIL_CHARS = 256
"""Error texts echo client input (names, ids, paths); clipped, they stay small enough for the
gRPC status trailer and Envoy's header limits whatever a client sends."""


def clip(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def _bad_request(exc: domain.InvalidArgument) -> list[Any]:
    return [error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=clip(exc.field), description=clip(exc.description, 512))])]


def _resource_info(exc: domain.NotFound | domain.AlreadyExists) -> list[Any]:
    return [error_details_pb2.ResourceInfo(resource_type=exc.resource_type, resource_name=clip(exc.name),
                                           description=clip(exc.message, 512))]


def _retry_info(exc: domain.ResourceExhausted) -> list[Any]:
    seconds = max(exc.retry_after_s, 0.0)
    delay = duration_pb2.Duration(seconds=int(seconds), nanos=int((seconds % 1) * 1e9))
    return [error_details_pb2.RetryInfo(retry_delay=delay),
            error_details_pb2.QuotaFailure(violations=[
                error_details_pb2.QuotaFailure.Violation(subject=clip(exc.subject), description=clip(exc.message, 512))])]


def _model_precondition(exc: domain.ModelUnavailable) -> list[Any]:
    return [error_details_pb2.PreconditionFailure(violations=[
        error_details_pb2.PreconditionFailure.Violation(type="MODEL_UNAVAILABLE", subject=clip(exc.name),
                                                        description=clip(exc.message, 512))])]


def _no_details(_exc: Exception) -> list[Any]:
    return []


# Most specific class first: lookup walks the exception's MRO and takes the first hit.
ERROR_TABLE: dict[type[BaseException], tuple[grpc.StatusCode, Callable[[Any], list[Any]]]] = {
    domain.InvalidArgument: (grpc.StatusCode.INVALID_ARGUMENT, _bad_request),
    domain.NotFound: (grpc.StatusCode.NOT_FOUND, _resource_info),
    domain.AlreadyExists: (grpc.StatusCode.ALREADY_EXISTS, _resource_info),
    domain.ModelUnavailable: (grpc.StatusCode.FAILED_PRECONDITION, _model_precondition),
    domain.FailedPrecondition: (grpc.StatusCode.FAILED_PRECONDITION, _no_details),
    domain.ResourceExhausted: (grpc.StatusCode.RESOURCE_EXHAUSTED, _retry_info),
    domain.Unavailable: (grpc.StatusCode.UNAVAILABLE, _no_details),
    domain.Unimplemented: (grpc.StatusCode.UNIMPLEMENTED, _no_details),
    domain.Unauthenticated: (grpc.StatusCode.UNAUTHENTICATED, _no_details),
    domain.PermissionDenied: (grpc.StatusCode.PERMISSION_DENIED, _no_details),
    stored.InvalidArgumentError: (grpc.StatusCode.INVALID_ARGUMENT, _bad_request),
    stored.NotFoundError: (grpc.StatusCode.NOT_FOUND, _resource_info),
    stored.AlreadyExistsError: (grpc.StatusCode.ALREADY_EXISTS, _resource_info),
    stored.ConflictError: (grpc.StatusCode.FAILED_PRECONDITION, _resource_info),
    stored.UnavailableError: (grpc.StatusCode.UNAVAILABLE, _no_details),
}


def code_of(exc: BaseException) -> grpc.StatusCode:
    """The status code the table gives `exc` (INTERNAL when it has none)."""
    return next((ERROR_TABLE[cls][0] for cls in type(exc).__mro__ if cls in ERROR_TABLE), grpc.StatusCode.INTERNAL)


def to_status(exc: BaseException) -> status_pb2.Status:
    """The google.rpc.Status a client sees for `exc`."""
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            code, details = ERROR_TABLE[cls]
            message = clip(getattr(exc, "message", None) or str(exc), MAX_MESSAGE_CHARS)
            packed = []
            # The call's request id (Envoy's x-request-id) lets a client quote the one log line
            # and access-log entry of the call that failed.
            request_id = call_context.request_id()
            for detail in (*details(exc), *((error_details_pb2.RequestInfo(request_id=request_id),)
                                            if request_id else ())):
                any_msg = any_pb2.Any()
                any_msg.Pack(detail)
                packed.append(any_msg)
            return status_pb2.Status(code=code.value[0], message=message, details=packed)
    request_id = call_context.request_id() or uuid.uuid4().hex[:12]
    log.error("internal error, request_id=%s", request_id, exc_info=exc)
    info = any_pb2.Any()
    info.Pack(error_details_pb2.RequestInfo(request_id=request_id))
    return status_pb2.Status(code=code_pb2.INTERNAL, message=f"internal error (request_id {request_id})",
                             details=[info])


def retry_after_metadata(exc: BaseException) -> tuple[tuple[str, str], ...]:
    """`retry-after: <seconds>` for a refusal that says when to retry: Envoy passes it on as
    the HTTP Retry-After header of the 429."""
    if isinstance(exc, domain.ResourceExhausted) and exc.retry_after_s > 0:
        return (("retry-after", str(max(1, math.ceil(exc.retry_after_s)))),)
    return ()


async def abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    call_context.note_error(exc)
    status = rpc_status.to_status(to_status(exc))
    await context.abort(status.code, status.details, (*status.trailing_metadata, *retry_after_metadata(exc),
                                                      *call_context.response_metadata()))


def _is_abort(exc: BaseException) -> bool:
    # context.abort raises this after the status is set; it must propagate untouched.
    return isinstance(exc, grpc.aio.AbortError)


def reject_nul(message: Any, prefix: str = "") -> None:
    """Refuse U+0000 in any string field: PostgreSQL cannot store it in text, and a name
    or id holding it was an INTERNAL error deep in the store. Bytes fields may hold anything."""
    if not isinstance(message, Message):
        return  # a client stream's iterator: its messages are checked where they are read
    for fd, value in message.ListFields():
        name = f"{prefix}{fd.name}"
        if fd.type == FieldDescriptor.TYPE_STRING:
            values = value if _repeated(fd) else [value]
            if any("\x00" in v for v in values):
                raise domain.InvalidArgument(name, "must not contain NUL (U+0000) characters")
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            if fd.message_type.GetOptions().map_entry:
                for key, item in value.items():
                    if "\x00" in str(key) or (isinstance(item, str) and "\x00" in item):
                        raise domain.InvalidArgument(name, "must not contain NUL (U+0000) characters")
                    if isinstance(item, Message):
                        reject_nul(item, f"{name}.")
            else:
                for item in (value if _repeated(fd) else [value]):
                    reject_nul(item, f"{name}.")


def _repeated(fd: FieldDescriptor) -> bool:
    flag = getattr(fd, "is_repeated", None)
    return flag if flag is not None else fd.label == FieldDescriptor.LABEL_REPEATED


def grpc_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap one servicer method (coroutine or async generator) so domain errors
    become statuses from the table."""
    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def stream_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext):
            try:
                reject_nul(request)
                async for item in fn(self, request, context):
                    yield item
            except Exception as exc:  # noqa: BLE001 - translated by the table
                if _is_abort(exc):
                    raise
                await abort(context, exc)
        return stream_wrapper

    @functools.wraps(fn)
    async def unary_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext):
        try:
            reject_nul(request)
            return await fn(self, request, context)
        except Exception as exc:  # noqa: BLE001 - translated by the table
            if _is_abort(exc):
                raise
            await abort(context, exc)
    return unary_wrapper


def servicer(cls: type) -> type:
    """Class decorator: apply `grpc_errors` to every RPC method the class defines."""
    for name, member in list(vars(cls).items()):
        if name[:1].isupper() and callable(member):
            setattr(cls, name, grpc_errors(member))
    return cls
