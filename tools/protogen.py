"""Generate the client stubs (Python: clients/python, TypeScript: clients/typescript/src/gen)
and Envoy's descriptor set from proto/.

Used by `make proto`, `make run` and the tests (which regenerate into a temporary
folder and diff against the committed stubs). The TypeScript stubs come from ts-proto,
run as a protoc plugin from the package's node_modules (`make npm-install`).
"""

from __future__ import annotations

import argparse
import site
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PYTHON_OUT = ROOT / "clients" / "python"
TS_PACKAGE = ROOT / "clients" / "typescript"
TS_OUT = TS_PACKAGE / "src" / "gen"
TS_PLUGIN = TS_PACKAGE / "node_modules" / ".bin" / "protoc-gen-ts_proto"
# The wrapper decodes a failed call's google.rpc details (BadRequest, RetryInfo, ...) with these.
TS_EXTRA_PROTOS = ("google/rpc/error_details.proto",)
TS_OPTIONS = ",".join((
    "outputServices=grpc-js",  # typed clients for Node's @grpc/grpc-js
    "env=node",
    "esModuleInterop=true",
    "useExactTypes=false",
    "forceLong=number",  # int64 as number: counts and sizes stay far below 2**53
))
DESCRIPTOR_OUT = ROOT / "build" / "llmserve.pb"
# Envoy's transcoder needs these in the descriptor set or rich error details come back empty.
EXTRA_PROTOS = ("google/rpc/status.proto", "google/rpc/error_details.proto")


def proto_files() -> list[str]:
    return sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))


def _include_dirs() -> list[str]:
    import grpc_tools

    dirs = [str(PROTO_DIR), str(Path(grpc_tools.__file__).parent / "_proto")]
    dirs += [p for p in site.getsitepackages() if (Path(p) / "google" / "api" / "annotations.proto").exists()]
    return dirs


def _protoc(args: list[str]) -> None:
    from grpc_tools import protoc

    argv = ["protoc", *(f"-I{d}" for d in _include_dirs()), *args]
    if protoc.main(argv) != 0:
        raise SystemExit(f"protoc failed: {' '.join(argv)}")


def generate_python(out: Path = PYTHON_OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _protoc([f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", *proto_files()])


def generate_typescript(out: Path = TS_OUT) -> None:
    if not TS_PLUGIN.exists():
        raise SystemExit(f"{TS_PLUGIN} is missing: run `make npm-install`")
    out.mkdir(parents=True, exist_ok=True)
    _protoc([f"--plugin=protoc-gen-ts_proto={TS_PLUGIN}", f"--ts_proto_out={out}", f"--ts_proto_opt={TS_OPTIONS}",
             *proto_files(), *TS_EXTRA_PROTOS])


def generate_descriptor(out: Path = DESCRIPTOR_OUT) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    _protoc([f"--descriptor_set_out={out}", "--include_imports", "--include_source_info",
             *proto_files(), *EXTRA_PROTOS])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--python-out", type=Path, default=PYTHON_OUT)
    parser.add_argument("--typescript-out", type=Path, default=TS_OUT)
    parser.add_argument("--descriptor-out", type=Path, default=DESCRIPTOR_OUT)
    parser.add_argument("--descriptor-only", action="store_true")
    args = parser.parse_args(argv)
    if not args.descriptor_only:
        generate_python(args.python_out)
        generate_typescript(args.typescript_out)
    generate_descriptor(args.descriptor_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
