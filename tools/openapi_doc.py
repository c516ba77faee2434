"""Build the OpenAPI 3 document of the REST surface (`build/openapi.json`, served by Envoy at
GET /openapi.json) from the protos' HTTP annotations, the way Envoy's transcoder maps them:
proto field names (`preserve_proto_field_names`), 64-bit integers as strings, enums by
name, path variables from the template, the other fields of a GET as query parameters,
server streams as Server-Sent Events of one message each, errors as google.rpc.Status.

Paths whose body is raw (google.api.HttpBody) get their schema from `openapi_paths.py`
(seed 001's /completion and /chat, OpenAI's /v1 surface, uploads), and the pages Envoy
serves itself (web page, this document, /docs, /redoc) are added from envoy.yaml's
direct_response routes. Comments of messages and fields become descriptions.

Usage: python tools/openapi_doc.py [--descriptor build/llmserve.pb] [--out build/openapi.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import envoy_config
import openapi_paths
import protogen

OUT = envoy_config.ROOT / "build" / "openapi.json"
VERBS = ("get", "put", "post", "delete", "patch")
FDP = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    FDP.TYPE_DOUBLE: {"type": "number", "format": "double"}, FDP.TYPE_FLOAT: {"type": "number", "format": "float"},
    FDP.TYPE_INT64: {"type": "string", "format": "int64"}, FDP.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FDP.TYPE_INT32: {"type": "integer", "format": "int32"}, FDP.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FDP.TYPE_FIXED32: {"type": "integer", "format": "int64"}, FDP.TYPE_BOOL: {"type": "boolean"},
    FDP.TYPE_STRING: {"type": "string"}, FDP.TYPE_BYTES: {"type": "string", "format": "byte"},
    FDP.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FDP.TYPE_SFIXED32: {"type": "integer", "format": "int32"}, FDP.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FDP.TYPE_SINT32: {"type": "integer", "format": "int32"}, FDP.TYPE_SINT64: {"type": "string", "format": "int64"},
}
WELL_KNOWN = {
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    ".google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?s$"},
    ".google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    ".google.protobuf.Value": {},
    ".google.protobuf.ListValue": {"type": "array", "items": {}},
    ".google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}},
                             "additionalProperties": True},
    ".google.protobuf.Empty": {"type": "object"},
    ".google.protobuf.FieldMask": {"type": "string"},
}
HTTP_BODY = ".google.api.HttpBody"


class Protos:
    """Messages, enums and comments of a descriptor set, by full name."""

    def __init__(self, fds: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.comments: dict[str, str] = {}
        self.files = list(fds.file)
        for f in fds.file:
            locations = {tuple(loc.path): loc.leading_comments for loc in f.source_code_info.location}
            for i, m in enumerate(f.message_type):
                self._message(f".{f.package}", m, (4, i), locations)
            for i, e in enumerate(f.enum_type):
                self.enums[f".{f.package}.{e.name}"] = e
                self.comments[f".{f.package}.{e.name}"] = locations.get((5, i), "")
            for si, service in enumerate(f.service):
                for mi, method in enumerate(service.method):
                    key = f"/{f.package}.{service.name}/{method.name}"
                    self.comments[key] = locations.get((6, si, 2, mi), "")

    def _message(self, scope: str, m: descriptor_pb2.DescriptorProto, path: tuple, locations: dict) -> None:
        name = f"{scope}.{m.name}"
        self.messages[name] = m
        self.comments[name] = locations.get(path, "")
        for fi, fld in enumerate(m.field):
            self.comments[f"{name}#{fld.name}"] = locations.get((*path, 2, fi), "")
        for i, nested in enumerate(m.nested_type):
            self._message(name, nested, (*path, 3, i), locations)
        for i, e in enumerate(m.enum_type):
            self.enums[f"{name}.{e.name}"] = e


def _clean(comment: str) -> str:
    return "\n".join(line.strip() for line in comment.strip().splitlines())


class Builder:
    def __init__(self, protos: Protos) -> None:
        self.protos = protos
        self.schemas: dict[str, Any] = {}

    @staticmethod
    def ref_name(full_name: str) -> str:
        return full_name.lstrip(".")

    def ref(self, full_name: str) -> dict[str, Any]:
        if full_name in WELL_KNOWN:
            return dict(WELL_KNOWN[full_name])
        name = self.ref_name(full_name)
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: recursion stops here
            self.schemas[name] = self._schema(full_name)
        return {"$ref": f"#/components/schemas/{name}"}

    def _schema(self, full_name: str) -> dict[str, Any]:
        if full_name in self.protos.enums:
            values = [v.name for v in self.protos.enums[full_name].value]
            return {"type": "string", "enum": values, "description": _clean(self.protos.comments.get(full_name, ""))}
        message = self.protos.messages[full_name]
        props = {f.name: self.field(full_name, f) for f in message.field}
        schema: dict[str, Any] = {"type": "object", "properties": props}
        description = _clean(self.protos.comments.get(full_name, ""))
        if description:
            schema["description"] = description
        return schema

    def field(self, owner: str, f: descriptor_pb2.FieldDescriptorProto, with_description: bool = True
              ) -> dict[str, Any]:
        if f.type == FDP.TYPE_MESSAGE:
            entry = self.protos.messages.get(f.type_name)
            if entry is not None and entry.options.map_entry:
                value = next(x for x in entry.field if x.name == "value")
                schema = {"type": "object", "additionalProperties": self.field(f.type_name, value, False)}
                return self._described(schema, owner, f, with_description)
            item = self.ref(f.type_name)
        elif f.type == FDP.TYPE_ENUM:
            item = self.ref(f.type_name)
        else:
            item = dict(SCALARS[f.type])
        schema = {"type": "array", "items": item} if f.label == FDP.LABEL_REPEATED else item
        return self._described(schema, owner, f, with_description)

    def _described(self, schema: dict, owner: str, f: Any, with_description: bool) -> dict[str, Any]:
        description = _clean(self.protos.comments.get(f"{owner}#{f.name}", "")) if with_description else ""
        if not description:
            return schema
        if "$ref" in schema:  # OpenAPI 3.0 ignores siblings of $ref
            return {"allOf": [schema], "description": description}
        return {**schema, "description": description}

    def operation(self, service: str, method: descriptor_pb2.MethodDescriptorProto, rule: http_pb2.HttpRule,
                  verb: str, path: str) -> dict[str, Any]:
        request = self.protos.messages[method.input_type]
        names = re.findall(r"\{([^}=]+)", path)
        op: dict[str, Any] = {
            "operationId": f"{service.rsplit('.', 1)[1]}_{method.name}",
            "tags": [service.rsplit(".", 1)[1]],
            "summary": _clean(self.protos.comments.get(f"/{service}/{method.name}", "")).split("\n")[0],
            "description": _clean(self.protos.comments.get(f"/{service}/{method.name}", "")),
            "parameters": [],
            "responses": {"default": self._error("An error (google.rpc.Status as JSON)."),
                          # Any call can meet these two, so each operation names them: clients retry.
                          "429": self._error("RESOURCE_EXHAUSTED: the queue or a quota is full; retry after "
                                             "the Retry-After header."),
                          "503": self._error("UNAVAILABLE: a dependency (the database, a model, a trained "
                                             "mixture) is not ready or not reachable; retry later.")},
        }
        fields = {f.name: f for f in request.field}
        for name in names:
            schema = self.field(method.input_type, fields[name.split(".")[0]]) if name in fields else {"type": "string"}
            op["parameters"].append({"name": name, "in": "path", "required": True, "schema": schema})
        body_fields = [f for f in request.field if f.name not in names]
        if rule.body == "*":
            props = {f.name: self.field(method.input_type, f) for f in body_fields}
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"type": "object", "properties": props}}}}
        elif rule.body:
            f = fields[rule.body]
            if f.type_name == HTTP_BODY:
                op["requestBody"] = {"required": True, "content": {"*/*": {"schema": {"type": "string",
                                                                                       "format": "binary"}}}}
            else:
                op["requestBody"] = {"required": True, "content": {"application/json": {
                    "schema": self.field(method.input_type, f, False)}}}
        else:
            for f in body_fields:
                if f.type != FDP.TYPE_MESSAGE:
                    op["parameters"].append({"name": f.name, "in": "query", "required": False,
                                             "schema": self.field(method.input_type, f)})
        op["responses"]["200"] = self._response(method, rule)
        if not op["parameters"]:
            del op["parameters"]
        return op

    def _error(self, description: str) -> dict[str, Any]:
        return {"description": description,
                "content": {"application/json": {"schema": self.ref(".google.rpc.Status")}}}

    def _response(self, method: descriptor_pb2.MethodDescriptorProto, rule: http_pb2.HttpRule) -> dict[str, Any]:
        output = method.output_type
        if rule.response_body:
            f = next(x for x in self.protos.messages[output].field if x.name == rule.response_body)
            if f.type_name == HTTP_BODY:
                return {"description": "The reply, raw.", "content": {"*/*": {"schema": {"type": "string"}}}}
            schema = self.field(output, f, False)
        else:
            schema = self.ref(output)
        if method.server_streaming:
            return {"description": f"Server-Sent Events, each `data: <{self.ref_name(output)} as JSON>`.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}, "x-event": schema}}}
        return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _bindings(rule: http_pb2.HttpRule) -> list[http_pb2.HttpRule]:
    return [rule, *rule.additional_bindings]


def http_routes(fds: descriptor_pb2.FileDescriptorSet, services: list[str]):
    """(verb, path, service, method, rule, binding index) of every HTTP binding of the
    transcoded services (index 0: the main one; then its additional bindings)."""
    for f in fds.file:
        for service in f.service:
            full = f"{f.package}.{service.name}"
            if full not in services:
                continue
            for method in service.method:
                if not method.options.HasExtension(annotations_pb2.http):
                    continue
                for i, rule in enumerate(_bindings(method.options.Extensions[annotations_pb2.http])):
                    verb = rule.WhichOneof("pattern")
                    if verb in VERBS:
                        yield verb, getattr(rule, verb), full, method, rule, i


def openapi_path(template: str) -> str:
    """`/v1/x/{name=**}:verb` -> `/v1/x/{name}:verb`."""
    return re.sub(r"\{([^}=]+)=[^}]*\}", r"{\1}", template)


def build(descriptor: Path) -> dict[str, Any]:
    fds = descriptor_pb2.FileDescriptorSet.FromString(Path(descriptor).read_bytes())
    config = envoy_config.load()
    builder = Builder(Protos(fds))
    paths: dict[str, dict[str, Any]] = {}
    for verb, template, service, method, rule, i in http_routes(fds, envoy_config.transcoder(config)["services"]):
        path = openapi_path(template)
        operation = builder.operation(service, method, rule, verb, path)
        if i:  # operation ids are unique: additional bindings are numbered
            operation["operationId"] += f"_{i + 1}"
        paths.setdefault(path, {})[verb] = operation
    openapi_paths.apply(paths, builder)
    for path, verb, content_type in openapi_paths.static_routes(config):
        operation = paths.setdefault(path, {}).setdefault(verb, {
            "operationId": "page_" + (re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_") or "root"),
            "tags": ["Pages"], "summary": openapi_paths.PAGES.get(path, "A page"),
            "responses": {"200": {"description": "OK", "content": {}}}})
        operation["responses"]["200"].setdefault("content", {})[content_type] = {"schema": {"type": "string"}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "llmserve", "version": "0.1.0",
                 "description": "REST (through Envoy) of llmserve's gRPC services, seed 001's paths and "
                                "OpenAI's /v1 API. Generated from the protos' HTTP annotations by tools/openapi_doc.py."},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(builder.schemas.items())),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                           "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}}},
        "security": [{}, {"bearer": []}, {"apiKey": []}],
    }


def write(descriptor: Path, out: Path = OUT) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(build(descriptor), indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--descriptor", type=Path, default=protogen.DESCRIPTOR_OUT)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if not args.descriptor.exists():
        protogen.generate_descriptor(args.descriptor)
    print(write(args.descriptor, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
