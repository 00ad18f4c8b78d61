"""The DuckDB warehouse: one file holding raw messages, runs, builds and their records.

`open_warehouse()` creates the file when needed (owner-only permissions), applies
the ordered migrations, pins UTC and refreshes the inspection views. DuckDB lets
one process write at a time; a second writer gets `WarehouseLocked`, one line.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import duckdb
import polars as pl

from etl.errors import EtlError, WarehouseLocked
from etl.schemas import PROSE_TABLES, TABLES, Table

MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = []
migration = MIGRATIONS.append


@migration
def m001_initial(con: duckdb.DuckDBPyConnection) -> None:
    for table in TABLES:
        con.execute(table.ddl())


@migration
def m002_duplicate_clusters(con: duckdb.DuckDBPyConnection) -> None:
    # What a report needs to show a duplicate cluster whole: its kept members and the
    # dropped replies with their similarity.
    con.execute("ALTER TABLE build_examples ADD COLUMN IF NOT EXISTS dup_cluster VARCHAR")
    con.execute("ALTER TABLE build_drops ADD COLUMN IF NOT EXISTS example_id VARCHAR")
    con.execute("ALTER TABLE build_drops ADD COLUMN IF NOT EXISTS text VARCHAR")
    con.execute("ALTER TABLE build_drops ADD COLUMN IF NOT EXISTS similarity DOUBLE")


@migration
def m003_prose(con: duckdb.DuckDBPyConnection) -> None:
    # Long-form writing lives beside the messages, in tables of its own; nothing existing changes.
    for table in PROSE_TABLES:
        con.execute(table.ddl())


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)"
    )
    applied = {name for (name,) in con.execute("SELECT name FROM _migrations").fetchall()}
    for step in MIGRATIONS:
        if step.__name__ in applied:
            continue
        con.execute("BEGIN")
        step(con)
        con.execute("INSERT INTO _migrations VALUES (?, now())", [step.__name__])
        con.execute("COMMIT")


def _apply_views(con: duckdb.DuckDBPyConnection) -> None:
    sql = resources.files("etl.warehouse").joinpath("sql/views.sql").read_text()
    for statement in filter(str.strip, sql.split(";")):
        con.execute(statement)


def _friendly(error: duckdb.Error, path: Path) -> EtlError:
    """Turn DuckDB's messages about the file itself into one line naming the warehouse."""
    text = str(error)
    if "Could not set lock" in text or "Conflicting lock" in text:
        pid = re.search(r"PID (\d+)", text)
        holder = f" (pid {pid.group(1)})" if pid else ""
        return WarehouseLocked(
            f"warehouse {path} is in use by another etl process{holder}; "
            "wait for it to finish and try again"
        )
    if "Permission denied" in text or "Read-only file system" in text:
        return EtlError(
            f"cannot write the warehouse at {path}: permission denied; "
            "choose another place with --warehouse or ETL_WAREHOUSE"
        )
    if "not a valid DuckDB database" in text or "Unable to open" in text or "corrupt" in text:
        return EtlError(f"{path} is not a DuckDB warehouse (or it is damaged): {text.splitlines()[0]}")
    return EtlError(f"cannot open the warehouse at {path}: {text.splitlines()[0]}")


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    if read_only and not path.exists():
        raise EtlError(f"no warehouse at {path}; land some messages first with `etl ingest`")
    created = not path.exists()
    if created and not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as error:
            raise EtlError(
                f"cannot create the warehouse folder {path.parent}: {error.strerror}; "
                "choose another place with --warehouse or ETL_WAREHOUSE"
            ) from None
    # The warehouse holds private history: files are created readable by the owner only.
    old_umask = os.umask(0o077)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as error:
        raise _friendly(error, path) from None
    finally:
        os.umask(old_umask)
    if created:
        os.chmod(path, 0o600)
    return con


@contextlib.contextmanager
def open_warehouse(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the warehouse at `path`, migrated and with views, closed on exit."""
    path = Path(path)
    con = _connect(path, read_only)
    try:
        con.execute("SET TimeZone = 'UTC'")
        if not read_only:
            _migrate(con)
            _apply_views(con)
        yield con
    finally:
        con.close()


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Everything inside commits together or not at all (Ctrl-C included)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def insert_frame(
    con: duckdb.DuckDBPyConnection, table: Table, frame: pl.DataFrame, *, ignore_existing: bool = False
) -> int:
    """Insert a frame with the table's columns; returns the rows inserted.

    With `ignore_existing`, rows whose key is already in the table (or earlier in the
    frame) are skipped: what makes re-ingesting an export add nothing.
    """
    if frame.height == 0:
        return 0
    ordered = frame.select(table.column_names)
    if ignore_existing and table.primary_key:
        ordered = ordered.unique(subset=list(table.primary_key), keep="first", maintain_order=True)  # noqa: F841
    columns = ", ".join(table.column_names)
    sql = f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM ordered AS new"
    if ignore_existing and table.primary_key:
        same = " AND ".join(f"old.{k} = new.{k}" for k in table.primary_key)
        sql += f" WHERE NOT EXISTS (SELECT 1 FROM {table.name} AS old WHERE {same})"
    (inserted,) = con.execute(sql).fetchall()[0]
    return int(inserted)


def query_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pl.DataFrame:
    return con.sql(sql, params=params or None).pl()
