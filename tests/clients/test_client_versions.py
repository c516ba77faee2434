"""Both client packages carry the proto package's version: the same number in the Python
distribution, its module, the npm package and its module, with the proto package as major."""

from __future__ import annotations

import json
import re
import tomllib

import llmserve
from tests.support import ROOT

TS = ROOT / "clients" / "typescript"


def test_both_packages_carry_the_proto_package_version():
    python = tomllib.loads((ROOT / "clients" / "python" / "pyproject.toml").read_text())["project"]["version"]
    npm = json.loads((TS / "package.json").read_text())["version"]
    ts_module = re.search(r'export const VERSION = "([^"]+)"', (TS / "src" / "index.ts").read_text()).group(1)
    assert python == llmserve.__version__ == npm == ts_module
    protos = {p.parent.name for p in (ROOT / "proto" / "llmserve").glob("*/v*/*.proto")}
    assert protos == {llmserve.API_VERSION} and python.split(".")[0] == llmserve.API_VERSION.lstrip("v")


def test_the_server_depends_on_this_client_version():
    server = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"llmserve-client=={llmserve.__version__}" in server
    assert not list((ROOT / "server").rglob("*_pb2.py")), "generated stubs belong to the client package"
