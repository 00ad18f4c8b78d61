"""iMessage: the Messages database of a Mac (`~/Library/Messages/chat.db`).

The database is opened read-only through SQLite itself, so a running Messages.app
(which keeps it open in WAL mode) is not disturbed. Messages are read in ROWID
order, one short range query per batch, as Arrow columns (adbc-driver-sqlite; the
sqlite3 module reads any batch it cannot). SQL converts dates and packs each row's
yes/no facts into flags; Polars decodes `attributedBody` (where current macOS keeps
the text) in its common layout, picks the kind, joins chats and handles and writes
the metadata JSON column-wise. The only per-row Python work is the full typedstream
parser for the rare other layouts and settling the few rows with attachments, edits
or unsends.

Runs are incremental: the watermark is the highest message ROWID read, per database.
A message edited or unsent after it was landed keeps the version first landed.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from etl.schemas.records import canonical_json
from etl.schemas.tables import raw_frame
from etl.sources.base import Batch, Param, Quarantined, SourceContext, SourceError, source
from etl.sources.message_summary import SummaryError, parse_summary_info
from etl.sources.typedstream import (
    DecodeError,
    common_layout_texts,
    decode_attributed_body_full,
    join_around_attachments,
    message_runs,
)

DEFAULT_DB = "~/Library/Messages/chat.db"
BATCH_ROWS = 100_000  # about 1 GB at peak; half the batch is 15% slower
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
    read_ahead=True,
)
def read_imessage(ctx: SourceContext) -> Iterator[Batch]:
    path = Path(ctx.options.get("db") or DEFAULT_DB).expanduser()
    con = open_database(path)
    reader = None
    try:
        stream = str(path.resolve())
        ctx.record_file(path, hash_at_most=HASH_AT_MOST_BYTES)
        reader = MessageReader(con, path)
        previous = ctx.previous_watermark(stream)
        after = int(previous.get("rowid", 0)) if isinstance(previous, dict) else 0
        if after > reader.newest_rowid():
            ctx.note(
                f"{path} ends before message ROWID {after}, where the last run stopped: it was "
                "replaced or restored, so it is read again from the start (landed messages stay)"
            )
            after = 0
        for batch in reader.batches(after_rowid=after):
            batch.stream = stream
            yield batch
        if reader.replaced_text:
            ctx.note(
                f"{reader.replaced_text} message(s) in {path} had text that is not valid UTF-8; "
                "the undecodable bytes became U+FFFD"
            )
    finally:
        if reader is not None and reader.arrow is not None:
            reader.arrow.close()
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
        # Used by the read-ahead thread once the schema is known, never by two at once.
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        tables = _tables(con)
    except sqlite3.DatabaseError as exc:
        raise SourceError(_read_error(path, exc)) from None
    if "message" not in tables:
        con.close()
        raise SourceError(
            f"{path} is a SQLite database without a message table, not a Messages database; "
            f"expected {DEFAULT_DB}"
        )
    return con


def _tables(con: sqlite3.Connection) -> set[str]:
    return {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


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


# The columns of the message query and their Polars types, in order. The query is
# kept narrow (each column read costs on every message); what only a few rows need
# is fetched for those rows alone (`_details`).
_MESSAGE_COLUMNS: dict[str, pl.DataType] = {
    "rowid": pl.Int64,
    "guid": pl.String,
    "text": pl.String,
    "body": pl.Binary,
    "sent_at_us": pl.Int64,
    "handle_id": pl.Int64,
    "flags": pl.Int64,
    "reply_to": pl.String,
    "service": pl.String,
    "account": pl.String,
}
_TEXT = list(_MESSAGE_COLUMNS).index("text")
# Bits of `flags`, one per yes/no fact SQL reads from the row.
FROM_ME, EDITED, RETRACTED, REACTION, SYSTEM, HAS_HISTORY = (1 << bit for bit in range(6))
_NEEDS_DETAILS = EDITED | RETRACTED | REACTION | SYSTEM | HAS_HISTORY

_DETAILS = pl.Struct(
    {
        "associated_message_emoji": pl.String,
        "associated_message_guid": pl.String,
        "associated_message_type": pl.Int64,
        "group_action_type": pl.Int64,
        "group_title": pl.String,
        "item_type": pl.Int64,
        "other_handle": pl.String,
    }
)


class ArrowMessages:
    """The message query through adbc-driver-sqlite (optional), as Arrow columns."""

    def __init__(self, connection, cursor, sql: str):
        self.connection, self.cursor, self.sql = connection, cursor, sql

    @classmethod
    def open(cls, path: Path, sql: str) -> ArrowMessages | None:
        try:
            import adbc_driver_sqlite.dbapi as adbc
        except ImportError:
            return None
        try:
            connection = adbc.connect(f"{path.resolve().as_uri()}?mode=ro")
            cursor = connection.cursor()
            # A whole batch in one Arrow batch: the driver infers types from all its rows.
            cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(BATCH_ROWS)})
        except Exception:  # noqa: BLE001 - without it, the sqlite3 module reads everything
            return None
        return cls(connection, cursor, sql)

    def read(self, after_rowid: int) -> pl.DataFrame:
        """The next batch; raises when a column is not what `_MESSAGE_COLUMNS` says
        (text that is not UTF-8, above all), for the caller to read it another way."""
        return self.query(self.sql, (after_rowid, BATCH_ROWS), _MESSAGE_COLUMNS)

    def query(self, sql: str, params: tuple, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        self.cursor.execute(sql, params)
        table = pl.from_arrow(self.cursor.fetch_arrow_table())
        columns = []
        for (name, dtype), column in zip(schema.items(), table.get_columns()):
            if column.null_count() == len(column):
                column = pl.repeat(None, len(column), dtype=dtype, eager=True)
            elif column.dtype != dtype:
                column = column.cast(dtype)  # Binary to String checks the UTF-8
            columns.append(column.alias(name))
        return pl.DataFrame(columns)

    def close(self) -> None:
        self.cursor.close()
        self.connection.close()

class MessageReader:
    """Batches of raw rows from one Messages database, for the columns it has."""

    def __init__(self, con: sqlite3.Connection, path: Path):
        self.con = con
        self.path = path
        self.replaced_text = 0
        try:
            self.tables = _tables(con)
            self.columns = {row[1] for row in con.execute("PRAGMA table_info(message)")}
            self.handles = self._handles()
            self.chats = self._chats()
            self.sql = self._message_sql()
            self.arrow = ArrowMessages.open(path, self._message_sql(as_arrow=True))
            self.details_sql = self._details_sql()
        except sqlite3.DatabaseError as exc:
            raise SourceError(_read_error(path, exc)) from None

    def newest_rowid(self) -> int:
        return self._fetch("SELECT COALESCE(MAX(ROWID), 0) FROM message", ())[0][0]

    def batches(self, after_rowid: int) -> Iterator[Batch]:
        """Batches in ROWID order, each with its watermark.

        One short query per batch: no read transaction stays open across the
        whole run, so Messages.app can keep checkpointing its WAL meanwhile.
        """
        while True:
            data = self._message_frame(after_rowid)
            if not data.height:
                return
            first, last = data["rowid"][0], data["rowid"][-1]
            chats = self._fetch_links("chat_message_join", "MIN(chat_id)", first, last)
            attachments = self._fetch_links("message_attachment_join", "COUNT(*)", first, last)
            details = self._details(data.filter(pl.col("flags") & _NEEDS_DETAILS != 0)["rowid"].to_list())
            frame, quarantined = self._shape(data, chats, attachments, details)
            after_rowid = last
            yield Batch(rows=frame, quarantined=quarantined, watermark={"rowid": last}, seen=data.height)

    def _message_frame(self, after_rowid: int) -> pl.DataFrame:
        """The next batch of message rows, with `_MESSAGE_COLUMNS`.

        Read as Arrow columns when adbc-driver-sqlite is installed: building a Python
        tuple per row is most of what reading costs. Any batch it cannot give exactly
        (text that is not UTF-8, a column of an unexpected type) is read again
        through the standard sqlite3 module, which settles those rows one by one.
        """
        if self.arrow is not None:
            try:
                return self.arrow.read(after_rowid)
            except Exception:  # noqa: BLE001 - the sqlite3 path below reads it, or says what is wrong
                pass
        rows = self._fetch(self.sql, (after_rowid, BATCH_ROWS))
        return pl.DataFrame(rows, schema=_MESSAGE_COLUMNS, orient="row")

    # -- queries

    def _fetch(self, sql: str, params: tuple) -> list[tuple]:
        try:
            try:
                return self.con.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "decode" not in str(exc):
                    raise
                # Some text is not valid UTF-8: read this batch leniently.
                self.con.text_factory = _lenient_text
                try:
                    rows = self.con.execute(sql, params).fetchall()
                finally:
                    self.con.text_factory = str
                self.replaced_text += sum(1 for row in rows if "\ufffd" in (row[_TEXT] or ""))
                return rows
        except sqlite3.DatabaseError as exc:
            raise SourceError(_read_error(self.path, exc)) from None

    def _fetch_links(self, table: str, aggregate: str, first: int, last: int) -> pl.DataFrame:
        """message ROWID -> an aggregate over a join table, for one batch's range."""
        schema = {"rowid": pl.Int64, "value": pl.Int64}
        if table not in self.tables:
            return pl.DataFrame(schema=schema)
        sql = (
            f"SELECT CAST(message_id AS INTEGER), CAST({aggregate} AS INTEGER) FROM {table} "
            "WHERE message_id BETWEEN ? AND ? GROUP BY message_id"
        )
        if self.arrow is not None:
            try:
                return self.arrow.query(sql, (first, last), schema)
            except Exception:  # noqa: BLE001 - read again below, with sqlite3's own errors
                pass
        return pl.DataFrame(self._fetch(sql, (first, last)), schema=schema, orient="row")

    def _details(self, rowids: list[int]) -> dict[int, tuple[str | None, bytes | None]]:
        """ROWID -> (reaction/system columns as JSON, summary plist) for the rows that have them."""
        if not rowids:
            return {}
        rows = self._fetch(self.details_sql, (json.dumps(rowids),))
        return {rowid: (details, summary) for rowid, details, summary in rows}

    def col(self, name: str) -> str:
        """`m.name`, or NULL where an older macOS has no such column."""
        return f"m.{name}" if name in self.columns else "NULL"

    def _message_sql(self, as_arrow: bool = False) -> str:
        col = self.col
        flags = {
            FROM_ME: f"COALESCE({col('is_from_me')}, 0) <> 0",
            EDITED: f"COALESCE({col('date_edited')}, 0) > 0",
            RETRACTED: f"COALESCE({col('date_retracted')}, 0) > 0",
            REACTION: f"COALESCE({col('associated_message_type')} BETWEEN {REACTION_TYPES[0]} "
            f"AND {REACTION_TYPES[1]}, 0)",
            SYSTEM: f"COALESCE({col('item_type')}, 0) <> 0",
            HAS_HISTORY: self._history_sql(),
        }
        expressions = {
            "rowid": "m.ROWID",
            "guid": "m.guid",
            "text": col("text"),
            "body": col("attributedBody"),
            "sent_at_us": apple_time_us_sql(col("date")),
            "handle_id": col("handle_id"),
            "flags": " | ".join(f"(({condition}) * {bit})" for bit, condition in flags.items()),
            "reply_to": f"NULLIF({col('thread_originator_guid')}, '')",
            "service": col("service"),
            "account": f"COALESCE(NULLIF({col('destination_caller_id')}, ''), {col('account')})",
        }
        if as_arrow:
            # One storage class per column, so the Arrow reader's type inference is exact.
            storage = {pl.String: "BLOB", pl.Binary: "BLOB", pl.Int64: "INTEGER"}
            expressions = {
                name: f"CAST({expressions[name]} AS {storage[dtype]})" for name, dtype in _MESSAGE_COLUMNS.items()
            }
        select = ",\n                ".join(expressions[name] for name in _MESSAGE_COLUMNS)
        return f"""
            SELECT
                {select}
            FROM message m
            WHERE m.ROWID > ?
            ORDER BY m.ROWID
            LIMIT ?
        """

    def _history_sql(self) -> str:
        """True when message_summary_info holds edits or unsends worth parsing.

        Most rows carry a summary with bookkeeping keys only; `ec` (edits) and `rp`
        (unsent parts) are the keys that matter, and a binary plist stores a 2-byte
        key as 0x52 followed by its bytes.
        """
        summary = self.col("message_summary_info")
        return f"COALESCE(instr({summary}, X'526563') OR instr({summary}, X'527270'), 0)"

    def _details_sql(self) -> str:
        col = self.col
        worth_parsing = (
            f"COALESCE({col('date_edited')}, 0) > 0 OR COALESCE({col('date_retracted')}, 0) > 0 "
            f"OR {self._history_sql()}"
        )
        other_handle = "NULL"  # who joined or left, for membership changes
        if "handle" in self.tables:
            other_handle = f"(SELECT id FROM handle WHERE ROWID = {col('other_handle')})"
        details = _json_object_sql(
            {
                "associated_message_emoji": col("associated_message_emoji"),
                "associated_message_guid": col("associated_message_guid"),
                "associated_message_type": col("associated_message_type"),
                "group_action_type": col("group_action_type"),
                "group_title": col("group_title"),
                "item_type": col("item_type"),
                "other_handle": other_handle,
            }
        )
        return (
            f"SELECT m.ROWID, {details}, CASE WHEN {worth_parsing} THEN {col('message_summary_info')} END "
            "FROM message m WHERE m.ROWID IN (SELECT value FROM json_each(?))"
        )

    def _handles(self) -> pl.DataFrame:
        rows = []
        if "handle" in self.tables:
            rows = self.con.execute("SELECT ROWID, id FROM handle").fetchall()
        return pl.DataFrame(rows, schema={"handle_id": pl.Int64, "handle": pl.String}, orient="row")

    def _chats(self) -> pl.DataFrame:
        """Every chat with its guid, title, and members when it is a group."""
        schema = {
            "chat_id": pl.Int64,
            "chat_guid": pl.String,
            "conversation_title": pl.String,
            "is_group": pl.Boolean,
            "members": pl.List(pl.String),
        }
        if "chat" not in self.tables:
            return pl.DataFrame(schema=schema)
        chat_columns = {row[1] for row in self.con.execute("PRAGMA table_info(chat)")}
        title = "display_name" if "display_name" in chat_columns else "NULL"
        style = "style" if "style" in chat_columns else "NULL"
        members: dict[int, set[str]] = {}
        if {"chat_handle_join", "handle"} <= self.tables:
            for chat_id, handle in self.con.execute(
                "SELECT j.chat_id, h.id FROM chat_handle_join j JOIN handle h ON h.ROWID = j.handle_id"
            ):
                if handle is not None:
                    members.setdefault(chat_id, set()).add(handle)
        rows = []
        for chat_id, guid, name, chat_style in self.con.execute(
            f"SELECT ROWID, guid, {title}, {style} FROM chat"
        ):
            people = sorted(members.get(chat_id, ()))
            is_group = chat_style == GROUP_CHAT_STYLE or len(people) > 1
            rows.append((chat_id, guid, name or None, is_group, people if is_group else None))
        return pl.DataFrame(rows, schema=schema, orient="row")

    # -- rows

    def _shape(
        self,
        data: pl.DataFrame,
        chats: pl.DataFrame,
        attachments: pl.DataFrame,
        details: dict[int, tuple[str | None, bytes | None]],
    ) -> tuple[pl.DataFrame, list[Quarantined]]:
        """Raw rows of one batch, plus the rows whose text could not be decoded."""
        # Text from attributedBody where it is longer than `text` (current macOS leaves
        # `text` empty): the common layout column-wise, the rest by the full parser.
        decoded = common_layout_texts(data["body"])
        text = data["text"]
        longer = decoded.is_not_null() & (text.is_null() | (text.str.len_chars() < decoded.str.len_chars()))
        undecoded = set((data["body"].is_not_null() & decoded.is_null()).arg_true().to_list())
        bodies = data.select("rowid", "guid", "body")  # for the rare full parse
        data = data.drop("body").with_columns(text=pl.when(longer).then(decoded).otherwise(text))
        rowids = data["rowid"].to_list() if details else []
        flags = pl.col("flags")
        data = data.with_columns(
            kind=pl.when(flags & RETRACTED != 0)
            .then(pl.lit("deleted"))
            .when(flags & REACTION != 0)
            .then(pl.lit("reaction"))
            .when(flags & SYSTEM != 0)
            .then(pl.lit("system"))
            .otherwise(pl.lit("text")),
            details=pl.Series([details[r][0] if r in details else None for r in rowids], dtype=pl.String)
            if details
            else pl.lit(None, dtype=pl.String),
        )
        data = data.join(chats.rename({"value": "chat_id"}), on="rowid", how="left", maintain_order="left")
        data = data.join(
            attachments.rename({"value": "attachments"}), on="rowid", how="left", maintain_order="left"
        ).with_columns(pl.col("attachments").fill_null(0))
        # The rows plain column operations cannot settle go through Python one by one.
        text = pl.col("text")
        unusual = data.select(
            (flags & (EDITED | RETRACTED | HAS_HISTORY) != 0)
            | text.is_null()
            | (text == "")
            | text.str.contains(PLACEHOLDER, literal=True)
        ).to_series()
        indices = sorted(set(unusual.arg_true().to_list()) | undecoded)
        extras: dict[int, dict] = {}
        quarantined: list[Quarantined] = []
        if indices:
            data, extras, quarantined = self._settle_rows(data, bodies, indices, undecoded, details)
        frame = self._frame(data)
        if extras:
            frame = _merge_metadata(frame, extras)
        if quarantined:
            frame = frame.filter(pl.col("kind") != "quarantined")
        return frame, quarantined

    def _settle_rows(
        self,
        data: pl.DataFrame,
        bodies: pl.DataFrame,
        indices: list[int],
        undecoded: set[int],
        details: dict[int, tuple[str | None, bytes | None]],
    ) -> tuple[pl.DataFrame, dict[int, dict], list[Quarantined]]:
        picked = data[indices].select("text", "kind", "attachments").rows()
        originals = bodies[indices].rows()
        new_texts, new_kinds = [], []
        extras: dict[int, dict] = {}
        quarantined: list[Quarantined] = []
        for i, (text, kind, attachments), (rowid, guid, body) in zip(indices, picked, originals):
            extra = {}
            if i in undecoded:
                try:
                    decoded = decode_attributed_body_full(body)
                except DecodeError as exc:
                    if not text:
                        quarantined.append(self._quarantine(rowid, guid, body, exc))
                        new_texts.append(None)
                        new_kinds.append("quarantined")
                        continue
                    extra["attributed_body_error"] = str(exc)
                else:
                    if text is None or len(text) < len(decoded):
                        text = decoded
            summary = details.get(rowid, (None, None))[1]
            runs = message_runs(body) if body and text and PLACEHOLDER in text else None
            text, kind, settled = _settle(text, kind, summary, attachments, runs)
            extra.update(settled)
            if extra:
                extras[i] = extra
            new_texts.append(text)
            new_kinds.append(kind)
        data = data.with_columns(
            data["text"].scatter(indices, pl.Series(new_texts, dtype=pl.String)),
            data["kind"].scatter(indices, pl.Series(new_kinds, dtype=pl.String)),
        )
        return data, extras, quarantined

    def _quarantine(self, rowid: int, guid: str, body: bytes, exc: Exception) -> Quarantined:
        return Quarantined(
            location=f"{self.path} message ROWID {rowid}",
            reason=f"attributedBody: {exc}",
            payload=base64.b64encode(body).decode("ascii"),
            source_id=guid,
        )

    def _frame(self, data: pl.DataFrame) -> pl.DataFrame:
        data = (
            data.join(self.chats, on="chat_id", how="left", maintain_order="left")
            .join(self.handles, on="handle_id", how="left", maintain_order="left")
            .with_columns(pl.col("details").str.json_decode(_DETAILS))
            .unnest("details")
        )
        from_me = pl.col("flags") & FROM_ME != 0
        is_owner = from_me if "is_from_me" in self.columns else pl.lit(None, dtype=pl.Boolean)
        # `account` is "E:name@…" or "P:+1…" when destination_caller_id is missing.
        account = pl.col("account").str.replace(r"^[A-Za-z]:", "")
        account = pl.when(account != "").then(account)
        return raw_frame(
            data.with_columns(account=account)
            .select(
                source=pl.lit("imessage"),
                source_id=pl.col("guid"),
                account=pl.col("account"),
                conversation_id=pl.coalesce(
                    pl.col("chat_guid"),
                    pl.lit("handle:") + pl.col("handle"),
                    pl.lit("message:") + pl.col("guid"),
                ),
                conversation_title=pl.col("conversation_title"),
                sent_at=pl.col("sent_at_us").cast(pl.Datetime("us", "UTC")),
                sender=pl.when(from_me)
                .then(pl.coalesce(pl.col("account"), pl.lit("me")))
                .otherwise(pl.col("handle")),
                sender_name=pl.lit(None, dtype=pl.String),
                is_owner=is_owner,
                kind=pl.col("kind"),
                text=pl.col("text"),
                reply_to=pl.col("reply_to"),
            )
            .with_columns(metadata=_metadata(data))
            .to_dict(as_series=True)
        )


def _json_object_sql(fields: dict[str, str]) -> str:
    return "json_object(" + ", ".join(f"'{key}', {value}" for key, value in fields.items()) + ")"


def _lenient_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# ----------------------------------------------------------------------------- metadata

# Keys every row has, and the keys of some rows only. The JSON is written with
# sorted keys and no spaces: the same text `canonical_json` gives.
_BASE_KEYS = {
    "attachments": pl.col("attachments"),
    "edited": pl.col("flags") & EDITED != 0,
    "is_group": pl.col("is_group").fill_null(False),
    "rowid": pl.col("rowid"),
    "service": pl.col("service"),
}
_GROUP_KEYS = {"members": pl.col("members")}  # handles of the other members
_REACTION_KEYS = {
    "associated_message_emoji": pl.col("associated_message_emoji"),
    "associated_message_guid": pl.col("associated_message_guid"),
    "associated_message_type": pl.col("associated_message_type"),
}
_SYSTEM_KEYS = {  # renames, people added or removed
    "group_action_type": pl.col("group_action_type"),
    "group_title": pl.col("group_title"),
    "item_type": pl.col("item_type"),
    "other_handle": pl.col("other_handle"),  # who joined or left
}


def _json_object(keys: dict[str, pl.Expr]) -> pl.Expr:
    return pl.struct([keys[name].alias(name) for name in sorted(keys)]).struct.json_encode()


def _metadata(data: pl.DataFrame) -> pl.Series:
    """The metadata JSON of every row: each kind of row is encoded with its own keys."""
    is_reaction = pl.col("associated_message_type").is_between(*REACTION_TYPES).fill_null(False)
    is_system = pl.col("item_type").fill_null(0) != 0
    is_group = pl.col("is_group").fill_null(False)
    tagged = data.with_row_index("position").with_columns(
        shape=pl.when(is_reaction).then(0).when(is_system).then(2).otherwise(4) + is_group.cast(pl.Int32)
    )
    parts = []
    for (shape,), rows in tagged.partition_by("shape", as_dict=True).items():
        keys = {**_BASE_KEYS, **(_REACTION_KEYS, _SYSTEM_KEYS, {})[shape // 2]}
        if shape % 2:
            keys.update(_GROUP_KEYS)
        parts.append(rows.select("position", metadata=_json_object(keys)))
    return pl.concat(parts).sort("position")["metadata"]


def _merge_metadata(frame: pl.DataFrame, extras: dict[int, dict]) -> pl.DataFrame:
    """Add the keys only a few rows carry (edit counts, decode errors, …)."""
    metadata = frame["metadata"]
    indices = sorted(extras)
    values = [canonical_json({**json.loads(metadata[i]), **extras[i]}) for i in indices]
    return frame.with_columns(metadata.scatter(indices, values))


# ----------------------------------------------------------------------------- settling


def _settle(
    text: str | None, kind: str, summary_blob: bytes | None, attachments: int, runs: list | None = None
) -> tuple[str | None, str, dict]:
    """Text, kind and extra metadata of the rows plain SQL cannot settle.

    Attachment placeholders are removed from typed text, the text either side kept
    apart (a newline between separate bubbles, else a space: `runs`, the
    attributedBody's runs, tell which); a message that is only placeholders is an
    `attachment`. An edited message keeps its latest text
    (Messages rewrites the row; the summary keeps the history); a message unsent
    as a whole is `deleted` and keeps no text.
    """
    extra: dict = {}
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
        return None, kind, extra
    if kind == "text" and text and PLACEHOLDER in text:
        placeholders = text.count(PLACEHOLDER)
        text = join_around_attachments(text, runs)
        if not attachments:
            extra["attachments"] = placeholders
        if not text.strip():
            kind, text = "attachment", None
    elif kind == "text" and not text and attachments:
        kind, text = "attachment", None
    return text, kind, extra
