"""WhatsApp's own databases: richer than the "Export chat" text (no cap on length, exact
UTC times, who is who, replies and reactions).

- iOS: `ChatStorage.sqlite` (Core Data) from an unencrypted Finder / iTunes backup, where it
  is stored as `7c/7c7fba66680ef796b916b067077cc246adacf01d` (the SHA-1 of its backup path
  `AppDomainGroup-group.net.whatsapp.WhatsApp.shared-ChatStorage.sqlite`).
  `ZWACHATSESSION` (Z_PK, ZCONTACTJID, ZPARTNERNAME, ZSESSIONTYPE), `ZWAMESSAGE`
  (ZCHATSESSION, ZISFROMME, ZMESSAGEDATE in seconds since 2001-01-01 UTC, ZTEXT,
  ZMESSAGETYPE, ZGROUPEVENTTYPE, ZGROUPMEMBER, ZFROMJID, ZSTANZAID, ZMESSAGEINFO),
  `ZWAGROUPMEMBER` (ZMEMBERJID, ZCONTACTNAME), `ZWAPROFILEPUSHNAME` (ZJID, ZPUSHNAME),
  `ZWAMEDIAITEM` (ZMESSAGE, ZTITLE the caption, ZMETADATA whose protobuf field 5 is the
  stanza id of the quoted message) and `ZWAMESSAGEINFO.ZRECEIPTINFO`, a protobuf whose
  field 7 holds reactions (7.1: others' — 2 sender, 3 emoji, 4 time in ms; 7.2: the owner's
  — 2 emoji, 3 time). Message types: 0 text, 7 link, 1 image, 2 video, 3 audio, 4 contact,
  5 location, 8 document, 11 GIF, 15 sticker, 6 group events, 10 calls and security
  notices, 14 deleted.
- Android: `msgstore.db` as decrypted by the usual tools (wa-crypt-tools,
  WhatsApp-Chat-Exporter), from `/data/data/com.whatsapp/databases/` or the
  `msgstore.db.crypt15` backup in `Android/media/com.whatsapp/WhatsApp/Databases/`.
  `jid` (raw_string), `chat` (jid_row_id, subject), `message` (chat_row_id, from_me, key_id,
  sender_jid_row_id, timestamp in ms, text_data, message_type, status), `message_quoted`
  (message_row_id, key_id), `message_add_on` + `message_add_on_reaction` (parent message,
  sender, emoji, sender_timestamp), `message_system`. `wa.db` beside it (`wa_contacts`)
  gives names. Message types: 0 text, 1 image, 2 audio, 3 video, 4 contact, 5 location,
  9 document, 13 GIF, 20 sticker, 7 system, 15 deleted; status 6 is a system line.

These are the schemas KnugiHK/WhatsApp-Chat-Exporter (`ios_handler.py`,
`android_handler.py`) and sepinf-inc/IPED (`ExtractorIOS.java`) read. The owner is the
database's own flag (ZISFROMME / from_me). A message is keyed by WhatsApp's own message
key (chat, from-me, id), the same on every device of the account, so a phone's database
read twice, or an old phone's and a new phone's, land each message once.

A message that already came in through the chat's `.txt` export (`etl ingest whatsapp`:
same chat title, same minute, same sender, same text) is recognised and not landed twice.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from etl.sources.base import BATCH_ROWS, Batch, Quarantined, SourceContext, SourceError, payload, source, to_batch

IOS_BACKUP_NAME = "7c7fba66680ef796b916b067077cc246adacf01d"
NAMES = ("chatstorage.sqlite", "msgstore.db", IOS_BACKUP_NAME)
WHAT = "WhatsApp's ChatStorage.sqlite (iOS backup) or a decrypted msgstore.db (Android)"
APPLE_EPOCH = 978_307_200  # 2001-01-01T00:00:00Z in Unix seconds

IOS_TEXT, IOS_SYSTEM, IOS_DELETED = {0, 7}, {6, 10, 12}, {14}
ANDROID_TEXT, ANDROID_SYSTEM, ANDROID_DELETED = {0}, {7}, {15}
ANDROID_SYSTEM_STATUS = 6
MEDIA_NAMES = {
    "ios": {1: "image", 2: "video", 3: "audio", 4: "contact", 5: "location", 8: "document", 11: "gif", 15: "sticker"},
    "android": {1: "image", 2: "audio", 3: "video", 4: "contact", 5: "location", 9: "document", 13: "gif",
                16: "live location", 20: "sticker", 42: "view-once image", 43: "view-once video"},
}


@source(
    "whatsapp-db",
    version=1,
    help="WhatsApp's own databases: iOS ChatStorage.sqlite (from a Finder/iTunes backup) or Android msgstore.db (decrypted).",
    expects=WHAT, found="ChatStorage.sqlite or msgstore.db", accept=lambda relpath: _accept(relpath),
)
def read_whatsapp_db(ctx: SourceContext) -> Iterator[Batch]:
    files = ctx.inputs(required=False, record=False)
    databases = []
    for file in files:
        if file.member is not None:
            raise SourceError(f"{file.location}: a database inside a .zip cannot be opened in place; unzip it first")
        databases.append(file.path)
    if not databases:
        raise ctx.not_found()
    ctx.record_inputs(files)
    exported = _TxtExports(ctx)
    for path in databases:
        rows, quarantined = _read_database(path)
        kept = [row for row in rows if not exported.already_landed(row)]
        skipped = len(rows) - len(kept)
        for start in range(0, max(len(kept), 1), BATCH_ROWS):
            chunk = kept[start : start + BATCH_ROWS]
            batch = to_batch(chunk, quarantined if start == 0 else [])
            if start == 0:
                # The rows recognised from a .txt export were read, not landed.
                batch.seen = len(chunk) + len(quarantined) + skipped
            yield batch
    if exported.matched:
        ctx.note(
            f"{exported.matched:,} message(s) had already landed from the chats' .txt exports (same chat, minute, "
            "sender and text) and were not landed again"
        )


def _accept(relpath: str) -> bool:
    return Path(relpath).name.lower() in NAMES


def _connect(path: Path) -> sqlite3.Connection:
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as error:
        raise SourceError(f"{path}: not a readable SQLite database ({error}); expected {WHAT}") from None
    con.row_factory = sqlite3.Row
    return con


def _tables(con: sqlite3.Connection) -> set[str]:
    return {name.lower() for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table','view')")}


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {row[1].upper() for row in con.execute(f"PRAGMA table_info({table})")}


def _read_database(path: Path) -> tuple[list[dict], list[Quarantined]]:
    con = _connect(path)
    try:
        tables = _tables(con)
        if {"zwamessage", "zwachatsession"} <= tables:
            return _read_ios(path, con)
        if {"message", "chat", "jid"} <= tables:
            return _read_android(path, con)
        if "messages" in tables and "message" not in tables:
            raise SourceError(f"{path}: a msgstore.db from before 2022 (table `messages`), not yet read; expected {WHAT}")
        raise SourceError(f"{path}: no WhatsApp tables (ZWAMESSAGE or message) in it; expected {WHAT}")
    except sqlite3.DatabaseError as error:
        raise SourceError(f"{path}: cannot be read ({error}); expected {WHAT}") from None
    finally:
        con.close()


# ----------------------------------------------------------------------------- iOS


def _read_ios(path: Path, con: sqlite3.Connection) -> tuple[list[dict], list[Quarantined]]:
    media_columns = _columns(con, "ZWAMEDIAITEM") if "zwamediaitem" in _tables(con) else set()
    has_info = "zwamessageinfo" in _tables(con)
    push = dict(con.execute("SELECT ZJID, ZPUSHNAME FROM ZWAPROFILEPUSHNAME").fetchall()) if "zwaprofilepushname" in _tables(con) else {}
    sessions = {
        row["Z_PK"]: row for row in con.execute("SELECT Z_PK, ZCONTACTJID, ZPARTNERNAME, ZSESSIONTYPE FROM ZWACHATSESSION")
    }
    caption = "M.ZTITLE" if "ZTITLE" in media_columns else "NULL"
    quoted = "M.ZMETADATA" if "ZMETADATA" in media_columns else "NULL"
    media_join = "LEFT JOIN ZWAMEDIAITEM M ON M.ZMESSAGE = W.Z_PK" if media_columns else ""
    receipt = "I.ZRECEIPTINFO" if has_info else "NULL"
    info_join = "LEFT JOIN ZWAMESSAGEINFO I ON I.Z_PK = W.ZMESSAGEINFO" if has_info else ""
    query = f"""
        SELECT W.Z_PK, W.ZCHATSESSION, W.ZISFROMME, W.ZMESSAGEDATE, W.ZTEXT, W.ZMESSAGETYPE, W.ZGROUPEVENTTYPE,
               W.ZFROMJID, W.ZSTANZAID, G.ZMEMBERJID, G.ZCONTACTNAME,
               {caption} AS CAPTION, {quoted} AS QUOTED, {receipt} AS RECEIPT
        FROM ZWAMESSAGE W
        LEFT JOIN ZWAGROUPMEMBER G ON G.Z_PK = W.ZGROUPMEMBER
        {media_join} {info_join}
        ORDER BY W.ZCHATSESSION, W.ZMESSAGEDATE, W.Z_PK"""
    rows: list[dict] = []
    quarantined: list[Quarantined] = []
    by_stanza: dict[tuple[int, str], str] = {}
    pending_quotes: list[tuple[dict, int, str]] = []
    for record in con.execute(query):
        where = f"{path} ZWAMESSAGE Z_PK {record['Z_PK']}"
        session = sessions.get(record["ZCHATSESSION"])
        try:
            row = _ios_row(record, session, push)
        except ValueError as error:
            quarantined.append(Quarantined(where, str(error), payload({k: _plain(record[k]) for k in record.keys()})))
            continue
        if row is None:
            continue
        stanza = record["ZSTANZAID"] or ""
        by_stanza[(record["ZCHATSESSION"], stanza)] = row["source_id"]
        rows.append(row)
        quoted_stanza = _protobuf_string(record["QUOTED"], 5) if record["QUOTED"] else None
        if quoted_stanza:
            pending_quotes.append((row, record["ZCHATSESSION"], quoted_stanza))
        if record["RECEIPT"]:
            rows.extend(_ios_reactions(record["RECEIPT"], row, session, push))
    for row, chat, stanza in pending_quotes:
        row["reply_to"] = by_stanza.get((chat, stanza))
        row["metadata"]["quoted_stanza"] = stanza
    return rows, quarantined


def _ios_row(record: sqlite3.Row, session: sqlite3.Row | None, push: dict[str, str]) -> dict | None:
    if session is None:
        raise ValueError(f"ZCHATSESSION {record['ZCHATSESSION']} is not a chat in ZWACHATSESSION")
    chat_jid = session["ZCONTACTJID"] or ""
    if chat_jid.endswith(("@status", "@broadcast")):
        return None  # status updates and broadcast lists are not conversations
    if record["ZMESSAGEDATE"] is None:
        raise ValueError("no ZMESSAGEDATE")
    try:
        sent_at = datetime.fromtimestamp(float(record["ZMESSAGEDATE"]) + APPLE_EPOCH, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"ZMESSAGEDATE {record['ZMESSAGEDATE']!r} is out of range") from None
    stanza = record["ZSTANZAID"]
    if not stanza:
        raise ValueError("no ZSTANZAID (the message's id)")
    from_me = bool(record["ZISFROMME"])
    group = chat_jid.endswith("@g.us")
    sender_jid = None if from_me else (record["ZMEMBERJID"] if group else record["ZFROMJID"] or chat_jid)
    name = None
    if not from_me:
        name = (record["ZCONTACTNAME"] or push.get(sender_jid or "")) if group else session["ZPARTNERNAME"]
    message_type = record["ZMESSAGETYPE"] or 0
    text = record["ZTEXT"]
    media = MEDIA_NAMES["ios"].get(message_type)
    if message_type in IOS_DELETED:
        kind, text = "deleted", None
    elif message_type in IOS_SYSTEM:
        kind = "system"
    elif media:
        text = record["CAPTION"] or (text if message_type == 5 else None) or None
        kind = "text" if text and message_type != 5 else "attachment"
    else:
        kind = "text" if text else "system"
    return _row(
        chat_jid, from_me, stanza, sent_at, session["ZPARTNERNAME"], sender_jid, name, kind, text,
        {"platform": "ios", "message_type": message_type, "group_event": record["ZGROUPEVENTTYPE"] or None,
         "attachment": media, "group": group or None},
    )


def _ios_reactions(receipt: bytes, message: dict, session: sqlite3.Row, push: dict[str, str]) -> Iterator[dict]:
    for field, value in _protobuf_fields(receipt):
        if field != 7 or not isinstance(value, bytes):
            continue
        for kind, entry in _protobuf_fields(value):
            if kind not in (1, 2) or not isinstance(entry, bytes):
                continue
            parts = {f: v for f, v in _protobuf_fields(entry) if isinstance(v, bytes)}
            from_me = kind == 2
            emoji = parts.get(2 if from_me else 3, b"").decode("utf-8", "replace")
            when = parts.get(3 if from_me else 4, b"").decode("ascii", "replace")
            sender = None if from_me else parts.get(2, b"").decode("utf-8", "replace") or None
            if not emoji:
                continue  # a reaction taken back
            name = (push.get(sender) or (session["ZPARTNERNAME"] if sender == session["ZCONTACTJID"] else None)) if sender else None
            yield _reaction(message, from_me, sender, name, emoji,
                            int(when) if when.isdigit() else None)


# ----------------------------------------------------------------------------- Android


def _read_android(path: Path, con: sqlite3.Connection) -> tuple[list[dict], list[Quarantined]]:
    tables = _tables(con)
    names = _android_names(path)
    jids = {row["_id"]: row["raw_string"] for row in con.execute("SELECT _id, raw_string FROM jid")}
    if "jid_map" in tables:  # newer databases key people by LID; map them back to their number
        for lid, number in con.execute("SELECT lid_row_id, jid_row_id FROM jid_map"):
            if number in jids:
                jids[lid] = jids[number]
    chats = {row["_id"]: row for row in con.execute("SELECT _id, jid_row_id, subject FROM chat")}
    quoted_join = "LEFT JOIN message_quoted Q ON Q.message_row_id = M._id" if "message_quoted" in tables else ""
    quoted_key = "Q.key_id" if quoted_join else "NULL"
    system_join = "LEFT JOIN message_system S ON S.message_row_id = M._id" if "message_system" in tables else ""
    system_action = "S.action_type" if system_join else "NULL"
    query = f"""
        SELECT M._id, M.chat_row_id, M.from_me, M.key_id, M.sender_jid_row_id, M.timestamp, M.text_data,
               M.message_type, M.status, {quoted_key} AS quoted_key, {system_action} AS system_action
        FROM message M {quoted_join} {system_join}
        ORDER BY M.chat_row_id, M.timestamp, M._id"""
    rows: list[dict] = []
    quarantined: list[Quarantined] = []
    by_row: dict[int, dict] = {}
    by_key: dict[tuple[int, str], str] = {}
    pending_quotes: list[tuple[dict, int, str]] = []
    for record in con.execute(query):
        where = f"{path} message _id {record['_id']}"
        try:
            row = _android_row(record, chats, jids, names)
        except ValueError as error:
            quarantined.append(Quarantined(where, str(error), payload({k: _plain(record[k]) for k in record.keys()})))
            continue
        if row is None:
            continue
        rows.append(row)
        by_row[record["_id"]] = row
        by_key[(record["chat_row_id"], record["key_id"])] = row["source_id"]
        if record["quoted_key"]:
            pending_quotes.append((row, record["chat_row_id"], record["quoted_key"]))
    for row, chat, key in pending_quotes:
        row["reply_to"] = by_key.get((chat, key))
        row["metadata"]["quoted_key"] = key
    if {"message_add_on", "message_add_on_reaction"} <= tables:
        reactions = con.execute("""
            SELECT A.parent_message_row_id, A.from_me, A.sender_jid_row_id, R.reaction, R.sender_timestamp
            FROM message_add_on A JOIN message_add_on_reaction R ON R.message_add_on_row_id = A._id
            ORDER BY A._id""")
        for parent, from_me, sender_row, emoji, when in reactions:
            message = by_row.get(parent)
            if message is None or not emoji:
                continue
            sender = None if from_me else jids.get(sender_row)
            rows.append(_reaction(message, bool(from_me), sender, names.get(sender or ""), emoji, when))
    return rows, quarantined


def _android_names(path: Path) -> dict[str, str]:
    """Display names by jid from wa.db beside msgstore.db, when it is there."""
    contacts = path.with_name("wa.db")
    if not contacts.exists():
        return {}
    try:
        con = sqlite3.connect(f"{contacts.resolve().as_uri()}?mode=ro", uri=True)
        try:
            found = con.execute("SELECT jid, COALESCE(display_name, wa_name) FROM wa_contacts").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return {}
    return {jid: name for jid, name in found if jid and name}


def _android_row(record: sqlite3.Row, chats: dict, jids: dict, names: dict) -> dict | None:
    chat = chats.get(record["chat_row_id"])
    if chat is None:
        raise ValueError(f"chat_row_id {record['chat_row_id']} is not a chat")
    chat_jid = jids.get(chat["jid_row_id"]) or ""
    if not chat_jid or chat_jid.endswith(("@status", "@broadcast")) or chat_jid == "status@broadcast":
        return None
    if not isinstance(record["timestamp"], int) or record["timestamp"] <= 0:
        raise ValueError(f"timestamp {record['timestamp']!r} is not a time in milliseconds")
    if not record["key_id"]:
        raise ValueError("no key_id (the message's id)")
    sent_at = datetime.fromtimestamp(record["timestamp"] // 1000, UTC).replace(
        microsecond=record["timestamp"] % 1000 * 1000
    )
    from_me = bool(record["from_me"])
    group = chat_jid.endswith("@g.us")
    sender_jid = None if from_me else (jids.get(record["sender_jid_row_id"]) if group else chat_jid)
    title = chat["subject"] if group else names.get(chat_jid) or _number(chat_jid)
    message_type = record["message_type"] or 0
    text = record["text_data"]
    media = MEDIA_NAMES["android"].get(message_type)
    if message_type in ANDROID_DELETED:
        kind, text = "deleted", None
    elif message_type in ANDROID_SYSTEM or record["status"] == ANDROID_SYSTEM_STATUS or record["system_action"] is not None:
        kind = "system"
    elif media:
        kind = "text" if text else "attachment"
    else:
        kind = "text" if text else "system"
    return _row(
        chat_jid, from_me, record["key_id"], sent_at, title, sender_jid,
        names.get(sender_jid or "") if sender_jid else None, kind, text,
        {"platform": "android", "message_type": message_type, "system_action": record["system_action"],
         "attachment": media, "group": group or None},
    )


# ----------------------------------------------------------------------------- rows


def _row(chat_jid: str, from_me: bool, key: str, sent_at: datetime, title: str | None, sender_jid: str | None,
         name: str | None, kind: str, text: str | None, metadata: dict) -> dict:
    return {
        # WhatsApp's own message key: the chat, whether the account sent it, and its id.
        "source_id": f"{chat_jid}/{int(from_me)}/{key}",
        "conversation_id": "whatsapp:" + chat_jid,
        "conversation_title": title or _number(chat_jid),
        "sent_at": sent_at,
        "sender": None if from_me else _number(sender_jid) if sender_jid else None,
        "sender_name": None if from_me else name,
        "is_owner": from_me,
        "kind": kind,
        "text": text,
        "reply_to": None,
        "metadata": {**metadata, "chat_jid": chat_jid, "sender_jid": sender_jid},
    }


def _reaction(message: dict, from_me: bool, sender: str | None, name: str | None, emoji: str,
              when_ms: int | None) -> dict:
    at = datetime.fromtimestamp(when_ms / 1000, UTC) if when_ms and when_ms > 0 else message["sent_at"]
    who = "me" if from_me else sender or "unknown"
    return {
        "source_id": f"{message['source_id']}:reaction:{who}",
        "conversation_id": message["conversation_id"],
        "conversation_title": message["conversation_title"],
        "sent_at": at,
        "sender": None if from_me else _number(sender) if sender else None,
        "sender_name": None if from_me else name,
        "is_owner": from_me,
        "kind": "reaction",
        "text": emoji,
        "reply_to": message["source_id"],
        "metadata": {"reaction": emoji, "sender_jid": sender},
    }


def _number(jid: str | None) -> str | None:
    """`15551234567@s.whatsapp.net` as `+15551234567`; other jids (groups, LIDs) as they are."""
    if not jid:
        return None
    user, _, server = jid.partition("@")
    return f"+{user}" if server == "s.whatsapp.net" and user.isdigit() else jid


def _plain(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else value


# ----------------------------------------------------------------------------- protobuf


def _protobuf_fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: varints as int, length-delimited as bytes.
    Stops quietly at the first malformed byte (these blobs are not always protobuf)."""
    at, end = 0, len(data)
    while at < end:
        key, at = _varint(data, at)
        if key is None:
            return
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            if value is None:
                return
            yield field, value
        elif wire == 2:
            length, at = _varint(data, at)
            if length is None or at + length > end:
                return
            yield field, data[at : at + length]
            at += length
        elif wire == 1:
            at += 8
        elif wire == 5:
            at += 4
        else:
            return


def _varint(data: bytes, at: int) -> tuple[int | None, int]:
    value = shift = 0
    while at < len(data) and shift < 64:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
    return None, at


def _protobuf_string(data: bytes, field: int) -> str | None:
    for number, value in _protobuf_fields(data):
        if number == field and isinstance(value, bytes):
            return value.decode("utf-8", "replace")
    return None


# ----------------------------------------------------------------------------- the .txt exports


class _TxtExports:
    """What `etl ingest whatsapp` already landed, to recognise the same messages here: the
    same chat title, the same UTC minute, the same sender, the same text."""

    def __init__(self, ctx: SourceContext) -> None:
        self.ctx = ctx
        self.matched = 0
        self._loaded: dict[str, dict[tuple[int, str], list[tuple[str | None, bool | None]]]] = {}

    def _chat(self, title: str) -> dict:
        key = _fold(title)
        if key not in self._loaded:
            found: dict[tuple[int, str], list] = defaultdict(list)
            rows = self.ctx.query(
                "SELECT sent_at, text, sender_name, is_owner FROM raw_messages "
                "WHERE source = 'whatsapp' AND kind = 'text' AND lower(conversation_title) = lower(?)",
                [title],
            )
            for sent_at, text, sender_name, is_owner in rows:
                if sent_at is not None and text:
                    found[(_minute(sent_at), _norm(text))].append((_fold(sender_name), is_owner))
            self._loaded[key] = found
        return self._loaded[key]

    def already_landed(self, row: dict) -> bool:
        if row["kind"] != "text" or not row["text"] or not row["conversation_title"]:
            return False
        candidates = self._chat(row["conversation_title"]).get((_minute(row["sent_at"]), _norm(row["text"])))
        if not candidates:
            return False
        for i, (sender_name, is_owner) in enumerate(candidates):
            if row["is_owner"]:
                same = is_owner is not False
            else:
                same = is_owner is not True and (row["sender_name"] is None or sender_name == _fold(row["sender_name"])
                                                 or sender_name == _fold(row["sender"]))
            if same:
                del candidates[i]  # one .txt line stands for one message, not for its repeats
                self.matched += 1
                return True
        return False


def _minute(at: datetime) -> int:
    return int(at.timestamp()) // 60


def _fold(value: str | None) -> str | None:
    return unicodedata.normalize("NFC", value).strip().casefold() if value else None


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\u200e", "").replace("\u200f", "")
    return text.strip()
