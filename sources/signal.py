"""Signal Desktop: its own encrypted database, opened the way the `signal-export` package
opens it.

Signal Desktop keeps everything in `sql/db.sqlite` (SQLCipher) under its folder:
`~/Library/Application Support/Signal` (macOS), `~/.config/Signal` (Linux),
`%APPDATA%\\Signal` (Windows). The key is in `config.json` beside it, as `key`, or since 2024
as `encryptedKey`, sealed with the OS keychain (macOS Keychain, GNOME libsecret / KWallet,
Windows DPAPI).

Why signal-export's reading and not its export output: its Markdown/HTML output has no
message ids (a second export could not be told from new messages), writes reactions and
quotes into the text, and keeps no edit history or expiry. Its reading is what is hard —
finding the folder, unsealing the key from the keychain, the SQLCipher settings — so the
connector uses `sigexport.crypto.get_key` and `sigexport.data.get_signal_database` for
that, then reads the rows itself, because signal-export's own message model drops
`editHistory`, `expireTimer` and the system messages. A database already decrypted to plain
SQLite (`sqlcipher` `sqlcipher_export`) is read without the package.

The tables, as signal-export and Signal Desktop's own `ts/sql/Server.ts` write them:
`conversations` (id, type `private` | `group`, name, profileName, e164, serviceId, json) and
`messages` (id, conversationId, type, body, sent_at ms, sourceServiceId, json). The message
JSON holds `reactions` [{emoji, fromId, targetTimestamp, timestamp}], `quote` {id = the
quoted message's sent_at, authorAci, text}, `editHistory` [{body, timestamp}, …] (newest
first, the current version included), `expireTimer` (seconds), `deletedForEveryone`,
`isViewOnce` / `isErased`, `attachments`, `sticker`; system messages have their own `type`
(`group-v2-change`, `timer-notification`, `keychange`, `call-history`, …).

What lands: the owner is `type = 'outgoing'`. Reactions are rows of kind `reaction` (one per
person and message); quotes are `reply_to`; an edited message keeps its latest text and its
earlier versions land marked superseded (the build drops them); a message deleted for
everyone, or a viewed view-once, is `deleted`; a disappearing message is `text` with its
`expire_timer` in metadata; group names are the conversation titles.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from etl.sources.archive import InputFile
from etl.sources.base import BATCH_ROWS, Batch, Param, Quarantined, SourceContext, SourceError, source, to_batch

WHAT = "Signal Desktop's folder (with config.json and sql/db.sqlite), or its db.sqlite"
SQLITE_MAGIC = b"SQLite format 3\x00"
MESSAGE_TYPES = ("incoming", "outgoing")
INSTALL_HINT = "reading Signal's encrypted database needs the signal extra: pip install -e '.[signal]'"


def _default_folder() -> str:
    if sys.platform == "darwin":
        return "~/Library/Application Support/Signal"
    if sys.platform == "win32":
        return str(Path(os.environ.get("APPDATA", "~")) / "Signal")
    return "~/.config/Signal"


@source(
    "signal",
    version=1,
    help="Signal Desktop: its own database (via signal-export's decryption), with reactions, quotes, edits, deletions.",
    params=(
        Param("key", "The database key (hex), if config.json cannot give it.", envvar="SIGNAL_DB_KEY", secret=True),
        Param("password", "The keychain password that seals config.json's encryptedKey.", envvar="SIGNAL_PASSWORD",
              secret=True),
    ),
    paths="optional",
    default_paths=(_default_folder(),),
)
def read_signal(ctx: SourceContext) -> Iterator[Batch]:
    for given in ctx.paths:
        path = Path(given).expanduser()
        db_file = path / "sql" / "db.sqlite" if path.is_dir() else path
        if not db_file.exists():
            raise SourceError(f"{path}: no such file or folder, or no sql/db.sqlite in it (expected {WHAT})")
        ctx.record_inputs([InputFile(db_file)])
        con = _open(db_file, ctx.options)
        try:
            yield from _read(ctx, db_file, con)
        except sqlite3.DatabaseError as error:
            raise SourceError(f"{db_file}: cannot be read ({error}); expected {WHAT}") from None
        finally:
            con.close()


def _open(db_file: Path, options: dict[str, Any]):
    with db_file.open("rb") as f:
        plain = f.read(16) == SQLITE_MAGIC
    if plain:
        con = sqlite3.connect(f"{db_file.resolve().as_uri()}?mode=ro", uri=True)
    else:
        try:
            from sigexport import crypto, data
        except ImportError:
            raise SourceError(f"{db_file}: encrypted; {INSTALL_HINT}") from None
        key = options.get("key")
        if not key:
            config = db_file.parent.parent / "config.json"
            if not config.exists():
                raise SourceError(f"{db_file}: encrypted, and no config.json beside its sql/ folder; pass --key")
            # signal-export explains its failures on the terminal; here they become one line.
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                try:
                    key = crypto.get_key(config.parent, options.get("password"))
                except BaseException:  # noqa: B036 - it raises typer.Exit and bare re-raises
                    key = None
            if not key:
                raise SourceError(
                    f"{config}: the database key could not be unsealed from the keychain; pass --password "
                    "(the keychain's Signal password) or --key"
                )
        with contextlib.redirect_stdout(io.StringIO()):
            cursor = data.get_signal_database(db_file.parent.parent, None, str(key))
        con = cursor.connection
    try:
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except Exception as error:  # sqlcipher3's DatabaseError is its own class
        con.close()
        raise SourceError(f"{db_file}: cannot be opened ({error}): a wrong key, or not Signal's database") from None
    tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"messages", "conversations"} <= tables:
        con.close()
        raise SourceError(f"{db_file}: no messages and conversations tables; expected {WHAT}")
    return con


def _columns(con, table: str) -> set[str]:
    return {row[1] for row in con.execute(f"PRAGMA table_info({table})")}


def _read(ctx: SourceContext, db_file: Path, con) -> Iterator[Batch]:
    people = _conversations(con)
    me = _owner_conversation(con, people)
    columns = _columns(con, "messages")
    source_column = "sourceServiceId" if "sourceServiceId" in columns else "sourceUuid" if "sourceUuid" in columns else "NULL"
    query = f"SELECT rowid, id, conversationId, type, body, sent_at, {source_column}, json FROM messages ORDER BY sent_at, rowid"
    by_timestamp: dict[tuple[str, int], str] = {}
    rows: list[dict] = []
    quarantined: list[Quarantined] = []
    quotes: list[tuple[dict, str, int]] = []
    for rowid, message_id, conversation_id, kind, body, sent_at, author, raw in con.execute(query):
        where = f"{db_file} messages rowid {rowid}"
        try:
            record = json.loads(raw) if raw else {}
            if not isinstance(record, dict):
                raise ValueError("json is not an object")
            found = _message_rows(message_id, conversation_id, kind, body, sent_at, author, record, people, me)
        except ValueError as error:
            quarantined.append(Quarantined(where, str(error), raw if isinstance(raw, str) else None, message_id))
            continue
        if not found:
            continue
        main = found[0]
        by_timestamp[(conversation_id, int(sent_at))] = main["source_id"]
        quote = record.get("quote")
        if isinstance(quote, dict) and isinstance(quote.get("id"), int):
            quotes.append((main, conversation_id, quote["id"]))
        rows.extend(found)
    for row, conversation_id, quoted_at in quotes:
        row["reply_to"] = by_timestamp.get((conversation_id, quoted_at))
        if row["reply_to"] is None:
            row["metadata"]["quote_not_found"] = True
    for start in range(0, max(len(rows), 1), BATCH_ROWS):
        chunk = rows[start : start + BATCH_ROWS]
        yield to_batch(chunk, quarantined if start == 0 else [])
    if me is None:
        ctx.note(f"{db_file}: the account's own conversation was not found, so reactions' owners are unknown")


def _conversations(con) -> dict[str, dict]:
    columns = _columns(con, "conversations")
    pick = [c if c in columns else f"NULL AS {c}" for c in ("id", "type", "name", "profileName", "e164", "serviceId", "json")]
    if "serviceId" not in columns and "uuid" in columns:
        pick[5] = "uuid AS serviceId"
    people = {}
    for cid, kind, name, profile, e164, service_id, raw in con.execute(f"SELECT {', '.join(pick)} FROM conversations"):
        try:
            extra = json.loads(raw) if raw else {}
        except ValueError:
            extra = {}
        family = extra.get("profileFamilyName") if isinstance(extra, dict) else None
        display = name or (f"{profile} {family}".strip() if profile and family else profile) or e164
        people[cid] = {"type": kind, "name": display, "e164": e164, "service_id": service_id}
        if service_id:
            people[("service", service_id)] = people[cid]  # authors are named by service id
    return people


def _owner_conversation(con, people: dict[str, dict]) -> str | None:
    """The conversation id of the account itself (Signal's "Note to Self")."""
    ours = None
    with contextlib.suppress(Exception):
        row = con.execute("SELECT json FROM items WHERE id = 'uuid_id'").fetchone()
        if row:
            ours = str(json.loads(row[0]).get("value", "")).split(".")[0] or None
    if ours is None:
        with contextlib.suppress(Exception):
            row = con.execute("SELECT ourServiceId FROM sessions LIMIT 1").fetchone()
            ours = row[0] if row else None
    if ours is None:
        return None
    return next((cid for cid, p in people.items() if isinstance(cid, str) and p["service_id"] == ours), None)


def _message_rows(message_id: str, conversation_id: str, kind: str | None, body: str | None, sent_at: Any,
                  author: str | None, record: dict, people: dict, me: str | None) -> list[dict]:
    if not message_id:
        raise ValueError("no message id")
    if not isinstance(sent_at, int) or sent_at <= 0:
        raise ValueError(f"sent_at {sent_at!r} is not a time in milliseconds")
    chat = people.get(conversation_id)
    if chat is None:
        raise ValueError(f"conversationId {conversation_id!r} is not a conversation")
    if kind == "story" or record.get("storyId") and kind not in MESSAGE_TYPES:
        return []  # stories are not conversations
    outgoing = kind == "outgoing"
    sender = None if outgoing else people.get(("service", author)) or (chat if chat["type"] == "private" else None)
    title = chat["name"] or chat["e164"]
    body = body if body is not None else record.get("body")
    attachments = [
        {k: a.get(k) for k in ("contentType", "fileName") if a.get(k)}
        for a in record.get("attachments") or [] if isinstance(a, dict)
    ]
    sticker = record.get("sticker") if isinstance(record.get("sticker"), dict) else None
    expire = record.get("expireTimer") or None
    if kind not in MESSAGE_TYPES:
        row_kind, text = "system", body
    elif record.get("deletedForEveryone") or record.get("isErased"):
        row_kind, text = "deleted", None
    elif body:
        row_kind, text = "text", body
    else:
        row_kind, text = "attachment", None
    base = {
        "conversation_id": "signal:" + conversation_id,
        "conversation_title": title,
        "sender": None if outgoing else (sender or {}).get("e164") or (sender or {}).get("service_id") or author,
        "sender_name": None if outgoing else (sender or {}).get("name"),
        "is_owner": outgoing if kind in MESSAGE_TYPES else False,
    }
    history = [h for h in record.get("editHistory") or [] if isinstance(h, dict)]
    rows = [{
        **base,
        "source_id": message_id,
        "sent_at": _utc(sent_at),
        "kind": row_kind,
        "text": text,
        "reply_to": None,
        "metadata": {
            "type": kind,
            "group": True if chat["type"] == "group" else None,
            "attachments": attachments or None,
            "sticker": sticker.get("emoji") or "sticker" if sticker else None,
            "expire_timer": expire,
            "view_once": True if record.get("isViewOnce") else None,
            "deleted_for_everyone": True if record.get("deletedForEveryone") else None,
            "edited": True if len(history) > 1 else None,
            "edit_count": len(history) - 1 if len(history) > 1 else None,
            "quote_text": (record.get("quote") or {}).get("text") if isinstance(record.get("quote"), dict) else None,
        },
    }]
    # editHistory lists every version, newest first; the newest is the message itself.
    for version, earlier in enumerate(reversed(history[1:])):
        stamp = earlier.get("timestamp") if isinstance(earlier.get("timestamp"), int) else sent_at
        rows.append({
            **base, "source_id": f"{message_id}:v{version}", "sent_at": _utc(stamp), "kind": "text",
            "text": earlier.get("body"), "reply_to": None,
            "metadata": {"type": kind, "superseded": True, "edit_of": message_id, "version": version},
        })
    for reaction in record.get("reactions") or []:
        if not isinstance(reaction, dict) or not reaction.get("emoji"):
            continue
        reactor = reaction.get("fromId")
        person = people.get(reactor) or {}
        stamp = reaction.get("timestamp") if isinstance(reaction.get("timestamp"), int) else sent_at
        rows.append({
            **base,
            "source_id": f"{message_id}:reaction:{reactor}",
            "sent_at": _utc(stamp),
            "sender": person.get("e164") or person.get("service_id"),
            "sender_name": person.get("name"),
            "is_owner": None if me is None else reactor == me,
            "kind": "reaction",
            "text": reaction["emoji"],
            "reply_to": message_id,
            "metadata": {"reaction": reaction["emoji"]},
        })
    return rows


def _utc(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds // 1000, UTC).replace(microsecond=milliseconds % 1000 * 1000)
