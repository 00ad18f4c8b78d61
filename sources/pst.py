"""Outlook `.pst` and `.ost` files, read natively with libpff (`pip install -e '.[pst]'`).

Outlook for Windows keeps each account's mail in `%LOCALAPPDATA%\\Microsoft\\Outlook\\`
(`.ost`, the offline cache of an Exchange / Microsoft 365 account) and archives or
exports (File → Open & Export → Import/Export → Export to a file) in
`Documents\\Outlook Files\\*.pst`; Outlook for Mac exports `.olm`, which this does not read.

Every folder is walked. Each item's class (`PR_MESSAGE_CLASS`, 0x001A) says what it is:
mail (`IPM.Note…`), a meeting request (`IPM.Schedule.Meeting…`) and a delivery report
(`REPORT.…`) are messages; appointments, contacts, distribution lists, tasks and notes are
not, and are counted and left out. A message is turned into an RFC 822 message — its
transport headers when Outlook kept them (received mail), else headers from its MAPI
properties (`PR_INTERNET_MESSAGE_ID` 0x1035, `PR_IN_REPLY_TO_ID` 0x1042,
`PR_INTERNET_REFERENCES` 0x1039, sender 0x0C1A / 0x5D01 / 0x0C1F, `PR_DISPLAY_TO` 0x0E04,
`PR_DISPLAY_CC` 0x0E03, `PR_CLIENT_SUBMIT_TIME`) — with its plain-text body, else its HTML
body in its `PR_INTERNET_CPID` code page, and read with the same keys as `etl ingest email`
(the Message-ID without its angle brackets; threads by the References root). Connectors do
not import each other, so this reading is its own: plain text as is, HTML as its text,
list and bulk mail `automated`. A message without a Message-ID is keyed by its `PR_SEARCH_KEY` (0x300B), which a
copy of the message keeps.

The owner: messages in the store's Sent Items and Outbox (the folders its
`PR_IPM_SENTMAIL_ENTRYID` 0x35E4 and `PR_IPM_OUTBOX_ENTRYID` 0x35E2 name, whatever their
localized names) are the owner's, as is mail from an `[owner]` address. Threads: References
/ In-Reply-To, else the thread part of `PR_CONVERSATION_INDEX` (its first 22 bytes).

A message whose Message-ID already landed from an mbox export of the same mailbox
(`etl ingest email`) is recognised and not landed twice. A message libpff cannot read is
quarantined with its folder and id; the rest lands.
"""

from __future__ import annotations

import codecs
import email
import email.header
import email.policy
import email.utils
import re
from email.header import decode_header, make_header
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup

from etl.sources.base import BATCH_ROWS, Batch, Quarantined, SourceContext, SourceError, source, to_batch

WHAT = "an Outlook .pst or .ost file (or a folder of them)"
PST_EXTRA = "pip install -e '.[pst]' (libpff-python)"
MAGIC = b"!BDN"

MESSAGE_CLASS, SUBJECT, SEARCH_KEY = 0x001A, 0x0037, 0x300B
INTERNET_MESSAGE_ID, IN_REPLY_TO, REFERENCES = 0x1035, 0x1042, 0x1039
SENDER_NAME, SENDER_SMTP, SENDER_EMAIL, SENT_REPRESENTING_EMAIL = 0x0C1A, 0x5D01, 0x0C1F, 0x0065
DISPLAY_TO, DISPLAY_CC, INTERNET_CPID = 0x0E04, 0x0E03, 0x3FDE
SENT_MAIL_ENTRYID, OUTBOX_ENTRYID = 0x35E4, 0x35E2
MESSAGE_CLASSES = ("ipm.note", "ipm.schedule.meeting", "report.")
# Headers that describe the MIME body Outlook no longer has as such.
BODY_HEADERS = {"content-type", "content-transfer-encoding", "mime-version", "content-disposition"}


@source(
    "pst",
    version=1,
    help="Outlook .pst / .ost files, read natively (libpff): every folder, Sent Items as yours.",
    expects=WHAT,
    accept=lambda relpath: relpath.lower().endswith((".pst", ".ost")),
    found=".pst or .ost file",
)
def read_pst(ctx: SourceContext) -> Iterator[Batch]:
    try:
        import pypff
    except ImportError:
        raise SourceError(f"reading Outlook .pst/.ost files needs an extra: {PST_EXTRA}") from None
    files = ctx.inputs()
    landed_from_mbox = _MboxExports(ctx)
    skipped: Counter[str] = Counter()
    for item in files:
        if item.member is not None:
            raise SourceError(f"{item.location}: a .pst inside a .zip cannot be opened in place; unzip it first")
        yield from _read_file(ctx, pypff, item.path, landed_from_mbox, skipped)
    if skipped:
        kinds = ", ".join(f"{n} {name}" for name, n in skipped.most_common())
        ctx.note(f"left out {sum(skipped.values())} item(s) that are not messages: {kinds}")
    if landed_from_mbox.matched:
        ctx.note(f"{landed_from_mbox.matched:,} message(s) had already landed from an mbox export (same Message-ID) "
                 "and were not landed again")


def _read_file(ctx: SourceContext, pypff: Any, path: Path, mbox: _MboxExports, skipped: Counter) -> Iterator[Batch]:
    with path.open("rb") as f:
        if f.read(4) != MAGIC:
            raise SourceError(f"{path}: not an Outlook .pst/.ost file (no !BDN signature); expected {WHAT}")
    pst = pypff.file()
    try:
        pst.open(str(path))
    except Exception as error:  # noqa: BLE001 (libpff raises IOError, OSError, MemoryError)
        raise SourceError(f"{path}: libpff cannot open it ({error}); expected {WHAT}") from None
    try:
        sent = _store_folders(pst)
        rows: list[dict] = []
        quarantined: list[Quarantined] = []
        for folder, folder_path in _folders(pst.get_root_folder()):
            own = folder.identifier in sent
            for index in range(folder.number_of_sub_messages):
                where = f"{path} folder {folder_path!r} item {index}"
                try:
                    item = folder.get_sub_message(index)
                    props = _properties(item)
                    message_class = str(props.get(MESSAGE_CLASS) or "IPM.Note")
                    if not message_class.lower().startswith(MESSAGE_CLASSES):
                        skipped[message_class] += 1
                        continue
                    raw, key = _rfc822(item, props)
                    row = _row(ctx, raw, key)
                except Exception as error:  # noqa: BLE001 (a damaged item must not stop the file)
                    quarantined.append(Quarantined(where, f"libpff cannot read this item ({error})"))
                    continue
                _settle(row, own, folder_path, item, message_class)
                rows.append(row)
                if len(rows) + len(quarantined) >= BATCH_ROWS:
                    yield _batch(rows, quarantined, mbox)
                    rows, quarantined = [], []
        if rows or quarantined:
            yield _batch(rows, quarantined, mbox)
    finally:
        pst.close()


def _batch(rows: list[dict], quarantined: list[Quarantined], mbox: _MboxExports) -> Batch:
    landed = mbox.landed([row["source_id"] for row in rows])
    kept = [row for row in rows if row["source_id"] not in landed]
    return to_batch(kept, quarantined, seen=len(rows) + len(quarantined))


def _ids(value: str | None) -> list[str]:
    return re.findall(r"<([^<>\s]+)>", value or "")


def _row(ctx: SourceContext, raw: bytes, key: str | None) -> dict:
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    header = lambda name: str(make_header(decode_header(message[name]))) if message[name] else None  # noqa: E731
    ids = _ids(message["Message-ID"])
    references, in_reply_to = _ids(message["References"]), _ids(message["In-Reply-To"])
    sender_name, sender = email.utils.parseaddr(header("From") or "")
    sender = sender.lower() if "@" in sender else None
    try:
        sent_at = email.utils.parsedate_to_datetime(message["Date"]).astimezone(UTC) if message["Date"] else None
    except (TypeError, ValueError):
        sent_at = None
    payload = message.get_payload(decode=True) or b""
    charset = message.get_content_charset() or "utf-8"
    text = payload.decode(_codec_name(charset), "replace")
    html = message.get_content_type() == "text/html"
    if html:
        text = BeautifulSoup(text, "html.parser").get_text("\n")
    text = text.strip() or None
    bulk = any(message[h] for h in ("List-Unsubscribe", "List-Id")) or (message["Precedence"] or "").lower() in (
        "bulk", "list", "junk") or (message["Auto-Submitted"] or "no").lower() != "no"
    source_id = key or (ids[0] if ids else "pst:" + hashlib.sha256(raw).hexdigest()[:32])
    root = (references or in_reply_to or [None])[0]
    is_owner = ctx.is_owner(sender) if sender else None
    return {
        "source_id": source_id,
        "conversation_id": f"mid:{root or source_id}",
        "conversation_title": header("Subject"),
        "sent_at": sent_at,
        "sender": sender,
        "sender_name": sender_name or None,
        "is_owner": is_owner,
        "kind": "automated" if bulk and not is_owner else "text" if text else "attachment",
        "text": text,
        "reply_to": in_reply_to[-1] if in_reply_to else None,
        "metadata": {"message_id": ids[0] if ids else None, "in_reply_to": in_reply_to[-1] if in_reply_to else None,
                     "references": len(references), "body": "html" if html else "plain", "charset": charset,
                     "automated_by": "list or bulk mail headers" if bulk and not is_owner else None},
    }


def _codec_name(charset: str) -> str:
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return "utf-8"


def _folders(root: Any, trail: str = "") -> Iterator[tuple[Any, str]]:
    for index in range(root.number_of_sub_folders):
        folder = root.get_sub_folder(index)
        name = folder.name or f"folder {folder.identifier}"
        folder_path = f"{trail}/{name}" if trail else name
        yield folder, folder_path
        yield from _folders(folder, folder_path)


def _store_folders(pst: Any) -> set[int]:
    """The node ids of the store's Sent Items and Outbox: an entry id ends with the node id."""
    found = set()
    try:
        store = pst.get_message_store()
        for record_set in store.record_sets:
            for entry in record_set.entries:
                if entry.entry_type in (SENT_MAIL_ENTRYID, OUTBOX_ENTRYID) and entry.data and len(entry.data) >= 24:
                    found.add(int.from_bytes(entry.data[-4:], "little"))
    except Exception:  # noqa: BLE001 (a store without these entries: only [owner] tells)
        pass
    return found


def _properties(item: Any) -> dict[int, Any]:
    props: dict[int, Any] = {}
    for record_set in item.record_sets:
        for entry in record_set.entries:
            kind = entry.value_type
            try:
                if kind in (0x001E, 0x001F):
                    value = entry.get_data_as_string()
                elif kind in (0x0002, 0x0003, 0x0014):
                    value = entry.get_data_as_integer()
                elif kind == 0x0040:
                    value = entry.get_data_as_datetime()
                else:
                    value = entry.data
            except Exception:  # noqa: BLE001, S112 (one unreadable property is left out)
                continue
            props.setdefault(entry.entry_type, value)
    return props


def _rfc822(item: Any, props: dict[int, Any]) -> tuple[bytes, str | None]:
    """The item as an RFC 822 message, and the key to use when it has no Message-ID.
    Written as bytes directly: building an EmailMessage cost more than reading it back."""
    headers: dict[str, str] = {}
    for name, value in _transport_headers(item.transport_headers):
        if name.lower() not in BODY_HEADERS:
            headers.setdefault(name.title() if name.lower() != "message-id" else "Message-ID", value)
    sender_name = props.get(SENDER_NAME) or item.sender_name
    sender = next((props.get(k) for k in (SENDER_SMTP, SENDER_EMAIL, SENT_REPRESENTING_EMAIL)
                   if isinstance(props.get(k), str) and "@" in props.get(k, "")), None)
    submitted = item.client_submit_time or item.delivery_time
    for name, value in (
        ("From", email.utils.formataddr((_header(sender_name or ""), sender)) if sender else sender_name),
        ("To", props.get(DISPLAY_TO)),
        ("Cc", props.get(DISPLAY_CC)),
        ("Subject", item.subject),
        ("Message-ID", props.get(INTERNET_MESSAGE_ID)),
        ("In-Reply-To", props.get(IN_REPLY_TO)),
        ("References", props.get(REFERENCES)),
        ("Date", email.utils.format_datetime(_utc(submitted)) if submitted else None),
    ):
        if value and name not in headers and name.lower() not in {h.lower() for h in headers}:
            headers[name] = str(value)
    plain, html = item.plain_text_body, item.html_body
    if plain:
        body, content_type = plain.replace(b"\r\n", b"\n"), "text/plain; charset=utf-8"
    elif html:
        body, content_type = html, f"text/html; charset={_codec(props.get(INTERNET_CPID))}"
    else:
        body, content_type = b"", "text/plain; charset=utf-8"
    lines = [f"{name}: {_header(value)}" for name, value in headers.items()]
    lines += ["MIME-Version: 1.0", f"Content-Type: {content_type}", "Content-Transfer-Encoding: 8bit"]
    raw = ("\n".join(_one_line(line) for line in lines) + "\n\n").encode("ascii", "replace") + body
    key = None
    if not any(name.lower() == "message-id" for name in headers):
        search_key = props.get(SEARCH_KEY)
        key = "pst:" + (search_key.hex() if isinstance(search_key, bytes) and search_key else
                        hashlib.sha256(raw).hexdigest()[:32])
    return raw, key


def _header(value: str) -> str:
    """A header value as ASCII: non-ASCII text as RFC 2047 encoded words."""
    return value if value.isascii() else email.header.Header(value, "utf-8").encode()


def _one_line(line: str) -> str:
    return " ".join(line.splitlines())


def _transport_headers(text: str | None) -> list[tuple[str, str]]:
    if not text:
        return []
    parsed = email.message_from_string(text.strip() + "\n\n")
    return [(name, str(value)) for name, value in parsed.items()]


def _settle(row: dict, own: bool, folder_path: str, item: Any, message_class: str) -> None:
    """What only the PST knows: the folder, the owner by folder, the thread without headers."""
    metadata = row["metadata"]
    if own:
        row["is_owner"] = True
        if row["kind"] == "automated":
            row["kind"] = "text"
            metadata.pop("automated_by", None)
    index = item.conversation_index
    if index and not metadata.get("in_reply_to") and not metadata.get("references"):
        row["conversation_id"] = "outlook:" + bytes(index[:22]).hex()
    metadata.update({"pst_folder": folder_path, "pst_id": item.identifier, "message_class": message_class})
    if message_class.lower().startswith("report.") and not row["is_owner"]:
        row["kind"], metadata["automated_by"] = "automated", "delivery report"
    row["metadata"] = metadata


def _codec(cpid: Any) -> str:
    if not isinstance(cpid, int) or cpid in (0, 65001):
        return "utf-8"
    try:
        "".encode(f"cp{cpid}")
        return f"cp{cpid}"
    except LookupError:
        return "utf-8"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class _MboxExports:
    """Message-IDs `etl ingest email` already landed, to land a PST's copy only once."""

    def __init__(self, ctx: SourceContext) -> None:
        self.ctx = ctx
        self.matched = 0

    def landed(self, source_ids: list[str]) -> set[str]:
        if not source_ids:
            return set()
        found = {row[0] for row in self.ctx.query(
            "SELECT source_id FROM raw_messages WHERE source = 'email' AND list_contains(?, source_id)", [source_ids]
        )}
        self.matched += len(found)
        return found
