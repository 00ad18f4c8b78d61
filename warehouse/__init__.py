"""The DuckDB warehouse: one file holding raw messages, runs, builds and their records.

`open_warehouse(create=True)` creates the file when needed (owner-only), applies
the ordered migrations, pins UTC and refreshes the inspection views. DuckDB lets
one process write at a time; a second writer gets `WarehouseLocked`, one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import duckdb
import polars as pl

from etl.schemas import BUILD_CUTS, PROSE_TABLES, TABLES, Table
from etl.schemas.errors import EtlError, WarehouseLocked
from etl.schemas.paths import owner_only

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


@migration
def m004_build_cuts(con: duckdb.DuckDBPyConnection) -> None:
    # What the strip stage cut from each kept message, and why.
    con.execute(BUILD_CUTS.ddl())


@migration
def m005_pending_builds(con: duckdb.DuckDBPyConnection) -> None:
    # A version is pending until its folder is in place (warehouse/builds.py); older ones were complete.
    con.execute("ALTER TABLE builds ADD COLUMN IF NOT EXISTS status VARCHAR")
    con.execute("UPDATE builds SET status = 'complete' WHERE status IS NULL")


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


def missing_warehouse(path: Path) -> EtlError:
    return EtlError(f"no warehouse at {path}; land some messages first with `etl ingest`")


def require_warehouse(path: Path) -> Path:
    """`path` if a warehouse is there; else the one-line error every command but ingest gives."""
    if not _exists(Path(path)):
        raise missing_warehouse(path)
    return Path(path)


def _exists(path: Path) -> bool:
    # A file DuckDB never wrote a header to (its creator was killed at once) holds nothing.
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def _creation_lock(folder: Path) -> Iterator[None]:
    """Opening (and so creating) a warehouse, one etl process at a time per folder.

    DuckDB creates the file, then locks it: without this, a second first run can open
    the file in between and both fail. Held only while connecting, and while a failed
    first run removes what it created, so nobody can create a new warehouse at the same
    path in that moment.
    """
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        yield  # a folder we cannot open: DuckDB will say what is wrong
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _connect(path: Path, read_only: bool, create: bool) -> tuple[duckdb.DuckDBPyConnection, bool]:
    """A connection, and whether this call created the warehouse file."""
    if not create and not _exists(path):
        raise missing_warehouse(path)
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as error:
            raise EtlError(
                f"cannot create the warehouse folder {path.parent}: {error.strerror}; "
                "choose another place with --warehouse or ETL_WAREHOUSE"
            ) from None
    with _creation_lock(path.parent):
        if create and path.exists() and not _exists(path):
            # Under the lock nobody is creating it: an empty file is a killed creator's.
            path.unlink()
        created = create and not path.exists()
        try:
            con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as error:
            raise _friendly(error, path) from None
    if created:
        os.chmod(path, 0o600)
    return con, created


def _discard(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Remove the warehouse this process created, while it still holds it."""
    with _creation_lock(path.parent):
        for leftover in (path, path.with_name(path.name + ".wal")):
            leftover.unlink(missing_ok=True)
        con.close()


@contextlib.contextmanager
def open_warehouse(
    path: Path, read_only: bool = False, *, create: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the warehouse at `path`, migrated and with views, closed on exit.

    Only `create=True` (what `etl ingest` asks) makes a warehouse where there is none;
    otherwise a missing one is one line of error. A warehouse created here and left by
    an error is removed again: a failed first run leaves nothing behind.
    """
    path = Path(path)
    # The warehouse holds private history, and DuckDB creates its WAL and spill folder
    # while the connection is open: everything it makes is owner-only.
    with owner_only():
        con, created = _connect(path, read_only, create)
        try:
            con.execute("SET TimeZone = 'UTC'")
            if not read_only:
                _migrate(con)
                _apply_views(con)
            yield con
        except BaseException:
            if created:
                _discard(con, path)
            raise
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
