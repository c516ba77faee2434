"""The protos pass `buf lint` (STANDARD + COMMENTS), with googleapis' protos
from site-packages as an unlinted dependency module."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tools import protogen


def _buf() -> str:
    path = Path(sys.executable).parent / "buf"
    return str(path) if path.exists() else (shutil.which("buf") or "buf")


def buf_workspace(folder: Path, protos: Path = protogen.PROTO_DIR) -> Path:
    """`folder` laid out as the committed buf.yaml expects: the protos, and googleapis' and
    protobuf's from site-packages as the unlinted third_party module."""
    shutil.copytree(protos, folder / "proto")
    deps = folder / "third_party"
    for include in protogen._include_dirs()[1:]:
        for sub in ("google/api", "google/rpc", "google/protobuf"):
            src = Path(include) / sub
            if src.is_dir():
                shutil.copytree(src, deps / sub, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("*.py", "__pycache__", "compiler"))
    shutil.copy(protogen.ROOT / "buf.yaml", folder / "buf.yaml")
    return folder


def test_buf_lint_standard(tmp_path: Path):
    buf_workspace(tmp_path)
    result = subprocess.run([_buf(), "lint"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
