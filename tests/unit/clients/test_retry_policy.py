"""The client's retry rule and error decoding, on their own (the live-server behaviour is in
tests/clients/)."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from llmserve import RetryPolicy, errors


def _exhausted(retry_after_s: float | None) -> errors.LlmserveError:
    details = [] if retry_after_s is None else [error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=int(retry_after_s), nanos=int(retry_after_s % 1 * 1e9)))]
    return errors.ResourceExhausted("over quota", details=details)


def test_resource_exhausted_waits_exactly_what_the_server_asked():
    assert RetryPolicy().delay(1, _exhausted(1.5), remaining_s=None) == 1.5


def test_resource_exhausted_without_a_positive_retry_info_is_not_retried():
    # A storage quota (RetryInfo 0) or no RetryInfo: waiting cannot help.
    assert RetryPolicy().delay(1, _exhausted(None), remaining_s=None) is None
    assert RetryPolicy().delay(1, _exhausted(0.0), remaining_s=None) is None


def test_no_retry_past_the_deadline_the_attempts_or_the_longest_honoured_wait():
    policy = RetryPolicy(max_attempts=3, max_retry_delay_s=10)
    assert policy.delay(1, _exhausted(2.0), remaining_s=1.0) is None
    assert policy.delay(3, _exhausted(2.0), remaining_s=None) is None
    assert policy.delay(1, _exhausted(30.0), remaining_s=None) is None


def test_unavailable_backs_off_exponentially_with_jitter_and_other_codes_are_final():
    policy = RetryPolicy(max_attempts=10, initial_backoff_s=0.1, multiplier=2, max_backoff_s=0.5)
    unavailable = errors.Unavailable("down")
    waits = [policy.delay(attempt, unavailable, remaining_s=None) for attempt in range(1, 6)]
    for wait, cap in zip(waits, [0.1, 0.2, 0.4, 0.5, 0.5]):
        assert cap / 2 <= wait <= cap
    assert policy.delay(1, errors.InvalidArgument("bad"), remaining_s=None) is None


def test_a_status_becomes_the_exception_of_its_code_with_known_details_unpacked():
    packed = []
    for detail in (error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="prompt", description="is required")]),
                   error_details_pb2.RequestInfo(request_id="abc123"), duration_pb2.Duration(seconds=1)):
        message = any_pb2.Any()
        message.Pack(detail)
        packed.append(message)
    unknown = any_pb2.Any(type_url="type.googleapis.com/example.NotKnownHere", value=b"\x08\x01")
    error = errors.from_status(status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="prompt: is required",
                                                 details=[*packed, unknown]))
    assert isinstance(error, errors.InvalidArgument) and error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.field_violations == {"prompt": "is required"} and error.request_id == "abc123"
    assert len(error.details) == 3  # the unknown type is left out
    assert str(error) == "INVALID_ARGUMENT: prompt: is required"
