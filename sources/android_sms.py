"""Android SMS and MMS: the XML backup of the "SMS Backup & Restore" app (SyncTech).

The app writes `sms-<timestamp>.xml` to the phone (and to Google Drive, Dropbox or
OneDrive when set up). Its fields, as the app documents them
(synctech.com.au/sms-backup-restore/fields-in-xml-backup-files/):

    <smses count="3" backup_date="…" type="full">
      <sms address="+15555550100" date="1709280000000" type="1" body="…" contact_name="Ana"
           date_sent="…" read="1" status="-1" sub_id="1" readable_date="…" … />
      <mms date="…" msg_box="2" address="+1555…~+1666…" m_id="…" m_type="128" sub="null"
           contact_name="Ana, Ben" …>
        <parts><part seq="0" ct="text/plain" text="…" … /><part ct="image/jpeg" data="base64…" … /></parts>
        <addrs><addr address="…" type="137" … /> …</addrs>
      </mms>
    </smses>

- `date` is Java time in milliseconds. SMS `type`: 1 received, 2 sent, 3 draft,
  4 outbox, 5 failed, 6 queued. MMS `msg_box`: 1 received, 2 sent, 3 draft, 4 outbox.
  Both say who wrote the message, so the owner is known without any configuration.
  A draft was never sent: it lands as `system`, so no reply is learnt from it.
- `<addr type>` is the MMS PDU header (OMA MMS encapsulation): 137 From, 151 To,
  130 Cc, 129 Bcc. The MMS `address` attribute lists the thread's other parties,
  joined by `~`. Values the phone's database had as NULL are written as the text `null`;
  `contact_name` is `(Unknown)` for a number not in the contacts.
- A group MMS is a conversation of its own, keyed by its set of addresses; an MMS to
  one person joins the SMS conversation with that number. Numbers are compared on their
  last 9 digits, so `+33 6 12 34 56 78` and `06 12 34 56 78` are one person.
- Messages from short codes (digits only, at most 6) and alphanumeric sender ids
  (`AMAZON`, `VM-HDFCBK`) are sent by machines: banks, delivery notices, 2FA codes.
  They land as `automated`; the owner's replies to them stay the owner's text.
- The app's "emoji and special characters" option writes each emoji as two UTF-16
  surrogate character references (`&#55357;&#56832;`), which XML forbids; they are
  turned into the character before parsing, and other forbidden references into U+FFFD.
- Backups reach gigabytes (MMS images are inline base64): the file is parsed as a
  stream and each record is dropped once read, so memory stays flat.

Ids. Neither SMS nor MMS have an id that survives a reinstall, so a message is keyed on
a hash of its conversation, time, direction and text (a counter for true repeats): the
next, larger backup of the same phone lands only what is new.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from etl.sources.archive import InputFile
from etl.sources.base import BATCH_ROWS, Batch, Quarantined, SourceContext, SourceError, payload, source, to_batch
from etl.sources.chat_common import RepeatCounter, hashed_id, utc_from_unix_ms

WHAT = "an SMS Backup & Restore XML backup (sms-*.xml with <smses>, or a folder or .zip of them)"

SMS_TYPES = {1: "received", 2: "sent", 3: "draft", 4: "outbox", 5: "failed", 6: "queued"}
MMS_BOXES = {1: "received", 2: "sent", 3: "draft", 4: "outbox"}
# A draft was never sent: the owner's words, but no one read them, so not a reply.
DRAFT = 3
ADDR_ROLES = {137: "from", 151: "to", 130: "cc", 129: "bcc"}
# m_type of MMS PDUs that are reports, not messages (delivery and read reports).
MMS_REPORTS = {134: "delivery report", 136: "read report"}
MMS_NOTIFICATION = 130  # notification_ind: an MMS the phone never downloaded
NUMBER_KEY_DIGITS = 9
SHORT_CODE_DIGITS = 6
# SMIL describes the layout of the other parts, not content.
LAYOUT_TYPES = ("application/smil",)

_CHUNK = 1 << 20
_CHAR_REF = re.compile(rb"&#(?:x([0-9a-fA-F]+)|([0-9]+));")
_LETTER = re.compile(r"[^\W\d_]")


@source(
    "android-sms",
    version=1,
    help="Android SMS and MMS: the XML backup of the “SMS Backup & Restore” app (sms-*.xml, a folder or a .zip).",
    expects=WHAT, found="SMS Backup & Restore file", accept=lambda rel: rel.lower().endswith(".xml"),
)
def read_android_sms(ctx: SourceContext) -> Iterator[Batch]:
    given = {Path(p).expanduser() for p in ctx.paths}
    found = 0
    skipped: list[str] = []
    state = _State(own={number_key(p) for p in getattr(ctx.owner, "phones", ()) if p})
    for file in ctx.inputs(required=False, record=False):
        kind = _root_name(file)
        if kind != "smses":
            if file.member is None and file.path in given:
                hint = " (that is a call log: calls are not messages)" if kind == "calls" else ""
                raise SourceError(f"{file.location}: no <smses> backup in it{hint}; expected {WHAT}")
            skipped.append(file.location)
            continue
        found += 1
        ctx.record_inputs([file])
        yield from _read_backup(ctx, file, state)
    if not found:
        raise ctx.not_found()
    if skipped:
        ctx.note(f"skipped {len(skipped)} XML file(s) that are not SMS backups (call logs, others), e.g. {skipped[0]}")


def _root_name(file: InputFile) -> str | None:
    """The name of the document's first element, read from the first few kilobytes."""
    try:
        with file.open() as stream:
            head = stream.read(8192)
    except OSError as error:
        raise SourceError(f"{file.location}: cannot be read ({error}); expected {WHAT}") from None
    match = re.search(rb"<([A-Za-z_][\w.-]*)[\s>/]", re.sub(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>", b"", head, flags=re.S))
    return match.group(1).decode() if match else None


# ----------------------------------------------------------------------------- streaming


def _events(stream: BinaryIO) -> Iterator[tuple[str, ET.Element]]:
    """("start" | "end", element) of the whole document, its character references repaired."""
    parser = ET.XMLPullParser(events=("start", "end"))
    carry = b""
    while True:
        chunk = stream.read(_CHUNK)
        data = carry + chunk
        if chunk:
            # Keep back a reference that may continue in the next chunk (or be half of a pair).
            cut = _safe_cut(data)
            data, carry = data[:cut], data[cut:]
        else:
            carry = b""
        parser.feed(repair_char_refs(data))
        yield from parser.read_events()
        if not chunk:
            break
    parser.close()
    yield from parser.read_events()


def _safe_cut(data: bytes) -> int:
    """Where to split a chunk so that no character reference, and no surrogate pair
    (two adjacent references), is cut in half."""
    cut = data.rfind(b"&", max(0, len(data) - 32))
    if cut < 0:
        return len(data)
    before = data.rfind(b"&", max(0, cut - 16), cut)
    match = _CHAR_REF.fullmatch(data, before, cut) if before >= 0 else None
    if match and 0xD800 <= _code(match) <= 0xDBFF:
        return before
    return cut


def _code(match: re.Match) -> int:
    return int(match.group(1), 16) if match.group(1) else int(match.group(2))


def repair_char_refs(data: bytes) -> bytes:
    """XML text with surrogate-pair character references joined into one character, and
    references to characters XML forbids (lone surrogates, most control codes) as U+FFFD."""
    if b"&#" not in data:
        return data
    out: list[bytes] = []
    last = 0
    pending: tuple[int, int] | None = None  # (start, code) of a high surrogate
    for match in _CHAR_REF.finditer(data):
        code = _code(match)
        if pending is not None:
            start, high = pending
            pending = None
            if 0xDC00 <= code <= 0xDFFF and match.start() == _end_of(data, start):
                combined = 0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00)
                out.append(data[last:start] + b"&#%d;" % combined)
                last = match.end()
                continue
            out.append(data[last:start] + b"&#65533;")
            last = _end_of(data, start)
        if 0xD800 <= code <= 0xDBFF:
            pending = (match.start(), code)
        elif not _allowed(code):
            out.append(data[last : match.start()] + b"&#65533;")
            last = match.end()
    if pending is not None:
        start, _ = pending
        out.append(data[last:start] + b"&#65533;")
        last = _end_of(data, start)
    out.append(data[last:])
    return b"".join(out)


def _end_of(data: bytes, start: int) -> int:
    return data.index(b";", start) + 1


def _allowed(code: int) -> bool:
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


def _read_backup(ctx: SourceContext, file: InputFile, state: _State) -> Iterator[Batch]:
    rows: list[dict[str, Any]] = []
    quarantined: list[Quarantined] = []
    repeats = RepeatCounter()
    counts = {"sms": 0, "mms": 0}
    declared = None
    depth = 0
    root: ET.Element | None = None
    with file.open() as stream:
        try:
            for event, element in _events(stream):
                if event == "start":
                    depth += 1
                    if depth == 1:
                        root, declared = element, element.get("count")
                    continue
                depth -= 1
                if depth != 1:
                    continue
                tag = element.tag
                if tag in counts:
                    counts[tag] += 1
                    where = f"{file.location} <{tag}> {counts[tag]}"
                    try:
                        row = _sms_row(element, state) if tag == "sms" else _mms_row(element, state)
                    except ValueError as error:
                        quarantined.append(Quarantined(where, str(error), payload(_attributes(element))))
                    else:
                        row["source_id"] = repeats(row["source_id"])
                        rows.append(row)
                root.remove(element) if root is not None else None
                if len(rows) + len(quarantined) >= BATCH_ROWS:
                    yield to_batch(rows, quarantined)
                    rows, quarantined = [], []
        except ET.ParseError as error:
            line, column = error.position
            read = counts["sms"] + counts["mms"]
            quarantined.append(
                Quarantined(
                    f"{file.location} line {line} column {column}",
                    f"not well-formed XML ({_reason(error)}); the {read:,} messages before it landed, the rest of the file was not read",
                )
            )
            ctx.note(f"{file.location}: XML breaks at line {line} column {column} (an incomplete copy?); read up to there")
    if rows or quarantined:
        yield to_batch(rows, quarantined)
    total = counts["sms"] + counts["mms"]
    if declared and declared.isdigit() and int(declared) != total:
        ctx.note(f"{file.location}: the backup says it holds {int(declared):,} messages, {total:,} were found")


def _reason(error: ET.ParseError) -> str:
    return str(error).split(":")[0]


def _attributes(element: ET.Element) -> dict[str, Any]:
    """A record as kept in quarantine: its attributes and its parts' (inline media left out)."""
    kept = {k: v for k, v in element.attrib.items()}
    parts = [
        {k: v for k, v in part.attrib.items() if k != "data"} for part in element.iter("part")
    ]
    addrs = [dict(a.attrib) for a in element.iter("addr")]
    return {**kept, **({"parts": parts} if parts else {}), **({"addrs": addrs} if addrs else {})}


# ----------------------------------------------------------------------------- records


@dataclass
class _State:
    """What one run learns as it reads: the owner's own numbers (the sender of the owner's
    MMS, and [owner] phones) and contact names by number, for the senders of group MMS."""

    own: set[str] = field(default_factory=set)
    names: dict[str, str] = field(default_factory=dict)


def _value(element: ET.Element, name: str) -> str | None:
    value = element.get(name)
    return None if value is None or value == "null" else value


def _integer(element: ET.Element, name: str) -> int | None:
    value = _value(element, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None


def _sent_at(element: ET.Element):
    milliseconds = _integer(element, "date")
    if milliseconds is None or milliseconds <= 0:
        raise ValueError("no date")
    # MMS rows on some phones store seconds; before 1973 in milliseconds means seconds.
    if milliseconds < 100_000_000_000:
        milliseconds *= 1000
    try:
        return utc_from_unix_ms(milliseconds)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"date={milliseconds} is out of range") from None


def _contact(element: ET.Element) -> str | None:
    name = _value(element, "contact_name")
    return None if not name or name == "(Unknown)" else name


@functools.lru_cache(maxsize=1 << 14)
def number_key(address: str) -> str:
    """How an address is compared: the last 9 digits of a phone number, an alphanumeric
    sender id or email address lowercased."""
    address = address.strip()
    digits = re.sub(r"\D", "", address)
    if _LETTER.search(address) or not digits:
        return address.casefold()
    return digits[-NUMBER_KEY_DIGITS:]


@functools.lru_cache(maxsize=1 << 14)
def is_automated_sender(address: str | None) -> bool:
    """A short code or an alphanumeric sender id: the sender is a service, not a person."""
    if not address:
        return False
    address = address.strip()
    if "@" in address:
        return False  # mail sent to a phone: a person's address
    if _LETTER.search(address):
        return True
    digits = re.sub(r"\D", "", address)
    return 0 < len(digits) <= SHORT_CODE_DIGITS and not address.startswith("+")


def _conversation(addresses: list[str]) -> tuple[str, list[str]]:
    return _conversation_of(tuple(addresses))


@functools.lru_cache(maxsize=1 << 14)
def _conversation_of(addresses: tuple[str, ...]) -> tuple[str, list[str]]:
    keys = sorted({number_key(a) for a in addresses if a})
    return "sms:" + hashed_id(keys)[:16], keys


def _sms_row(element: ET.Element, state: _State) -> dict[str, Any]:
    address = _value(element, "address")
    if not address:
        raise ValueError("no address")
    sent_at = _sent_at(element)
    kind_code = _integer(element, "type")
    if kind_code not in SMS_TYPES:
        raise ValueError(f"type={element.get('type')!r} is not one of SMS Backup & Restore's message types")
    is_owner = kind_code != 1
    body = _value(element, "body")
    contact = _contact(element)
    conversation_id, keys = _conversation([address])
    if contact:
        state.names[keys[0]] = contact
    automated = is_automated_sender(address)
    kind = "automated" if automated and not is_owner else "system" if kind_code == DRAFT else "text"
    return {
        "source_id": "sms:" + hashed_id(conversation_id, element.get("date"), is_owner, body),
        "conversation_id": conversation_id,
        "conversation_title": contact or address,
        "sent_at": sent_at,
        "sender": None if is_owner else address,
        "sender_name": None if is_owner else contact,
        "is_owner": is_owner,
        "kind": kind,
        "text": body,
        "metadata": {
            "format": "sms",
            "address": address,
            "box": SMS_TYPES[kind_code],
            "date_sent": _integer(element, "date_sent") or None,
            "read": _value(element, "read"),
            "subscription": _value(element, "sub_id"),
            "automated_by": ("short code" if not _LETTER.search(address) else "alphanumeric sender") if kind == "automated" else None,
            "to_automated_sender": True if automated and is_owner else None,
        },
    }


def _mms_row(element: ET.Element, state: _State) -> dict[str, Any]:
    sent_at = _sent_at(element)
    box = _integer(element, "msg_box")
    if box not in MMS_BOXES:
        raise ValueError(f"msg_box={element.get('msg_box')!r} is not one of SMS Backup & Restore's MMS boxes")
    is_owner = box != 1
    addrs = [
        (a.get("address", "").strip(), ADDR_ROLES.get(_int_or_none(a.get("type")), a.get("type")))
        for a in element.iter("addr")
        if _value(a, "address") and a.get("address") != "insert-address-token"
    ]
    sender = next((address for address, role in addrs if role == "from"), None)
    # The thread's other parties: the `address` attribute, else every address but the owner's.
    if is_owner and sender:
        state.own.add(number_key(sender))
    thread = [a.strip() for a in (_value(element, "address") or "").split("~") if a.strip()]
    if not thread:
        thread = [address for address, _ in addrs]
    thread = [a for a in thread if number_key(a) not in state.own] or thread
    if not thread:
        raise ValueError("no address: neither the message nor its <addrs> name the other party")
    conversation_id, keys = _conversation(thread)
    texts, attachments = [], []
    for part in sorted(element.iter("part"), key=lambda p: _int_or_none(p.get("seq")) or 0):
        content_type = (_value(part, "ct") or "").lower()
        if content_type in LAYOUT_TYPES:
            continue
        if content_type == "text/plain":
            text = _value(part, "text")
            if text:
                texts.append(text)
            continue
        attachments.append({k: v for k in ("ct", "name", "fn", "cl") if (v := _value(part, k))})
    m_type = _integer(element, "m_type")
    text = "\n".join(texts) or None
    automated = not is_owner and is_automated_sender(sender or (thread[0] if len(thread) == 1 else None))
    if m_type in MMS_REPORTS or box == DRAFT:
        kind = "system"
    elif automated:
        kind = "automated"
    elif text:
        kind = "text"
    else:
        kind = "attachment"
    contact = _contact(element)
    group = len(keys) > 1
    if contact and not group:
        state.names.setdefault(keys[0], contact)
    sender_name = None if is_owner else (state.names.get(number_key(sender)) if sender else None) or (None if group else contact)
    title = contact if contact and not group else ", ".join(sorted(state.names.get(number_key(a)) or a for a in thread))
    return {
        "source_id": "mms:" + hashed_id(conversation_id, element.get("date"), is_owner, text, _value(element, "m_id")),
        "conversation_id": conversation_id,
        "conversation_title": title,
        "sent_at": sent_at,
        "sender": None if is_owner else sender,
        "sender_name": sender_name,
        "is_owner": is_owner,
        "kind": kind,
        "text": text,
        "metadata": {
            "format": "mms",
            "box": MMS_BOXES[box],
            "group": group or None,
            "addresses": [{"address": a, "role": r} for a, r in addrs],
            "subject": _value(element, "sub"),
            "message_id": _value(element, "m_id"),
            "m_type": m_type,
            "report": MMS_REPORTS.get(m_type),
            "not_downloaded": True if m_type == MMS_NOTIFICATION else None,
            "attachments": attachments or None,
            "automated_by": "short code or alphanumeric sender" if kind == "automated" else None,
        },
    }


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
