"""The connector kit: what a connector declares, and everything it would otherwise
write again.

A connector is a function registered with `@source(...)`. It says what it expects
(`expects`, `accept`) and yields what it reads, in any mix:

- a row: a dict in the raw schema, `metadata` a dict or None;
- a `Quarantined` row, for a record it could not read;
- a `Batch`, when it streams its own frames (with a watermark per stream).

The kit does the rest, the same way for every source: `ctx.inputs()` finds the
files (a file, a folder or a zip), records their sha256 and raises the one "no …
found; expected …" error; `ctx.load_json` reads JSON; `ctx.is_owner` gives `--me` its
one meaning; `ctx.to_utc` reads local times in `--timezone` (default: this machine's
zone, said once in the run's notes); rows are batched, `metadata` serialised with
one rule, progress advanced. `ctx.each` reads units (conversations, files, records)
one at a time: a `Skip(reason)` raised while reading one quarantines that unit
alone, and the others land.
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import polars as pl

from etl.schemas.errors import EtlError, SourceError
from etl.schemas.hashing import sha256_file
from etl.schemas.records import canonical_json
from etl.schemas.tables import RAW_MESSAGES, raw_frame
from etl.sources.archive import InputFile, input_files

BATCH_ROWS = 20_000
UTF8_BOM = b"\xef\xbb\xbf"
RAW_COLUMNS = [name for name in RAW_MESSAGES.column_names if name != "ingest_run_id"]


# What reading one odd record can raise (a list where a name was, a time out of range,
# nesting too deep, a broken plist): that record is quarantined, the rest lands.
RECORD_ERRORS = (ValueError, TypeError, OverflowError, KeyError, IndexError, AttributeError, RecursionError)
# What reading one damaged zip member can raise (bad CRC, encrypted, header mismatch).
MEMBER_ERRORS = (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, zlib.error)


def reason_of(error: BaseException) -> str:
    """A record error as a quarantine reason."""
    text = str(error)[:200]
    return f"unreadable record ({type(error).__name__}: {text})" if text else f"unreadable record ({type(error).__name__})"


def record_rows(rows_of: Callable[[], Iterable[Any]], where: str, record: Any, quarantined: list) -> list[Any]:
    """The rows `rows_of()` reads from one record, checked against the raw schema; a
    record it cannot read (one of RECORD_ERRORS, or a row the schema cannot hold) is
    added to `quarantined` at `where`, and no row of it is kept."""
    try:
        rows = [checked_row(row) for row in rows_of()]
    except RECORD_ERRORS as error:
        quarantined.append(Quarantined(where, reason_of(error), payload(record)))
        return []
    bad = next((row for row in rows if isinstance(row, Quarantined)), None)
    if bad is not None:
        quarantined.append(Quarantined(where, bad.reason, payload(record)))
        return []
    return rows


class Skip(Exception):  # noqa: N818 (read as a verb: `raise Skip("no id")`)
    """Raised while reading one unit (a conversation, a file, a record): that unit is
    quarantined with the reason, and the run goes on with the next."""

    def __init__(self, reason: str, *, payload: str | None = None, source_id: str | None = None):
        super().__init__(reason)
        self.reason, self.payload, self.source_id = reason, payload, source_id


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
    expects: str = "an export"  # what the input should be, for every error that says so
    accept: Callable[[str], bool] | None = None  # which files of a folder or zip are inputs
    found: str | None = None  # what "no … found" names; default: the files `expects` names
    batch_rows: int = BATCH_ROWS
    owner_hint: str | None = None  # what --me takes, e.g. "your Slack user id"
    looks_like: Callable[[bytes], bool] | None = None  # whether a file's first bytes are this export
    read_ahead: bool = False  # read the next batch in a thread while the loader stores this one


def recognise(head: bytes, but: str) -> Source | None:
    """The other source whose export a file's first bytes look like, to name the right
    command when a user points one connector at another's export."""
    return next((s for s in SOURCES.values() if s.name != but and s.looks_like and s.looks_like(head)), None)


SOURCES: dict[str, Source] = {}


def source(
    name: str,
    *,
    version: int,
    help: str,
    params: tuple[Param, ...] = (),
    paths: str = "required",
    default_paths: tuple[str, ...] = (),
    expects: str = "an export",
    accept: Callable[[str], bool] | None = None,
    found: str | None = None,
    owner_hint: str | None = None,
    read_ahead: bool = False,
    looks_like: Callable[[bytes], bool] | None = None,
    timezone: bool = False,
    batch_rows: int = BATCH_ROWS,
) -> Callable:
    """Register a connector under its command-line name.

    `owner_hint` (what to pass, e.g. "your Slack user id") adds `--me`; `timezone`
    adds `--timezone`, for exports whose times carry no zone.
    """
    declared = list(params)
    if owner_hint and not any(p.name == "me" for p in declared):
        declared.insert(0, Param("me", f"{owner_hint[0].upper()}{owner_hint[1:]}, besides [owner] in corpus.toml "
                                       "(repeat for several).", multiple=True))  # fmt: skip
    if timezone and not any(p.name == "timezone" for p in declared):
        declared.append(Param("timezone", "Time zone of times written without one (IANA name, e.g. Europe/Berlin). "
                                          "Default: this machine's."))  # fmt: skip

    def register(read: Callable[[SourceContext], Iterable[Any]]):
        def batched(ctx: SourceContext) -> Iterator[Batch]:
            batches = _batches(SOURCES[name], read, ctx)
            return read_ahead_of(batches) if SOURCES[name].read_ahead else batches

        batched.__name__, batched.__doc__, batched.__wrapped__ = read.__name__, read.__doc__, read  # type: ignore[attr-defined]
        SOURCES[name] = Source(name, version, help, batched, tuple(declared), paths, default_paths,
                               expects, accept, found, batch_rows, owner_hint, looks_like, read_ahead)  # fmt: skip
        return batched

    return register


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise EtlError(f"unknown source {name!r}; available sources: {', '.join(sorted(SOURCES))}") from None


# ----------------------------------------------------------------------------- the context


@dataclass
class SourceContext:
    """Everything a connector may know about the run it is part of, and the kit's tools."""

    paths: list[Path]
    options: dict[str, Any]
    owner: Any  # etl.schemas.owner.Owner: names, emails, phones, handles, labels
    previous_watermark: Callable[[str], Any]  # stream -> last stored watermark or None
    notes: list[str] = field(default_factory=list)  # shown to the user, kept in ingest_runs
    progress: Callable[[int], None] = lambda n: None  # advance a progress bar by n rows
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256, recorded in the run
    # Read-only SQL over the warehouse as it was before this run (sql, params) -> rows;
    # for a connector that must recognise what another one already landed.
    query: Callable[[str, list], list[tuple]] = lambda sql, params=(): []
    source: Source | None = None  # set by the kit when the connector starts
    _owner: OwnerMatcher | None = field(default=None, repr=False)
    _zone: tuple[ZoneInfo, str, bool] | None = field(default=None, repr=False)
    zone_used: bool = False  # set when a time was read in `zone`: the run then says which zone
    owner_noted: bool = False  # the connector said itself what it knows of the owner

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    @property
    def expects(self) -> str:
        return self.source.expects if self.source else "an export"

    # -- inputs

    def inputs(
        self,
        paths: Iterable[Path] | None = None,
        accept: Callable[[str], bool] | None = None,
        *,
        required: bool = True,
        record: bool = True,
    ) -> list[InputFile]:
        """The input files under `paths` (default: the run's), each recorded (unless the
        connector records what it reads itself); with none found, one error naming the
        paths and what was expected."""
        paths = list(self.paths if paths is None else paths)
        accept = accept or (self.source.accept if self.source else None) or (lambda name: True)
        found = list(input_files(paths, accept, what=self.expects))
        if not found and required:
            raise self.not_found(paths)
        if record:
            self.record_inputs(found)
        return found

    def not_found(self, paths: Iterable[Path] | None = None, hint: str = "") -> SourceError:
        """The one "no … found; expected …" error."""
        where = ", ".join(str(p) for p in (self.paths if paths is None else paths))
        what = (self.source.found if self.source else None) or self.expects
        return SourceError(f"{where}: no {what} found{hint}; expected {self.expects}")

    def record_inputs(self, files: Iterable[InputFile]) -> None:
        """Keep the sha256 of every file on disk the run read (an archive once)."""
        for path in dict.fromkeys(f.path for f in files):
            if str(path) not in self.files:
                self.record_file(path)

    def record_file(self, path: Path, hash_at_most: int = 64 << 20) -> None:
        """Keep the input's sha256 in the run record; a file too large to hash quickly
        is recorded by size and modification time instead."""
        stat = path.stat()
        if stat.st_size <= hash_at_most:
            self.files[str(path)] = sha256_file(path)
            return
        modified = datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(timespec="seconds")
        self.note(f"{path}: {stat.st_size} bytes, modified {modified} (not hashed: too large to hash quickly)")

    def load_json(self, file: InputFile, transform: Callable[[bytes], bytes] | None = None, *, skip: bool = False) -> Any:
        """The parsed JSON of one input file, or one SourceError naming the file and what
        was expected. A truncated file (an interrupted download or unzip) fails here,
        before any of its rows are yielded, so nothing of the run lands. `transform`
        repairs the JSON text before it is parsed. With `skip`, a file that cannot be
        read raises `Skip` instead: inside `ctx.each` it is quarantined and the run goes on."""
        try:
            return load_json(file, self.expects, transform)
        except SourceError as error:
            if not skip:
                raise
            reason = str(error).removeprefix(f"{file.location}: ").rpartition("; expected ")[0] or str(error)
            raise Skip(reason) from None

    # -- units

    def each(
        self,
        units: Iterable[Any],
        read: Callable[..., Iterable[Any]],
        *,
        where: Callable[[int, Any], str],
        payload: Callable[[Any], str | None] = lambda unit: payload(unit),
        source_id: Callable[[Any], str | None] = lambda unit: None,
    ) -> Iterator[Any]:
        """What `read(unit)` yields for each unit, all of a unit or none of it: a unit
        whose reading raises `Skip` (or one of RECORD_ERRORS) becomes one quarantined row
        at `where(index, unit)`, and the next unit is read. `read` may return one row."""
        for index, unit in enumerate(units):
            try:
                got = read(unit)
                got = [got] if isinstance(got, dict | Quarantined) else list(got or ())
            except SourceError:
                raise
            except RECORD_ERRORS as error:
                got = [Quarantined(where(index, unit), reason_of(error), _safe_payload(payload, unit), None)]
            except Skip as skip:
                got = [Quarantined(where(index, unit), skip.reason,
                                   skip.payload if skip.payload is not None else payload(unit),
                                   skip.source_id if skip.source_id is not None else source_id(unit))]  # fmt: skip
            yield from got

    # -- owner and time

    @property
    def owner_matcher(self) -> OwnerMatcher:
        if self._owner is None:
            self._owner = OwnerMatcher(self.owner, me_option(self))
        return self._owner

    def is_owner(self, *identities: str | None) -> bool | None:
        """Whether any of these identities of an author is the owner's; None when no
        identity is configured at all (corpus.toml [owner] or --me)."""
        return self.owner_matcher(*identities)

    @property
    def zone(self) -> ZoneInfo:
        """The zone of times written without one: --timezone, else this machine's."""
        if self._zone is None:
            chosen = self.options.get("timezone")
            if chosen:
                zone = _zone(str(chosen))
                if zone is None:
                    raise SourceError(f"--timezone {chosen!r}: not a known time zone; "
                                      "expected an IANA name such as Europe/Berlin or America/New_York")  # fmt: skip
                self._zone = (zone, str(chosen), True)
            else:
                name = local_zone_name()
                self._zone = (ZoneInfo(name), name, False)
        return self._zone[0]

    @property
    def zone_name(self) -> str:
        self.zone  # noqa: B018 (resolves it)
        return self._zone[1]

    def to_utc(self, local: datetime) -> datetime:
        """A time written without a zone, read in `zone`, as UTC (the earlier reading of a
        repeated hour)."""
        self.zone_used = True
        return local.replace(tzinfo=self.zone).astimezone(UTC)

    def _closing_notes(self) -> None:
        if self.zone_used and not self._zone[2]:
            self.note(f"times written without a zone were read as {self._zone[1]} (this machine's zone); "
                      "pass --timezone to read them in another")  # fmt: skip
        matcher = self._owner
        if matcher is None or not matcher.asked or self.owner_noted:
            return
        if not matcher.configured:
            hint = (self.source.owner_hint if self.source else None) or "your name"
            self.note(f"the export does not say which messages are yours: pass --me ({hint}) or set [owner]; "
                      "every message landed with is_owner unknown")  # fmt: skip
        elif not matcher.matched:
            self.note("none of the authors in this export matched your [owner] identities or --me: "
                      "every message landed as someone else's")  # fmt: skip


# ----------------------------------------------------------------------------- owner


class OwnerMatcher:
    """Whether the owner wrote a message, from any identity the export gives for its
    author (id, handle, display name, email, phone number).

    Identities come from corpus.toml `[owner]` and from `--me`, which adds to them.
    With none configured the answer is None (unknown), never False: an export without
    a "from me" flag cannot tell the owner's messages apart by itself.
    """

    def __init__(self, owner: Any, me: Iterable[str] = ()) -> None:
        self.owner = owner
        self.me = tuple(v.strip().casefold() for v in me if v and v.strip())
        known = tuple(getattr(owner, "identities", ()) or ())
        self.identities = {v.strip().casefold() for v in (*self.me, *known) if v and v.strip()}
        self.phones = {_digits(p) for p in getattr(owner, "phones", ()) or () if len(_digits(p)) >= 7}
        self.configured = bool(self.identities)
        self.asked = False
        self.matched = False  # set once any author matched: to warn when none does
        self._seen: dict[tuple, bool] = {}

    def add(self, *identities: str) -> None:
        """More of the owner's identities, found in the export itself."""
        self.identities.update(v.strip().casefold() for v in identities if v and v.strip())
        self.configured = bool(self.identities)
        self._seen.clear()

    def __call__(self, *identities: str | None) -> bool | None:
        self.asked = True
        if not self.configured:
            return None
        # An export repeats the same few authors: each set of identities is compared once.
        known = self._seen.get(identities)
        if known is None:
            known = self._seen[identities] = any(self._is_owner(value) for value in identities if value)
        self.matched = self.matched or known
        return known

    def _is_owner(self, value: str) -> bool:
        value = str(value).strip()
        if value.casefold() in self.identities:
            return True
        # A phone number written another way: +1 (555) 123-4567 is +15551234567.
        return bool(self.phones) and _PHONE.fullmatch(value) is not None and _digits(value) in self.phones


_PHONE = re.compile(r"\+?[\d\s\-().]{7,}")


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def me_option(ctx: SourceContext) -> tuple[str, ...]:
    """`--me` from the command line (repeatable) or corpus.toml (a value or a list)."""
    value = ctx.options.get("me")
    if not value:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


# ----------------------------------------------------------------------------- time zones


def local_zone_name() -> str:
    """This machine's IANA time zone name; UTC when it cannot be told."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = os.path.realpath("/etc/localtime")
        at = target.rfind("zoneinfo/")
        if at >= 0:
            candidates.append(target[at + len("zoneinfo/") :].removeprefix("posix/").removeprefix("right/"))
    except OSError:
        pass
    try:
        candidates.append(Path("/etc/timezone").read_text().strip())
    except OSError:
        pass
    return next((name for name in candidates if name and _zone(name) is not None), "UTC")


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


# ----------------------------------------------------------------------------- JSON and rows


def load_json(file: InputFile, expected: str, transform: Callable[[bytes], bytes] | None = None) -> Any:
    """See `SourceContext.load_json`."""
    try:
        data = file.read_bytes()
    except MEMBER_ERRORS as error:
        raise SourceError(f"{file.location}: cannot be read ({error}); expected {expected}") from None
    data = data.removeprefix(UTF8_BOM)
    if transform is not None:
        data = transform(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if not data.strip() or _ends_early(error, data):
            reason = f"truncated JSON ({error}): the file looks truncated or damaged (download or unzip it again)"
        else:
            lenient = _lenient_json(data)
            if lenient is not _INVALID:
                return lenient
            reason = f"not valid JSON ({error})"
        raise SourceError(f"{file.location}: {reason}; expected {expected}") from None


_INVALID = object()


def _lenient_json(data: bytes) -> Any:
    """What orjson refuses but one record may hold (a number such as 1e999, nesting past
    1024 levels): the standard parser reads it, so that record alone is quarantined."""
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return _INVALID


def _ends_early(error: orjson.JSONDecodeError, data: bytes) -> bool:
    # The error's position counts characters, not bytes.
    return error.pos >= len(data.decode("utf-8", errors="replace").rstrip()) - 1


def payload(value: Any) -> str:
    """A raw export object as kept in the quarantine table."""
    try:
        return canonical_json(value)
    except (TypeError, ValueError, RecursionError):
        try:
            return repr(value)[:100_000]
        except RecursionError:
            return "(nested too deeply to keep)"


def _safe_payload(make: Callable[[Any], str | None], unit: Any) -> str | None:
    try:
        return make(unit)
    except RECORD_ERRORS:
        return None


def checked_row(row: dict[str, Any]) -> dict[str, Any] | Quarantined:
    """The row with its metadata serialised, or a Quarantined naming it when a field
    holds what the raw schema cannot (a list as a name, a number as a text, a time out
    of range, metadata that is not JSON): one odd record never fails its batch."""
    for name, kind in _ROW_TYPES.items():
        value = row.get(name)
        if value is not None and not isinstance(value, kind):
            return _row_quarantined(row, f"{name} is a {type(value).__name__}, not a {kind.__name__}")
    sent_at = row.get("sent_at")
    if sent_at is not None and not isinstance(sent_at, datetime):
        return _row_quarantined(row, f"sent_at is a {type(sent_at).__name__}, not a time")
    if isinstance(row.get("metadata"), dict):
        try:
            row["metadata"] = metadata_json(row["metadata"])
        except (*RECORD_ERRORS, orjson.JSONEncodeError) as error:
            return _row_quarantined(row, f"metadata is not JSON ({type(error).__name__}: {str(error)[:120]})")
    elif row.get("metadata") is not None and not isinstance(row["metadata"], str):
        return _row_quarantined(row, f"metadata is a {type(row['metadata']).__name__}, not an object")
    return row


_ROW_TYPES: dict[str, Any] = {
    **{name: str for name in ("source_id", "account", "conversation_id", "conversation_title", "sender",
                               "sender_name", "kind", "text", "reply_to")},  # fmt: skip
    "is_owner": bool,
}


def _row_quarantined(row: dict[str, Any], reason: str) -> Quarantined:
    where = f"conversation {row.get('conversation_id')!s:.80} message {row.get('source_id')!s:.80}"
    return Quarantined(where, reason, payload({k: v for k, v in row.items() if k != "source"}), None)


def metadata_json(metadata: dict[str, Any]) -> str:
    """The one rule for `metadata`: canonical JSON without the keys whose value is None
    (a missing key reads as null); anything else, an empty list included, is a value."""
    return canonical_json({k: v for k, v in metadata.items() if v is not None})


def to_batch(rows: list[dict[str, Any]], quarantined: list[Quarantined] | None = None, **extra: Any) -> Batch:
    """Rows (dicts in the raw schema, `metadata` a dict) as a Batch."""
    quarantined = list(quarantined or [])
    checked = [checked_row(row) for row in rows]
    if any(isinstance(row, Quarantined) for row in checked):
        quarantined += [row for row in checked if isinstance(row, Quarantined)]
        checked = [row for row in checked if not isinstance(row, Quarantined)]
    rows = checked
    # Column lists build the frame several times faster than a list of row dicts.
    columns = {name: [row.get(name) for row in rows] for name in RAW_COLUMNS}
    return Batch(rows=raw_frame(columns), quarantined=quarantined, **extra)


def read_ahead_of(batches: Iterator[Batch], depth: int = 1) -> Iterator[Batch]:
    """Yield from `batches`, producing up to `depth` batches ahead in a thread.

    SQLite, Polars and the loader's DuckDB insert all release the GIL, so on two
    cores reading the next batch overlaps with storing this one. Memory stays
    bounded by `depth` batches; an error in the thread is raised here.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    finished = object()

    def hand_over(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not hand_over(batch):
                    return
        except BaseException as exc:  # re-raised in the consuming thread
            hand_over(exc)
            return
        hand_over(finished)

    worker = threading.Thread(target=produce, name="source-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is finished:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _batches(declared: Source, read: Callable, ctx: SourceContext) -> Iterator[Batch]:
    """Whatever a connector yields, as Batches of about `batch_rows` rows: an export of
    thousands of small conversations costs the loader a few round trips, not thousands."""
    ctx.source = declared
    rows: list[dict[str, Any]] = []
    quarantined: list[Quarantined] = []

    def flush() -> Iterator[Batch]:
        nonlocal rows, quarantined
        if rows or quarantined:
            ctx.progress(len(rows) + len(quarantined))
            yield to_batch(rows, quarantined)
            rows, quarantined = [], []

    def add(row: dict[str, Any]) -> None:  # checked in to_batch
        row["source"] = declared.name
        rows.append(row)

    for item in read(ctx):
        if isinstance(item, dict):
            add(item)
        elif isinstance(item, Quarantined):
            quarantined.append(item)
        elif isinstance(item, Batch):
            yield from flush()
            ctx.progress(max(item.seen or 0, item.rows.height + len(item.quarantined)))
            item.rows = item.rows.with_columns(source=pl.lit(declared.name, pl.String))
            yield item
            continue
        elif isinstance(item, tuple):  # (rows, quarantined) of one unit
            for row in item[0]:
                add(row)
            quarantined.extend(item[1])
        else:
            raise TypeError(f"{declared.name} yielded a {type(item).__name__}; expected a row, Quarantined or Batch")
        if len(rows) + len(quarantined) >= declared.batch_rows:
            yield from flush()
    yield from flush()
    ctx._closing_notes()

