"""Where `etl` keeps things, unless told otherwise.

Everything lives under ETL_HOME (default: $XDG_DATA_HOME/etl, i.e. ~/.local/share/etl):
the warehouse `warehouse.duckdb` (override with --warehouse or ETL_WAREHOUSE) and the
dataset versions under `datasets/` (override with --datasets or ETL_DATASETS).
"""

from __future__ import annotations

import os
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
