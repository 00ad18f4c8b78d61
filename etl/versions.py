"""Dataset versions on disk: rebuild and diff (hashes and verification live in
`etl.schemas.hashing`, re-exported here)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from etl.schemas.errors import EtlError, VerificationFailed
from etl.schemas.hashing import (  # noqa: F401 (re-exported)
    MANIFEST,
    SUMS,
    dataset_sha256,
    manifest_text,
    read_manifest,
    sha256_file,
    verify_version,
    write_manifest_and_sums,
)


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
