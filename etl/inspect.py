"""Looking into the warehouse: `etl status`, `etl sql`, `etl shell`, `etl diff`."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import polars as pl

from etl.errors import EtlError, one_line
from etl.warehouse import open_warehouse
from etl.warehouse.builds import COMPLETE

TABLE_ROWS = 1000


def _table(frame: pl.DataFrame) -> str:
    with pl.Config(tbl_rows=TABLE_ROWS, tbl_cols=-1, fmt_str_lengths=80, tbl_width_chars=200,
                   tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        text = str(frame)
    if frame.height > TABLE_ROWS:
        text += f"\n… {frame.height - TABLE_ROWS:,} more rows (use --format csv)"
    return text


def status_report(warehouse: Path) -> str:
    with open_warehouse(warehouse, read_only=True) as con:
        counts = con.sql("SELECT source, kind, owner, messages, conversations FROM source_counts").pl()
        runs = con.sql(
            "SELECT source, finished_at, seen, new, unchanged, quarantined, run_id "
            "FROM ingest_runs ORDER BY finished_at DESC LIMIT 10"
        ).pl()
        (quarantined,) = con.execute("SELECT count(*) FROM quarantine").fetchall()[0]
        builds = con.sql(f"SELECT version, built_at, examples, dropped FROM builds WHERE {COMPLETE} ORDER BY built_at").pl()
    parts = [f"warehouse {warehouse}", "", "messages by source, kind and owner:"]
    parts.append(_table(counts) if counts.height else "  (none yet: run `etl ingest`)")
    parts += ["", "last ingest runs:", _table(runs) if runs.height else "  (none)"]
    parts += ["", f"quarantined rows: {quarantined:,}"]
    if builds.height:
        parts += ["", "versions built:", _table(builds)]
    return "\n".join(parts)


def _execute(con: duckdb.DuckDBPyConnection, query: str) -> pl.DataFrame | None:
    try:
        relation = con.sql(query)
    except duckdb.Error as error:
        raise EtlError(f"SQL error: {one_line(error)}") from None
    if relation is None:
        return None
    try:
        return relation.pl()
    except duckdb.Error as error:
        raise EtlError(f"SQL error: {one_line(error)}") from None


def run_query(warehouse: Path, query: str, fmt: str, output: Path | None) -> None:
    with open_warehouse(warehouse, read_only=True) as con:
        frame = _execute(con, query)
    if frame is None:
        return
    if fmt == "parquet":
        if output is None:
            if sys.stdout.isatty():
                raise EtlError("parquet is binary: give --output FILE or redirect stdout")
            frame.write_parquet(sys.stdout.buffer)
        else:
            frame.write_parquet(output)
        return
    if fmt == "csv":
        text = frame.write_csv()
    elif fmt == "json":
        text = frame.write_ndjson()
    else:
        text = _table(frame) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def interactive_shell(warehouse: Path, read_only: bool = True) -> None:
    with open_warehouse(warehouse, read_only=read_only) as con:
        print(f"etl shell on {warehouse} ({'read-only' if read_only else 'read-write'}); "
              "end statements with ;  .tables lists tables, .quit leaves", file=sys.stderr)
        buffer: list[str] = []
        while True:
            try:
                line = input("etl> " if not buffer else " ...> ")
            except EOFError:
                break
            stripped = line.strip()
            if not buffer and stripped in (".quit", ".exit"):
                break
            if not buffer and stripped == ".tables":
                line = "SHOW ALL TABLES;"
            buffer.append(line)
            if not line.rstrip().endswith(";"):
                continue
            query, buffer = "\n".join(buffer), []
            try:
                frame = _execute(con, query)
            except EtlError as error:
                print(error, file=sys.stderr)
                continue
            if frame is not None:
                print(_table(frame))


def diff_versions(warehouse: Path, old: str, new: str) -> str:
    with open_warehouse(warehouse, read_only=True) as con:
        known = {v for (v,) in con.execute(f"SELECT version FROM builds WHERE {COMPLETE}").fetchall()}
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
