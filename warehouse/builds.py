"""The window in which a build becomes a version: recorded, then its folder, then complete.

A build records its rows with status `pending`, renames its folder into place, then marks
the version `complete`. A kill anywhere in between leaves a pending version: every
command ignores it (`COMPLETE` is the filter they share) and the next build of that name
clears it, folder included, so no command ever shows a version without its folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import duckdb

from etl.schemas.errors import EtlError
from etl.warehouse import open_warehouse, transaction

PENDING, DONE = "pending", "complete"
# The versions every command may show.
COMPLETE = f"status = '{DONE}'"
# Where `ETL_FAULT=kill-after:STEP` kills a build, to prove each step of the window safe.
COMMIT_STEPS = ("recorded", "renamed", "completed")


def kill_point(step: str) -> None:
    """SIGKILL this process at `step` when ETL_FAULT asks for it (the trials of the window)."""
    if os.environ.get("ETL_FAULT") == f"kill-after:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def mark_complete(con: duckdb.DuckDBPyConnection, version: str) -> None:
    con.execute(f"UPDATE builds SET status = '{DONE}' WHERE version = ?", [version])


def forget_unfinished(con: duckdb.DuckDBPyConnection, version: str, target: Path) -> None:
    """Clear what a build of `version` that never completed left: its rows, and the folder
    it had renamed into place (only when that folder is the one its pending row describes)."""
    row = con.execute("SELECT status, dataset_sha256 FROM builds WHERE version = ?", [version]).fetchone()
    pending = row is not None and row[0] != DONE
    if pending and target.is_dir() and _folder_sha256(target) == row[1]:
        aside = target.with_name(f".partial-{version}-unfinished")
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(target, aside)  # gone in one step, then removed
        shutil.rmtree(aside, ignore_errors=True)
    if pending or not target.exists():
        with transaction(con):
            for table in ("builds", "build_examples", "build_drops", "build_cuts"):
                con.execute(f"DELETE FROM {table} WHERE version = ?", [version])


def require_finished(warehouse: Path, version: str) -> None:
    """Refuse a version whose build was interrupted before it was complete."""
    with open_warehouse(warehouse, read_only=True) as con:
        row = con.execute("SELECT status FROM builds WHERE version = ?", [version]).fetchone()
    if row is not None and row[0] != DONE:
        raise EtlError(
            f"version {version} is not complete: its build was interrupted; "
            f"build it again with `etl build --version {version}`"
        )


def _folder_sha256(folder: Path) -> str | None:
    try:
        return json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("dataset_sha256")
    except (OSError, ValueError, AttributeError):
        return None
