"""Telegram: the JSON export of Telegram Desktop (Settings → Advanced → Export Telegram
data, format "Machine-readable JSON"), or one chat's "Export chat history".

The whole-account export is one `result.json` with `personal_information` (the owner's
user id) and `chats.list[]`, each chat with `id`, `name`, `type` and `messages[]`; a
one-chat export has `messages` at the top. Either comes as the file, its folder or a zip.

Traps handled here:
- `text` is a string, or a list of plain strings and entity objects (bold, link, …)
  whose texts, concatenated, are the message: the spaces between entities are plain
  strings of their own, so nothing is inserted between them.
- Deleted accounts have `"from": null` (the `from_id` may remain); such messages land
  with no sender name.
- `date` is the exporting machine's local time without an offset; `date_unixtime` (in
  exports since 2021) is exact and preferred; without it `--timezone` applies.
- Service messages (`type: "service"`: joins, calls, pins, renames) land as `system`
  with the action in the metadata; media without a caption as `attachment`; a caption
  is the message's text with the media in the metadata.
- Reactions: every reactor Telegram lists (`recent`: who and when) becomes a row of kind
  `reaction` answering the message, so reactions by the owner are kept as such; the
  totals per emoji (including anonymous ones) stay in the message's metadata.

Ids are Telegram's own: `source_id` is "<chat id>:<message id>", so re-exporting (a
longer history, more chats) adds only what is new.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import orjson

from etl.schemas.records import canonical_json
from etl.sources.archive import InputFile
from etl.sources.base import UTF8_BOM, Quarantined, SourceContext, SourceError, recognise, source
from etl.sources.chat_common import describe_binary

EXPECTED = "a Telegram Desktop JSON export (result.json, its folder or a .zip of it)"
# Keys that carry a message's media; kept in the metadata.
MEDIA_KEYS = (
    "photo",
    "file",
    "file_name",
    "thumbnail",
    "media_type",
    "mime_type",
    "sticker_emoji",
    "duration_seconds",
    "width",
    "height",
    "performer",
    "title",
    "contact_information",
    "contact_vcard",
    "location_information",
    "live_location_period_seconds",
    "place_name",
    "address",
    "poll",
    "game_title",
    "game_description",
    "game_link",
    "invoice_information",
    "self_destruct_period_seconds",
)
# Media keys that make a message an attachment when it has no text of its own.
_ATTACHMENT_KEYS = ("photo", "file", "media_type", "sticker_emoji", "contact_information", "location_information",
                    "poll", "game_title", "invoice_information", "place_name")
_SERVICE_KEYS = ("action", "title", "members", "inviter", "message_id", "duration_seconds", "discard_reason",
                 "information_text", "new_title", "period", "amount", "currency")
_PASSED_ON = ("forwarded_from", "saved_from", "via_bot", "author", "reply_to_peer_id")


@source(
    "telegram",
    version=1,
    help="Telegram Desktop JSON export: result.json (every chat, or one), its folder or a .zip of it.",
    expects=EXPECTED,
    accept=lambda relpath: _is_export_file(relpath),
    found="result.json",
    owner_hint="your Telegram display name, when the export does not say who you are (a one-chat export)",
    timezone=True,
)
def read_telegram(ctx: SourceContext) -> Iterator[tuple[list[dict], list[Quarantined]]]:
    unresolved = False
    local_dates = [0]  # dates without date_unixtime, read in --timezone
    for path in ctx.paths:
        found = ctx.inputs([path])
        exports = [f for f in found if not _is_html(f.member or f.path.name)]
        if not exports:
            raise SourceError(f"{path}: is Telegram's HTML export; export again choosing the format "
                              "“Machine-readable JSON”")  # fmt: skip
        for f in exports:
            data = _load(f)
            owner_id = _owner_id(data)
            unresolved = unresolved or (owner_id is None and not ctx.owner_matcher.configured)
            for chat, left in _chat_lists(data) if "messages" not in data else [(data, False)]:
                yield _ChatReader(f, chat, left, owner_id, ctx, local_dates).rows()
    ctx.owner_noted = True  # said here: the export itself may name the owner
    if unresolved:
        ctx.note(
            "the export does not say who you are (no personal_information) and no owner name is configured, "
            "so no message is marked as yours; pass --me NAME"
        )
    if local_dates[0]:
        ctx.note(f"{local_dates[0]} Telegram date(s) had no date_unixtime and were read as {ctx.zone_name}")


def _is_export_file(relpath: str) -> bool:
    name = PurePosixPath(relpath).name.lower()
    return name == "result.json" or _is_html(name)


def _is_html(name: str) -> bool:
    name = PurePosixPath(name).name.lower()
    return name.startswith("messages") and name.endswith(".html")


def _load(f: InputFile) -> dict[str, Any]:
    """The export's JSON, or a one-line error saying what the file is instead."""
    raw = f.read_bytes()
    what = describe_binary(raw[:4096])
    if what:
        raise SourceError(f"{f.location}: is {what}, not a Telegram export; expected {EXPECTED}")
    if _is_html(f.name) or raw.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
        raise SourceError(
            f"{f.location}: is Telegram's HTML export; export again choosing the format “Machine-readable JSON”"
        )
    try:
        data = orjson.loads(raw.removeprefix(UTF8_BOM))
    except orjson.JSONDecodeError as exc:
        if other := recognise(raw[:8192], but="telegram"):
            raise SourceError(
                f"{f.location}: is {other.expects.split(' (')[0]}, not Telegram's; use `etl ingest {other.name}`"
            ) from None
        if raw.removeprefix(UTF8_BOM).lstrip()[:1] not in (b"{", b"["):
            raise SourceError(f"{f.location}: is not JSON; expected {EXPECTED}") from None
        raise SourceError(
            f"{f.location}: is not complete JSON ({exc}); the file looks truncated or damaged: "
            "export it again from Telegram Desktop"
        ) from None
    has_chats = isinstance(data, dict) and any(
        isinstance(data.get(key), dict) and isinstance(data[key].get("list"), list) for key in ("chats", "left_chats")
    )
    if not has_chats and not (isinstance(data, dict) and isinstance(data.get("messages"), list)):
        raise SourceError(
            f"{f.location}: is JSON without Telegram chats (no chats.list or messages); expected {EXPECTED}"
        )
    return data


def _chat_lists(data: dict[str, Any]) -> list[tuple[dict[str, Any], bool]]:
    """Every chat of a whole-account export, with whether the owner left it."""
    chats = []
    for key, left in (("chats", False), ("left_chats", True)):
        section = data.get(key)
        if isinstance(section, dict) and isinstance(section.get("list"), list):
            chats += [(chat, left) for chat in section["list"] if isinstance(chat, dict)]
    return chats


def _owner_id(data: dict[str, Any]) -> str | None:
    """The owner as `from_id` writes them, from a whole-account export's personal_information."""
    personal = data.get("personal_information")
    if isinstance(personal, dict) and personal.get("user_id") is not None:
        return f"user{personal['user_id']}"
    return None


class _ChatReader:
    """Rows of one chat."""

    def __init__(self, f: InputFile, chat: dict[str, Any], left: bool, owner_id: str | None,
                 ctx: SourceContext, local_dates: list[int]):
        self.f, self.chat, self.left = f, chat, left
        self.owner_id, self.ctx, self.local_dates = owner_id, ctx, local_dates
        name = chat.get("name")
        if chat.get("type") == "saved_messages" and not name:
            name = "Saved Messages"
        self.title = name
        # Exports always carry the chat id; a hand-made file may not, and then its name stands in.
        chat_id = chat.get("id")
        self.key = str(chat_id) if chat_id is not None else "name-" + _digest(str(name or f.name))
        self.conversation_id = self.key
        self.repeats: Counter[str] = Counter()

    def rows(self) -> tuple[list[dict], list[Quarantined]]:
        rows: list[dict[str, Any]] = []
        quarantined: list[Quarantined] = []
        messages = self.chat.get("messages")
        if not isinstance(messages, list):
            messages = []
        for index, message in enumerate(messages):
            where = f"{self.f.location} chat {self.title or self.key} message #{index}"
            if not isinstance(message, dict):
                quarantined.append(Quarantined(where, "not a JSON object", _payload(message)))
                continue
            if message.get("type") not in ("message", "service", None):
                quarantined.append(
                    Quarantined(where, f"message type {message.get('type')!r} is not exported with content",
                                _payload(message), self._source_id(message))
                )
                continue
            try:
                rows.extend(self._rows(message))
            except (TypeError, ValueError, KeyError, OverflowError) as exc:
                quarantined.append(Quarantined(where, f"cannot be read: {exc}", _payload(message)))
        return rows, quarantined

    # ------------------------------------------------------------------ one message

    def _source_id(self, message: dict[str, Any]) -> str:
        message_id = message.get("id")
        if message_id is not None:
            return f"{self.key}:{message_id}"
        # Without an id (hand-made files), what the message says identifies it.
        identity = {k: message.get(k) for k in ("date_unixtime", "date", "from", "from_id", "actor", "text")}
        base = f"{self.key}:h{_digest(canonical_json(identity))}"
        self.repeats[base] += 1
        return base if self.repeats[base] == 1 else f"{base}-{self.repeats[base]}"

    def _is_owner(self, peer_id: Any, name: Any) -> bool | None:
        if self.owner_id and peer_id:
            return str(peer_id) == self.owner_id
        if self.chat.get("type") == "saved_messages":
            return True
        return self.ctx.is_owner(name if isinstance(name, str) else None)

    def _sent_at(self, unixtime: Any, local: Any) -> datetime | None:
        if unixtime not in (None, ""):
            return datetime.fromtimestamp(int(unixtime), UTC)
        if isinstance(local, str) and local:
            self.local_dates[0] += 1
            return self.ctx.to_utc(datetime.fromisoformat(local).replace(tzinfo=None))
        return None

    def _rows(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        source_id = self._source_id(message)
        service = message.get("type") == "service"
        sender_key, name_key = ("actor_id", "actor") if service else ("from_id", "from")
        sender, sender_name = message.get(sender_key), message.get(name_key)
        text = flatten_text(message.get("text", message.get("text_entities")))
        metadata: dict[str, Any] = {"message_id": message.get("id")}
        if self.chat.get("type"):
            metadata["chat_type"] = self.chat["type"]
        if self.left:
            metadata["left_chat"] = True
        if message.get("edited") or message.get("edited_unixtime"):
            metadata["edited"] = True
            edited_at = self._sent_at(message.get("edited_unixtime"), message.get("edited"))
            metadata["edited_at"] = edited_at.isoformat() if edited_at else None
        for key in _PASSED_ON:
            if message.get(key) is not None:
                metadata[key] = message[key]
        reply = message.get("reply_to_message_id")
        if reply is not None and message.get("reply_to_peer_id"):
            metadata["reply_to_message_id"] = reply  # in another chat: no row here to point at
            reply = None
        media = {k: message[k] for k in MEDIA_KEYS if message.get(k) not in (None, "")}
        if service:
            kind = "system"
            metadata.update({k: message[k] for k in _SERVICE_KEYS if message.get(k) not in (None, "")})
        elif not text and any(k in media for k in _ATTACHMENT_KEYS):
            kind = "attachment"
        else:
            kind = "text"
        if media and not service:
            metadata["attachment"] = media
        reactions = message.get("reactions")
        if isinstance(reactions, list) and reactions:
            metadata["reactions"] = [
                {k: r[k] for k in ("type", "emoji", "document_id", "count") if k in r}
                for r in reactions
                if isinstance(r, dict)
            ]
        row = {
            "source": "telegram",
            "source_id": source_id,
            "conversation_id": self.conversation_id,
            "conversation_title": self.title,
            "sent_at": self._sent_at(message.get("date_unixtime"), message.get("date")),
            "sender": str(sender) if sender is not None else None,
            "sender_name": sender_name if isinstance(sender_name, str) and sender_name else None,
            "is_owner": self._is_owner(sender, sender_name),
            "kind": kind,
            "text": text if text or kind == "text" else None,
            "reply_to": f"{self.key}:{reply}" if reply is not None else None,
            "metadata": metadata,
        }
        return [row, *self._reaction_rows(source_id, reactions)]

    def _reaction_rows(self, target: str, reactions: Any) -> list[dict[str, Any]]:
        rows = []
        for reaction in reactions if isinstance(reactions, list) else ():
            if not isinstance(reaction, dict):
                continue
            # A custom emoji is named by its sticker file's path; a short hash of it keeps ids short.
            what = reaction.get("emoji") or (
                f"{reaction.get('type')}-{_digest(str(reaction['document_id']))[:8]}"
                if reaction.get("document_id")
                else str(reaction.get("type") or "?")
            )
            for n, recent in enumerate(reaction.get("recent") or ()):
                if not isinstance(recent, dict):
                    continue
                who = recent.get("from_id") or recent.get("from") or f"#{n}"
                metadata = {k: reaction[k] for k in ("type", "emoji", "document_id") if k in reaction}
                rows.append(
                    {
                        "source": "telegram",
                        "source_id": f"{target}:reaction:{who}:{what}",
                        "conversation_id": self.conversation_id,
                        "conversation_title": self.title,
                        "sent_at": self._sent_at(recent.get("date_unixtime"), recent.get("date")),
                        "sender": str(recent["from_id"]) if recent.get("from_id") is not None else None,
                        "sender_name": recent.get("from") or None,
                        "is_owner": self._is_owner(recent.get("from_id"), recent.get("from")),
                        "kind": "reaction",
                        "text": reaction.get("emoji"),
                        "reply_to": target,
                        "metadata": metadata,
                    }
                )
        return rows


def flatten_text(text: Any) -> str:
    """A message's text: a string as is; a list of strings and entities, concatenated."""
    if text is None:
        return ""
    if isinstance(text, str):
        return text
    if isinstance(text, list):
        parts = []
        for part in text:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise TypeError(f"text part {part!r} is neither a string nor an entity with text")
        return "".join(parts)
    raise TypeError(f"text is a {type(text).__name__}, expected a string or a list")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def _payload(value: Any) -> str:
    return canonical_json(value) if isinstance(value, (dict, list)) else str(value)
