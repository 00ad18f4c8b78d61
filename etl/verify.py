"""`etl verify --rebuild`: build a version again from its own inputs and compare every hash."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from etl.build import build_version
from etl.config import Config
from etl.errors import VerificationFailed
from etl.versions import SUMS, verify_version


def rebuild_and_compare(warehouse: Path, datasets: Path, version: str) -> None:
    """Rebuild `version` from the same ingest runs and config; every file must be identical."""
    manifest = verify_version(datasets / version)
    if manifest.get("corpus") == "prose":
        _rebuild_prose(warehouse, datasets, version, manifest)
        return
    config = Config.from_dict(manifest["config"])
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


def _rebuild_prose(warehouse: Path, datasets: Path, version: str, manifest: dict) -> None:
    from etl.prose.build import rebuild

    scratch = Path(tempfile.mkdtemp(prefix=f"etl-rebuild-{version}-"))
    try:
        rebuild(warehouse, scratch, version, manifest)
        theirs = (datasets / version / SUMS).read_text(encoding="utf-8").splitlines()
        ours = (scratch / version / SUMS).read_text(encoding="utf-8").splitlines()
        if theirs != ours:
            differing = sorted(set(theirs) ^ set(ours))
            name = differing[0].partition("  ")[2] if differing else SUMS
            raise VerificationFailed(f"rebuilding {version} gives a different {name}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
