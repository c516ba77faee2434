"""Vendor the scripts and styles of /docs (Swagger UI) and /redoc (ReDoc) from their npm
packages into build/docs/assets, where Envoy serves them: the pages load nothing from a
CDN. Run by `make install` (needs npm); versions are pinned in the Makefile.

Usage: python tools/docs_assets.py --swagger-ui 5.32.0 --redoc 2.5.0 [--out build/docs/assets]
"""

from __future__ import annotations

import argparse
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "docs" / "assets"
FILES = {
    "swagger-ui-dist": ("package/swagger-ui-bundle.js", "package/swagger-ui.css", "package/LICENSE"),
    "redoc": ("package/bundles/redoc.standalone.js", "package/LICENSE"),
}
"""What each package gives: the files Envoy serves (and each package's licence, kept beside them)."""


def vendor(versions: dict[str, str], out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        specs = [f"{name}@{version}" for name, version in versions.items()]
        subprocess.run(["npm", "pack", "--silent", "--pack-destination", tmp, *specs], check=True,
                       stdout=subprocess.DEVNULL)
        for name, version in versions.items():
            with tarfile.open(Path(tmp) / f"{name}-{version}.tgz") as archive:
                for member in FILES[name]:
                    data = archive.extractfile(member)
                    if data is None:
                        raise SystemExit(f"{name}@{version} has no {member}")
                    base = Path(member).name
                    target = out / (f"{name}.LICENSE" if base == "LICENSE" else base)
                    target.write_bytes(data.read())
                    written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--swagger-ui", required=True)
    parser.add_argument("--redoc", required=True)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    for path in vendor({"swagger-ui-dist": args.swagger_ui, "redoc": args.redoc}, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
