"""Hashes of files and of dataset versions, and checking a version against them.

A version folder is immutable. `SHA256SUMS` lists every file in it (what
`sha256sum -c` checks); `manifest.json` lists the data files with size, record
count and hash, and `dataset_sha256` is the hash over the data files' hashes.
Connectors, the build and training all hash, so this sits on the floor.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from etl.schemas.errors import EtlError, VerificationFailed

SUMS = "SHA256SUMS"
MANIFEST = "manifest.json"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def dataset_sha256(files: dict[str, dict[str, Any]]) -> str:
    """One hash for all data files: sha256 of their `sha256  path` lines, sorted by path."""
    lines = "".join(f"{files[p]['sha256']}  {p}\n" for p in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def manifest_text(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, ensure_ascii=False, sort_keys=True, indent=2) + "\n"


def write_manifest_and_sums(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST).write_text(manifest_text(manifest), encoding="utf-8")
    listed = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != SUMS)
    (folder / SUMS).write_text("".join(f"{sha256_file(folder / p)}  {p}\n" for p in listed), encoding="utf-8")


def read_manifest(version_dir: Path) -> dict[str, Any]:
    path = version_dir / MANIFEST
    if not version_dir.is_dir():
        raise EtlError(f"no dataset version at {version_dir}; list them with `ls {version_dir.parent}`")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VerificationFailed(f"{path} is missing") from None
    except ValueError as error:
        raise VerificationFailed(f"{path} is not valid JSON: {error}") from None


def verify_version(version_dir: Path) -> dict[str, Any]:
    """Check every file against SHA256SUMS and the manifest; return the manifest.

    Raises `VerificationFailed` naming the first file that does not match.
    """
    manifest = read_manifest(version_dir)
    sums_path = version_dir / SUMS
    try:
        sums = sums_path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise VerificationFailed(f"{sums_path} is missing") from None
    listed: dict[str, str] = {}
    for number, line in enumerate(sums, 1):
        digest, sep, relpath = line.partition("  ")
        if not sep or len(digest) != 64:
            raise VerificationFailed(f"{sums_path} line {number} is not `<sha256>  <file>`")
        listed[relpath] = digest
    for relpath, digest in listed.items():
        path = version_dir / relpath
        if not path.is_file():
            raise VerificationFailed(f"{path} is listed in {SUMS} but missing")
        if sha256_file(path) != digest:
            raise VerificationFailed(f"{path} does not match its sha256 in {SUMS}: the file was changed")
    on_disk = {p.relative_to(version_dir).as_posix() for p in version_dir.rglob("*") if p.is_file()} - {SUMS}
    if extra := sorted(on_disk - set(listed)):
        raise VerificationFailed(f"{version_dir / extra[0]} is not listed in {SUMS}")
    files = manifest.get("files", {})
    for relpath, info in sorted(files.items()):
        if listed.get(relpath) != info.get("sha256"):
            raise VerificationFailed(f"{version_dir / relpath} does not match its sha256 in {MANIFEST}")
    if dataset_sha256(files) != manifest.get("dataset_sha256"):
        raise VerificationFailed(f"{version_dir / MANIFEST}: dataset_sha256 does not match its files")
    return manifest
