"""Tables of the warehouse, declared once.

Each column has a logical type; `TYPES` maps it to DuckDB and Polars, so the DDL
that creates a table and the Polars frame a connector yields cannot disagree.
Columns are only ever appended to a table (a new migration), never reordered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

# Bump when a table changes shape; written into every manifest and ingest run.
SCHEMA_VERSION = 2

# What a raw message can be. Only `text` can become training data; every other kind
# lands so SQL can count it, and the build drops it with the reason `kind:<kind>`.
KINDS = (
    "text",  # something a person typed
    "reaction",  # tapbacks, emoji reactions, likes
    "attachment",  # an attachment with no text of its own
    "system",  # joins, renames, "[Request interrupted by user]", caveats
    "tool",  # tool calls and tool results in AI-assistant logs
    "automated",  # newsletters, receipts, notifications
    "deleted",  # unsent or deleted messages: no text survives
)

TYPES: dict[str, tuple[str, Any]] = {
    "str": ("VARCHAR", pl.String),
    "int": ("BIGINT", pl.Int64),
    "float": ("DOUBLE", pl.Float64),
    "bool": ("BOOLEAN", pl.Boolean),
    "ts": ("TIMESTAMPTZ", pl.Datetime("us", "UTC")),
    # JSON is kept as text: DuckDB's json functions read VARCHAR, and Polars keeps it as is.
    "json": ("VARCHAR", pl.String),
    "str_list": ("VARCHAR[]", pl.List(pl.String)),
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    doc: str
    nullable: bool = True

    @property
    def duckdb_type(self) -> str:
        return TYPES[self.type][0]

    @property
    def polars_type(self) -> Any:
        return TYPES[self.type][1]


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    # False: the key is kept by the loader (an anti-join per batch) instead of a DuckDB
    # PRIMARY KEY, whose index costs ~30 µs per inserted row: too slow for a million.
    key_constraint: bool = True

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def polars_schema(self, exclude: Iterable[str] = ()) -> pl.Schema:
        skip = set(exclude)
        return pl.Schema({c.name: c.polars_type for c in self.columns if c.name not in skip})

    def ddl(self) -> str:
        lines = [
            f"    {c.name} {c.duckdb_type}{'' if c.nullable else ' NOT NULL'}" for c in self.columns
        ]
        if self.primary_key and self.key_constraint:
            lines.append(f"    PRIMARY KEY ({', '.join(self.primary_key)})")
        body = ",\n".join(lines)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n{body}\n)"

    def empty_frame(self, exclude: Iterable[str] = ()) -> pl.DataFrame:
        return pl.DataFrame(schema=self.polars_schema(exclude))


RAW_MESSAGES = Table(
    "raw_messages",
    "Every message exactly as exported. Cleaning happens at build time, never here.",
    (
        Column("source", "str", "connector name, e.g. imessage", nullable=False),
        Column("source_id", "str", "stable id from the export (guid, Message-ID, …)", nullable=False),
        Column("account", "str", "which account or export the message came from"),
        Column("conversation_id", "str", "thread, chat or session id", nullable=False),
        Column("conversation_title", "str", "chat name or subject, when there is one"),
        Column("sent_at", "ts", "when it was sent, UTC; NULL when unknown"),
        Column("sender", "str", "handle, address or label of the author"),
        Column("sender_name", "str", "display name of the author"),
        Column("is_owner", "bool", "the corpus owner wrote it; NULL when it cannot be told"),
        Column("kind", "str", f"one of {', '.join(KINDS)}", nullable=False),
        Column("text", "str", "the text as exported, untouched"),
        Column("reply_to", "str", "source_id of the message this one answers"),
        Column("metadata", "json", "source-specific details (JSON object)"),
        Column("ingest_run_id", "str", "the run that landed the row", nullable=False),
    ),
    primary_key=("source", "source_id"),
    key_constraint=False,
)

INGEST_RUNS = Table(
    "ingest_runs",
    "One row per `etl ingest`, written in the same transaction as its rows.",
    (
        Column("run_id", "str", "", nullable=False),
        Column("source", "str", "", nullable=False),
        Column("source_version", "int", "version of the connector's parsing rules"),
        Column("schema_version", "int", ""),
        Column("paths", "str_list", "inputs read"),
        Column("file_sha256", "json", "sha256 of each input file, by path"),
        Column("options", "json", "connector options, secrets removed"),
        Column("started_at", "ts", ""),
        Column("finished_at", "ts", ""),
        Column("status", "str", "ok | failed"),
        Column("seen", "int", "rows read from the source"),
        Column("new", "int", "rows that were not in the warehouse yet"),
        Column("unchanged", "int", "rows already present, left as they were"),
        Column("quarantined", "int", "rows that could not be parsed"),
        Column("watermarks", "json", "position reached per stream, for the next run"),
        Column("notes", "str_list", "what the connector wants the user to know"),
    ),
    primary_key=("run_id",),
)

WATERMARKS = Table(
    "watermarks",
    "Where the next incremental run of a source starts, per input stream.",
    (
        Column("source", "str", "", nullable=False),
        Column("stream", "str", "an input: a database path, a session file, a table", nullable=False),
        Column("value", "json", "connector-defined position (JSON)", nullable=False),
        Column("run_id", "str", "the run that wrote it", nullable=False),
    ),
    primary_key=("source", "stream"),
)

QUARANTINE = Table(
    "quarantine",
    "Rows a connector could not parse, with the reason. Nothing is silently lost.",
    (
        Column("run_id", "str", "", nullable=False),
        Column("source", "str", "", nullable=False),
        Column("source_id", "str", "the row's id, when it has one"),
        Column("location", "str", "where in the input: file, line, ROWID", nullable=False),
        Column("reason", "str", "", nullable=False),
        Column("payload", "str", "the raw row (binary as base64)"),
    ),
)

BUILDS = Table(
    "builds",
    "One row per dataset version built.",
    (
        Column("version", "str", "", nullable=False),
        Column("built_at", "ts", ""),
        Column("config_sha256", "str", ""),
        Column("dataset_sha256", "str", "hash of the whole version (SHA256SUMS)"),
        Column("path", "str", "the version folder"),
        Column("examples", "int", ""),
        Column("dropped", "int", ""),
        Column("manifest", "json", ""),
        Column("status", "str", "pending while the version is being put in place, complete after; "
               "every command ignores a pending version and the next build of its name clears it"),
    ),
    primary_key=("version",),
)

BUILD_EXAMPLES = Table(
    "build_examples",
    "Every example of every version, traceable to its source messages.",
    (
        Column("version", "str", "", nullable=False),
        Column("example_id", "str", "", nullable=False),
        Column("split", "str", "train | valid | test", nullable=False),
        Column("source", "str", ""),
        Column("conversation_id", "str", ""),
        Column("message_ids", "str_list", "source_ids of the owner's reply"),
        Column("context_ids", "str_list", "source_ids of the context turns"),
        Column("sent_at", "ts", "when the reply was sent"),
        Column("prompt", "str", "context flattened, as in the DPO prompt"),
        Column("response", "str", "the owner's reply"),
        Column("trajectory", "json", "trajectory scalars and regime"),
        Column("regime", "str", ""),
        Column("dup_cluster", "str", "kept example of its duplicate cluster (itself for the first); NULL when alone"),
    ),
    primary_key=("version", "example_id"),
    key_constraint=False,  # unique by construction; the index would double the recording time
)

BUILD_DROPS = Table(
    "build_drops",
    "Every message or example a version left out, with the reason.",
    (
        Column("version", "str", "", nullable=False),
        Column("stage", "str", "the transform that dropped it", nullable=False),
        Column("source", "str", ""),
        Column("message_id", "str", "source_id (of the reply, for example-level drops)"),
        Column("reason", "str", "", nullable=False),
        Column("detail", "str", "e.g. the example it duplicates"),
        Column("example_id", "str", "the dropped example, for example-level drops"),
        Column("text", "str", "the dropped example's reply, cleaned and redacted"),
        Column("similarity", "float", "Jaccard with the kept reply it duplicates"),
    ),
)

BUILD_CUTS = Table(
    "build_cuts",
    "Every message a version kept but cut: quoted history, client boilerplate, list footers.",
    (
        Column("version", "str", "", nullable=False),
        Column("source", "str", ""),
        Column("message_id", "str", "source_id of the message"),
        Column("reason", "str", "the first cut, e.g. quote_header:reply, signature:mobile, footer:mailing_list", nullable=False),
        Column("reasons", "str", "every cut, comma-separated, in order"),
        Column("chars", "int", "characters cut from the message", nullable=False),
    ),
)

TRAIN_RUNS = Table(
    "train_runs",
    "Every `etl train` run: what was trained on what, and how it ended.",
    (
        Column("run_id", "str", "", nullable=False),
        Column("mode", "str", "sft | dpo"),
        Column("version", "str", ""),
        Column("dataset_sha256", "str", ""),
        Column("preset", "str", ""),
        Column("config", "json", "the resolved mlx-lm config"),
        Column("adapter_path", "str", ""),
        Column("started_at", "ts", ""),
        Column("finished_at", "ts", ""),
        Column("exit_status", "int", ""),
        Column("train_loss", "float", "last reported"),
        Column("val_loss", "float", "last reported"),
    ),
    primary_key=("run_id",),
)

REJECTED_ANSWERS = Table(
    "rejected_answers",
    "A base model's answers to a version's prompts, for DPO `rejected`.",
    (
        Column("prompt_sha256", "str", "", nullable=False),
        Column("model", "str", "", nullable=False),
        Column("params_sha256", "str", "hash of the generation parameters", nullable=False),
        Column("params", "json", ""),
        Column("answer", "str", "", nullable=False),
        Column("created_at", "ts", ""),
    ),
    primary_key=("prompt_sha256", "model", "params_sha256"),
)

DOCUMENTS = Table(
    "documents",
    "Long-form writing (books, essays, posts), one row per document as exported.",
    (
        Column("document_id", "str", "sha256 of title and paragraphs: the same text lands once", nullable=False),
        Column("format", "str", "txt | md | html | docx | epub | wordpress | substack | medium", nullable=False),
        Column("title", "str", ""),
        Column("author", "str", "who wrote it: the owner unless --author or [sources.prose] says otherwise"),
        Column("is_owner", "bool", "the corpus owner wrote it; only these are built"),
        Column("published_at", "ts", "when it was published or created, UTC; NULL when unknown"),
        Column("location", "str", "file, and the member or item inside it", nullable=False),
        Column("url", "str", ""),
        Column("paragraphs", "int", ""),
        Column("words", "int", "words in all its paragraphs, as exported"),
        Column("metadata", "json", "what else the format says: the author it names, language, status, …"),
        Column("ingest_run_id", "str", "the run that landed it", nullable=False),
    ),
    primary_key=("document_id",),
)

PARAGRAPHS = Table(
    "paragraphs",
    "The paragraphs of each document in reading order, untouched.",
    (
        Column("document_id", "str", "", nullable=False),
        Column("position", "int", "0-based reading order in the document", nullable=False),
        Column("kind", "str", "text | heading | caption | footnote | list | quote | preformatted", nullable=False),
        Column("role", "str", "what the format calls it: epub:type, ARIA role, Word style, class names"),
        Column("text", "str", "", nullable=False),
        Column("ingest_run_id", "str", "", nullable=False),
    ),
    primary_key=("document_id", "position"),
)

PROSE_CHUNKS = Table(
    "prose_chunks",
    "The chunks of each prose version: whole paragraphs of one document, up to a token target.",
    (
        Column("version", "str", "", nullable=False),
        Column("chunk_id", "str", "sha256 of the document id and the chunk's text", nullable=False),
        Column("document_id", "str", "", nullable=False),
        Column("split", "str", "train | valid | test (by document)", nullable=False),
        Column("first_position", "int", "position of its first paragraph"),
        Column("last_position", "int", "position of its last paragraph"),
        Column("paragraphs", "int", ""),
        Column("words", "int", ""),
        Column("tokens", "int", "in the build's tokenizer, else words"),
        Column("text", "str", "the styled target: cleaned paragraphs joined by blank lines"),
        Column("kinds", "str_list", "the pair kinds emitted for it"),
    ),
    primary_key=("version", "chunk_id"),
)

NEUTRAL_REWRITES = Table(
    "neutral_rewrites",
    "A base model's plain rewrite of a chunk: the input of the `neutral` pairs.",
    (
        Column("chunk_sha256", "str", "", nullable=False),
        Column("model", "str", "", nullable=False),
        Column("params_sha256", "str", "hash of the generation parameters and instruction", nullable=False),
        Column("params", "json", ""),
        Column("rewrite", "str", "", nullable=False),
        Column("created_at", "ts", ""),
    ),
    primary_key=("chunk_sha256", "model", "params_sha256"),
)

PROSE_TABLES: tuple[Table, ...] = (DOCUMENTS, PARAGRAPHS, PROSE_CHUNKS, NEUTRAL_REWRITES)

TABLES: tuple[Table, ...] = (
    RAW_MESSAGES,
    INGEST_RUNS,
    WATERMARKS,
    QUARANTINE,
    BUILDS,
    BUILD_EXAMPLES,
    BUILD_DROPS,
    BUILD_CUTS,
    TRAIN_RUNS,
    REJECTED_ANSWERS,
    *PROSE_TABLES,
)


def raw_frame(rows: Iterable[Mapping[str, Any]] | Mapping[str, list]) -> pl.DataFrame:
    """Rows of a connector as a frame with exactly the raw schema (run id added on load)."""
    schema = RAW_MESSAGES.polars_schema(exclude=("ingest_run_id",))
    if isinstance(rows, Mapping):
        height = len(next(iter(rows.values()))) if rows else 0
        full = {name: rows.get(name, [None] * height) for name in schema}
        return pl.DataFrame(full, schema=schema)
    return pl.from_dicts(list(rows), schema=schema)
