"""Where `etl` keeps things, unless told otherwise.

Everything lives under ETL_HOME (default: $XDG_DATA_HOME/etl, i.e. ~/.local/share/etl):
the warehouse `warehouse.duckdb` (override with --warehouse or ETL_WAREHOUSE) and the
dataset versions under `datasets/` (override with --datasets or ETL_DATASETS).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def etl_home() -> Path:
    if home := os.environ.get("ETL_HOME"):
        return Path(home).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "etl"


def default_warehouse() -> Path:
    if path := os.environ.get("ETL_WAREHOUSE"):
        return Path(path).expanduser()
    return etl_home() / "warehouse.duckdb"


def default_datasets() -> Path:
    if path := os.environ.get("ETL_DATASETS"):
        return Path(path).expanduser()
    return etl_home() / "datasets"


@contextlib.contextmanager
def owner_only() -> Iterator[None]:
    """Every file and folder created inside is readable by the owner only (umask 077).

    The history etl handles is private, and not every file is created by etl itself:
    DuckDB makes the WAL and spill folders, the trainer its adapters. Nested uses
    restore the mask they found.
    """
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def private_dir(folder: Path) -> Path:
    """`folder` and any parents it needed, created 0700 whatever the umask."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    for created in missing:
        os.chmod(created, 0o700)
    return folder
