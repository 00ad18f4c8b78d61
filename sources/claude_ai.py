"""Claude.ai: the data export (`conversations.json`, alone or in the downloaded .zip).

A conversation (`uuid`, `name`) holds `chat_messages`, each with a `sender`
(`human` or `assistant`), a `text` and, in current exports, `content` blocks:
`text`, `thinking`, `tool_use` and `tool_result` (web search, artifacts and other
tools run inside the assistant's message). The message's visible text is its text
blocks; `text` alone is a fallback for old exports (in newer ones it also holds
placeholders for the blocks it cannot show). Thinking lands as `system`, tool
blocks as `tool`, each as its own row (`<message uuid>#<block index>`); the
message's text keeps the message uuid. The owner is the human.

Every edit and retry stays in `chat_messages`, linked by `parent_message_uuid`.
The thread Claude.ai shows is the path to `current_leaf_message_uuid`, or, since
the bulk export leaves it out, to the most recent leaf; messages off that path
land marked `superseded` (the build drops them). A conversation whose links are
broken (a loop, a missing parent) is read in its stored order, with a note.

Long pasted text arrives as an attachment (`extracted_content`): it is not typed,
so it is counted in the metadata, never added to the owner's text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from etl.schemas.records import canonical_json
from etl.sources.base import Quarantined, Skip, SourceContext, source
from etl.sources.chat_common import assistant_conversations, assistant_export, path_to, tree_depths, utc_from_iso

NAME = "claude-ai"
EXPECTED = "Claude.ai's conversations.json (conversations with `chat_messages`) or the export .zip"
# What a first message names as its parent.
_ROOT_PARENTS = {None, "", "00000000-0000-4000-8000-000000000000"}


@source(
    NAME,
    version=1,
    help="Claude.ai data export (conversations.json or the .zip): your messages and Claude's answers.",
    **assistant_export(EXPECTED),
)
def read_claude_ai(ctx: SourceContext) -> Iterator[dict | Quarantined]:
    yield from assistant_conversations(ctx, NAME, lambda c, where: conversation_rows(c, ctx.note, where), _uuid_of)


def _uuid_of(conversation: Any) -> str | None:
    uuid = conversation.get("uuid") if isinstance(conversation, dict) else None
    return str(uuid) if uuid else None


def conversation_rows(conversation: dict, note=lambda text: None, location: str = "") -> list[dict]:
    """The raw rows of one conversation; when its branches cannot be told apart, `note` says so."""
    conversation_id = conversation.get("uuid")
    if not conversation_id:
        raise Skip("no `uuid`")
    messages = conversation.get("chat_messages")
    if not isinstance(messages, list):
        raise Skip("no `chat_messages` list")
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or not message.get("uuid") or not isinstance(message["uuid"], str):
            raise Skip(f"message {position} is not an object with a `uuid`")
    ordered = sorted(enumerate(messages), key=lambda pair: (_index(pair[1], pair[0]), pair[0]))
    messages = [m for _, m in ordered]
    on_path, broken = _shown_thread(conversation, messages)
    account = conversation.get("account") if isinstance(conversation.get("account"), dict) else {}
    context = {
        "conversation_id": str(conversation_id),
        "conversation_title": conversation.get("name") if isinstance(conversation.get("name"), str) else None,
        "account": account.get("uuid") if isinstance(account.get("uuid"), str) else None,
        "project": (conversation.get("project") or {}).get("name") if isinstance(conversation.get("project"), dict) else None,
    }
    rows = []
    for position, message in enumerate(messages):
        rows.extend(_message_rows(message, position, message["uuid"] in on_path, context))
    if broken:
        note(f"{location}: {broken}; its messages were read in their stored order, none marked superseded")
    return rows


def _parent(message: dict) -> str | None:
    parent = message.get("parent_message_uuid")
    return parent if isinstance(parent, str) and parent not in _ROOT_PARENTS else None


def _index(message: dict, fallback: int) -> int:
    value = message.get("index")
    return value if isinstance(value, int) and not isinstance(value, bool) else fallback


def _shown_thread(conversation: dict, messages: list[dict]) -> tuple[set[str], str | None]:
    """The uuids of the thread Claude.ai shows, and why it had to fall back (or None)."""
    every = {m["uuid"] for m in messages}
    if not any("parent_message_uuid" in m for m in messages):
        return every, None  # an older export: one linear thread
    parent_of = {m["uuid"]: _parent(m) for m in messages}
    try:
        tree_depths(parent_of)
    except Skip as exc:
        return every, str(exc).replace("`mapping`", "`chat_messages`")
    leaf = conversation.get("current_leaf_message_uuid")
    if leaf not in every:
        parents = set(parent_of.values())
        leaves = [m for m in messages if m["uuid"] not in parents]
        leaf = max(enumerate(leaves), key=lambda pair: (str(pair[1].get("created_at") or ""), pair[0]))[1]["uuid"]
    return set(path_to(leaf, parent_of)), None


def _message_rows(message: dict, position: int, on_path: bool, context: dict) -> list[dict]:
    sender = message.get("sender") if isinstance(message.get("sender"), str) else None
    human = sender == "human"
    uuid = str(message["uuid"])
    sent_at = utc_from_iso(message.get("created_at"))
    blocks = message.get("content") if isinstance(message.get("content"), list) else []
    files = [
        f for key in ("attachments", "files") if isinstance(message.get(key), list) for f in message[key] if isinstance(f, dict)
    ]
    base = {
        "index": position,  # order in `chat_messages`
        "on_path": on_path,
        "superseded": None if on_path else True,
        "parent": _parent(message),
        "project": context["project"],
    }
    texts = [b["text"] for b in blocks if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)]
    text = "\n\n".join(texts) if texts else (message.get("text") if isinstance(message.get("text"), str) else None)
    rows = []
    for index, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") == "text":
            continue
        block_type = block.get("type")
        extra = {**base, "block": index, "block_type": block_type}
        if block_type in ("tool_use", "tool_result"):
            kind, content = "tool", block.get("input") if block_type == "tool_use" else block.get("content")
            extra["tool"] = block.get("name")
            body = content if isinstance(content, str) or content is None else canonical_json(content)
        elif block_type in ("thinking", "redacted_thinking"):
            thinking = block.get("thinking")
            kind, body = "system", thinking if isinstance(thinking, str) else None
            extra["marker"] = block_type
        else:
            kind, body = "system", None
            extra["marker"] = str(block_type)
        at = utc_from_iso(block.get("start_timestamp")) or sent_at
        # Tool traffic and thinking are never the owner's, whoever's message holds them.
        rows.append(_row(context, f"{uuid}#{index}", at, sender, False if sender == "assistant" else None,
                         kind, body, extra))
    if text or files or not rows:
        extra = {**base, "attachments": [_file_name(f) for f in files] or None}
        if text:
            kind = "text"
        elif files:
            kind = "attachment"
        else:
            kind, extra["marker"] = "system", "empty"
        if sender not in ("human", "assistant"):
            kind, extra["marker"] = "system", f"sender:{sender}"
        if human:
            is_owner = True if kind in ("text", "attachment") else None
        else:
            is_owner = False if sender == "assistant" else None
        row = _row(context, uuid, sent_at, sender, is_owner, kind, text or None, extra)
        row["reply_to"] = base["parent"]
        rows.insert(0, row)
    return rows


def _row(context, source_id, sent_at, sender, is_owner, kind, text, extra) -> dict:
    return {
        "source_id": source_id,
        "account": context["account"],
        "conversation_id": context["conversation_id"],
        "conversation_title": context["conversation_title"],
        "sent_at": sent_at,
        "sender": sender,
        "is_owner": is_owner,
        "kind": kind,
        "text": text,
        "metadata": extra,
    }


def _file_name(entry: dict) -> str:
    return str(entry.get("file_name") or entry.get("file_uuid") or "file")

