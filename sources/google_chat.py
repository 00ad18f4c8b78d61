"""Google Chat: the Google Takeout export.

`Google Chat/Groups/<DM id | Space id>/messages.json` holds `{"messages": [...]}` with
`creator {name, email, user_type}`, `created_date`, `text`, `message_id`
(`group/topic/message`), `topic_id`, `annotations`, `attached_files`, `reactions
[{emoji {unicode}, reactor_emails}]`, `quoted_message_metadata`,
`previous_message_versions` and, once deleted, `message_state`/`deletion_metadata`.
`group_info.json` beside it names the space and its members;
`Google Chat/Users/User <id>/user_info.json` says whose account was exported.
The user may point at the Takeout .zip, its folder, or one messages.json.

Traps:
- `created_date` is a sentence, not a timestamp: "Monday, January 15, 2024 at
  3:04:05 PM UTC", with a narrow no-break space (U+202F) before PM in recent
  exports, and day-month order in some locales. It is read with and without the
  weekday, in 12 and 24 hours. A date without a zone is read in `--timezone`
  (default UTC) and a note says so; one that cannot be read is quarantined.
- The owner is the account in user_info.json (by email), plus corpus.toml [owner].
- Threads: a message whose `topic_id` is not its own id answers the topic's first
  message. Quote-replies carry no id: they point at the quoted author's latest
  earlier message with the same text, when there is one.
- An edited message keeps its earlier versions: they land too, marked superseded.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

from etl.sources.archive import InputFile
from etl.sources.base import RECORD_ERRORS, Quarantined, SourceContext, SourceError, checked_row, load_json, payload, reason_of, source
from etl.sources.chat_common import RepeatCounter, hashed_id

WHAT = "a Google Takeout export of Google Chat (Google Chat/Groups/<group>/messages.json, a folder or the .zip)"
GROUP_FILE = re.compile(r"(?:^|/)Groups/([^/]+)/(messages|group_info)\.json$")
USER_INFO = re.compile(r"(?:^|/)Users/[^/]+/user_info\.json$")

# --------------------------------------------------------------------- created_date

_SPACES = re.compile(r"[\s\u00a0\u202f\u2009]+")  # U+202F before PM in recent exports
_WEEKDAY = re.compile(r"^[^\W\d_]+,\s*")  # "Monday, "
_AT = re.compile(r"\s+at\s+|,\s+(?=\d{1,2}:\d{2})")
_MERIDIEM = re.compile(r"\b([AaPp])\.?\s?[Mm]\.?(?=\s|$)")  # pm, p.m., PM
_ZONE = re.compile(r"(?P<name>[A-Z]{1,5})?(?P<offset>[+-]\d{1,2}(?::?\d{2})?)?")
_FORMATS = (
    "%B %d, %Y %I:%M:%S %p",  # January 15, 2024 3:04:05 PM
    "%B %d, %Y %H:%M:%S",
    "%d %B %Y %H:%M:%S",  # 15 January 2024 15:04:05
    "%d %B %Y %I:%M:%S %p",
    "%b %d, %Y %I:%M:%S %p",
    "%d %b %Y %H:%M:%S",
)
# Abbreviations Takeout writes when the account's zone is not UTC; ambiguous ones
# (IST, CST in Asia) are left out and quarantined rather than guessed.
_ZONE_HOURS = {
    "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "WEST": 1, "BST": 1, "CET": 1, "CEST": 2, "EET": 2, "EEST": 3,
    "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
    "AKST": -9, "AKDT": -8, "HST": -10,
}  # fmt: skip


class DateError(ValueError):
    pass


def parse_created_date(value: str, assumed: tzinfo) -> tuple[datetime, bool]:
    """A Takeout `created_date` as a UTC datetime, and whether the string named its
    zone (when it did not, it is read in `assumed`)."""
    text = _SPACES.sub(" ", value).strip()
    text = _AT.sub(" ", _WEEKDAY.sub("", text), count=1)
    text = _MERIDIEM.sub(lambda m: m.group(1).upper() + "M", text)
    zone: tzinfo | None = None
    head, _, last = text.rpartition(" ")
    match = _ZONE.fullmatch(last)
    if head and match and (match.group("name") or match.group("offset")) and last not in ("AM", "PM"):
        zone = _zone(match.group("name"), match.group("offset"), value)
        text = head
    for form in _FORMATS:
        try:
            parsed = datetime.strptime(text, form)
        except ValueError:
            continue
        return parsed.replace(tzinfo=zone or assumed).astimezone(UTC), zone is not None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise DateError(f"unrecognised date {value!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=zone or assumed).astimezone(UTC), zone is not None
    return parsed.astimezone(UTC), True


def _zone(name: str | None, offset: str | None, value: str) -> tzinfo:
    if name and name not in _ZONE_HOURS:
        raise DateError(f"unrecognised time zone {name!r} in {value!r}")
    delta = timedelta(hours=_ZONE_HOURS.get(name or "UTC", 0))
    if offset:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        hours, minutes = (digits, "0") if len(digits) <= 2 else (digits[:-2], digits[-2:])
        delta += sign * timedelta(hours=int(hours), minutes=int(minutes))
    return timezone(delta)


# --------------------------------------------------------------------- reading


@source(
    "google-chat",
    version=1,
    help="Google Chat from Google Takeout (the .zip, its folder, or a messages.json).",
    expects=WHAT,
    accept=lambda relpath: GROUP_FILE.search(relpath) is not None or USER_INFO.search(relpath) is not None,
    found="Groups/<group>/messages.json",
    owner_hint="your Google Chat email or name",
    timezone=True,
)
def read_google_chat(ctx: SourceContext) -> Iterator[tuple[list[dict], list[Quarantined]]]:
    groups, user_infos = _find_files(ctx)
    for info in user_infos:
        data = ctx.load_json(info)
        user = data.get("user") if isinstance(data, dict) else None
        if isinstance(user, dict) and user.get("email"):
            ctx.owner_matcher.add(user["email"])
            ctx.note(f"owner taken from {info.location}: {user['email']}")
    for group, files in sorted(groups.items()):
        if "messages" in files:
            rows, quarantined, zoneless = _group_rows(group, files, ctx.is_owner, ctx.zone)
            ctx.zone_used = ctx.zone_used or zoneless > 0
            yield rows, quarantined


def _find_files(ctx: SourceContext) -> tuple[dict[str, dict[str, InputFile]], list[InputFile]]:
    """group folder name -> {"messages": file, "group_info": file}, and user_info files."""
    groups: dict[str, dict[str, InputFile]] = defaultdict(dict)
    user_infos: list[InputFile] = []
    for file in ctx.inputs(required=False):
        where = file.member or file.path.as_posix()
        if USER_INFO.search(where):
            user_infos.append(file)
        elif match := GROUP_FILE.search(where):
            groups[match.group(1)][match.group(2)] = file
        elif file.name == "Hangouts.json":
            raise SourceError(f"{file.location}: the older Hangouts format, which this connector does not read; expected {WHAT}")
        elif file.name.lower().endswith(".json") and file.member is None:
            # A messages.json given by itself, wherever it lies: its folder names the group.
            groups[file.path.parent.name]["messages"] = file
        else:
            raise SourceError(f"{file.location}: not a Google Chat messages.json; expected {WHAT}")
    for files in groups.values():
        given_alone = files.get("messages")
        sibling = given_alone.path.with_name("group_info.json") if given_alone and not given_alone.member else None
        if "group_info" not in files and sibling and sibling.is_file():
            files["group_info"] = InputFile(sibling, size=sibling.stat().st_size)
            ctx.record_inputs([files["group_info"]])
    if not any("messages" in files for files in groups.values()):
        raise ctx.not_found()
    return groups, user_infos


def _group_rows(
    group: str, files: dict[str, InputFile], owner, assumed: tzinfo
) -> tuple[list[dict], list[Quarantined], int]:
    data = load_json(files["messages"], WHAT)
    location = files["messages"].location
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise SourceError(f"{location}: no \"messages\" list; expected {WHAT}")
    messages = data["messages"]
    if messages and not any(isinstance(m, dict) and ("creator" in m or "message_id" in m) for m in messages):
        raise SourceError(f"{location}: messages have no creator or message_id; expected {WHAT}")
    info = load_json(files["group_info"], WHAT) if "group_info" in files else {}
    info = info if isinstance(info, dict) else {}
    members = [m for m in info.get("members") or [] if isinstance(m, dict)]
    names_by_email = {m.get("email"): m.get("name") for m in members if m.get("email")}
    title = info.get("name") or ", ".join(
        m.get("name") or m.get("email") or "?" for m in members if not owner(m.get("email"), m.get("name"))
    ) or None
    conversation = {
        "conversation_id": group,
        "conversation_title": title,
    }
    rows: list[dict] = []
    quarantined: list[Quarantined] = []
    zoneless = 0
    ids = RepeatCounter()
    known_ids = {m.get("message_id") for m in messages if isinstance(m, dict) and isinstance(m.get("message_id"), str)}
    latest_by_author_text: dict[tuple, str] = {}
    for index, message in enumerate(messages):
        where = f"{location} message {index}"
        if not isinstance(message, dict):
            quarantined.append(Quarantined(where, "not a JSON object", payload(message)))
            continue
        kept = len(rows)
        try:
            try:
                sent_at, named_zone = _sent_at(message.get("created_date"), assumed)
            except DateError as error:
                quarantined.append(Quarantined(where, str(error), payload(message), message.get("message_id")))
                continue
            zoneless += sent_at is not None and not named_zone
            creator = message.get("creator") if isinstance(message.get("creator"), dict) else {}
            email, name = creator.get("email"), creator.get("name")
            text = message.get("text")
            source_id = message.get("message_id") or ids(
                hashed_id(group, message.get("created_date"), email, name, text)
            )
            reply_to = _thread_parent(source_id, message.get("topic_id"), known_ids)
            quoted = message.get("quoted_message_metadata")
            if isinstance(quoted, dict):
                quoted_creator = quoted.get("creator") if isinstance(quoted.get("creator"), dict) else {}
                reply_to = reply_to or latest_by_author_text.get((quoted_creator.get("email"), quoted.get("text")))
            is_owner = owner(email, name)
            row = {
                **conversation,
                "source_id": source_id,
                "sent_at": sent_at,
                "sender": email or name,
                "sender_name": name,
                "is_owner": is_owner,
                "kind": _kind(message, creator, text),
                "text": text,
                "reply_to": reply_to,
                "metadata": {
                    "topic_id": message.get("topic_id"),
                    "user_type": creator.get("user_type"),
                    "attached_files": message.get("attached_files"),
                    "annotations": message.get("annotations"),
                    "quoted": quoted,
                    "updated_date": message.get("updated_date"),
                    "message_state": message.get("message_state"),
                    "deleted_date": message.get("deleted_date"),
                    "created_date": message.get("created_date"),
                },
            }
            rows.append(row)
            if text:
                latest_by_author_text[(email, text)] = source_id
            rows.extend(_earlier_versions(message, row, assumed))
            for reaction in message.get("reactions") or []:
                if not isinstance(reaction, dict):
                    continue
                emoji = (reaction.get("emoji") or {}).get("unicode") or (reaction.get("emoji") or {}).get("custom_emoji", {}).get("name")
                for reactor in reaction.get("reactor_emails") or []:
                    rows.append(
                        {
                            **conversation,
                            "source_id": f"{source_id}:reaction:{emoji}:{reactor}",
                            "sent_at": sent_at,
                            "sender": reactor,
                            "sender_name": names_by_email.get(reactor),
                            "is_owner": owner(reactor, names_by_email.get(reactor)),
                            "kind": "reaction",
                            "text": emoji,
                            "reply_to": source_id,
                            "metadata": {"reaction": emoji},
                        }
                    )
            bad = next((q for q in map(checked_row, rows[kept:]) if isinstance(q, Quarantined)), None)
            if bad is not None:
                raise ValueError(bad.reason)
        except RECORD_ERRORS as error:
            del rows[kept:]
            quarantined.append(Quarantined(where, reason_of(error), payload(message)))
    return rows, quarantined, zoneless


def _sent_at(created_date: Any, assumed: tzinfo) -> tuple[datetime | None, bool]:
    if created_date is None:
        return None, True
    if not isinstance(created_date, str):
        raise DateError(f"created_date is not text: {created_date!r}")
    return parse_created_date(created_date, assumed)


def _thread_parent(source_id: str, topic_id: Any, known_ids: set) -> str | None:
    """In a threaded space, the first message of the topic, when it is in the export."""
    parts = source_id.split("/")
    if not topic_id or len(parts) != 3 or parts[2] == topic_id:
        return None
    root = f"{parts[0]}/{topic_id}/{topic_id}"
    return root if root in known_ids else None


def _kind(message: dict, creator: dict, text: str | None) -> str:
    if message.get("message_state") == "DELETED" or message.get("deletion_metadata") or message.get("deleted_date"):
        return "deleted"
    if (creator.get("user_type") or "Human") != "Human":
        return "automated"
    if text:
        return "text"
    annotations = [a for a in message.get("annotations") or [] if isinstance(a, dict)]
    if any("video_call_metadata" in a or "gsuite_integration_metadata" in a for a in annotations):
        return "system"  # a Meet call, a calendar event, a task
    if message.get("attached_files") or annotations:
        return "attachment"
    return "system"


def _earlier_versions(message: dict, row: dict, assumed: tzinfo) -> Iterator[dict]:
    """Earlier versions of an edited message: kept, but superseded (the build drops them)."""
    for number, version in enumerate(message.get("previous_message_versions") or []):
        if not isinstance(version, dict):
            continue
        try:
            sent_at, _ = _sent_at(version.get("updated_date") or version.get("created_date"), assumed)
        except DateError:
            sent_at = row["sent_at"]
        yield {
            **row,
            "source_id": f"{row['source_id']}:version:{number}",
            "sent_at": sent_at or row["sent_at"],
            "text": version.get("text"),
            "metadata": {"superseded": True, "edit_of": row["source_id"], "version": number},
        }
