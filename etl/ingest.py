"""Land what a connector reads in the warehouse, idempotently and all at once.

The rows, the quarantined rows, the watermarks and the run record are written in
one transaction: a run that fails or is interrupted leaves the warehouse as it was.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from etl.schemas.owner import Owner
from etl.schemas import INGEST_RUNS, QUARANTINE, RAW_MESSAGES, SCHEMA_VERSION
from etl.schemas.records import canonical_json
from etl.sources import Source, SourceContext
from etl.warehouse import insert_frame, open_warehouse, transaction


@dataclass
class IngestResult:
    run_id: str
    source: str
    seen: int = 0
    new: int = 0
    unchanged: int = 0
    quarantined: int = 0
    notes: list[str] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC)


def _stored_watermark(con, source: str) -> Callable[[str], Any]:
    def lookup(stream: str) -> Any:
        rows = con.execute(
            "SELECT value FROM watermarks WHERE source = ? AND stream = ?", [source, stream]
        ).fetchall()
        return json.loads(rows[0][0]) if rows else None

    return lookup


def run_ingest(
    warehouse: Path,
    source: Source,
    paths: list[Path],
    options: dict[str, Any],
    owner: Owner,
    progress: Callable[[int], None] = lambda n: None,
) -> IngestResult:
    run_id = f"{source.name}-{_now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    result = IngestResult(run_id=run_id, source=source.name)
    started = _now()
    # A first run that fails removes the warehouse it created (open_warehouse does).
    with open_warehouse(warehouse, create=True) as con, transaction(con):
        ctx = SourceContext(
            paths=paths,
            options=options,
            owner=owner,
            previous_watermark=_stored_watermark(con, source.name),
            progress=progress,
            query=lambda sql, params=(): con.execute(sql, list(params)).fetchall(),
        )
        watermarks: dict[str, Any] = {}
        for batch in source.read(ctx):
            rows = batch.rows.with_columns(source=pl.lit(source.name), ingest_run_id=pl.lit(run_id))
            new = insert_frame(con, RAW_MESSAGES, rows, ignore_existing=True)
            # A connector may read more than it lands (events with no message) or land
            # several rows from one record (a session event with several blocks).
            result.seen += max(batch.seen or 0, rows.height + len(batch.quarantined))
            result.new += new
            result.unchanged += rows.height - new
            if batch.quarantined:
                result.quarantined += len(batch.quarantined)
                insert_frame(con, QUARANTINE, _quarantine_frame(run_id, source.name, batch.quarantined))
            if batch.stream is not None and batch.watermark is not None:
                watermarks[batch.stream] = batch.watermark
        for stream, value in watermarks.items():
            con.execute(
                "INSERT OR REPLACE INTO watermarks VALUES (?, ?, ?, ?)",
                [source.name, stream, canonical_json(value), run_id],
            )
        result.notes = list(ctx.notes)
        run = {
            "run_id": run_id,
            "source": source.name,
            "source_version": source.version,
            "schema_version": SCHEMA_VERSION,
            "paths": [str(p) for p in paths],
            "file_sha256": canonical_json(ctx.files),
            "options": canonical_json(_public_options(source, options)),
            "started_at": started,
            "finished_at": _now(),
            "status": "ok",
            "seen": result.seen,
            "new": result.new,
            "unchanged": result.unchanged,
            "quarantined": result.quarantined,
            "watermarks": canonical_json(watermarks),
            "notes": result.notes,
        }
        insert_frame(con, INGEST_RUNS, pl.DataFrame([run], schema=INGEST_RUNS.polars_schema()))
    return result


def _quarantine_frame(run_id: str, source: str, rows) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "run_id": [run_id] * len(rows),
            "source": [source] * len(rows),
            "source_id": [q.source_id for q in rows],
            "location": [q.location for q in rows],
            "reason": [q.reason for q in rows],
            "payload": [q.payload for q in rows],
        },
        schema=QUARANTINE.polars_schema(),
    )


def _public_options(source: Source, options: dict[str, Any]) -> dict[str, Any]:
    """Options as recorded: secrets never reach the warehouse."""
    secret = {p.name for p in source.params if p.secret}
    return {k: ("<redacted>" if k in secret and v else _plain(v)) for k, v in sorted(options.items())}


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
