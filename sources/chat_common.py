"""What the chat-export connectors (Messenger and Instagram, Google Chat, Slack,
Discord) share: reading a JSON file with a clear error, ids for exports that give
messages none, telling the owner's messages apart, and turning rows into a Batch.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from etl.schemas.records import canonical_json
from etl.schemas.tables import RAW_MESSAGES, raw_frame
from etl.sources.archive import InputFile
from etl.sources.base import Batch, Quarantined, SourceContext, SourceError

UTF8_BOM = b"\xef\xbb\xbf"
BATCH_ROWS = 20_000
RAW_COLUMNS = [name for name in RAW_MESSAGES.column_names if name != "ingest_run_id"]


def load_json(file: InputFile, expected: str, transform: Callable[[bytes], bytes] | None = None) -> Any:
    """The parsed JSON of one export file, or one SourceError naming the file and what
    was expected. A truncated file (an interrupted download or unzip) fails here,
    before any of its rows are yielded, so nothing of the run lands. `transform`
    repairs the JSON text before it is parsed."""
    try:
        data = file.read_bytes()
    except (OSError, zipfile.BadZipFile) as error:
        raise SourceError(f"{file.location}: cannot be read ({error}); expected {expected}") from None
    data = data.removeprefix(UTF8_BOM)
    if transform is not None:
        data = transform(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        reason = "truncated JSON" if not data.strip() or _ends_early(error, data) else "not valid JSON"
        raise SourceError(f"{file.location}: {reason} ({error}); expected {expected}") from None


def _ends_early(error: orjson.JSONDecodeError, data: bytes) -> bool:
    # The error's position counts characters, not bytes.
    return error.pos >= len(data.decode("utf-8", errors="replace").rstrip()) - 1


def hashed_id(*parts: Any) -> str:
    """A stable id from the parts that identify a message in an export without ids."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:32]


class RepeatCounter:
    """Tells true repeats apart: the second identical message in the same millisecond
    (same conversation, sender and content) gets `~1`, the third `~2`. Counted in
    export order, which stays the same when a later export adds newer messages."""

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()

    def __call__(self, key: str) -> str:
        n = self._seen[key]
        self._seen[key] += 1
        return key if n == 0 else f"{key}~{n}"


class OwnerMatcher:
    """Whether the owner wrote a message, from any identity the export gives for its
    author (id, handle, display name, email).

    Identities come from corpus.toml `[owner]` and from the connector's `--me`
    option. With none configured the answer is None (unknown), never False: an
    export without a "from me" flag cannot tell the owner's messages apart by itself.
    """

    def __init__(self, owner: Any, me: Iterable[str] = ()) -> None:
        self.owner = owner
        self.me = tuple(v.strip().casefold() for v in me if v and v.strip())
        self.configured = bool(self.me) or _owner_configured(owner)
        self.matched = False  # set once any author matched: to warn when none does
        self._seen: dict[tuple, bool] = {}

    def __call__(self, *identities: str | None) -> bool | None:
        if not self.configured:
            return None
        # An export repeats the same few authors: each set of identities is compared once.
        known = self._seen.get(identities)
        if known is None:
            known = self._seen[identities] = any(self._is_owner(value) for value in identities if value)
        self.matched = self.matched or known
        return known

    def _is_owner(self, value: str) -> bool:
        return value.strip().casefold() in self.me or (self.owner is not None and self.owner.matches(value))

    def unmatched_note(self, what: str) -> str | None:
        """A note when the owner is configured but wrote nothing in this input."""
        if self.configured and not self.matched:
            return (
                f"none of the authors in this {what} matched your [owner] identities or --me: "
                "every message landed as someone else's"
            )
        return None


def _owner_configured(owner: Any) -> bool:
    if owner is None:
        return False
    return any(getattr(owner, field, ()) for field in ("names", "emails", "phones", "handles", "speaker_labels"))


def me_option(ctx: SourceContext) -> tuple[str, ...]:
    """`--me` from the command line (one value) or corpus.toml (a value or a list)."""
    value = ctx.options.get("me")
    if not value:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def utc_from_iso(value: Any) -> datetime | None:
    """An ISO 8601 time in UTC; one written without an offset is taken as UTC. None
    when it is missing or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def utc_from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def utc_from_unix_ms(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds // 1000, UTC).replace(microsecond=(milliseconds % 1000) * 1000)


def record_inputs(ctx: SourceContext, files: Iterable[InputFile]) -> None:
    """Keep the sha256 of every file on disk the run read (an archive once)."""
    for path in dict.fromkeys(f.path for f in files):
        if str(path) not in ctx.files:
            ctx.record_file(path)


def batches(
    conversations: Iterable[tuple[list[dict[str, Any]], list[Quarantined]]],
    ctx: SourceContext,
    size: int = BATCH_ROWS,
) -> Iterator[Batch]:
    """The rows of many conversations (each row's `metadata` a dict) as Batches of
    about `size` rows: an export of thousands of small conversations costs the loader
    a few round trips, not thousands."""
    rows: list[dict[str, Any]] = []
    quarantined: list[Quarantined] = []
    for conversation_rows, conversation_quarantined in conversations:
        rows.extend(conversation_rows)
        quarantined.extend(conversation_quarantined)
        if len(rows) + len(quarantined) >= size:
            ctx.progress(len(rows) + len(quarantined))
            yield to_batch(rows, quarantined)
            rows, quarantined = [], []
    if rows or quarantined:
        ctx.progress(len(rows) + len(quarantined))
        yield to_batch(rows, quarantined)


def to_batch(rows: list[dict[str, Any]], quarantined: list[Quarantined] | None = None) -> Batch:
    """Rows with `metadata` as a dict, turned into a Batch in the raw schema."""
    for row in rows:
        metadata = row.get("metadata")
        if isinstance(metadata, dict):
            row["metadata"] = canonical_json({k: v for k, v in metadata.items() if v not in (None, [], {}, "")})
    # Column lists build the frame several times faster than a list of row dicts.
    columns = {name: [row.get(name) for row in rows] for name in RAW_COLUMNS}
    return Batch(rows=raw_frame(columns), quarantined=list(quarantined or []))


def payload(value: Any) -> str:
    """A raw export object as kept in the quarantine table."""
    try:
        return canonical_json(value)
    except TypeError:
        return repr(value)
