"""Facebook Messenger and Instagram: the JSON of "Download your information".

The export holds one folder per conversation, `messages/inbox/<thread>/message_1.json`,
`message_2.json`… (also `archived_threads/`, `message_requests/`, `filtered_threads/`,
`e2ee_cutover/`; newer exports put it all under `your_facebook_activity/` or
`your_instagram_activity/`). Each file has `participants`, `title`, `thread_path` and
`messages[]` (newest first) with `sender_name`, `timestamp_ms`, `content`, media lists,
`share`, `reactions`, `is_unsent`, `call_duration`. Instagram uses the same shape.
The user may point at the folder, a thread folder, one file, or the .zip(s) as
downloaded; a large download comes as several zips.

Traps:
- Mojibake: every string (names, titles, reactions too) is written as UTF-8 bytes,
  each byte escaped as its own `\\u00XX`, so "Café" arrives as "CafÃ©". Each run of
  such escapes is turned back into the text it spells (`encode("latin-1")
  .decode("utf-8")`) when it is valid UTF-8, and kept as is when it is not (it was
  not mojibake); a file already decoded by some tool is left alone. An escaped
  backslash followed by "u00e2" is text, not an escape. No Unicode normalisation:
  Facebook keeps decomposed accents, and so do we.
- No message ids: the id is a hash of conversation, `timestamp_ms`, sender and
  content, with a counter for true repeats in the same millisecond. It never
  includes the file name or media paths, which change between exports.
- No "me": the owner is told by display name (corpus.toml `[owner] names` or
  `--me`). The participant present in every conversation is very likely the owner;
  it is suggested in a note, never assumed.
- The HTML format of the same download is refused with a hint to ask for JSON.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from etl.sources.archive import InputFile
from etl.sources.base import Quarantined, SourceContext, SourceError, load_json, payload, record_rows, source
from etl.sources.chat_common import RepeatCounter, hashed_id, utc_from_unix, utc_from_unix_ms

WHAT = 'a "Download your information" JSON export (messages/inbox/<thread>/message_1.json, a folder or the .zip)'
THREAD_FILE = re.compile(
    r"(?:^|/)messages/(inbox|archived_threads|filtered_threads|message_requests|e2ee_cutover)"
    r"/([^/]+)/message_(\d+)\.(json|html)$"
)
MEDIA_FIELDS = ("photos", "videos", "audio_files", "files", "gifs")

# Lines the apps write themselves in English exports, after the sender's name or
# "You": nobody typed them. Anchored at both ends so a typed sentence never matches.
GENERATED_ATTACHMENT = re.compile(
    r" sent (?:an? )?(?:attachment|photo|photos|video|videos|GIF|sticker|voice message|link|location)\."
)
GENERATED_SYSTEM = re.compile(
    r" (?:named the group .+|removed the group name|changed the group photo|set the nickname for .+ to .+"
    r"|set (?:your|his|her|their) (?:own )?nickname to .+|cleared (?:the|your) nickname(?: for .+)?"
    r"|changed the (?:chat )?theme to .+|set the (?:quick reaction|emoji) to .+|left the group"
    r"|added .+ to the group|removed .+ from the group|started sharing video|joined the call|started a call)\."
)
APP_LINES = re.compile(r"You are now connected on Messenger\.?|Say hi to your new Facebook friend, .+\.")
# Instagram wrote some reactions as messages of their own.
GENERATED_REACTION = re.compile(r"Liked a message|Reacted .{1,16} to your message")


# A run of byte escapes, "\\u00c3\\u00a9". Whether its first backslash is itself
# escaped is settled by looking back (a leading lookbehind would make the search slow).
_ESCAPED_BYTES = re.compile(rb"(?:\\u00[89a-fA-F][0-9a-fA-F])+")
_WIDE_ESCAPE = re.compile(rb"\\u(?!00)[0-9a-fA-F]{4}")


def repair_escaped_utf8(raw: bytes) -> bytes:
    """The JSON text of an export file with every run of `\\u00XX` escapes turned back
    into the UTF-8 bytes it spells, so every string (names, titles, reactions, keys)
    parses as written. This is `s.encode("latin-1").decode("utf-8")` on each run of
    non-ASCII characters, done on the text before parsing: one regular expression
    instead of a walk over every string. A run that is not valid UTF-8 was not
    mojibake and stays as it is; so does a whole file already decoded by some tool
    (Facebook writes pure ASCII and never escapes beyond U+00FF)."""
    if not raw.isascii() or any(not _escaped(raw, m.start()) for m in _WIDE_ESCAPE.finditer(raw)):
        return raw
    return _ESCAPED_BYTES.sub(_decode_run, raw)


def _decode_run(match: re.Match) -> bytes:
    run = match.group(0)
    if _escaped(match.string, match.start()):
        # "\\\\u00c3…": an escaped backslash, then text; what follows may still be escapes.
        return run[:6] + _ESCAPED_BYTES.sub(_decode_run, run[6:])
    spelled = bytes.fromhex(run.replace(b"\\u00", b"").decode("ascii"))
    try:
        spelled.decode("utf-8")
    except UnicodeDecodeError:
        return run
    return spelled


def _escaped(raw: bytes, at: int) -> bool:
    """The backslash at `at` is itself escaped: an odd number of backslashes precede it."""
    before = at
    while before > 0 and raw[before - 1] == 0x5C:
        before -= 1
    return (at - before) % 2 == 1


def _read(ctx: SourceContext) -> Iterator[tuple[list[dict], list[Quarantined]]]:
    threads = _thread_files(ctx)
    participants_by_thread: list[set[str]] = []
    for conversation_id, parts in sorted(threads.items()):
        rows, quarantined, participants = _conversation(conversation_id, parts, ctx.is_owner)
        participants_by_thread.append(participants)
        yield rows, quarantined
    if note := _owner_suggestion(participants_by_thread, ctx):
        ctx.note(note)
        ctx.owner_noted = True


def _connector(name: str, app: str) -> None:
    @source(
        name,
        version=1,
        help=f"{app}: the JSON of \"Download your information\" (folder or .zip).",
        expects=WHAT,
        accept=lambda relpath: THREAD_FILE.search(relpath) is not None,
        found="message_1.json",
        owner_hint="your display name as the export shows it",
    )
    def read(ctx: SourceContext) -> Iterator[tuple[list[dict], list[Quarantined]]]:
        return _read(ctx)


_connector("messenger", "Facebook Messenger")
_connector("instagram", "Instagram direct messages")


# ----------------------------------------------------------------------------- finding files


def _thread_files(ctx: SourceContext) -> dict[str, dict[tuple, list[InputFile]]]:
    """conversation id -> {input root -> its files of that conversation}.

    Files are grouped per input root (a path given, or an archive), so the same
    export given twice, or an older and a newer export together, yields the same ids
    instead of counting every message as a repeat of itself.
    """
    threads: dict[str, dict[tuple, list[InputFile]]] = defaultdict(lambda: defaultdict(list))
    html: list[InputFile] = []
    for index, root in enumerate(ctx.paths):
        for file in ctx.inputs([root], required=False):
            where = file.member or file.path.as_posix()
            match = THREAD_FILE.search(where)
            if match and match.group(4) == "html":
                html.append(file)
                continue
            if match:
                conversation_id = match.group(2)
            elif file.name.lower().endswith(".json"):
                conversation_id = ""  # settled from the file's thread_path once it is read
            else:
                raise SourceError(f"{file.location}: not a Messenger or Instagram JSON file; expected {WHAT}")
            threads[conversation_id][(index, str(file.path) if file.member else "")].append(file)
    if not threads:
        if html:
            raise SourceError(
                f"{html[0].location}: this download is in HTML format; request it again choosing "
                "Format: JSON (Accounts Center > Your information and permissions > Download your information)"
            )
        raise ctx.not_found()
    if "" in threads:
        _settle_single_files(threads)
    return threads


def _settle_single_files(threads: dict[str, dict[tuple, list[InputFile]]]) -> None:
    """Files given one by one, outside a thread folder: their conversation is the last
    part of their `thread_path`, else the file's own name."""
    for root, files in threads.pop("").items():
        for file in files:
            data = load_json(file, WHAT, repair_escaped_utf8)
            thread_path = data.get("thread_path") if isinstance(data, dict) else None
            conversation_id = (
                PurePosixPath(thread_path).name if isinstance(thread_path, str) and thread_path else PurePosixPath(file.name).stem
            )
            threads[conversation_id][root].append(file)


def _file_number(file: InputFile) -> int:
    match = re.search(r"(\d+)\.json$", file.name)
    return int(match.group(1)) if match else 0


# ----------------------------------------------------------------------------- one conversation


def _conversation(
    conversation_id: str, parts: dict[tuple, list[InputFile]], owner
) -> tuple[list[dict], list[Quarantined], set[str]]:
    rows: dict[str, dict] = {}
    quarantined: list[Quarantined] = []
    participants: set[str] = set()
    for files in parts.values():
        header: dict[str, Any] = {}
        messages: list[tuple[str, int, Any]] = []
        where: dict[int, str] = {}
        for file in sorted(files, key=_file_number):
            data = load_json(file, WHAT, repair_escaped_utf8)
            if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
                raise SourceError(f"{file.location}: no \"messages\" list; expected {WHAT}")
            if data["messages"] and not any(isinstance(m, dict) and "timestamp_ms" in m for m in data["messages"]):
                raise SourceError(f"{file.location}: messages have no timestamp_ms; expected {WHAT}")
            for key in ("participants", "title", "thread_path", "thread_type"):
                if header.get(key) is None:
                    header[key] = data.get(key)
            messages.extend((file.location, i, m) for i, m in enumerate(data["messages"]))
        names = [p.get("name") for p in header.get("participants") or [] if isinstance(p, dict)]
        participants.update(n for n in names if n)
        box = _box(files[0])
        thread = {
            "conversation_id": conversation_id,
            "conversation_title": header.get("title") or (", ".join(n for n in names if n) or None),
            "thread": {
                "box": box,
                "thread_path": header.get("thread_path"),
                "thread_type": header.get("thread_type"),
            },
        }
        readable = []
        for location, index, message in messages:
            where[id(message)] = f"{location} message {index}"
            if not isinstance(message, dict) or not isinstance(message.get("timestamp_ms"), int):
                quarantined.append(
                    Quarantined(f"{location} message {index}", "no integer timestamp_ms", payload(message))
                )
                continue
            readable.append(message)
        # Oldest first: a later export adds newer messages without renumbering repeats.
        readable.sort(key=lambda m: m["timestamp_ms"])
        ids, reaction_ids = RepeatCounter(), RepeatCounter()
        for message in readable:
            def rows_of(message=message):
                return _message_rows(message, thread, owner, ids, reaction_ids)

            for row in record_rows(rows_of, where[id(message)], message, quarantined):
                rows.setdefault(row["source_id"], row)
    return list(rows.values()), quarantined, participants


def _box(file: InputFile) -> str | None:
    match = THREAD_FILE.search(file.member or file.path.as_posix())
    return match.group(1) if match else None


def _message_rows(
    message: dict, thread: dict, owner, ids: RepeatCounter, reaction_ids: RepeatCounter
) -> Iterator[dict]:
    sender = message.get("sender_name")
    content = message.get("content")
    sent_at = utc_from_unix_ms(message["timestamp_ms"])
    media = {
        field: [_media_name(item) for item in message[field] if isinstance(item, dict)]
        for field in MEDIA_FIELDS
        if isinstance(message.get(field), list)
    }
    sticker = message.get("sticker") if isinstance(message.get("sticker"), dict) else None
    share = message.get("share") if isinstance(message.get("share"), dict) else None
    identity = (
        thread["conversation_id"],
        message["timestamp_ms"],
        sender,
        content,
        {k: v for k, v in media.items() if v},
        _media_name(sticker) if sticker else None,
        (share or {}).get("link"),
    )
    source_id = ids(hashed_id(*identity))
    kind = _kind(message, content, share, any(media.values()) or sticker is not None)
    is_owner = owner(sender)
    yield {
        "source_id": source_id,
        "conversation_id": thread["conversation_id"],
        "conversation_title": thread["conversation_title"],
        "sent_at": sent_at,
        "sender": sender,
        "sender_name": sender,
        "is_owner": is_owner,
        "kind": kind,
        "text": content,
        "metadata": {
            **thread["thread"],
            "type": message.get("type"),
            "timestamp_ms": message["timestamp_ms"],
            "is_unsent": message.get("is_unsent") or None,
            "media": {k: [item.get("uri") for item in message[k] if isinstance(item, dict)] for k, v in media.items() if v}
            or None,
            "sticker": sticker.get("uri") if sticker else None,
            "share": share,
            "call_duration": message.get("call_duration"),
            "missed": message.get("missed"),
            "users": message.get("users"),
        },
    }
    for reaction in message.get("reactions") or []:
        if not isinstance(reaction, dict):
            continue
        actor, emoji = reaction.get("actor"), reaction.get("reaction")
        at = reaction.get("timestamp")
        yield {
            "source_id": reaction_ids(f"{source_id}:reaction:{hashed_id(actor, emoji)[:16]}"),
            "conversation_id": thread["conversation_id"],
            "conversation_title": thread["conversation_title"],
            # Reactions carry their own time only in recent exports.
            "sent_at": utc_from_unix(at) if isinstance(at, (int, float)) else sent_at,
            "sender": actor,
            "sender_name": actor,
            "is_owner": owner(actor),
            "kind": "reaction",
            "text": emoji,
            "reply_to": source_id,
            "metadata": {**thread["thread"], "reaction": emoji},
        }


def _media_name(item: dict) -> str | None:
    """A media file by its own name: the folders before it differ between exports."""
    uri = item.get("uri")
    return PurePosixPath(uri).name if isinstance(uri, str) else None


def _kind(message: dict, content: str | None, share: dict | None, has_media: bool) -> str:
    if message.get("is_unsent"):
        return "deleted"
    if message.get("type") in ("Call", "Subscribe", "Unsubscribe") or "call_duration" in message:
        return "system"
    if not content:
        return "attachment" if has_media or share else "text"
    if GENERATED_REACTION.fullmatch(content.strip()):
        return "reaction"
    if APP_LINES.fullmatch(content) or _generated(GENERATED_SYSTEM, content, message.get("sender_name")):
        return "system"
    if _generated(GENERATED_ATTACHMENT, content, message.get("sender_name")):
        return "attachment"
    return "text"


def _generated(tail: re.Pattern, content: str, sender: str | None) -> bool:
    """`content` is "<sender or You><tail>", a line the app wrote for the sender."""
    for actor in (sender, "You"):
        if actor and content.startswith(actor) and tail.fullmatch(content, len(actor)):
            return True
    return False


# ----------------------------------------------------------------------------- who is the owner


def _owner_suggestion(participants_by_thread: list[set[str]], ctx: SourceContext) -> str | None:
    owner = ctx.owner_matcher
    if owner.configured and owner.matched:
        return None
    named = [p for p in participants_by_thread if p]
    in_every = set.intersection(*named) if len(named) >= 2 else set()
    if len(in_every) == 1:
        (candidate,) = in_every
        return (
            f"{candidate!r} takes part in all {len(named)} conversations: if that is you, add it to "
            f"[owner] names in corpus.toml (or pass --me {candidate!r}) and run `etl ingest {ctx.source.name}` again "
            "on a fresh warehouse; until then your messages are not marked as yours"
        )
    return None
