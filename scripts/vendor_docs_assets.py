"""Vendor the assets of ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) into the package.

The service serves them itself, so the API's interactive docs work with no internet access.
Each npm package is pinned by version and by the SHA-256 of its tarball; the tarball is
downloaded from the npm registry over HTTPS (``https://registry.npmjs.org``, or the registry
named by ``NPM_CONFIG_REGISTRY``; no ``npm`` is needed), checked, and only the files the pages
load, plus the packages' licence files, are extracted into
``src/ledger/entrypoints/http/docs_assets/`` (not committed; ``make setup`` runs this).
``MANIFEST.json`` there records what was vendored; a run whose pins match it does nothing.

Usage: ``python3 scripts/vendor_docs_assets.py [--force]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "src" / "ledger" / "entrypoints" / "http" / "docs_assets"
MANIFEST = "MANIFEST.json"


class Pin(NamedTuple):
    """An npm package at one version, its tarball's SHA-256, and the files taken from it
    (member of the tarball: name in the target)."""

    version: str
    sha256: str
    files: dict[str, str]


PINS: dict[str, Pin] = {
    "swagger-ui-dist": Pin(
        "5.35.0",
        "1b8e891893404ea4c3558b6a87e2a3e494e7eedba41168c2ece5800a391a6ea6",
        {
            "package/swagger-ui-bundle.js": "swagger-ui-bundle.js",
            "package/swagger-ui.css": "swagger-ui.css",
            "package/favicon-32x32.png": "favicon-32x32.png",
            "package/LICENSE": "LICENSE.swagger-ui-dist",
            "package/NOTICE": "NOTICE.swagger-ui-dist",
        },
    ),
    # ReDoc 2 is the major version FastAPI's page is written for.
    "redoc": Pin(
        "2.5.4",
        "44922df4d0eb45c1b066c09ec251e6bd9bd7ded16bc69e87613337b9d911a56e",
        {
            "package/bundles/redoc.standalone.js": "redoc.standalone.js",
            "package/LICENSE": "LICENSE.redoc",
        },
    ),
}


def _wanted() -> dict[str, dict[str, str]]:
    return {name: {"version": p.version, "sha256": p.sha256} for name, p in PINS.items()}


def _current() -> bool:
    """The target holds exactly what the pins name (by the manifest and each file's hash)."""
    manifest = TARGET / MANIFEST
    if not manifest.is_file():
        return False
    recorded = json.loads(manifest.read_text())
    if recorded.get("packages") != _wanted():
        return False
    for name, digest in recorded.get("files", {}).items():
        path = TARGET / name
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            return False
    return True


REGISTRY = "https://registry.npmjs.org"
ATTEMPTS = 3


def _fetch(name: str, version: str, into: Path) -> Path:
    """Download ``name@version``'s tarball from the npm registry (a few attempts)."""
    registry = os.environ.get("NPM_CONFIG_REGISTRY") or REGISTRY
    url = f"{registry.rstrip('/')}/{name}/-/{name}-{version}.tgz"
    tarball = into / f"{name}-{version}.tgz"
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(url, timeout=60) as answer:  # noqa: S310 - https, pinned
                tarball.write_bytes(answer.read())
            return tarball
        except OSError as error:
            if attempt == ATTEMPTS:
                sys.exit(f"could not download {url}: {error}")
            time.sleep(attempt)
    raise AssertionError("unreachable")


def vendor() -> None:
    """Fetch, check and extract every pinned package into a fresh target directory."""
    files: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ledger-docs-assets-") as tmp:
        staging = Path(tmp) / "assets"
        staging.mkdir()
        for name, pin in PINS.items():
            tarball = _fetch(name, pin.version, Path(tmp))
            digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
            if digest != pin.sha256:
                sys.exit(f"{tarball.name}: sha256 {digest}, expected {pin.sha256}")
            with tarfile.open(tarball) as archive:
                for member, target in pin.files.items():
                    source = archive.extractfile(member)
                    if source is None:
                        sys.exit(f"{tarball.name}: {member} is not a file")
                    data = source.read()
                    (staging / target).write_bytes(data)
                    files[target] = hashlib.sha256(data).hexdigest()
        manifest = {"packages": _wanted(), "files": files}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if TARGET.exists():
            shutil.rmtree(TARGET)
        shutil.move(str(staging), TARGET)


def main() -> None:
    if "--force" not in sys.argv[1:] and _current():
        return
    vendor()
    names = ", ".join(f"{name}@{pin.version}" for name, pin in PINS.items())
    print(f"vendored {names} into {TARGET}")


if __name__ == "__main__":
    main()
