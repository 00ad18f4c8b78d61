"""Nothing trains on a version whose files differ from what was built."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from etl.errors import EtlError, VerificationFailed


def verified_manifest(version_dir: Path) -> dict[str, Any]:
    """The version's manifest, once every file matches SHA256SUMS and the manifest."""
    if not (version_dir / "manifest.json").is_file():
        raise EtlError(f"{version_dir} is not a dataset version (no manifest.json); build one with `etl build`")
    try:
        from etl.versions import verify_version
    except ImportError:
        return _verify(version_dir)
    return verify_version(version_dir)


def _verify(version_dir: Path) -> dict[str, Any]:
    sums = version_dir / "SHA256SUMS"
    if not sums.is_file():
        raise VerificationFailed(f"{sums} is missing; rebuild the version with `etl build`")
    listed: dict[str, str] = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    for name, digest in listed.items():
        path = version_dir / name
        if not path.is_file() or _sha256(path) != digest:
            raise _changed(version_dir, name)
    manifest = json.loads((version_dir / "manifest.json").read_text(encoding="utf-8"))
    for name, entry in manifest.get("files", {}).items():
        if name not in listed or entry.get("sha256") != listed[name]:
            raise _changed(version_dir, name)
    return manifest


def _changed(version_dir: Path, name: str) -> VerificationFailed:
    return VerificationFailed(
        f"{version_dir / name} does not match the version's SHA256SUMS/manifest: it changed after "
        "it was built; restore it or build a new version with `etl build`"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
