"""The committed Python stubs are exactly what the protos generate."""

from __future__ import annotations

import filecmp
from pathlib import Path

from tools import protogen


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_regenerating_stubs_changes_nothing(tmp_path: Path):
    protogen.generate_python(tmp_path)
    committed = protogen.PYTHON_OUT
    generated = _files(tmp_path)
    assert generated == _files(committed) - {f for f in _files(committed) if not f.startswith("llmserve/")}
    different = [f for f in sorted(generated) if not filecmp.cmp(tmp_path / f, committed / f, shallow=False)]
    assert not different, f"stale generated stubs, run `make proto`: {different}"


def test_descriptor_set_builds(tmp_path: Path):
    out = protogen.generate_descriptor(tmp_path / "d.pb")
    from google.protobuf import descriptor_pb2

    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    names = {f.name for f in fds.file}
    assert "google/rpc/error_details.proto" in names
    assert "llmserve/generation/v1/generation_service.proto" in names
