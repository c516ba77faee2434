"""The committed client stubs (Python and TypeScript) are exactly what the protos generate."""

from __future__ import annotations

import filecmp
from pathlib import Path

from tools import protogen

PYTHON_GENERATED = ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py")
"""What protoc writes under clients/python; everything else there (the wrapper) is written by hand."""


def _files(root: Path, patterns: tuple[str, ...] = ("*",)) -> set[str]:
    return {str(p.relative_to(root)) for pattern in patterns for p in root.rglob(pattern)
            if p.is_file() and "__pycache__" not in p.parts}


def _assert_same(generated_root: Path, committed_root: Path, patterns: tuple[str, ...]) -> None:
    generated = _files(generated_root, patterns)
    committed = _files(committed_root, patterns)
    assert generated == committed, (f"stale generated stubs, run `make proto`: only generated "
                                    f"{sorted(generated - committed)}, only committed {sorted(committed - generated)}")
    different = [f for f in sorted(generated) if not filecmp.cmp(generated_root / f, committed_root / f, shallow=False)]
    assert not different, f"stale generated stubs, run `make proto`: {different}"


def test_regenerating_python_stubs_changes_nothing(tmp_path: Path):
    protogen.generate_python(tmp_path)
    # Only the package: a local build of clients/python may leave copies under build/.
    _assert_same(tmp_path / "llmserve", protogen.PYTHON_OUT / "llmserve", PYTHON_GENERATED)


def test_regenerating_typescript_stubs_changes_nothing(tmp_path: Path):
    protogen.generate_typescript(tmp_path)
    _assert_same(tmp_path, protogen.TS_OUT, ("*",))


def test_descriptor_set_builds(tmp_path: Path):
    out = protogen.generate_descriptor(tmp_path / "d.pb")
    from google.protobuf import descriptor_pb2

    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    names = {f.name for f in fds.file}
    assert "google/rpc/error_details.proto" in names
    assert "llmserve/generation/v1/generation_service.proto" in names
