"""gRPC fuzzing: Hypothesis strategies built from the proto descriptors, over every unary
RPC of every llmserve service.

Each field gets values of its type with the edges that break servers: extreme integers,
NaN and infinities, unknown enum numbers, empty, unicode and 100 KB strings, invalid UTF-8
in bytes fields, deeply nested JSON in fields that carry JSON. Every call has a deadline;
the verdict per call is its status code and how long it took past the deadline.
"""

from __future__ import annotations

import importlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as seed_
from hypothesis import strategies as st

SERVICE_MODULES = (
    "llmserve.admin.v1.admin_service_pb2",
    "llmserve.chat.v1.chat_service_pb2",
    "llmserve.generation.v1.generation_service_pb2",
    "llmserve.lut.v1.lut_service_pb2",
    "llmserve.openai.v1.openai_service_pb2",
    "llmserve.sae.v1.sae_service_pb2",
    "llmserve.server.v1.server_service_pb2",
    "llmserve.specialist.v1.specialist_service_pb2",
)
HUGE = 100_000
MAX_DEPTH = 3
# Statuses that mean the server failed rather than the request.
SERVER_FAULTS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
_T = FieldDescriptor


def unary_methods() -> list[MethodDescriptor]:
    methods = []
    for name in SERVICE_MODULES:
        for service in importlib.import_module(name).DESCRIPTOR.services_by_name.values():
            methods += [m for m in service.methods if not m.client_streaming and not m.server_streaming]
    return methods


def deep_json(depth: int) -> str:
    return '{"type": "object", "properties": {"a": ' * depth + "{}" + "}}" * depth


def _string(field_name: str) -> st.SearchStrategy[str]:
    base = [st.text(max_size=40), st.sampled_from(["", " ", "tiny", "smollm2", "../../etc/passwd", "%ff", "\x00",
                                                  "é" * 300, "a/b", "{}", "null"]),
            st.integers(1, 4).map(lambda k: "x" * (HUGE * k // 4))]
    if any(word in field_name for word in ("schema", "json", "format")):
        base += [st.integers(1, 600).map(deep_json), st.just("[" * 5000 + "]" * 5000),
                 st.just(json.dumps({"$ref": "file:///etc/passwd"})), st.just('{"$ref": "#"}')]
    return st.one_of(base)


def _scalar(fd: FieldDescriptor) -> st.SearchStrategy:
    t = fd.type
    if t == _T.TYPE_STRING:
        return _string(fd.name)
    if t == _T.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.just(b"\xff\xfe\xc3\x28" * 10), st.just(b"\x00" * HUGE),
                         st.just(b"PK\x03\x04" + b"\x00" * 100))
    if t == _T.TYPE_BOOL:
        return st.booleans()
    if t == _T.TYPE_ENUM:
        known = [v.number for v in fd.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-5, 1000), st.just(2**31 - 1))
    if t in (_T.TYPE_FLOAT, _T.TYPE_DOUBLE):
        return st.floats(width=32 if t == _T.TYPE_FLOAT else 64)
    bits = 64 if t in (_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64, _T.TYPE_UINT64, _T.TYPE_FIXED64) else 32
    if t in (_T.TYPE_UINT32, _T.TYPE_UINT64, _T.TYPE_FIXED32, _T.TYPE_FIXED64):
        return st.one_of(st.integers(0, 2**bits - 1), st.sampled_from([0, 1, 2**bits - 1]))
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return st.one_of(st.integers(-10, 5000), st.integers(low, high), st.sampled_from([low, -1, 0, high]))


def message_values(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[dict]:
    """A dict of field name -> value for `desc`; any subset of its fields is set."""
    fields = {}
    for fd in desc.fields:
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            key = _scalar(fd.message_type.fields_by_name["key"])
            value_fd = fd.message_type.fields_by_name["value"]
            value = (message_values(value_fd.message_type, depth + 1) if value_fd.message_type
                     else _scalar(value_fd))
            fields[fd.name] = st.dictionaries(key, value, max_size=3)
            continue
        if fd.message_type is not None:
            if depth >= MAX_DEPTH or fd.message_type.full_name.startswith("google.protobuf."):
                continue
            one = message_values(fd.message_type, depth + 1)
        else:
            one = _scalar(fd)
        repeated = getattr(fd, "is_repeated", None)
        repeated = repeated if repeated is not None else fd.label == _T.LABEL_REPEATED
        fields[fd.name] = st.lists(one, max_size=3) if repeated else one
    if not fields:
        return st.just({})
    names = sorted(fields)
    return st.lists(st.sampled_from(names), unique=True, max_size=len(names)).flatmap(
        lambda chosen: st.fixed_dictionaries({name: fields[name] for name in chosen}))


def build(desc: Descriptor, values: dict):
    """A message of `desc` from `message_values` output (nested dicts become messages)."""
    message = GetMessageClass(desc)()
    for name, value in values.items():
        fd = desc.fields_by_name[name]
        target = getattr(message, name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            for k, v in value.items():
                if value_fd.message_type is not None:
                    target[k].CopyFrom(build(value_fd.message_type, v))
                else:
                    target[k] = v
        elif fd.message_type is not None:
            if isinstance(value, list):
                for item in value:
                    target.add().CopyFrom(build(fd.message_type, item))
            else:
                target.CopyFrom(build(fd.message_type, value))
        elif isinstance(value, list):
            target.extend(value)
        else:
            setattr(message, name, value)
    return message


@dataclass
class FuzzFigures:
    cases: int = 0
    by_method: Counter = field(default_factory=Counter)
    by_status: Counter = field(default_factory=Counter)
    faults: list[str] = field(default_factory=list)
    """Calls answered INTERNAL/UNKNOWN/DATA_LOSS: method, status, message."""
    hangs: list[str] = field(default_factory=list)
    """Calls that took more than the deadline plus a second."""
    slowest_s: float = 0.0


def fuzz(target: str, examples_per_method: int, deadline_s: float = 10.0, seed: int = 0,
         methods: list[MethodDescriptor] | None = None) -> FuzzFigures:
    figures = FuzzFigures()
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        for method in methods or unary_methods():
            path = f"/{method.containing_service.full_name}/{method.name}"
            response_class = GetMessageClass(method.output_type)
            call = channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                       response_deserializer=response_class.FromString)
            _one_method(call, path, method, figures, examples_per_method, deadline_s, seed)
    return figures


def _one_method(call, path: str, method: MethodDescriptor, figures: FuzzFigures, examples: int,
                deadline_s: float, seed: int) -> None:
    """`examples` Hypothesis cases of one RPC; each outcome is added to `figures`."""

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=["generate"])
    @given(values=message_values(method.input_type))
    def one(values: dict) -> None:
        request = build(method.input_type, values)
        started = time.monotonic()
        try:
            call(request, timeout=deadline_s)
            code, detail = grpc.StatusCode.OK, ""
        except grpc.RpcError as exc:
            code, detail = exc.code(), exc.details() or ""
        took = time.monotonic() - started
        figures.cases += 1
        figures.by_method[path] += 1
        figures.by_status[code.name] += 1
        figures.slowest_s = max(figures.slowest_s, took)
        if code in SERVER_FAULTS:
            figures.faults.append(f"{path} {code.name}: {detail[:300]} <- {_summary(values)}")
        if took > deadline_s + 1.0:
            figures.hangs.append(f"{path} took {took:.1f} s <- {_summary(values)}")

    seed_(seed)(one)()


def _summary(values: dict) -> str:
    text = repr({k: (v if len(repr(v)) < 80 else f"<{type(v).__name__} of {len(repr(v))} chars>")
                 for k, v in values.items()})
    return text[:400]
