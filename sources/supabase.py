"""Supabase / PostgreSQL: a table of chat turns ("memory turns") in a live database.

One row per turn: an id, a session id, a role (user / assistant / system / tool),
the content and `created_at`. Column names differ between apps, so each can be
renamed in corpus.toml (`[sources.supabase] columns = { conversation = "chat_id" }`).
The human's role is the owner's.

The table is read in one read-only transaction through a server-side cursor,
`--batch-size` rows per round trip, so memory stays flat whatever its size.

Traps:
- The address carries the password. It never reaches a message, a note, the run
  record or the watermark's stream name (user, host, port, database and table only),
  and every error from the driver is scrubbed of it before it is shown.
- Supabase refuses unencrypted connections: `sslmode=require` is added for any host
  that is not local, unless the address or PGSSLMODE says otherwise.
- Runs are incremental by a keyset on (created_at, id), not created_at alone: a bulk
  insert gives thousands of rows the same `now()`, and a bare timestamp cursor would
  lose or repeat them at a run boundary.
- A turn being written while we read (its transaction began before our snapshot and
  commits after) carries a created_at older than rows already read, and a keyset
  would step over it for good: rows newer than `--settle-seconds` wait for the next run.
- Rows without created_at cannot be placed in that order: they land with no time and
  are read again on every run (the loader keeps the first copy).
- `timestamp without time zone` is taken as UTC.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson
import polars as pl

from etl.schemas.records import canonical_json
from etl.schemas.tables import raw_frame
from etl.sources.base import Batch, Param, Quarantined, SourceContext, SourceError, source

DEFAULT_TABLE = "memory_turns"
BATCH_ROWS = 5_000
SETTLE_SECONDS = 60
CONNECT_TIMEOUT_SECONDS = 10
LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}

# Which column holds what: the first name the table has wins, unless corpus.toml names one.
COLUMN_CANDIDATES: dict[str, tuple[str, ...]] = {
    "id": ("id",),
    "conversation": ("session_id", "conversation_id"),
    "role": ("role",),
    "content": ("content",),
    "created_at": ("created_at",),
    "metadata": ("metadata",),  # optional: kept in the row's metadata when present
}
REQUIRED = ("id", "conversation", "role", "content", "created_at")
TIMESTAMP_TYPES = {"timestamp with time zone", "timestamp without time zone"}
JSON_TYPES = {"json", "jsonb"}

OWNER_ROLES = ("user", "human")
KIND_OF_ROLE = {
    "assistant": "text",
    "ai": "text",
    "bot": "text",
    "model": "text",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
}

_DSN_HELP = "postgresql://USER:PASSWORD@HOST:5432/DBNAME (Supabase: Connect → Connection string)"
_CONFIG_HINT = "name it in corpus.toml: [sources.supabase] columns = {{ {field} = \"...\" }}"


@source(
    "supabase",
    version=1,
    help="Chat turns in a Supabase or PostgreSQL table (memory_turns), read-only and incremental.",
    params=(
        Param("dsn", f"Database address, {_DSN_HELP}.", secret=True, envvar="SUPABASE_DB_URL"),
        Param("table", "Table (or schema.table) holding the turns.", default=DEFAULT_TABLE),
        Param("batch_size", "Rows fetched per round trip and landed per batch.", default=BATCH_ROWS),
        Param(
            "settle_seconds",
            "Leave rows newer than this for the next run, so a turn still being written is not skipped.",
            default=SETTLE_SECONDS,
        ),
    ),
    paths="none",
)
def read_supabase(ctx: SourceContext) -> Iterator[Batch]:
    try:
        import psycopg
        from psycopg.types.json import set_json_loads
    except ImportError:
        raise SourceError("reading PostgreSQL needs psycopg: pip install 'psycopg[binary]'") from None

    dsn = Dsn.parse(ctx.options.get("dsn"))
    batch_size = _positive_int(ctx.options, "batch_size", BATCH_ROWS)
    settle = _positive_int(ctx.options, "settle_seconds", SETTLE_SECONDS, allow_zero=True)
    try:
        with connect(dsn) as conn, conn.transaction():
            set_json_loads(orjson.loads, conn)  # json/jsonb columns, several times faster
            conn.execute("SET LOCAL TIME ZONE 'UTC'")
            table = find_table(conn, dsn, str(ctx.options.get("table") or DEFAULT_TABLE))
            reader = TurnReader(conn, dsn, table, ctx.options, ctx.owner)
            yield from reader.batches(ctx, batch_size, settle)
    except psycopg.Error as error:
        raise SourceError(dsn.explain(error)) from None


# ----------------------------------------------------------------------------- the address


@dataclass(frozen=True)
class Dsn:
    """A connection string made safe to use, with a password-free name for messages."""

    conninfo: str  # what libpq gets: sslmode and connect_timeout added
    address: str  # postgresql://user@host:port/dbname, never the password
    password: str | None

    @classmethod
    def parse(cls, dsn: str | None) -> Dsn:
        from psycopg import conninfo as pgconninfo

        if not dsn or not dsn.strip():
            raise SourceError(f"no database address: pass --dsn {_DSN_HELP}, or set SUPABASE_DB_URL")
        try:
            params = pgconninfo.conninfo_to_dict(dsn.strip())
        except Exception:  # noqa: BLE001 (the driver's message quotes the whole string, password included)
            raise SourceError(
                f"the database address (--dsn or SUPABASE_DB_URL) is not a PostgreSQL URL or "
                f"key=value string; expected {_DSN_HELP}"
            ) from None
        params = {k: str(v) for k, v in params.items() if v is not None}
        password = params.get("password") or None
        if "sslmode" not in params and not os.environ.get("PGSSLMODE") and not is_local(params.get("host", "")):
            params["sslmode"] = "require"
        params.setdefault("connect_timeout", str(CONNECT_TIMEOUT_SECONDS))
        return cls(pgconninfo.make_conninfo(**params), address_of(params), password)

    def scrub(self, text: str) -> str:
        """`text` without the password, in any spelling it may have in the address."""
        if self.password:
            for spelling in {self.password, quote(self.password, safe=""), quote(self.password)}:
                text = text.replace(spelling, "***")
        return text

    def explain(self, error: Exception) -> str:
        """One line for a driver error, naming what to fix; never the password."""
        said = self.scrub(_one_line(str(error)))
        said = re.sub(r"^connection failed: ", "", said)
        said = re.sub(r'connection to server (at|on) "[^"]*"(, port \d+)? failed: ', "", said)
        said = re.sub(r"\bFATAL: +", "", said)
        lowered = said.lower()
        if "password authentication failed" in lowered or "no password supplied" in lowered:
            return f"cannot connect to {self.address}: {said}; check the password in --dsn or SUPABASE_DB_URL"
        if "connection refused" in lowered:
            return (
                f"cannot connect to {self.address}: connection refused; check the host and port "
                "and that the server is running"
            )
        if "timeout expired" in lowered or "timed out" in lowered:
            return (
                f"cannot connect to {self.address}: no answer within {CONNECT_TIMEOUT_SECONDS} s; "
                "check the host and port, and that this network can reach it"
            )
        if "could not translate host name" in lowered or "name or service not known" in lowered:
            return f"cannot connect to {self.address}: unknown host; check the host name in the address"
        if "server does not support ssl" in lowered:
            return (
                f"cannot connect to {self.address}: the server does not offer TLS, and it is required for a "
                "host that is not local; add ?sslmode=disable to the address only on a network you trust"
            )
        if "permission denied" in lowered:
            return f"{self.address}: {said}; the user in the address needs SELECT on the table"
        return f"{self.address}: {said}"


def is_local(host: str) -> bool:
    """Loopback names and unix-socket folders; every host of a list must be local."""
    return all(h.strip() in LOCAL_HOSTS or h.strip().startswith("/") for h in host.split(","))


def address_of(params: dict[str, Any]) -> str:
    """postgresql://user@host:port/dbname from connection parameters; no password."""
    host = str(params.get("host") or params.get("hostaddr") or "")
    if ":" in host and "," not in host and not host.startswith("/"):
        host = f"[{host}]"  # IPv6
    user = f"{params['user']}@" if params.get("user") else ""
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{user}{host}{port}/{params.get('dbname') or ''}"


def connect(dsn: Dsn):
    import psycopg

    try:
        conn = psycopg.connect(dsn.conninfo, prepare_threshold=None)  # no prepared statements: poolers
    except psycopg.Error as error:
        raise SourceError(dsn.explain(error)) from None
    conn.read_only = True
    return conn


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _positive_int(options: dict[str, Any], name: str, default: int, allow_zero: bool = False) -> int:
    value = options.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0 or (number == 0 and not allow_zero):
        least = "0 or more" if allow_zero else "above 0"
        raise SourceError(f"--{name.replace('_', '-')} must be a whole number {least}, not {value!r}")
    return number


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Relation:
    schema: str
    name: str
    columns: dict[str, str]  # name -> type, in table order

    @property
    def label(self) -> str:
        """How the table is named in source ids and messages: bare when in `public`."""
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"

    def sql(self):
        from psycopg import sql

        return sql.Identifier(self.schema, self.name)


def find_table(conn, dsn: Dsn, wanted: str) -> Relation:
    from psycopg import sql

    parts = wanted.strip().split(".")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise SourceError(f"--table {wanted!r}: expected a table name or schema.table, e.g. {DEFAULT_TABLE}")
    found = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
        [sql.Identifier(*parts).as_string(conn)],
    ).fetchone()
    if found is None:
        schemas = "table_schema = %s" if len(parts) == 2 else "table_schema = ANY (current_schemas(false))"
        there = [
            name if schema == "public" else f"{schema}.{name}"
            for schema, name in conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                f"WHERE {schemas} ORDER BY 1, 2 LIMIT 30",
                [parts[0]] if len(parts) == 2 else [],
            )
        ]
        listing = f"tables there: {', '.join(there)}" if there else "no tables there that this user can read"
        raise SourceError(f"{dsn.address}: no table {wanted!r}; {listing}; pass --table NAME (or schema.table)")
    schema, name = found
    columns = dict(
        conn.execute(
            "SELECT attname, atttypid::regtype::text FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            [sql.Identifier(schema, name).as_string(conn)],
        ).fetchall()
    )
    return Relation(schema, name, columns)


def map_columns(table: Relation, configured: Any, where: str) -> dict[str, str]:
    """Field -> column name: corpus.toml's `columns` first, else the usual names."""
    configured = configured or {}
    if not isinstance(configured, dict) or not all(isinstance(v, str) for v in configured.values()):
        raise SourceError(
            "[sources.supabase] columns must be a table of names, e.g. "
            'columns = { conversation = "session_id", content = "body" }'
        )
    unknown = sorted(set(configured) - set(COLUMN_CANDIDATES))
    if unknown:
        raise SourceError(
            f"[sources.supabase] columns: unknown key(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(COLUMN_CANDIDATES)}"
        )
    present = ", ".join(table.columns) or "(none)"
    mapping: dict[str, str] = {}
    for field, candidates in COLUMN_CANDIDATES.items():
        if field in configured:
            if configured[field] not in table.columns:
                raise SourceError(
                    f"{where}: table {table.label} has no column {configured[field]!r} "
                    f"(columns.{field} in corpus.toml); its columns are: {present}"
                )
            mapping[field] = configured[field]
            continue
        chosen = next((c for c in candidates if c in table.columns), None)
        if chosen is not None:
            mapping[field] = chosen
        elif field in REQUIRED:
            names = " or ".join(repr(c) for c in candidates)
            raise SourceError(
                f"{where}: table {table.label} has no column {names} (the {field}); "
                f"its columns are: {present}; {_CONFIG_HINT.format(field=field)}"
            )
    created_type = table.columns[mapping["created_at"]]
    if created_type not in TIMESTAMP_TYPES:
        raise SourceError(
            f"{where}: column {table.label}.{mapping['created_at']} is {created_type}; expected a "
            f"timestamp with time zone; {_CONFIG_HINT.format(field='created_at')}"
        )
    return mapping


# ----------------------------------------------------------------------------- reading


class TurnReader:
    """Reads one table's turns in (created_at, id) order, then the rows without a time."""

    def __init__(self, conn, dsn: Dsn, table: Relation, options: dict[str, Any], owner: Any):
        self.conn = conn
        self.table = table
        self.where = dsn.address
        self.columns = map_columns(table, options.get("columns"), dsn.address)
        self.id_type = table.columns[self.columns["id"]]
        self.naive = table.columns[self.columns["created_at"]] == "timestamp without time zone"
        self.content_is_json = table.columns[self.columns["content"]] in JSON_TYPES
        owner_roles = options.get("owner_roles") or OWNER_ROLES
        if isinstance(owner_roles, str):
            owner_roles = [owner_roles]
        self.owner_roles = {str(r).strip().casefold() for r in owner_roles}
        self.owner = owner
        # The watermark's key: where the table is, as the server reports it, never the password.
        info = conn.info
        server = address_of({"user": info.user, "host": info.host, "port": info.port, "dbname": info.dbname})
        self.stream = f"{server}?table={table.schema}.{table.name}"
        self.unknown_roles: Counter[str] = Counter()
        self.without_session = 0

    def batches(self, ctx: SourceContext, batch_size: int, settle: int) -> Iterator[Batch]:
        from psycopg import sql

        c = {field: sql.Identifier(name) for field, name in self.columns.items()}
        # In COLUMN_CANDIDATES order: rows come back as (id, conversation, role, content, created_at[, metadata]).
        selected = sql.SQL(", ").join(self._selected(f, c[f]) for f in COLUMN_CANDIDATES if f in c)
        (cutoff,) = self.conn.execute("SELECT now() - make_interval(secs => %s)", [settle]).fetchone()
        cutoff = self._as_column_time(cutoff)
        after = self._resume_point(ctx)
        keyset = sql.SQL("")
        params: list[Any] = [cutoff]
        if after is not None and after[1] is None:
            # The last row read had no id (it was quarantined): NULL ids sort last, so that time is done.
            keyset = sql.SQL("AND {} > %s").format(c["created_at"])
            params.append(after[0])
        elif after is not None:
            keyset = sql.SQL("AND ({}, {}) > (%s, %s)").format(c["created_at"], c["id"])
            params += [after[0], after[1]]  # the id as text: the server reads it as the column's type
        query = sql.SQL(
            "SELECT {selected} FROM {table} WHERE {at} IS NOT NULL AND {at} < %s {keyset} ORDER BY {at}, {id}"
        ).format(selected=selected, table=self.table.sql(), at=c["created_at"], keyset=keyset, id=c["id"])
        watermark = ctx.previous_watermark(self.stream) if after is not None else None
        for rows in self._fetch(query, params, batch_size):
            batch = self._batch(rows)
            turn_id, created_at = rows[-1][0], rows[-1][4]
            watermark = {
                "created_at": _utc(created_at).isoformat(),
                "id": None if turn_id is None else str(turn_id),
                "id_type": self.id_type,
            }
            batch.watermark = watermark
            yield batch

        untimed = sql.SQL(
            "SELECT {selected} FROM {table} WHERE {at} IS NULL AND {id} IS NOT NULL ORDER BY {id}"
        ).format(selected=selected, table=self.table.sql(), at=c["created_at"], id=c["id"])
        without_time = 0
        for rows in self._fetch(untimed, [], batch_size):
            without_time += len(rows)
            batch = self._batch(rows)
            batch.watermark = watermark
            yield batch

        self._notes(ctx, cutoff, settle, without_time)

    def _selected(self, field: str, column):
        """How a field is selected: as text, unless it is the id, the time or JSON."""
        from psycopg import sql

        if field in ("id", "created_at") or self.table.columns[self.columns[field]] in JSON_TYPES:
            return column
        return sql.SQL("{}::text").format(column)

    def _fetch(self, query, params: list[Any], batch_size: int) -> Iterator[list[tuple]]:
        # A named cursor is a server-side cursor: only `batch_size` rows cross the wire at a time.
        with self.conn.cursor(name="etl_supabase_turns") as cursor:
            cursor.execute(query, params)
            while rows := cursor.fetchmany(batch_size):
                yield rows

    def _resume_point(self, ctx: SourceContext) -> tuple[datetime, str | None] | None:
        previous = ctx.previous_watermark(self.stream)
        if not isinstance(previous, dict) or not {"created_at", "id"} <= set(previous):
            return None
        if previous.get("id_type") != self.id_type:
            ctx.note(
                f"{self.where} {self.table.label}: the id column is now {self.id_type} (was "
                f"{previous.get('id_type')}); read again from the start (landed turns stay)"
            )
            return None
        turn_id = previous["id"]
        return self._as_column_time(datetime.fromisoformat(previous["created_at"])), None if turn_id is None else str(turn_id)

    def _as_column_time(self, moment: datetime) -> datetime:
        """A parameter compared with created_at: naive UTC for a naive column."""
        moment = _utc(moment)
        return moment.replace(tzinfo=None) if self.naive else moment

    def _batch(self, rows: list[tuple]) -> Batch:
        """Raw rows built column by column; each distinct role is judged once."""
        quarantined = [self._without_id(row) for row in rows if row[0] is None]
        if quarantined:
            rows = [row for row in rows if row[0] is not None]
        label = self.table.label
        columns = list(zip(*rows)) if rows else [()] * 6
        ids, conversations, roles, contents, times = columns[:5]
        extras = columns[5] if len(columns) > 5 else None

        verdicts = {role: self._who(role) for role in set(roles)}
        for role, count in Counter(roles).items():
            if verdicts[role][0] is None:
                self.unknown_roles[role if role is not None else "(none)"] += count
        if None in conversations:
            self.without_session += conversations.count(None)
            conversations = [f"{label}:no-session" if c is None else c for c in conversations]

        texts, leftovers = list(contents), None
        if self.content_is_json:
            texts = [_json_text(c) for c in contents]
            leftovers = [c if t is None else None for c, t in zip(contents, texts)]
        if extras is None and all(leftover is None for leftover in leftovers or ()):
            metadata = [canonical_json({"table": label})] * len(rows)
        else:
            metadata = [
                canonical_json(_metadata(label, extra, leftover))
                for extra, leftover in zip(extras or [None] * len(rows), leftovers or [None] * len(rows))
            ]

        sent_at = pl.Series("sent_at", times, dtype=pl.Datetime("us", None if self.naive else "UTC"))
        frame = raw_frame(
            {
                "source": ["supabase"] * len(rows),
                "source_id": [f"{label}:{turn_id}" for turn_id in ids],
                "conversation_id": list(conversations),
                "sent_at": sent_at.dt.replace_time_zone("UTC") if self.naive else sent_at,
                "sender": list(roles),
                "is_owner": [verdicts[role][0] for role in roles],
                "kind": [verdicts[role][1] for role in roles],
                "text": texts,
                "metadata": metadata,
            }
        )
        return Batch(rows=frame, quarantined=quarantined, stream=self.stream, seen=len(rows) + len(quarantined))

    def _without_id(self, row: tuple) -> Quarantined:
        return Quarantined(
            location=f"{self.table.label} row created at {row[4]}",
            reason=f"no {self.columns['id']}: the turn has no id to key it on",
            payload=canonical_json([_plain(v) for v in row]),
        )

    def _who(self, role: str | None) -> tuple[bool | None, str]:
        """(is_owner, kind) for a role value; None when it is neither the owner's nor a known one."""
        key = (role or "").strip().casefold()
        if key in self.owner_roles or (self.owner is not None and role and self.owner.matches(role)):
            return True, "text"
        if key in KIND_OF_ROLE:
            return False, KIND_OF_ROLE[key]
        return None, "text"

    def _notes(self, ctx: SourceContext, cutoff: datetime, settle: int, without_time: int) -> None:
        from psycopg import sql

        where = f"{self.where} {self.table.label}"
        if self.naive:
            ctx.note(f"{where}: {self.columns['created_at']} has no time zone; read as UTC")
        if without_time:
            ctx.note(
                f"{where}: {without_time} row(s) have no {self.columns['created_at']}: landed without a "
                "time, and read again on every run"
            )
        if self.without_session:
            ctx.note(
                f"{where}: {self.without_session} row(s) have no {self.columns['conversation']}: landed in "
                f"one conversation, {self.table.label}:no-session"
            )
        if self.unknown_roles:
            roles = ", ".join(f"{r!r} ({n})" for r, n in self.unknown_roles.most_common(5))
            ctx.note(
                f"{where}: role(s) {roles} are neither the owner's nor an assistant's: landed with the "
                'owner unknown; name yours in corpus.toml: [sources.supabase] owner_roles = ["user"]'
            )
        if settle:
            (recent,) = self.conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE {} >= %s").format(
                    self.table.sql(), sql.Identifier(self.columns["created_at"])
                ),
                [cutoff],
            ).fetchone()
            if recent:
                ctx.note(
                    f"{where}: {recent} row(s) written in the last {settle} s wait for the next run "
                    "(a turn may still be being written); --settle-seconds 0 reads them now"
                )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _json_text(value: Any) -> str | None:
    """The text of a JSON content value: a string, {"text": ...}, or a list of text parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return value["text"]
    if isinstance(value, list):
        parts = [p if isinstance(p, str) else p.get("text") for p in value if isinstance(p, (str, dict))]
        texts = [p for p in parts if isinstance(p, str)]
        return "\n".join(texts) if texts else None
    return None


def _metadata(table: str, extra: Any, content: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"table": table}
    if extra is not None:
        metadata["metadata"] = extra
    if content is not None:
        metadata["content"] = content  # JSON content with no text in it, kept whole
    return metadata


def _plain(value: Any) -> Any:
    """A database value as JSON can hold it."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return str(value)
