"""`buf breaking` (FILE rules, the committed buf.yaml): the protos keep wire and source
compatibility with the last tagged release (tags `v<version>`, the client packages' version),
or, before the first tag, with the committed protos of HEAD."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

from tests.unit.test_proto_lint import _buf, buf_workspace
from tools import protogen

ROOT = protogen.ROOT


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, timeout=60, check=False)


def baseline() -> str:
    """The last release tag reachable from HEAD, else HEAD."""
    described = _git("describe", "--tags", "--abbrev=0", "--match", "v[0-9]*")
    return described.stdout.decode().strip() if described.returncode == 0 else "HEAD"


def protos_at(ref: str, folder: Path) -> Path:
    archive = _git("archive", "--format=tar", ref, "proto")
    assert archive.returncode == 0, archive.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "proto"


def breaking(new: Path, against: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_buf(), "breaking", str(new), "--against", str(against)], capture_output=True, text=True, check=False,
                          timeout=120)


def test_protos_do_not_break_the_last_release(tmp_path: Path):
    old = buf_workspace(tmp_path / "old", protos_at(baseline(), tmp_path / "baseline"))
    new = buf_workspace(tmp_path / "new")
    result = breaking(new, old)
    assert result.returncode == 0, f"against {baseline()}:\n{result.stdout}{result.stderr}"


def test_the_check_sees_a_removed_field(tmp_path: Path):
    old = buf_workspace(tmp_path / "old")
    new = buf_workspace(tmp_path / "new")
    proto = new / "proto" / "llmserve" / "generation" / "v1" / "generation_service.proto"
    text = proto.read_text()
    assert "  string prompt = 1;" in text
    proto.write_text(text.replace("  string prompt = 1;", "  reserved 1;", 1))
    result = breaking(new, old)
    assert result.returncode != 0 and "prompt" in result.stdout + result.stderr, result.stdout + result.stderr
