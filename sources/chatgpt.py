"""ChatGPT: the data export (`conversations.json`, alone or in the downloaded .zip).

Each conversation is a tree: `mapping` holds every node (`parent`, `children`,
`message`), and the thread ChatGPT shows is the path from the root to
`current_node`. Sibling branches are regenerated answers and edited questions:
they land too, marked `superseded` (the build drops them). Along the path not
everything is conversation: system and hidden messages (custom instructions,
memory) are `system`, and so are a "thinking" model's thoughts, its reasoning
recap ("Thought for 16s") and its `commentary` preambles: only the final answer
is the assistant's text. Code-interpreter code and output, browsing and other
tool traffic (a `recipient` other than "all", role `tool`, `execution_output`)
are `tool`; an uploaded image with no words is an `attachment`. The owner is the
user: their typed (or dictated) messages are the owner's text.

`create_time` may be null. Such a message gets its parent's time plus one
microsecond (the conversation's start for the first one), marked
`sent_at_estimated`: the build orders a conversation by time, and this keeps the
thread's order without inventing a gap.

A conversation whose tree is broken (parent links that loop, a parent or a
`current_node` missing from `mapping`) is quarantined whole with the reason; the
other conversations land. A file that is not JSON at all (a truncated download)
fails the run with nothing landed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from etl.sources.base import Quarantined, Skip, SourceContext, source
from etl.sources.chat_common import assistant_conversations, assistant_export, path_to, tree_depths

NAME = "chatgpt"
EXPECTED = "ChatGPT's conversations.json (conversations with a `mapping` tree) or the export .zip"

# Content types that are tool traffic whatever the author's role says.
_TOOL_CONTENT = {
    "code",  # code the model sends to the python tool
    "execution_output",
    "tether_browsing_display",
    "tether_quote",
    "sonic_webpage",
    "system_error",
    "computer_output",
}
# Content types that are never conversation: thinking, memory, custom instructions.
_SYSTEM_CONTENT = {"thoughts", "reasoning_recap", "user_editable_context", "model_editable_context"}
_MEDIA_PARTS = {
    "image_asset_pointer": "images",
    "audio_asset_pointer": "audio",
    "real_time_user_audio_video_asset_pointer": "audio",
    "video_container_asset_pointer": "video",
}
_ONE_MICROSECOND = timedelta(microseconds=1)


@source(
    NAME,
    version=1,
    help="ChatGPT data export (conversations.json or the .zip): your messages, the answers shown, other branches marked.",
    **assistant_export(EXPECTED),
)
def read_chatgpt(ctx: SourceContext) -> Iterator[dict | Quarantined]:
    guessed: list[str] = []

    def rows_of(conversation: dict, location: str) -> list[dict]:
        found, unset = conversation_rows(conversation)
        guessed.extend([location] if unset else [])
        return found

    yield from assistant_conversations(ctx, NAME, rows_of, _id_of)
    if guessed:
        ctx.note(f"{len(guessed)} conversation(s) had no current_node, e.g. {guessed[0]}; "
                 "their most recent branch was taken as the one shown")  # fmt: skip


# ----------------------------------------------------------------------------- one conversation


def conversation_rows(conversation: dict) -> tuple[list[dict], bool]:
    """The raw rows of one conversation, and whether its shown branch had to be guessed."""
    conversation_id = _id_of(conversation)
    if not conversation_id:
        raise Skip("no `id`")
    mapping = conversation.get("mapping")
    if not isinstance(mapping, dict):
        raise Skip("no `mapping` object")
    for node_id, node in mapping.items():
        if not isinstance(node, dict):
            raise Skip(f"node {node_id} is a {type(node).__name__}, not an object")
        if node.get("message") is not None and not isinstance(node["message"], dict):
            raise Skip(f"node {node_id} has a message that is not an object")
    parent_of = {node_id: node.get("parent") for node_id, node in mapping.items()}
    depth = tree_depths(parent_of)
    current = conversation.get("current_node")
    guessed = current is None
    if guessed:
        current = _latest_leaf(mapping, parent_of)
    elif not isinstance(current, str) or current not in mapping:
        raise Skip(f"current_node {current} is not in `mapping`")
    on_path = set(path_to(current, parent_of)) if current is not None else set()

    started = epoch_time(conversation.get("create_time"))
    times: dict[str, datetime | None] = {}
    estimated: set[str] = set()
    rows = []
    for node_id in sorted(mapping, key=lambda n: depth[n]):  # parents before children; stable
        message = mapping[node_id].get("message")
        parent = parent_of[node_id]
        time = epoch_time(message.get("create_time")) if message else None
        if time is None:
            before = times.get(parent) if parent is not None else None
            if before is not None:
                time = before + _ONE_MICROSECOND
            elif started is not None:
                time = started + depth[node_id] * _ONE_MICROSECOND
            if message:
                estimated.add(node_id)
        times[node_id] = time
        if not message:
            continue
        parent_message = mapping[parent].get("message") if parent is not None else None
        reply_to = message_id(parent_message, parent) if parent_message else None
        rows.append(
            _message_row(
                conversation,
                conversation_id,
                node_id,
                message,
                sent_at=time,
                estimated=node_id in estimated,
                position=depth[node_id],
                on_path=node_id in on_path,
                reply_to=reply_to,
            )
        )
    return rows, guessed


def _id_of(conversation: Any) -> str | None:
    """ChatGPT's `id` (or `conversation_id`), Claude.ai's `uuid`."""
    if not isinstance(conversation, dict):
        return None
    value = conversation.get("id") or conversation.get("conversation_id") or conversation.get("uuid")
    return str(value) if value else None


def _latest_leaf(mapping: dict, parent_of: dict[str, Any]) -> str | None:
    parents = {p for p in parent_of.values() if p is not None}
    leaves = [n for n in mapping if n not in parents]
    if not leaves:
        return None

    def created(node_id: str) -> float:
        message = mapping[node_id].get("message") or {}
        value = message.get("create_time")
        return value if isinstance(value, (int, float)) else float("-inf")

    return max(reversed(leaves), key=created)  # ties: the first leaf in mapping order


def message_id(message: dict, node_id: str) -> str:
    """A message's id (the node's id in every real export), else its node's."""
    value = message.get("id")
    return value if isinstance(value, str) and value else node_id


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def epoch_time(value: Any) -> datetime | None:
    """Unix seconds (ChatGPT writes floats) as a UTC datetime; None when absent or absurd."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- one message


def _message_row(conversation, conversation_id, node_id, message, *, sent_at, estimated, position, on_path, reply_to):
    author = message.get("author") if isinstance(message.get("author"), dict) else {}
    role, name = _str(author.get("role")), _str(author.get("name"))
    content = message.get("content") if isinstance(message.get("content"), dict) else {}
    content_type = _str(content.get("content_type"))
    extra = message.get("metadata") if isinstance(message.get("metadata"), dict) else {}
    text, media, voice = content_text(content)
    uploads = extra.get("attachments")
    if isinstance(uploads, list) and uploads:
        media["files"] = len(uploads)
    kind, marker, tool = _classify(role, content_type, message, extra, text, media, name)
    if role == "user":
        is_owner = True if kind in ("text", "attachment") else None
    else:
        is_owner = None if role == "system" else False
    recipient = message.get("recipient")
    source_id = message_id(message, node_id)
    metadata = {
        "position": position,
        "on_path": on_path,
        "superseded": None if on_path else True,
        "content_type": content_type,
        "model": extra.get("model_slug"),
        "recipient": recipient if recipient not in (None, "all") else None,
        "channel": message.get("channel"),
        "tool": tool,
        "marker": marker,
        "voice": voice or None,
        "node_id": node_id if node_id != source_id else None,
        "sent_at_estimated": estimated or None,
        "archived": bool(conversation.get("is_archived")) or None,
        "gizmo_id": conversation.get("gizmo_id"),
        **{k: v for k, v in media.items() if v},
    }
    return {
        "source_id": source_id,
        "conversation_id": conversation_id,
        "conversation_title": _str(conversation.get("title")),
        "sent_at": sent_at,
        "sender": (name or role) if role == "tool" else role,
        "sender_name": name if role != "tool" else None,
        "is_owner": is_owner,
        "kind": kind,
        "text": text,
        "reply_to": reply_to,
        "metadata": metadata,
    }


def content_text(content: dict) -> tuple[str | None, dict[str, int], bool]:
    """(text, media counts, dictated?) of a message's `content`, whatever its type."""
    media: dict[str, int] = {}
    voice = False
    parts = content.get("parts")
    if isinstance(parts, list):
        pieces = []
        for part in parts:
            if isinstance(part, str):
                pieces.append(part)
            elif isinstance(part, dict):
                part_type = _str(part.get("content_type"))
                if part_type == "audio_transcription" and isinstance(part.get("text"), str):
                    pieces.append(part["text"])
                    voice = True
                else:
                    key = _MEDIA_PARTS.get(part_type, "attachments")
                    media[key] = media.get(key, 0) + 1
        return "\n".join(p for p in pieces if p) or None, media, voice
    content_type = _str(content.get("content_type"))
    if content_type == "thoughts" and isinstance(content.get("thoughts"), list):
        thoughts = [t.get("content") for t in content["thoughts"] if isinstance(t, dict)]
        return "\n\n".join(t for t in thoughts if isinstance(t, str)) or None, media, voice
    if content_type == "user_editable_context":
        fields = (content.get("user_profile"), content.get("user_instructions"))
        return "\n\n".join(f for f in fields if isinstance(f, str) and f) or None, media, voice
    for key in ("text", "content", "result", "model_set_context", "summary"):
        if isinstance(content.get(key), str):
            return content[key], media, voice
    return None, media, voice


def _classify(role, content_type, message, extra, text, media, name) -> tuple[str, str | None, str | None]:
    """(kind, why it is system, tool name) of one message."""
    recipient = message.get("recipient")
    channel = message.get("channel")
    if role == "system":
        return "system", "system", None
    if extra.get("is_visually_hidden_from_conversation") or extra.get("is_user_system_message"):
        return "system", "hidden", None
    if content_type in _SYSTEM_CONTENT:
        return "system", content_type, None
    if role == "tool":
        return "tool", None, name or _str(content_type)
    if recipient not in (None, "all"):
        return "tool", None, _str(recipient) or "tool"
    if content_type in _TOOL_CONTENT:
        return "tool", None, name or content_type
    if channel not in (None, "final") or extra.get("is_thinking_preamble_message"):
        return "system", str(channel or "preamble"), None
    if text:
        return "text", None, None
    if media:
        return "attachment", None, None
    return "system", "empty", None
