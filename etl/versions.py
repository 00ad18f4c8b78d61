"""Dataset versions on disk: hashes, verification, rebuild and diff.

A version folder is immutable. `SHA256SUMS` lists every file in it (what
`sha256sum -c` checks); `manifest.json` lists the data files with size, record
count and hash, and `dataset_sha256` is the hash over the data files' hashes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from etl.errors import EtlError, VerificationFailed

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


def rebuild_and_compare(warehouse: Path, datasets: Path, version: str) -> None:
    """Rebuild `version` from the same ingest runs and config; every file must be identical."""
    from etl.build import build_version
    from etl.config import BuildConfig, Config, Owner, _coerce

    manifest = verify_version(datasets / version)
    config = Config(
        owner=_coerce(Owner, manifest["config"]["owner"]),
        build=_coerce(BuildConfig, manifest["config"]["build"]),
    )
    run_ids = [r["run_id"] for r in manifest["inputs"]["ingest_runs"]]
    scratch = Path(tempfile.mkdtemp(prefix=f"etl-rebuild-{version}-"))
    try:
        rebuilt = build_version(
            warehouse,
            scratch,
            version,
            config,
            run_ids=run_ids,
            rejected_through=manifest["inputs"].get("rejected_answers_through"),
            record=False,
        )
        theirs = (datasets / version / SUMS).read_text(encoding="utf-8").splitlines()
        ours = (scratch / version / SUMS).read_text(encoding="utf-8").splitlines()
        if theirs != ours:
            differing = sorted(set(theirs) ^ set(ours))
            name = differing[0].partition("  ")[2] if differing else SUMS
            raise VerificationFailed(
                f"rebuilding {version} gives a different {name} "
                f"(dataset sha256 {rebuilt.manifest['dataset_sha256']} vs {manifest['dataset_sha256']})"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def diff_versions(warehouse: Path, old: str, new: str) -> str:
    from etl.warehouse import open_warehouse

    with open_warehouse(warehouse, read_only=True) as con:
        known = {v for (v,) in con.execute("SELECT version FROM builds").fetchall()}
        for v in (old, new):
            if v not in known:
                raise EtlError(f"no version {v} in the warehouse; built: {', '.join(sorted(known)) or 'none'}")
        added = con.execute(
            """SELECT source, count(*) FROM build_examples n WHERE version = $new
               AND NOT EXISTS (SELECT 1 FROM build_examples o WHERE o.version = $old AND o.example_id = n.example_id)
               GROUP BY 1 ORDER BY 1""",
            {"old": old, "new": new},
        ).fetchall()
        removed = con.execute(
            """SELECT o.source, coalesce(d.reason, 'not in the newer input'), count(*)
               FROM build_examples o
               LEFT JOIN (SELECT DISTINCT ON (message_id) message_id, stage || ':' || reason AS reason
                          FROM build_drops WHERE version = $new ORDER BY message_id, stage, reason) d
                 ON d.message_id = o.message_ids[1]
               WHERE o.version = $old
                 AND NOT EXISTS (SELECT 1 FROM build_examples n WHERE n.version = $new AND n.example_id = o.example_id)
               GROUP BY 1, 2 ORDER BY 1, 3 DESC""",
            {"old": old, "new": new},
        ).fetchall()
    lines = [f"{old} → {new}"]
    lines.append(f"added: {sum(n for _, n in added):,}")
    lines += [f"  {source:<16} {n:>10,}" for source, n in added]
    lines.append(f"removed: {sum(n for *_, n in removed):,}")
    lines += [f"  {source:<16} {reason:<36} {n:>10,}" for source, reason, n in removed]
    return "\n".join(lines)
