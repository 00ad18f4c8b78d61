"""Slack: a workspace export (the .zip an admin downloads, or its folder).

The export has `users.json`, `channels.json` and, when present, `groups.json`
(private channels), `dms.json` and `mpims.json` at its root, and one folder per
conversation holding a file per day, `<channel>/<YYYY-MM-DD>.json`, each a list of
messages: `ts` (Unix seconds, UTC, also the message's id in its channel), `user`,
`text`, `subtype`, `thread_ts`, `reactions [{name, users, count}]`, `files`,
`bot_id`, `client_msg_id`. Public channels' folders are named after the channel,
direct messages' after their id.

Traps:
- Text is Slack markup: `<@U123>` mentions, `<#C123|general>` channels,
  `<https://x|label>` links, `<!here>`, and `&lt; &gt; &amp;` escapes. It is
  resolved to what people saw (`@Ana`, `#general`, `label`); the markup as
  exported is kept in metadata `text_raw`.
- Subtypes: joins, leaves, topic and purpose changes, integrations added… are
  `system`; `bot_message` and app posts are `automated`; in old exports a
  `file_share` is "<@U1> uploaded a file: <…>" (an attachment) and a `file_comment`
  holds the comment typed on a file.
- Ids: `channel id:ts`, stable across exports even after a channel is renamed. An
  export without channels.json falls back to the folder name (a note says so).
- Who is the owner: `--me` (user id, e.g. U012AB3CD, or name) or corpus.toml
  [owner], compared with the user's id, handle, display name, real name and email.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from etl.sources.archive import InputFile
from etl.sources.base import Quarantined, SourceContext, SourceError, load_json, payload, record_rows, source

WHAT = "a Slack workspace export (users.json, channels.json and <channel>/<YYYY-MM-DD>.json; the .zip or its folder)"
LISTS = ("users.json", "channels.json", "groups.json", "dms.json", "mpims.json")
DAY_FILE = re.compile(r"(?:^|/)([^/]+)/(\d{4}-\d{2}-\d{2})\.json$")

SYSTEM_SUBTYPES = {
    "channel_join", "channel_leave", "channel_topic", "channel_purpose", "channel_name", "channel_archive",
    "channel_unarchive", "channel_convert_to_private", "channel_convert_to_public", "group_join", "group_leave",
    "group_topic", "group_purpose", "group_name", "group_archive", "group_unarchive", "bot_add", "bot_remove",
    "bot_enable", "bot_disable", "pinned_item", "unpinned_item", "reminder_add", "reminder_delete",
    "sh_room_created", "huddle_thread", "joiner_notification", "channel_posting_permissions",
    "channel_canvas_updated", "message_changed",
}  # fmt: skip
AUTOMATED_SUBTYPES = {"bot_message", "slackbot_response"}
DELETED_SUBTYPES = {"tombstone", "message_deleted"}
OLD_FILE_SHARE = re.compile(r"<@[^>]+> uploaded a file: <[^>]*>(?: and commented: (?P<comment>.*))?", re.DOTALL)
MARKUP = re.compile(r"<([^<>\n]+)>")


@source(
    "slack",
    version=1,
    help="Slack: a workspace export (the .zip or its folder).",
    expects=WHAT,
    accept=lambda relpath: PurePosixPath(relpath).name in LISTS or DAY_FILE.search(relpath) is not None,
    found="<channel>/<YYYY-MM-DD>.json day files",
    owner_hint="your Slack user id (e.g. U012AB3CD), handle, name or email",
)
def read_slack(ctx: SourceContext) -> Iterator[tuple[list[dict], list[Quarantined]]]:
    for _, export in sorted(_find_exports(ctx).items()):
        workspace = Workspace(export)
        if not workspace.channels:
            ctx.note(
                f"{export.where}: no channels.json: conversations are named by folder, so ids will "
                "differ from those of a complete export"
            )
        if not workspace.users:
            ctx.note(f"{export.where}: no users.json: authors and mentions stay as user ids")
        for folder, days in sorted(export.days.items()):
            yield workspace.conversation_rows(folder, days, ctx.is_owner)


# ----------------------------------------------------------------------------- files


class Export:
    """The files of one export: its lists and its day files, by conversation folder."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.lists: dict[str, InputFile] = {}
        self.days: dict[str, list[InputFile]] = defaultdict(list)

    def files(self) -> list[InputFile]:
        return [*self.lists.values(), *(f for days in self.days.values() for f in days)]


def _find_exports(ctx: SourceContext) -> dict[tuple, Export]:
    """Exports keyed by (archive, folder of their root), so two exports read together
    keep their own users and channels."""
    exports: dict[tuple, Export] = {}
    for file in ctx.inputs(required=False):
        inner = PurePosixPath(file.member) if file.member else PurePosixPath(file.path.as_posix())
        container = str(file.path) if file.member else ""
        if inner.name in LISTS:
            root = inner.parent
        elif DAY_FILE.search(inner.as_posix()):
            root = inner.parent.parent
        else:
            raise SourceError(f"{file.location}: not part of a Slack export; expected {WHAT}")
        where = f"{container}!{root}" if container else str(root)
        export = exports.setdefault((container, str(root)), Export(where))
        if inner.name in LISTS:
            export.lists[inner.name] = file
        else:
            export.days[inner.parent.name].append(file)
    if not any(export.days for export in exports.values()):
        raise ctx.not_found()
    return {key: export for key, export in exports.items() if export.days}


# ----------------------------------------------------------------------------- one workspace


class Workspace:
    """Users and conversations of one export, and the rows of its messages."""

    def __init__(self, export: Export) -> None:
        self.users: dict[str, dict] = {}
        for user in self._list(export, "users.json"):
            profile = user.get("profile") if isinstance(user.get("profile"), dict) else {}
            self.users[user.get("id")] = {
                "handle": user.get("name"),
                "display": profile.get("display_name") or profile.get("real_name") or user.get("real_name") or user.get("name"),
                "real_name": user.get("real_name") or profile.get("real_name"),
                "email": profile.get("email"),
                "is_bot": bool(user.get("is_bot")),
            }
        # folder -> (id, title, type); channel id -> name, for `<#C123>` without a label
        self.channels: dict[str, tuple[str, str, str]] = {}
        self.channel_names: dict[str, str] = {}
        for file_name, kind in (("channels.json", "channel"), ("groups.json", "private"), ("mpims.json", "mpim")):
            for channel in self._list(export, file_name):
                name, channel_id = channel.get("name"), channel.get("id")
                if name and channel_id:
                    self.channels[name] = (channel_id, f"#{name}" if kind != "mpim" else name, kind)
                    self.channel_names[channel_id] = name
        for dm in self._list(export, "dms.json"):
            if dm.get("id"):
                members = ", ".join(self.name_of(m) or m for m in dm.get("members") or [])
                self.channels[dm["id"]] = (dm["id"], members or dm["id"], "dm")

    @staticmethod
    def _list(export: Export, name: str) -> list[dict]:
        if name not in export.lists:
            return []
        data = load_json(export.lists[name], WHAT)
        if not isinstance(data, list):
            raise SourceError(f"{export.lists[name].location}: expected a JSON list, as in {WHAT}")
        return [item for item in data if isinstance(item, dict)]

    def name_of(self, user_id: str | None) -> str | None:
        user = self.users.get(user_id or "")
        return user["display"] if user else None

    def identities(self, user_id: str | None, profile: dict | None = None) -> tuple:
        user = self.users.get(user_id or "") or {}
        profile = profile or {}
        return (
            user_id,
            user.get("handle"),
            user.get("display"),
            user.get("real_name"),
            user.get("email"),
            profile.get("name"),
            profile.get("display_name"),
            profile.get("real_name"),
        )

    # ------------------------------------------------------------------------- text

    def resolve(self, text: str | None) -> str | None:
        """Slack markup as people saw it: `<@U1>` → `@Ana`, `<#C1|general>` → `#general`,
        `<https://x|label>` → `label`, `&lt;` → `<`."""
        if not text:
            return text
        return html.unescape(MARKUP.sub(self._resolve_one, text)) if ("<" in text or "&" in text) else text

    def _resolve_one(self, match: re.Match) -> str:
        target, _, label = match.group(1).partition("|")
        if target.startswith("@"):
            return "@" + (self.name_of(target[1:]) or label or target[1:])
        if target.startswith("#"):
            return "#" + (label or self.channel_names.get(target[1:]) or target[1:])
        if target.startswith("!"):
            if label:
                return label
            word = target[1:].split("^")[0]
            return f"@{word}"
        return label or target

    # ------------------------------------------------------------------------- rows

    def conversation_rows(
        self, folder: str, days: list[InputFile], owner
    ) -> tuple[list[dict], list[Quarantined]]:
        channel_id, title, channel_type = self.channels.get(folder, (folder, folder, None))
        rows: dict[str, dict] = {}
        quarantined: list[Quarantined] = []
        for day in sorted(days, key=lambda f: f.name):
            messages = load_json(day, WHAT)
            if not isinstance(messages, list):
                raise SourceError(f"{day.location}: expected a JSON list of messages, as in {WHAT}")
            for index, message in enumerate(messages):
                where = f"{day.location} message {index}"
                sent_at = _ts(message.get("ts")) if isinstance(message, dict) else None
                if sent_at is None:
                    quarantined.append(Quarantined(where, "no readable ts", payload(message)))
                    continue
                context = {"conversation_id": channel_id, "conversation_title": title, "channel_type": channel_type}
                def rows_of(message=message, sent_at=sent_at, context=context):
                    return self._message_rows(message, sent_at, context, owner)

                for row in record_rows(rows_of, where, message, quarantined):
                    rows.setdefault(row["source_id"], row)
        return list(rows.values()), quarantined

    def _message_rows(self, message: dict, sent_at: datetime, context: dict, owner) -> Iterator[dict]:
        channel_id = context["conversation_id"]
        source_id = f"{channel_id}:{message['ts']}"
        subtype = message.get("subtype")
        profile = message.get("user_profile") if isinstance(message.get("user_profile"), dict) else None
        author = message.get("user") or message.get("bot_id")
        text = self.resolve(message.get("text"))
        kind = self._kind(message, subtype)
        if subtype == "file_comment" and isinstance(message.get("comment"), dict):
            # Old exports: the comment typed on a file, with its own author.
            author = message["comment"].get("user") or author
            text = self.resolve(message["comment"].get("comment"))
        elif subtype == "file_share" and (old := OLD_FILE_SHARE.fullmatch(message.get("text") or "")):
            comment = old.group("comment")
            text = self.resolve(comment) if comment else text
            kind = "text" if comment else "attachment"
        sender_name = (
            self.name_of(author)
            or (profile or {}).get("display_name")
            or (profile or {}).get("real_name")
            or message.get("username")
            or (message.get("bot_profile") or {}).get("name")
        )
        thread_ts = message.get("thread_ts")
        files = message.get("files") or ([message["file"]] if isinstance(message.get("file"), dict) else [])
        yield {
            "source_id": source_id,
            "conversation_id": channel_id,
            "conversation_title": context["conversation_title"],
            "sent_at": sent_at,
            "sender": author,
            "sender_name": sender_name,
            "is_owner": owner(*self.identities(author, profile)) if author else None,
            "kind": kind,
            "text": text,
            "reply_to": f"{channel_id}:{thread_ts}" if thread_ts and thread_ts != message["ts"] else None,
            "metadata": {
                "ts": message["ts"],
                "subtype": subtype,
                "channel_type": context["channel_type"],
                "client_msg_id": message.get("client_msg_id"),
                "thread_ts": thread_ts,
                "reply_count": message.get("reply_count"),
                "edited_ts": (message.get("edited") or {}).get("ts") if isinstance(message.get("edited"), dict) else None,
                "bot_id": message.get("bot_id"),
                "files": [_file_summary(f) for f in files if isinstance(f, dict)] or None,
                "attachments": [a.get("fallback") for a in message.get("attachments") or [] if isinstance(a, dict)] or None,
                "text_raw": message.get("text") if message.get("text") != text else None,
            },
        }
        for reaction in message.get("reactions") or []:
            if not isinstance(reaction, dict) or not reaction.get("name"):
                continue
            name = reaction["name"]
            users = [u for u in reaction.get("users") or [] if isinstance(u, str)]
            for user in users or [None]:
                yield {
                    "source_id": f"{source_id}:reaction:{name}" + (f":{user}" if user else ""),
                    "conversation_id": channel_id,
                    "conversation_title": context["conversation_title"],
                    "sent_at": sent_at,  # reactions carry no time of their own
                    "sender": user,
                    "sender_name": self.name_of(user),
                    "is_owner": owner(*self.identities(user)) if user else None,
                    "kind": "reaction",
                    "text": f":{name}:",
                    "reply_to": source_id,
                    # Slack lists at most 50 reactors; count says how many there were.
                    "metadata": {"reaction": name, "count": reaction.get("count")},
                }

    def _kind(self, message: dict, subtype: str | None) -> str:
        if subtype in SYSTEM_SUBTYPES:
            return "system"
        if subtype in DELETED_SUBTYPES:
            return "deleted"
        if subtype in AUTOMATED_SUBTYPES or message.get("bot_id") or self.users.get(message.get("user") or "", {}).get("is_bot"):
            return "automated"
        if message.get("text"):
            return "text"
        if message.get("files") or message.get("file") or message.get("attachments"):
            return "attachment"
        return "system" if subtype else "text"


def _ts(value: Any) -> datetime | None:
    """Slack's `ts`, "1452837318.000002": Unix seconds, read without float rounding."""
    if not isinstance(value, str):
        return None
    seconds, _, fraction = value.partition(".")
    if not seconds.isdigit() or (fraction and not fraction.isdigit()):
        return None
    micro = int((fraction + "000000")[:6]) if fraction else 0
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=int(seconds), microseconds=micro)
    except OverflowError:  # past year 9999
        return None


def _file_summary(file: dict) -> dict:
    return {k: file.get(k) for k in ("id", "name", "title", "mimetype") if file.get(k)}
