"""Land documents and their paragraphs, idempotently, with the run record, in one transaction."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from etl.schemas.owner import Owner
from etl.ingest import IngestResult, _quarantine_frame
from etl.schemas import DOCUMENTS, INGEST_RUNS, PARAGRAPHS, QUARANTINE, SCHEMA_VERSION
from etl.schemas.records import canonical_json
from etl.sources import Quarantined, SourceContext
from etl.sources import prose as reader
from etl.warehouse import insert_frame, open_warehouse, transaction

SOURCE = "prose"


@dataclass
class ProseIngestResult(IngestResult):
    paragraphs: int = 0
    formats: dict[str, int] = field(default_factory=dict)


def document_id(doc: reader.Document) -> str:
    """The same title and paragraphs give the same id, from whichever file or path."""
    body = canonical_json([doc.title or "", [[p.kind, p.text] for p in doc.paragraphs]])
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def run_prose_ingest(
    warehouse: Path,
    paths: list[Path],
    owner: Owner,
    author: str | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> ProseIngestResult:
    """Read every document under `paths` and land the new ones.

    Who wrote them: the owner, unless `author` names someone else (then a document
    is the owner's only when that name is one of the owner's).
    """
    now = lambda: datetime.now(UTC)  # noqa: E731
    run_id = f"{SOURCE}-{now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    result = ProseIngestResult(run_id=run_id, source=SOURCE)
    started = now()
    ctx = SourceContext(paths=paths, options={}, owner=owner, previous_watermark=lambda s: None)
    docs, quarantined, files = [], [], []
    for file, item in reader.read_paths(paths):
        if file not in files:
            files.append(file)
        if isinstance(item, Quarantined):
            quarantined.append(item)
        elif not any(p.text.strip() for p in item.paragraphs):
            quarantined.append(Quarantined(item.location, "document has no text"))
        else:
            docs.append(item)
        progress(1)
    for file in files:
        ctx.record_file(file)
    is_owner = True if author is None else owner.matches(author)
    doc_rows, para_rows, seen_ids = [], [], set()
    for doc in docs:
        doc_id = document_id(doc)
        if doc_id in seen_ids:
            continue
        seen_ids.add(doc_id)
        meta = dict(doc.metadata)
        if doc.author:
            meta["named_author"] = doc.author
        doc_rows.append({
            "document_id": doc_id,
            "format": doc.format,
            "title": doc.title,
            "author": author or owner.display_name or doc.author,
            "is_owner": is_owner,
            "published_at": doc.published_at,
            "location": doc.location,
            "url": doc.url,
            "paragraphs": len(doc.paragraphs),
            "words": sum(len(p.text.split()) for p in doc.paragraphs),
            "metadata": canonical_json(meta),
            "ingest_run_id": run_id,
        })
        para_rows += [
            {"document_id": doc_id, "position": i, "kind": p.kind, "role": p.role, "text": p.text,
             "ingest_run_id": run_id}
            for i, p in enumerate(doc.paragraphs)
        ]
    # A first run that fails removes the warehouse it created (open_warehouse does).
    with open_warehouse(warehouse, create=True) as con, transaction(con):
        documents = pl.DataFrame(doc_rows, schema=DOCUMENTS.polars_schema())
        paragraphs = pl.DataFrame(para_rows, schema=PARAGRAPHS.polars_schema())
        known = {d for (d,) in con.execute("SELECT document_id FROM documents").fetchall()}
        documents = documents.filter(~pl.col("document_id").is_in(list(known)))
        paragraphs = paragraphs.filter(~pl.col("document_id").is_in(list(known)))
        result.new = insert_frame(con, DOCUMENTS, documents)
        result.paragraphs = insert_frame(con, PARAGRAPHS, paragraphs)
        result.seen = len(docs) + len(quarantined)
        result.unchanged = len(docs) - result.new
        result.quarantined = len(quarantined)
        result.formats = dict(sorted(documents["format"].value_counts().iter_rows())) if documents.height else {}
        if quarantined:
            insert_frame(con, QUARANTINE, _quarantine_frame(run_id, SOURCE, quarantined))
        result.notes = list(ctx.notes)
        run = {
            "run_id": run_id, "source": SOURCE, "source_version": reader.VERSION,
            "schema_version": SCHEMA_VERSION, "paths": [str(p) for p in paths],
            "file_sha256": canonical_json(ctx.files), "options": canonical_json(_options(author)),
            "started_at": started, "finished_at": now(), "status": "ok", "seen": result.seen,
            "new": result.new, "unchanged": result.unchanged, "quarantined": result.quarantined,
            "watermarks": canonical_json({}), "notes": result.notes,
        }
        insert_frame(con, INGEST_RUNS, pl.DataFrame([run], schema=INGEST_RUNS.polars_schema()))
    return result


def _options(author: str | None) -> dict[str, Any]:
    return {"author": author} if author else {}
