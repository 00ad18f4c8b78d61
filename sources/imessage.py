"""iMessage: the Messages database of a Mac (`~/Library/Messages/chat.db`).

The database is opened read-only through SQLite itself, so a running Messages.app
(which keeps it open in WAL mode) is not disturbed. Everything that can be computed
in SQL is: the conversation, sender, UTC time, kind and the metadata JSON. Python
only decodes `attributedBody` (where current macOS keeps the text) and settles the
few rows that need it: attachment placeholders, edits and unsends.

Runs are incremental: the watermark is the highest message ROWID read, per database.
Messages edited or unsent after they were landed keep the version first landed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import polars as pl

from etl.schemas.records import canonical_json
from etl.schemas.tables import raw_frame
from etl.sources.base import Batch, Param, Quarantined, SourceContext, SourceError, source
from etl.sources.message_summary import SummaryError, parse_summary_info
from etl.sources.typedstream import DecodeError, decode_attributed_body

DEFAULT_DB = "~/Library/Messages/chat.db"
BATCH_ROWS = 50_000
# Hashing a multi-gigabyte live database would dominate the run; larger ones are
# identified by size and modification time instead.
HASH_AT_MOST_BYTES = 64 << 20

APPLE_EPOCH_UNIX_US = 978_307_200_000_000  # 2001-01-01T00:00:00Z in Unix microseconds
# `date` is seconds since 2001 up to macOS 10.12 and nanoseconds since; a year in
# nanoseconds is ~3e16 while seconds stay below ~1e10, so 1e15 separates them.
NANOSECONDS_ABOVE = 1_000_000_000_000_000

REACTION_TYPES = (2000, 3999)  # tapbacks added (2000–2006+) and removed (3000–3006+)
GROUP_CHAT_STYLE = 43
PLACEHOLDER = "\ufffc"  # where an attachment sits in the text
SQLITE_MAGIC = b"SQLite format 3\x00"

_NO_DB_HINT = "on a Mac it is ~/Library/Messages/chat.db and the terminal needs Full Disk Access"


@source(
    "imessage",
    version=1,
    help="Messages on a Mac: iMessage, SMS and RCS from chat.db (read-only).",
    params=(
        Param(
            "db",
            "Path of the Messages database (copy chat.db with its -wal file to read it elsewhere).",
            default=DEFAULT_DB,
            path=True,
        ),
    ),
    paths="none",
)
def read_imessage(ctx: SourceContext) -> Iterator[Batch]:
    path = Path(ctx.options.get("db") or DEFAULT_DB).expanduser()
    con = open_database(path)
    try:
        stream = str(path.resolve())
        _record_file(ctx, path)
        reader = _MessageReader(con, path)
        previous = ctx.previous_watermark(stream) or {}
        last_rowid = int(previous.get("rowid", 0))
        for rows in reader.batches(after_rowid=last_rowid):
            last_rowid = rows[-1][0]
            frame, quarantined = _to_batch(rows, path)
            ctx.progress(len(rows))
            yield Batch(
                rows=frame,
                quarantined=quarantined,
                stream=stream,
                watermark={"rowid": last_rowid},
                seen=len(rows),
            )
        if reader.replaced_text:
            ctx.note(
                f"{reader.replaced_text} message(s) in {path} had text that is not valid UTF-8; "
                "the undecodable bytes became U+FFFD"
            )
    finally:
        con.close()


# ----------------------------------------------------------------------------- opening


def open_database(path: Path) -> sqlite3.Connection:
    """A read-only connection to a Messages database, or a one-line SourceError."""
    if not path.exists():
        raise SourceError(f"no iMessage database at {path}; {_NO_DB_HINT}")
    if path.is_dir():
        raise SourceError(f"{path} is a folder; pass the database file inside it, chat.db")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(len(SQLITE_MAGIC))
    except PermissionError:
        raise SourceError(
            f"cannot read {path}: permission denied; on a Mac the terminal needs Full Disk Access "
            "(System Settings > Privacy & Security)"
        ) from None
    if magic != SQLITE_MAGIC:
        raise SourceError(f"{path} is not a SQLite database; expected the Messages database chat.db")
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        tables = {
            name
            for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
        }
    except sqlite3.DatabaseError as exc:
        raise SourceError(_read_error(path, exc)) from None
    if "message" not in tables:
        con.close()
        raise SourceError(
            f"{path} is a SQLite database without a message table, not a Messages database; "
            f"expected {DEFAULT_DB}"
        )
    return con


def _read_error(path: Path, exc: sqlite3.DatabaseError) -> str:
    reason = " ".join(str(exc).split())
    if "unable to open" in reason:
        return (
            f"cannot open {path} read-only ({reason}); on a Mac the terminal needs Full Disk Access, "
            "and a copy needs a writable folder next to it"
        )
    if "locked" in reason or "busy" in reason:
        return f"{path} is locked by another program ({reason}); quit Messages and try again"
    return (
        f"cannot read {path}: {reason}; the database looks damaged: copy it again from the Mac "
        "(with chat.db-wal), or repair a copy with `sqlite3 chat.db .recover`"
    )


def _record_file(ctx: SourceContext, path: Path) -> None:
    stat = path.stat()
    if stat.st_size <= HASH_AT_MOST_BYTES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        ctx.files[str(path)] = digest.hexdigest()
        return
    modified = datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat(timespec="seconds")
    ctx.note(f"{path}: {stat.st_size} bytes, modified {modified} (not hashed: too large to hash quickly)")


# ----------------------------------------------------------------------------- reading


def apple_time_us_sql(column: str) -> str:
    """SQL for a Messages date as Unix microseconds (UTC); NULL when 0 or missing.

    Nanosecond dates are truncated to the microsecond (Python and DuckDB keep no
    finer), so 725812199999986560 becomes 2024-01-01T14:29:59.999986Z, its honest value.
    """
    return (
        f"CASE WHEN {column} IS NULL OR {column} = 0 THEN NULL "
        f"WHEN abs({column}) > {NANOSECONDS_ABOVE} "
        f"THEN CAST({column} AS INTEGER) / 1000 + {APPLE_EPOCH_UNIX_US} "
        f"ELSE CAST(round({column} * 1000000) AS INTEGER) + {APPLE_EPOCH_UNIX_US} END"
    )


class _MessageReader:
    """The message query, built once for the columns this database has."""

    def __init__(self, con: sqlite3.Connection, path: Path):
        self.con = con
        self.path = path
        self.replaced_text = 0
        try:
            self.tables = {
                name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            self.columns = {row[1] for row in con.execute("PRAGMA table_info(message)")}
            self._load_chats()
            self.sql = self._message_sql()
        except sqlite3.DatabaseError as exc:
            raise SourceError(_read_error(path, exc)) from None

    def col(self, name: str) -> str:
        """`m.name`, or NULL where an older macOS has no such column."""
        return f"m.{name}" if name in self.columns else "NULL"

    def batches(self, after_rowid: int) -> Iterator[list[tuple]]:
        """Message rows in ROWID order, BATCH_ROWS at a time.

        One short query per batch: no read transaction stays open across the
        whole run, so Messages.app can keep checkpointing its WAL meanwhile.
        """
        while True:
            rows = self._fetch(after_rowid)
            if not rows:
                return
            yield rows
            after_rowid = rows[-1][0]

    def _fetch(self, after_rowid: int) -> list[tuple]:
        try:
            try:
                return self.con.execute(self.sql, (after_rowid, BATCH_ROWS)).fetchall()
            except sqlite3.OperationalError as exc:
                if "decode" not in str(exc):
                    raise
                # Some text is not valid UTF-8: read this batch leniently.
                self.con.text_factory = _lenient_text
                try:
                    rows = self.con.execute(self.sql, (after_rowid, BATCH_ROWS)).fetchall()
                finally:
                    self.con.text_factory = str
                self.replaced_text += sum(1 for row in rows if row[9] and "\ufffd" in row[9])
                return rows
        except sqlite3.DatabaseError as exc:
            raise SourceError(_read_error(self.path, exc)) from None

    def _load_chats(self) -> None:
        """Chats with their members, into a temp table the message query joins.

        TEMP lives outside the database file, so this works on a read-only connection.
        """
        self.con.execute(
            "CREATE TEMP TABLE etl_chat (chat_id INTEGER PRIMARY KEY, guid TEXT, title TEXT, "
            "is_group INTEGER, members TEXT)"
        )
        if "chat" not in self.tables:
            return
        chat_columns = {row[1] for row in self.con.execute("PRAGMA table_info(chat)")}
        title = "display_name" if "display_name" in chat_columns else "NULL"
        style = "style" if "style" in chat_columns else "NULL"
        members: dict[int, list[str]] = {}
        if {"chat_handle_join", "handle"} <= self.tables:
            for chat_id, handle in self.con.execute(
                "SELECT j.chat_id, h.id FROM chat_handle_join j JOIN handle h ON h.ROWID = j.handle_id"
            ):
                if handle is not None:
                    members.setdefault(chat_id, []).append(handle)
        rows = []
        for chat_id, guid, name, chat_style in self.con.execute(
            f"SELECT ROWID, guid, {title}, {style} FROM chat"
        ):
            people = sorted(set(members.get(chat_id, ())))
            is_group = chat_style == GROUP_CHAT_STYLE or len(people) > 1
            rows.append((chat_id, guid, name or None, int(is_group), canonical_json(people) if is_group else None))
        self.con.executemany("INSERT INTO etl_chat VALUES (?, ?, ?, ?, ?)", rows)

    def _chat_id_sql(self) -> str:
        if "chat_message_join" not in self.tables:
            return "NULL"
        if not self._indexed_by_message_id("chat_message_join"):
            # Without an index a per-message lookup would scan the join table each time.
            self.con.execute(
                "CREATE TEMP TABLE etl_message_chat AS "
                "SELECT message_id, MIN(chat_id) AS chat_id FROM chat_message_join GROUP BY message_id"
            )
            self.con.execute("CREATE INDEX temp.etl_message_chat_id ON etl_message_chat (message_id)")
            return "(SELECT chat_id FROM etl_message_chat WHERE message_id = m.ROWID)"
        # A message sits in one chat; when merged chats list it twice, the oldest wins.
        return "(SELECT MIN(chat_id) FROM chat_message_join WHERE message_id = m.ROWID)"

    def _indexed_by_message_id(self, table: str) -> bool:
        for index in self.con.execute(f"PRAGMA index_list({table})"):
            first = self.con.execute(f"PRAGMA index_info({index[1]})").fetchone()
            if first and first[2] == "message_id":
                return True
        return False

    def _attachments_sql(self) -> str:
        if "message_attachment_join" not in self.tables:
            return "0"
        count = "(SELECT COUNT(*) FROM message_attachment_join WHERE message_id = m.ROWID)"
        if "cache_has_attachments" in self.columns:
            return f"CASE WHEN m.cache_has_attachments THEN {count} ELSE 0 END"
        return count

    def _message_sql(self) -> str:
        col = self.col
        account = (
            f"COALESCE(NULLIF({col('destination_caller_id')}, ''), "
            f"CASE WHEN substr({col('account')}, 2, 1) = ':' THEN substr({col('account')}, 3) "
            f"ELSE NULLIF({col('account')}, '') END)"
        )
        has_handles = "handle" in self.tables
        handle_id = "h.id" if has_handles else "NULL"
        handle_join = "LEFT JOIN handle h ON h.ROWID = m.handle_id" if has_handles else ""
        reaction = f"{col('associated_message_type')} BETWEEN {REACTION_TYPES[0]} AND {REACTION_TYPES[1]}"
        system = f"COALESCE({col('item_type')}, 0) <> 0"
        kind = (
            f"CASE WHEN COALESCE({col('date_retracted')}, 0) > 0 THEN 'deleted' "
            f"WHEN {reaction} THEN 'reaction' WHEN {system} THEN 'system' ELSE 'text' END"
        )
        # Only edits and unsends make the summary plist worth parsing; `ec` and `rp`
        # are its keys for those (a binary plist stores a 2-byte key as 0x52 + bytes).
        summary = col("message_summary_info")
        summary_needed = (
            f"COALESCE({col('date_edited')}, 0) > 0 OR COALESCE({col('date_retracted')}, 0) > 0 "
            f"OR instr({summary}, X'526563') OR instr({summary}, X'527270')"
        )
        attachments = self._attachments_sql()
        metadata = _metadata_sql(
            base={
                "attachments": attachments,
                "edited": _json_bool(f"COALESCE({col('date_edited')}, 0) > 0"),
                "is_group": _json_bool("c.is_group"),
                "rowid": "m.ROWID",
                "service": col("service"),
            },
            group={"members": "json(c.members)"},
            by_condition=(
                (
                    reaction,
                    {
                        "associated_message_emoji": col("associated_message_emoji"),
                        "associated_message_guid": col("associated_message_guid"),
                        "associated_message_type": col("associated_message_type"),
                    },
                ),
                (
                    system,
                    {
                        "group_action_type": col("group_action_type"),
                        "group_title": col("group_title"),
                        "item_type": col("item_type"),
                    },
                ),
            ),
        )
        return f"""
            SELECT
                m.ROWID,
                m.guid,
                {account},
                COALESCE(c.guid, 'handle:' || {handle_id}, 'message:' || m.guid),
                c.title,
                {apple_time_us_sql(col('date'))},
                CASE WHEN {col('is_from_me')} THEN COALESCE({account}, 'me') ELSE {handle_id} END,
                {col('is_from_me')},
                {kind},
                {col('text')},
                {col('attributedBody')},
                NULLIF({col('thread_originator_guid')}, ''),
                {metadata},
                CASE WHEN {summary_needed} THEN {summary} END,
                {attachments}
            FROM message m
            {handle_join}
            LEFT JOIN etl_chat c ON c.chat_id = {self._chat_id_sql()}
            WHERE m.ROWID > ?
            ORDER BY m.ROWID
            LIMIT ?
        """


def _lenient_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _json_bool(condition: str) -> str:
    return f"json(CASE WHEN {condition} THEN 'true' ELSE 'false' END)"


def _json_object_sql(fields: dict[str, str]) -> str:
    """json_object with keys in sorted order: the same text canonical_json writes."""
    return "json_object(" + ", ".join(f"'{key}', {fields[key]}" for key in sorted(fields)) + ")"


def _metadata_sql(
    base: dict[str, str], group: dict[str, str], by_condition: tuple[tuple[str, dict[str, str]], ...]
) -> str:
    """One json_object per kind of row, so keys that do not apply are left out."""
    branches = []
    for condition, extra in (*by_condition, ("1", {})):
        with_group = _json_object_sql({**base, **extra, **group})
        without = _json_object_sql({**base, **extra})
        branches.append(
            f"WHEN {condition} THEN CASE WHEN c.is_group THEN {with_group} ELSE {without} END"
        )
    return "CASE " + " ".join(branches) + " END"


# ----------------------------------------------------------------------------- rows

_COLUMNS = (
    "rowid",
    "source_id",
    "account",
    "conversation_id",
    "conversation_title",
    "sent_at",
    "sender",
    "is_owner",
    "kind",
    "text",
    "body",
    "reply_to",
    "metadata",
    "summary",
    "attachments",
)


def _to_batch(rows: list[tuple], path: Path) -> tuple[pl.DataFrame, list[Quarantined]]:
    columns = dict(zip(_COLUMNS, (list(values) for values in zip(*rows))))
    texts, kinds, metadata = columns["text"], columns["kind"], columns["metadata"]
    bodies, summaries, attachments = columns["body"], columns["summary"], columns["attachments"]
    quarantined: list[Quarantined] = []
    drop: list[int] = []
    for i, body in enumerate(bodies):
        text = texts[i]
        notes: dict | None = None
        if body is not None:
            try:
                decoded = decode_attributed_body(body)
            except DecodeError as exc:
                if not text:
                    quarantined.append(_quarantine(path, rows[i], exc))
                    drop.append(i)
                    continue
                notes = {"attributed_body_error": str(exc)}
            else:
                if text is None or len(text) < len(decoded):
                    text = decoded
        if notes or summaries[i] is not None or not text or PLACEHOLDER in text:
            text, kinds[i], metadata[i] = _settle(
                text, kinds[i], metadata[i], summaries[i], attachments[i], notes
            )
        elif kinds[i] == "deleted":
            text = None
        texts[i] = text
    frame = _frame(columns)
    if drop:
        keep = pl.Series([True] * len(rows))
        keep[drop] = False
        frame = frame.filter(keep)
    return frame, quarantined


def _settle(
    text: str | None,
    kind: str,
    metadata: str,
    summary_blob: bytes | None,
    attachments: int,
    notes: dict | None,
) -> tuple[str | None, str, str]:
    """Kind, text and metadata of the rows plain SQL cannot settle."""
    extra: dict = dict(notes or {})
    if summary_blob is not None:
        try:
            summary = parse_summary_info(summary_blob)
        except SummaryError as exc:
            extra["message_summary_info_error"] = str(exc)
        else:
            if summary.edited:
                extra["edited"] = True
                extra["edit_count"] = summary.edit_count
                if not text:
                    text = summary.latest_text()
            if summary.deleted:
                kind = "deleted"
            elif summary.unsent_parts:
                extra["unsent_parts"] = list(summary.unsent_parts)
    if kind == "deleted":
        text = None
    elif kind == "text" and text and PLACEHOLDER in text:
        placeholders = text.count(PLACEHOLDER)
        text = text.replace(PLACEHOLDER, "")
        if not attachments:
            extra["attachments"] = placeholders
        if not text.strip():
            kind, text = "attachment", None
    elif kind == "text" and not text and attachments:
        kind, text = "attachment", None
    if extra:
        merged = json.loads(metadata)
        merged.update(extra)
        metadata = canonical_json(merged)
    return text, kind, metadata


def _quarantine(path: Path, row: tuple, exc: Exception) -> Quarantined:
    return Quarantined(
        location=f"{path} message ROWID {row[0]}",
        reason=f"attributedBody: {exc}",
        payload=base64.b64encode(row[10]).decode("ascii"),
        source_id=row[1],
    )


def _frame(columns: dict[str, list]) -> pl.DataFrame:
    return raw_frame(
        {
            "source": ["imessage"] * len(columns["source_id"]),
            "source_id": columns["source_id"],
            "account": columns["account"],
            "conversation_id": columns["conversation_id"],
            "conversation_title": columns["conversation_title"],
            "sent_at": pl.Series(columns["sent_at"], dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
            "sender": columns["sender"],
            "sender_name": pl.Series([None] * len(columns["source_id"]), dtype=pl.String),
            "is_owner": pl.Series(columns["is_owner"], dtype=pl.Int64).cast(pl.Boolean),
            "kind": columns["kind"],
            "text": columns["text"],
            "reply_to": columns["reply_to"],
            "metadata": columns["metadata"],
        }
    )
