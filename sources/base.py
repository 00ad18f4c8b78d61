"""What a connector is, and the table of registered connectors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from etl.errors import EtlError
from etl.versions import sha256_file


class SourceError(EtlError):
    """The input cannot be read at all (wrong path, not the expected format)."""


@dataclass(frozen=True)
class Param:
    """A command-line option of a connector (`etl ingest NAME --db PATH`)."""

    name: str  # option name without dashes, e.g. "db"
    help: str
    default: Any = None
    is_flag: bool = False
    multiple: bool = False
    envvar: str | None = None
    # Never recorded in ingest_runs or logs (passwords, DSNs with credentials).
    secret: bool = False
    path: bool = False  # a filesystem path; `~` is expanded


@dataclass(frozen=True)
class Quarantined:
    """A row that could not be parsed. Lands in `quarantine` with the reason."""

    location: str  # e.g. "chat.db message ROWID 42", "export.txt line 17"
    reason: str
    payload: str | None = None  # the raw row; binary as base64
    source_id: str | None = None


@dataclass
class Batch:
    """Rows in the raw schema (`schemas.raw_frame`), plus what could not be parsed.

    `stream` names one input (a database path, a session file); `watermark` is
    the JSON-able position reached in that stream after this batch, so the next
    run can start there. The loader writes the last watermark of each stream in
    the same transaction as the rows.
    """

    rows: pl.DataFrame
    quarantined: list[Quarantined] = field(default_factory=list)
    stream: str | None = None
    watermark: Any = None
    seen: int | None = None  # rows read, when more than len(rows) + quarantined


@dataclass
class SourceContext:
    """Everything a connector may know about the run it is part of."""

    paths: list[Path]
    options: dict[str, Any]
    owner: Any  # etl.config.Owner: names, emails, phones, handles, labels
    previous_watermark: Callable[[str], Any]  # stream -> last stored watermark or None
    notes: list[str] = field(default_factory=list)  # shown to the user, kept in ingest_runs
    progress: Callable[[int], None] = lambda n: None  # advance a progress bar by n rows
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256, recorded in the run
    # Read-only SQL over the warehouse as it was before this run (sql, params) -> rows;
    # for a connector that must recognise what another one already landed.
    query: Callable[[str, list], list[tuple]] = lambda sql, params=(): []

    def note(self, text: str) -> None:
        self.notes.append(text)

    def record_file(self, path: Path, hash_at_most: int = 64 << 20) -> None:
        """Keep the input's sha256 in the run record; a file too large to hash quickly
        is recorded by size and modification time instead."""
        stat = path.stat()
        if stat.st_size <= hash_at_most:
            self.files[str(path)] = sha256_file(path)
            return
        modified = datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(timespec="seconds")
        self.note(f"{path}: {stat.st_size} bytes, modified {modified} (not hashed: too large to hash quickly)")


@dataclass(frozen=True)
class Source:
    name: str
    version: int
    help: str
    read: Callable[[SourceContext], Iterator[Batch]]
    params: tuple[Param, ...] = ()
    # Positional PATH arguments: "none", "optional" (default_paths used) or "required".
    paths: str = "required"
    default_paths: tuple[str, ...] = ()


SOURCES: dict[str, Source] = {}


def source(
    name: str,
    *,
    version: int,
    help: str,
    params: tuple[Param, ...] = (),
    paths: str = "required",
    default_paths: tuple[str, ...] = (),
) -> Callable:
    """Register a connector under its command-line name."""

    def register(read: Callable[[SourceContext], Iterator[Batch]]):
        SOURCES[name] = Source(name, version, help, read, params, paths, default_paths)
        return read

    return register


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise EtlError(
            f"unknown source {name!r}; available sources: {', '.join(sorted(SOURCES))}"
        ) from None
