"""The error table: each domain error gets its status code and google.rpc details;
anything else is INTERNAL with a request id and no exception text."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from models import errors as domain
from server.errors import to_status


def _unpack(status, detail_type):
    out = []
    for any_msg in status.details:
        if any_msg.Is(detail_type.DESCRIPTOR):
            msg = detail_type()
            any_msg.Unpack(msg)
            out.append(msg)
    return out


def test_invalid_argument_names_the_field():
    status = to_status(domain.InvalidArgument("top_p", "must be in (0, 1], got 1.5"))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    (bad,) = _unpack(status, error_details_pb2.BadRequest)
    assert bad.field_violations[0].field == "top_p"
    assert "1.5" in bad.field_violations[0].description


def test_model_not_found_lists_available_models():
    status = to_status(domain.ModelNotFound("nope", ["smollm2", "tiny"]))
    assert status.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "smollm2, tiny" in status.message
    (info,) = _unpack(status, error_details_pb2.ResourceInfo)
    assert (info.resource_type, info.resource_name) == ("model", "nope")


def test_resource_exhausted_carries_retry_delay():
    status = to_status(domain.ResourceExhausted("queue full", retry_after_s=1.5))
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    (retry,) = _unpack(status, error_details_pb2.RetryInfo)
    assert retry.retry_delay.seconds == 1 and retry.retry_delay.nanos == 500_000_000


def test_model_unavailable_is_failed_precondition():
    status = to_status(domain.ModelUnavailable("mistral", "not in cache", ["smollm2"]))
    assert status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "smollm2" in status.message


@pytest.mark.parametrize("exc", [RuntimeError("secret /etc/passwd"), KeyError("token"), ZeroDivisionError()])
def test_unknown_errors_are_internal_without_details_of_the_failure(exc, caplog):
    status = to_status(exc)
    assert status.code == grpc.StatusCode.INTERNAL.value[0]
    assert "secret" not in status.message and "token" not in status.message
    (info,) = _unpack(status, error_details_pb2.RequestInfo)
    assert info.request_id in status.message
    assert info.request_id in caplog.text  # the trace is in the log under the same id


def test_storage_errors_have_rows_too():
    from storage import errors as stored

    assert to_status(stored.NotFoundError("session", "s1")).code == grpc.StatusCode.NOT_FOUND.value[0]
    conflict = to_status(stored.ConflictError("session", "s1", "session has ended"))
    assert conflict.code == grpc.StatusCode.FAILED_PRECONDITION.value[0] and "ended" in conflict.message
    bad = to_status(stored.InvalidArgumentError("page_token", "malformed"))
    (violation,) = _unpack(bad, error_details_pb2.BadRequest)
    assert violation.field_violations[0].field == "page_token"
