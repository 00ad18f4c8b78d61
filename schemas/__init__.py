"""The one definition of every table and record `etl` writes.

DuckDB DDL and Polars schemas are derived from the `Table` objects here, never
written by hand a second time. `SCHEMA_VERSION` goes into every manifest.
"""

from etl.schemas.tables import (
    BUILD_CUTS,
    BUILD_DROPS,
    BUILD_EXAMPLES,
    BUILDS,
    DOCUMENTS,
    INGEST_RUNS,
    NEUTRAL_REWRITES,
    PARAGRAPHS,
    PROSE_CHUNKS,
    PROSE_TABLES,
    KINDS,
    QUARANTINE,
    RAW_MESSAGES,
    REJECTED_ANSWERS,
    SCHEMA_VERSION,
    TABLES,
    TRAIN_RUNS,
    WATERMARKS,
    Column,
    Table,
    raw_frame,
)

__all__ = [
    "BUILD_CUTS",
    "BUILD_DROPS",
    "BUILD_EXAMPLES",
    "BUILDS",
    "DOCUMENTS",
    "INGEST_RUNS",
    "NEUTRAL_REWRITES",
    "PARAGRAPHS",
    "PROSE_CHUNKS",
    "PROSE_TABLES",
    "KINDS",
    "QUARANTINE",
    "RAW_MESSAGES",
    "REJECTED_ANSWERS",
    "SCHEMA_VERSION",
    "TABLES",
    "TRAIN_RUNS",
    "WATERMARKS",
    "Column",
    "Table",
    "raw_frame",
]
