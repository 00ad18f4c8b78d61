"""Parsing shared by the chat and assistant exports: ids for exports that give
messages none, times, bytes that should be text, and message trees.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from etl.schemas.records import canonical_json
from etl.sources.archive import InputFile
from etl.sources.base import Skip, SourceContext, SourceError


def hashed_id(*parts: Any) -> str:
    """A stable id from the parts that identify a message in an export without ids."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:32]


class RepeatCounter:
    """Tells true repeats apart: the second identical message in the same millisecond
    (same conversation, sender and content) gets `~1`, the third `~2`. Counted in
    export order, which stays the same when a later export adds newer messages."""

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()

    def __call__(self, key: str) -> str:
        n = self._seen[key]
        self._seen[key] += 1
        return key if n == 0 else f"{key}~{n}"


def utc_from_iso(value: Any) -> datetime | None:
    """An ISO 8601 time in UTC; one written without an offset is taken as UTC. None
    when it is missing or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def utc_from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def utc_from_unix_ms(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds // 1000, UTC).replace(microsecond=(milliseconds % 1000) * 1000)


_MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"SQLite format 3", "a SQLite database"),
    (b"PK\x03\x04", "a zip archive"),
    (b"RIFF", "a media file"),
    (b"OggS", "an audio file"),
)


def describe_binary(head: bytes) -> str | None:
    """What a file is when it is clearly not text (for error messages), else None."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if head[4:8] == b"ftyp":
        return "a video or image file"
    if b"\x00" in head[:4096] and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "a binary file"
    return None


def decode_text(data: bytes) -> tuple[str, bool]:
    """The file's text and whether undecodable bytes had to be replaced."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # saved again by a Windows editor
        try:
            return data.decode("utf-16"), False
        except UnicodeDecodeError:
            return data.decode("utf-16", errors="replace"), True
    try:
        return data.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        return data.decode("utf-8-sig", errors="replace"), True


def looks_like_json(text: str) -> bool:
    head = text.lstrip("\ufeff \t\r\n")[:64]
    return head.startswith("{") or re.match(r"\[\s*[\[{\"\]]", head) is not None


def tree_depths(parent_of: dict[str, Any]) -> dict[str, int]:
    """Each node's distance from its root; Skip on a loop or a missing parent."""
    for node_id, parent in parent_of.items():
        if parent is not None and (not isinstance(parent, str) or parent not in parent_of):
            raise Skip(f"node {node_id} points to parent {parent}, which is not in `mapping`")
    depth: dict[str, int] = {}
    for start in parent_of:
        chain: list[str] = []
        on_chain: set[str] = set()
        node = start
        while node is not None and node not in depth:
            if node in on_chain:
                raise Skip(f"the parent links loop back to node {node}")
            on_chain.add(node)
            chain.append(node)
            node = parent_of[node]
        level = -1 if node is None else depth[node]
        for node in reversed(chain):
            level += 1
            depth[node] = level
    return depth


def path_to(node: str, parent_of: dict[str, Any]) -> list[str]:
    """The nodes from the root down to `node` (the tree is known to have no loops)."""
    path = []
    while node is not None:
        path.append(node)
        node = parent_of[node]
    return path[::-1]


# The two assistant exports both ship a conversations.json; each connector refuses the other's.
ASSISTANT_EXPORTS = {
    "chatgpt": ("mapping", "a ChatGPT export (conversations with a `mapping`)"),
    "claude-ai": ("chat_messages", "a Claude.ai export (conversations with `chat_messages`)"),
}


def assistant_export(expects: str) -> dict[str, Any]:
    """What both assistant connectors declare: a conversations.json, alone or in the .zip."""
    return {"expects": expects, "found": "conversations.json",
            "accept": lambda relpath: PurePosixPath(relpath).name == "conversations.json"}  # fmt: skip


def conversation_list(file: InputFile, data: Any, name: str, expected: str) -> list:
    """The conversations of an assistant export's conversations.json (or of one
    conversation saved on its own); the other assistant's export is refused with the
    command that reads it."""
    key = ASSISTANT_EXPORTS[name][0]
    if isinstance(data, dict) and isinstance(data.get("conversations"), list):
        data = data["conversations"]
    elif isinstance(data, dict) and key in data:
        data = [data]
    if not isinstance(data, list):
        raise SourceError(f"{file.location}: a JSON {type(data).__name__}, not a list of conversations; expected {expected}")
    first = next((c for c in data if isinstance(c, dict)), None)
    for other, (other_key, what) in ASSISTANT_EXPORTS.items():
        if other != name and first is not None and key not in first and other_key in first:
            raise SourceError(f"{file.location}: this is {what}; use `etl ingest {other} {file.path}`; expected {expected}")
    return data


def assistant_conversations(
    ctx: SourceContext, name: str, rows_of: Callable[[dict, str], list[dict]], id_of: Callable[[Any], str | None]
) -> Iterator[Any]:
    """The rows of every conversation in an assistant export's files; `rows_of(conversation,
    location)` raises `Skip` for one it cannot read, which is quarantined whole."""
    for file in ctx.inputs():
        conversations = conversation_list(file, ctx.load_json(file), name, ctx.expects)

        def read(conversation: Any, file: InputFile = file) -> list[dict]:
            if not isinstance(conversation, dict):
                raise Skip(f"a JSON {type(conversation).__name__}, not a conversation object")
            return rows_of(conversation, f"{file.location} conversation {id_of(conversation)}")

        yield from ctx.each(conversations, read, source_id=id_of,
                            where=lambda i, c, file=file: f"{file.location} conversation {id_of(c) or i}")  # fmt: skip
