"""msgvault: the provider-neutral stream of `msgvault export-messages`.

msgvault archives Gmail (API), IMAP, Office 365, Teams, Beeper, Discord, Slack,
SyncTech SMS, Granola, Plaud and more; one connector reads what it exports:

    msgvault export-messages --start 2000-01-01T00:00:00Z --end 2027-01-01T00:00:00Z > vault.jsonl

The contract is msgvault's own, schema `msgvault-message-export/1`, as written in
kenn-io/msgvault `docs/internal/message-export-design.md` ("JSONL stream contract")
and encoded by `cmd/msgvault/cmd/export_messages.go`:

    {"record_type":"manifest","schema":"msgvault-message-export/1","msgvault_version":…,"window":{"start","end"},"filters":{…}}
    {"record_type":"source","source_type":"gmail","identifier":"you@example.com","display_name":"","last_successful_sync_at":null}
    {"record_type":"conversation","source_type":…,"source_identifier":…,"id":…,"title":…,"conversation_type":"direct_chat","parent_id":null}
    {"record_type":"message","source_type":…,"source_identifier":…,"id":…,"conversation_id":…,"message_type":"email",
     "subject":"","text":"…","author":{"display_name":"…","address":"…"}|null,"occurred_at":"RFC3339","deleted_from_source":false}
    {"record_type":"complete","counts":{"sources":1,"conversations":8,"messages":247}}

- One manifest first, one `complete` last, written "only after every preceding record
  has been encoded successfully"; a consumer "must reject a stream with no completion
  record, records after complete, duplicate manifest or completion records … or
  mismatched counts". Such a stream is refused as truncated and nothing of it lands.
- A record that is not valid JSON, or a message without an id or a readable
  `occurred_at`, is quarantined on its own with its line; the counts then still have to
  add up, counting the quarantined lines.
- Identity is scoped: (source_type, source identifier, id) names a message, the same
  with the conversation id a conversation. Overlapping windows land each message once.
- Who wrote a message: msgvault exports no "from me" flag. For accounts whose identifier
  is an address (Gmail, IMAP, Office 365 and Teams use the account's email), an author
  with that address is the owner; otherwise `[owner]` / `--me` decide, and without them
  the owner is unknown (settled at build time).
- `deleted_from_source` keeps the archived text (kept, and marked in metadata). Calls
  and calendar events are `system`. msgvault exports no attachments, reactions or
  headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from etl.sources.archive import InputFile
from etl.sources.base import BATCH_ROWS, Batch, OwnerMatcher, Param, Quarantined, SourceContext, SourceError, source, to_batch
from etl.sources.chat_common import hashed_id, utc_from_iso

SCHEMA = "msgvault-message-export/1"
WHAT = f"a `msgvault export-messages` JSONL stream (schema {SCHEMA})"
PHASES = ("source", "conversation", "message")
ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+$|^\+[\d\s().-]{7,}$")  # an email, or a phone in E.164 (Discord ids are bare digits)


@source(
    "msgvault",
    version=1,
    help="msgvault: the JSONL stream of `msgvault export-messages` (every source msgvault archives).",
    params=(Param("me", "Your name or address as msgvault's authors show it, besides [owner].", multiple=True),),
    expects=WHAT,
    accept=lambda rel: rel.lower().endswith((".jsonl", ".ndjson")),
    found=".jsonl stream",
)
def read_msgvault(ctx: SourceContext) -> Iterator[Batch]:
    owner = ctx.owner_matcher
    files = ctx.inputs()
    unknown_owner = 0
    for file in files:
        stream = _Stream(file, owner)
        yield from stream.batches(ctx)
        unknown_owner += stream.unknown_owner
    ctx.owner_noted = True  # said below, for the messages whose sources carry no address
    if unknown_owner:
        ctx.note(
            f"{unknown_owner:,} message(s) come from sources msgvault names without an address, and no [owner] "
            "identity or --me matched their authors: they landed with is_owner unknown"
        )


class _Stream:
    """One export stream, checked against its own contract as it is read."""

    def __init__(self, file: InputFile, owner: OwnerMatcher) -> None:
        self.file, self.owner = file, owner
        self.counts = {phase: 0 for phase in PHASES}
        self.unreadable = 0
        self.conversations: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.sources: dict[tuple[str, str], dict[str, Any]] = {}
        self.unknown_owner = 0

    def fail(self, line: int | None, why: str) -> SourceError:
        where = f"{self.file.location} line {line}" if line else self.file.location
        return SourceError(f"{where}: {why}; expected {WHAT}")

    def batches(self, ctx: SourceContext) -> Iterator[Batch]:
        rows: list[dict[str, Any]] = []
        quarantined: list[Quarantined] = []
        manifest = complete = None
        number = 0
        with self.file.open() as lines:
            for number, raw in enumerate(lines, start=1):
                if not raw.strip():
                    continue
                if complete is not None:
                    raise self.fail(number, "a record after the completion record; the stream was altered")
                try:
                    record = orjson.loads(raw)
                except orjson.JSONDecodeError as error:
                    if manifest is None:
                        raise self.fail(number, f"not JSON ({error})") from None
                    self.unreadable += 1
                    quarantined.append(Quarantined(f"{self.file.location} line {number}", f"not valid JSON ({error})",
                                                   raw.decode("utf-8", errors="replace").rstrip("\n")))
                    continue
                kind = record.get("record_type") if isinstance(record, dict) else None
                if manifest is None:
                    manifest = self._manifest(number, record, kind)
                    continue
                if kind == "manifest":
                    raise self.fail(number, "a second manifest; two streams were joined")
                if kind == "complete":
                    complete = (number, record)
                    continue
                if kind not in PHASES:
                    self.unreadable += 1
                    quarantined.append(Quarantined(f"{self.file.location} line {number}",
                                                   f"unknown record_type {kind!r}", _text(raw)))
                    continue
                self.counts[kind] += 1
                try:
                    row = self._record(kind, record)
                except ValueError as error:
                    quarantined.append(Quarantined(f"{self.file.location} line {number}", str(error), _text(raw),
                                                   record.get("id") if isinstance(record.get("id"), str) else None))
                    continue
                if row is not None:
                    rows.append(row)
                if len(rows) + len(quarantined) >= BATCH_ROWS:
                    yield to_batch(rows, quarantined)
                    rows, quarantined = [], []
        if manifest is None:
            raise self.fail(None, "empty stream, no manifest")
        self._check_complete(complete, number)
        if rows or quarantined:
            yield to_batch(rows, quarantined)

    def _manifest(self, line: int, record: Any, kind: Any) -> dict:
        if kind != "manifest":
            raise self.fail(line, f"the first record is {kind!r}, not the manifest")
        if record.get("schema") != SCHEMA:
            raise self.fail(line, f"schema {record.get('schema')!r} is not {SCHEMA}")
        return record

    def _check_complete(self, complete: tuple[int, dict] | None, last_line: int) -> None:
        if complete is None:
            raise self.fail(
                None,
                f"truncated: no completion record after {last_line:,} lines (msgvault writes it only once the whole "
                "stream is out); export again",
            )
        line, record = complete
        declared = record.get("counts") if isinstance(record.get("counts"), dict) else {}
        wanted = {phase: declared.get(f"{phase}s") for phase in PHASES}
        if not all(isinstance(v, int) for v in wanted.values()):
            raise self.fail(line, "the completion record has no counts")
        # Quarantined lines of unknown type may be any record: the totals must agree, and
        # no phase may hold more records than declared.
        observed_total = sum(self.counts.values()) + self.unreadable
        if observed_total != sum(wanted.values()) or any(self.counts[p] > wanted[p] for p in PHASES):
            found = ", ".join(f"{self.counts[p]:,} {p}s" for p in PHASES)
            declared_text = ", ".join(f"{wanted[p]:,} {p}s" for p in PHASES)
            extra = f" and {self.unreadable:,} unreadable line(s)" if self.unreadable else ""
            raise self.fail(line, f"truncated: the completion record counts {declared_text}, the stream holds {found}{extra}")

    # ------------------------------------------------------------------------- records

    def _record(self, kind: str, record: dict) -> dict | None:
        if kind == "source":
            key = (_string(record, "source_type"), _string(record, "identifier"))
            self.sources[key] = record
            return None
        if kind == "conversation":
            key = (_string(record, "source_type"), _string(record, "source_identifier"), _string(record, "id"))
            self.conversations[key] = record
            return None
        return self._message(record)

    def _message(self, record: dict) -> dict:
        source_type, identifier = _string(record, "source_type"), _string(record, "source_identifier")
        message_id, conversation = _string(record, "id"), _string(record, "conversation_id")
        if not message_id:
            raise ValueError("message without an id")
        if not source_type:
            raise ValueError("message without a source_type")
        occurred = utc_from_iso(record.get("occurred_at"))
        if occurred is None:
            raise ValueError(f"occurred_at {record.get('occurred_at')!r} is not an RFC 3339 time")
        thread = self.conversations.get((source_type, identifier, conversation)) or {}
        author = record.get("author") if isinstance(record.get("author"), dict) else {}
        address = author.get("address") or None
        name = author.get("display_name") or None
        message_type = _string(record, "message_type")
        text = record.get("text") if isinstance(record.get("text"), str) and record.get("text") else None
        subject = record.get("subject") or None
        return {
            "source_id": hashed_id(source_type, identifier, message_id),
            "account": f"{source_type}:{identifier}",
            "conversation_id": "msgvault:" + hashed_id(source_type, identifier, conversation or message_id),
            "conversation_title": thread.get("title") or subject or None,
            "sent_at": occurred,
            "sender": address or name,
            "sender_name": name,
            "is_owner": self._is_owner(identifier, address, name) if author else None,
            "kind": _kind(message_type, text),
            "text": text,
            "metadata": {
                "source_type": source_type,
                "source_identifier": identifier,
                "source_name": (self.sources.get((source_type, identifier)) or {}).get("display_name") or None,
                "message_id": message_id,
                "conversation": conversation or None,
                "conversation_type": thread.get("conversation_type"),
                "parent_conversation": thread.get("parent_id"),
                "message_type": message_type,
                "subject": subject,
                "deleted_from_source": True if record.get("deleted_from_source") else None,
            },
        }

    def _is_owner(self, identifier: str, address: str | None, name: str | None) -> bool | None:
        account_is_address = bool(ADDRESS.match(identifier or ""))
        if account_is_address and address and address.strip().casefold() == identifier.strip().casefold():
            return True
        mine = self.owner(address, name)
        if mine is None and not account_is_address:
            self.unknown_owner += 1
        return mine if mine is not None else (False if account_is_address else None)


def _kind(message_type: str, text: str | None) -> str:
    if "call" in message_type or message_type.startswith("calendar"):
        return "system"
    return "text" if text else "attachment"


def _string(record: dict, key: str) -> str:
    value = record.get(key)
    return value if isinstance(value, str) else ""


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\n")
