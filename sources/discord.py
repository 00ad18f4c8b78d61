"""Discord: channels and DMs exported as JSON by DiscordChatExporter.

One file per channel: `guild {id, name}`, `channel {id, type, category, name}`,
`messages[]` with `id` (a snowflake, unique across Discord), `type`, `timestamp`
(ISO 8601 with offset), `content`, `author {id, name, discriminator, nickname, isBot}`,
`attachments`, `stickers`, `embeds`, `reactions [{emoji {id, name}, count, users?}]`,
`reference {messageId}`. The user may point at a file, a folder of them or a .zip.

Traps:
- Not everything in `messages` is a message: `Call`, `ChannelPinnedMessage`,
  `GuildMemberJoin`, `ThreadCreated`, `RecipientAdd`… are events (`system`); only
  `Default` and `Reply` (and slash-command replies, written as their number) are.
- Bots (`isBot`) post `automated` rows, never the owner's voice.
- Names: the server nickname is what people saw, so it is `sender_name`; the
  account name and its `#discriminator` stay in metadata. The owner is matched on
  id, name, nickname or name#discriminator (`--me` or corpus.toml [owner]).
- Reactions come as counts; exports made with reactors listed give one row per
  reactor, otherwise one row per emoji with the count in metadata.
- Other DiscordChatExporter formats (HTML, TXT, CSV) are refused with a hint.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from etl.sources.archive import InputFile
from etl.sources.base import Quarantined, SourceContext, SourceError, payload, record_rows, source
from etl.sources.chat_common import utc_from_iso

MESSAGE_TYPES = {"Default", "Reply", "20", "23", "ChatInputCommand", "ContextMenuCommand"}
OTHER_FORMATS = (".html", ".htm", ".txt", ".csv")


@source(
    "discord",
    version=1,
    help="Discord: channel and DM exports from DiscordChatExporter (JSON format).",
    expects="a DiscordChatExporter JSON export (guild, channel, messages; a file, a folder or a .zip)",
    accept=lambda relpath: _accept(relpath),
    found="DiscordChatExporter JSON",
    owner_hint="your Discord user id or name",
)
def read_discord(ctx: SourceContext) -> Iterator[tuple]:
    given = {Path(p).expanduser() for p in ctx.paths}
    exports, skipped, other_formats = [], [], []
    for file in ctx.inputs(required=False):
        if file.name.lower().endswith(OTHER_FORMATS) or not file.name.lower().endswith(".json"):
            if file.member is None and file.path in given:
                raise SourceError(f"{file.location}: not a JSON file; export again with --format Json: "
                                  f"expected {ctx.expects}")  # fmt: skip
            other_formats.append(file)
            continue
        data = ctx.load_json(file)
        if _is_export(data):
            exports.append((file, data))
        elif file.member is None and file.path in given:
            raise SourceError(f"{file.location}: no guild, channel and messages; expected {ctx.expects}")
        else:
            skipped.append(file)
    if not exports:
        raise ctx.not_found(hint=" (found DiscordChatExporter HTML/TXT/CSV: export again with --format Json)"
                            if other_formats else "")  # fmt: skip
    if skipped:
        ctx.note(f"skipped {len(skipped)} JSON file(s) that are not DiscordChatExporter exports, e.g. {skipped[0].location}")
    for file, data in exports:
        yield _channel_rows(file, data, ctx.is_owner)


def _accept(relpath: str) -> bool:
    # Media downloaded beside an export sit in "<export>_Files/" folders.
    return relpath.lower().endswith((".json", *OTHER_FORMATS)) and "_Files/" not in relpath


def _is_export(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("channel"), dict)
        and isinstance(data.get("messages"), list)
        and "guild" in data
    )


def _channel_rows(file: InputFile, data: dict, owner) -> tuple[list[dict], list[Quarantined]]:
    guild = data.get("guild") if isinstance(data.get("guild"), dict) else {}
    channel = data["channel"]
    channel_id = str(channel.get("id") or file.name)
    is_dm = str(channel.get("type", "")).startswith(("DirectTextChat", "DirectGroupTextChat")) or guild.get("id") == "0"
    title = channel.get("name") if is_dm else f"{guild.get('name')} / #{channel.get('name')}"
    context = {
        "conversation_id": channel_id,
        "conversation_title": title,
        "channel": {
            "guild_id": guild.get("id"),
            "guild": guild.get("name"),
            "channel_type": channel.get("type"),
            "category": channel.get("category"),
        },
    }
    rows: dict[str, dict] = {}
    quarantined: list[Quarantined] = []
    for index, message in enumerate(data["messages"]):
        where = f"{file.location} message {index}"
        if not isinstance(message, dict) or not message.get("id"):
            quarantined.append(Quarantined(where, "no message id", payload(message)))
            continue
        sent_at = utc_from_iso(message.get("timestamp"))
        if sent_at is None:
            quarantined.append(Quarantined(where, "no readable timestamp", payload(message), str(message["id"])))
            continue
        def rows_of(message=message, sent_at=sent_at):
            return _message_rows(message, sent_at, context, owner)

        for row in record_rows(rows_of, where, message, quarantined):
            rows.setdefault(row["source_id"], row)
    return list(rows.values()), quarantined


def _message_rows(message: dict, sent_at: datetime, context: dict, owner) -> Iterator[dict]:
    source_id = str(message["id"])
    author = message.get("author") if isinstance(message.get("author"), dict) else {}
    kind = _kind(message, author)
    reference = message.get("reference") if isinstance(message.get("reference"), dict) else {}
    base = {"conversation_id": context["conversation_id"], "conversation_title": context["conversation_title"]}
    yield {
        **base,
        "source_id": source_id,
        "sent_at": sent_at,
        "sender": author.get("id"),
        "sender_name": _display_name(author),
        "is_owner": owner(*_identities(author)) if author else None,
        "kind": kind,
        "text": message.get("content"),
        "reply_to": str(reference["messageId"]) if message.get("type") == "Reply" and reference.get("messageId") else None,
        "metadata": {
            **context["channel"],
            "type": message.get("type"),
            "author_name": author.get("name"),
            "author_tag": _tag(author),
            "is_bot": author.get("isBot") or None,
            "edited_at": message.get("timestampEdited"),
            "call_ended_at": message.get("callEndedTimestamp"),
            "is_pinned": message.get("isPinned") or None,
            "reference": reference or None,
            "attachments": [
                {k: a.get(k) for k in ("fileName", "url", "fileSizeBytes") if a.get(k) is not None}
                for a in message.get("attachments") or []
                if isinstance(a, dict)
            ] or None,
            "stickers": [s.get("name") for s in message.get("stickers") or [] if isinstance(s, dict)] or None,
            "embeds": len(message.get("embeds") or []) or None,
        },
    }
    for reaction in message.get("reactions") or []:
        if not isinstance(reaction, dict):
            continue
        emoji = reaction.get("emoji") if isinstance(reaction.get("emoji"), dict) else {}
        name = emoji.get("name") or emoji.get("code")
        key = emoji.get("id") or name
        users = [u for u in reaction.get("users") or [] if isinstance(u, dict)]
        for user in users or [None]:
            yield {
                **base,
                "source_id": f"{source_id}:reaction:{key}" + (f":{user.get('id')}" if user else ""),
                "sent_at": sent_at,  # reactions carry no time of their own
                "sender": user.get("id") if user else None,
                "sender_name": _display_name(user) if user else None,
                "is_owner": owner(*_identities(user)) if user else None,
                "kind": "reaction",
                "text": name,
                "reply_to": source_id,
                "metadata": {"reaction": name, "emoji_id": emoji.get("id") or None, "count": reaction.get("count")},
            }


def _kind(message: dict, author: dict) -> str:
    if str(message.get("type", "Default")) not in MESSAGE_TYPES:
        return "system"
    if author.get("isBot"):
        return "automated"
    if message.get("content"):
        return "text"
    if message.get("attachments") or message.get("stickers") or message.get("embeds"):
        return "attachment"
    return "text"


def _display_name(author: dict) -> str | None:
    return author.get("nickname") or author.get("name")


def _tag(author: dict) -> str | None:
    """name#1234, for accounts from before Discord dropped discriminators."""
    name, discriminator = author.get("name"), author.get("discriminator")
    if name and discriminator and discriminator.strip("0"):
        return f"{name}#{discriminator}"
    return None


def _identities(author: dict) -> tuple:
    return (author.get("id"), author.get("name"), author.get("nickname"), _tag(author))

