"""Claude Code: the session logs under `~/.claude/projects/<project>/<session>.jsonl`.

Each line is one JSON event. `user` events carry what the person typed, but also
the tool results Claude Code sends back to the model (as `tool_result` blocks),
slash-command echoes (`<command-name>`, `<local-command-stdout>`), the "Caveat:"
preamble, `isMeta` instructions, "[Request interrupted by user]" markers and
compaction summaries: only typed text is the owner's. `assistant` events carry
text, thinking and `tool_use` blocks (recent versions write one block per event,
older ones several). Sub-agents (`isSidechain`, `agent-*.jsonl`) talk to the main
agent, never to the person. Usage-only records (no `type`, just token counts),
file-history snapshots and queue operations carry no message and land nothing.

Every owner message carries `tool_activity`: the tool calls made since the owner's
previous message, counted by tool name, for the build to offer as context.

A session file only grows, so runs are incremental: a file's watermark is the byte
offset after its last complete line, a hash of its first line (a file replaced by
another is read again from the start) and the running tool counts, so
`tool_activity` stays right across runs. A line being written when the run reads
it (no newline yet, not valid JSON) is left for the next run.

Claude Code on the web exports a session as JSON (`{"loglines": [...]}`); such a
file, given by name, is read whole.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import orjson

from etl.schemas import meta_text
from etl.schemas.records import canonical_json
from etl.sources.archive import InputFile
from etl.sources.base import Batch, Quarantined, SourceContext, SourceError, source, to_batch
from etl.sources.chat_common import utc_from_iso

NAME = "claude-code"
DEFAULT_PROJECTS = "~/.claude/projects"
BATCH_LINES = 5_000
# Tool calls whose result has not arrived yet, kept across runs so a result read in
# the next run still gets its tool name; calls interrupted for good never get one.
MAX_PENDING_TOOLS = 200

EXPECTED = f"Claude Code sessions: {DEFAULT_PROJECTS}, a project folder in it, or a session .jsonl"

# Text Claude Code writes into `user` events on the person's behalf (interrupts, tool
# denials, command echoes, injected context) is told by its shape, by the same
# definition the build uses (schemas/meta_text.py).
_MARKERS = {"meta:interrupted": "interrupted", "meta:command": "local_command", "meta:injected": "injected"}
_CONTINUED = "This session is being continued from a previous conversation"
# Keys of a `message` that carry no content: a message with only these is a usage record.
_BOOKKEEPING_KEYS = {"id", "type", "role", "model", "usage", "stop_reason", "stop_sequence", "container"}
_SYNTHETIC_MODEL = "<synthetic>"  # Claude Code's own stand-in replies ("No response requested.")
_BOM = b"\xef\xbb\xbf"


@source(
    NAME,
    version=1,
    help="Claude Code session logs (~/.claude/projects): your prompts, the assistant's replies, tool traffic.",
    paths="optional",
    default_paths=(DEFAULT_PROJECTS,),
    expects=EXPECTED,
    accept=lambda relpath: relpath.endswith(".jsonl"),
    found="Claude Code sessions (*.jsonl)",
)
def read_claude_code(ctx: SourceContext) -> Iterator[Batch]:
    reader = SessionReader(ctx)
    # Hashed as they are read: an unchanged session is not read again, nor hashed.
    for file in ctx.inputs(record=False):
        if file.name.endswith(".json"):
            yield from reader.read_loglines(file)
        else:
            yield from reader.read_session(file)
    reader.finish()


# ----------------------------------------------------------------------------- state


@dataclass
class FileState:
    """Where reading a session file stopped, and what must survive to the next run."""

    offset: int = 0  # bytes consumed: the end of the last complete line
    line: int = 0  # lines consumed, for "FILE line N" locations
    head: str | None = None  # sha256 of the first line: the file's identity
    tool_activity: Counter = field(default_factory=Counter)  # calls since the owner's last message
    pending_tools: dict[str, list[str]] = field(default_factory=dict)  # tool_use id -> [name, source_id]

    def watermark(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "line": self.line,
            "head": self.head,
            "tool_activity": dict(sorted(self.tool_activity.items())),
            "pending_tools": dict(list(self.pending_tools.items())[-MAX_PENDING_TOOLS:]),
        }

    @classmethod
    def from_watermark(cls, value: Any) -> FileState | None:
        if not isinstance(value, dict) or not isinstance(value.get("offset"), int):
            return None
        return cls(
            offset=value["offset"],
            line=int(value.get("line") or 0),
            head=value.get("head"),
            tool_activity=Counter(value.get("tool_activity") or {}),
            pending_tools={k: list(v) for k, v in (value.get("pending_tools") or {}).items()},
        )


@dataclass
class Origin:
    """Facts about the file an event comes from."""

    file: InputFile
    project: str | None
    stem: str

    @property
    def is_agent_file(self) -> bool:
        return self.stem.startswith("agent-")


class SessionReader:
    """Turns session files into batches; remembers what the whole run has seen."""

    def __init__(self, ctx: SourceContext):
        self.ctx = ctx
        self.emitted: set[str] = set()  # source ids landed by this run
        self.repeated = 0  # events copied into another session file (resumed sessions)
        self.skipped: Counter = Counter()  # events that carry nothing to land, by type
        self.held_back: list[str] = []  # files whose last line is still being written

    # -- files

    def read_session(self, file: InputFile) -> Iterator[Batch]:
        stream = f"{file.path.resolve()}!{file.member}" if file.member else str(file.path.resolve())
        origin = Origin(file, _project_of(file, self.ctx.paths), PurePosixPath(file.name).stem)
        state = self._resume(stream, file)
        if state is None:
            return
        from_start = state.offset == 0
        valid = invalid = 0
        rows: list[dict] = []
        quarantined: list[Quarantined] = []
        seen = 0
        recorded = False
        with file.open() as handle:
            if state.offset:
                handle.seek(state.offset)
            for raw, complete in _lines(handle):
                if not complete and raw.lstrip().startswith(b"{") and not _is_json_object(raw):
                    # Claude Code is still writing this line: the next run reads it whole.
                    self.held_back.append(file.location)
                    break
                state.line += 1
                state.offset += len(raw)
                if state.line == 1:
                    state.head = _digest(raw.rstrip(b"\r\n"))
                if not raw.strip():
                    continue
                seen += 1
                parsed = self._event(raw, state, origin)
                if isinstance(parsed, Quarantined):
                    quarantined.append(parsed)
                    invalid += 1
                else:
                    rows.extend(parsed)
                    valid += 1
                if seen % BATCH_LINES == 0:
                    if not recorded:
                        self._record(file)
                        recorded = True
                    yield self._batch(rows, quarantined, stream, state, seen)
                    rows, quarantined, seen = [], [], 0
        if from_start and invalid and not valid:
            raise SourceError(
                f"{file.location}: none of its {invalid} line(s) is a JSON event; expected a Claude Code "
                "session (.jsonl, one JSON object per line); move the file aside to ingest the others"
            )
        if seen or rows or quarantined or from_start:
            if not recorded:
                self._record(file)
            yield self._batch(rows, quarantined, stream, state, seen)

    def read_loglines(self, file: InputFile) -> Iterator[Batch]:
        """A web session export, `{"loglines": [...]}`, read whole (it is never appended to)."""
        try:
            data = orjson.loads(file.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise SourceError(f"{file.location}: not valid JSON ({exc}); expected {EXPECTED}") from None
        if not isinstance(data, dict) or not isinstance(data.get("loglines"), list):
            raise SourceError(f"{file.location}: a JSON file without `loglines`; expected {EXPECTED}")
        self._record(file)
        origin = Origin(file, _project_of(file, self.ctx.paths), PurePosixPath(file.name).stem)
        state = FileState()
        rows: list[dict] = []
        quarantined: list[Quarantined] = []
        for index, event in enumerate(data["loglines"], 1):
            state.line = index
            parsed = self._parsed_event(event, orjson.dumps(event), state, origin)
            if isinstance(parsed, Quarantined):
                quarantined.append(parsed)
            else:
                rows.extend(parsed)
        yield self._batch(rows, quarantined, None, None, len(data["loglines"]))

    def _record(self, file: InputFile) -> None:
        self.ctx.record_inputs([file])

    def finish(self) -> None:
        if self.repeated:
            self.ctx.note(
                f"{self.repeated} event(s) appeared in more than one session file (a resumed session "
                "repeats earlier events); each landed once"
            )
        if self.skipped:
            detail = ", ".join(f"{kind} {n}" for kind, n in sorted(self.skipped.items()))
            self.ctx.note(f"{sum(self.skipped.values())} event(s) carried no message and landed nothing ({detail})")
        for location in self.held_back:
            self.ctx.note(f"{location}: the last line is incomplete (still being written?); it is read next run")

    def _resume(self, stream: str, file: InputFile) -> FileState | None:
        """The state to continue from, a fresh one, or None when nothing was added."""
        previous = FileState.from_watermark(self.ctx.previous_watermark(stream))
        if previous is None or previous.offset == 0:
            return FileState()
        if file.size < previous.offset:
            self.ctx.note(f"{file.location} is shorter than when it was last read; it is read again from the start")
            return FileState()
        with file.open() as handle:
            first = handle.readline()
        if _digest(first.rstrip(b"\r\n")) != previous.head:
            self.ctx.note(f"{file.location} was replaced since it was last read; it is read again from the start")
            return FileState()
        if file.size == previous.offset:
            return None
        return previous

    def _batch(self, rows, quarantined, stream, state: FileState | None, seen: int) -> Batch:
        return to_batch(rows, quarantined, stream=stream, watermark=state.watermark() if state else None, seen=seen)

    # -- events

    def _event(self, raw: bytes, state: FileState, origin: Origin) -> list[dict] | Quarantined:
        if state.line == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]  # written by an editor, never by Claude Code
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return self._quarantine(origin, state, raw, f"not JSON ({exc})")
        return self._parsed_event(event, raw, state, origin)

    def _parsed_event(self, event: Any, raw: bytes, state: FileState, origin: Origin) -> list[dict] | Quarantined:
        if not isinstance(event, dict):
            return self._quarantine(origin, state, raw, f"a JSON {type(event).__name__}, not an event object")
        kind = event.get("type")
        if not isinstance(kind, str):
            if _is_usage_record(event):
                self.skipped["usage-only"] += 1
                return []
            return self._quarantine(origin, state, raw, "a JSON object without a `type`")
        try:
            if kind in ("user", "assistant"):
                rows = self._message_rows(event, state, origin)
            elif kind == "summary":
                rows = self._summary_rows(event, origin)
            elif kind == "system":
                rows = self._system_rows(event, origin)
            else:
                self.skipped[kind] += 1
                return []
        except _Malformed as exc:
            return self._quarantine(origin, state, raw, str(exc))
        fresh = []
        for row in rows:
            if row["source_id"] in self.emitted:
                self.repeated += 1
                continue
            self.emitted.add(row["source_id"])
            fresh.append(row)
        return fresh

    def _quarantine(self, origin: Origin, state: FileState, raw: bytes, reason: str) -> Quarantined:
        try:
            payload = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            payload = base64.b64encode(raw).decode("ascii")
        return Quarantined(location=f"{origin.file.location} line {state.line}", reason=reason, payload=payload)

    def _message_rows(self, event: dict, state: FileState, origin: Origin) -> list[dict]:
        message = event.get("message")
        if not isinstance(message, dict):
            if message is not None:
                raise _Malformed(f"`message` is a {type(message).__name__}, not an object")
            self.skipped[f"{event['type']} without message"] += 1
            return []
        content = message.get("content")
        if content is None and set(message) - _BOOKKEEPING_KEYS:
            raise _Malformed(f"`message` has no `content` (keys: {', '.join(sorted(message))})")
        if content is None or content == [] or content == "":
            self.skipped["usage-only" if "usage" in message else f"{event['type']} without content"] += 1
            return []
        if isinstance(content, str):
            blocks = [{"type": "text", "text": content}]
        elif isinstance(content, list):
            blocks = content
        else:
            raise _Malformed(f"`message.content` is a {type(content).__name__}")
        for index, block in enumerate(blocks):
            if not isinstance(block, dict):
                raise _Malformed(f"content block {index} is a {type(block).__name__}, not an object")
        base = self._base(event, origin)
        uuid = _event_id(event)
        rows = []
        for index, block in enumerate(blocks):
            source_id = uuid if len(blocks) == 1 else f"{uuid}#{index}"
            extra: dict[str, Any] = {"block": index} if len(blocks) > 1 else {}
            if event["type"] == "user":
                row = self._user_block(event, block, source_id, state, base, extra)
            else:
                row = self._assistant_block(event, message, block, source_id, state, base, extra)
            if row is not None:
                rows.append(row)
        return rows

    def _user_block(self, event, block, source_id, state: FileState, base, extra) -> dict | None:
        sidechain = base["sidechain"]
        block_type = block.get("type")
        if block_type == "tool_result":
            tool_use_id = block.get("tool_use_id")
            name, call_id = (
                state.pending_tools.pop(tool_use_id, (None, None)) if isinstance(tool_use_id, str) else (None, None)
            )
            extra.update(tool=name, tool_use_id=tool_use_id, is_error=bool(block.get("is_error")))
            return self._row(base, source_id, "tool", _result_text(block.get("content")), False, "tool",
                             extra, reply_to=call_id)
        sender = "agent" if sidechain else "user"  # a sub-agent's prompt comes from the main agent
        if block_type == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise _Malformed("a text block without text")
            marker = _system_marker(text, event)
            if marker:
                extra["marker"] = marker
                return self._row(base, source_id, "system", text, False if sidechain else None, sender, extra)
            if not sidechain:
                extra["tool_activity"] = dict(sorted(state.tool_activity.items()))
                state.tool_activity.clear()
            return self._row(base, source_id, "text", text, not sidechain, sender, extra)
        if block_type in ("image", "document"):
            extra["attachment"] = block_type
            if event.get("isMeta"):
                extra["marker"] = "meta"
                return self._row(base, source_id, "system", None, False if sidechain else None, sender, extra)
            return self._row(base, source_id, "attachment", None, not sidechain, sender, extra)
        extra["marker"] = str(block_type)
        return self._row(base, source_id, "system", None, False if sidechain else None, sender, extra)

    def _assistant_block(self, event, message, block, source_id, state: FileState, base, extra) -> dict | None:
        block_type = block.get("type")
        model = message.get("model")
        extra.update(model=model, message_id=message.get("id"))
        if block_type == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise _Malformed("a text block without text")
            if event.get("isApiErrorMessage") or model == _SYNTHETIC_MODEL:
                extra["marker"] = "api_error" if event.get("isApiErrorMessage") else "synthetic"
                return self._row(base, source_id, "system", text, False, "assistant", extra)
            return self._row(base, source_id, "text", text, False, "assistant", extra)
        if block_type in ("thinking", "redacted_thinking"):
            # Hidden reasoning: kept (as system) so the raw store stays complete, never text.
            extra["marker"] = block_type
            thinking = block.get("thinking")
            return self._row(base, source_id, "system", thinking if isinstance(thinking, str) else None, False,
                             "assistant", extra)
        if block_type in ("tool_use", "server_tool_use", "mcp_tool_use"):
            name = block.get("name")
            extra.update(tool=name, tool_use_id=block.get("id"))
            if not base["sidechain"]:
                state.tool_activity[str(name)] += 1
            if isinstance(block.get("id"), str):
                state.pending_tools[block["id"]] = [name, source_id]
                if len(state.pending_tools) > MAX_PENDING_TOOLS:
                    state.pending_tools.pop(next(iter(state.pending_tools)))
            return self._row(base, source_id, "tool", canonical_json(block.get("input")), False, "assistant", extra)
        if isinstance(block_type, str) and block_type.endswith("tool_result"):
            extra.update(tool=block_type, tool_use_id=block.get("tool_use_id"))
            return self._row(base, source_id, "tool", _result_text(block.get("content")), False, "tool", extra)
        extra["marker"] = str(block_type)
        return self._row(base, source_id, "system", None, False, "assistant", extra)

    def _summary_rows(self, event: dict, origin: Origin) -> list[dict]:
        base = self._base(event, origin)
        extra = {"marker": "summary", "leaf_uuid": event.get("leafUuid")}
        text = event.get("summary") if isinstance(event.get("summary"), str) else None
        return [self._row(base, _event_id(event), "system", text, None, "claude-code", extra)]

    def _system_rows(self, event: dict, origin: Origin) -> list[dict]:
        base = self._base(event, origin)
        content = event.get("content")
        text = content if isinstance(content, str) else None
        extra = {"marker": event.get("subtype") or "system"}
        sidechain = base["sidechain"]
        return [self._row(base, _event_id(event), "system", text,
                          False if sidechain else None, "claude-code", extra)]

    def _base(self, event: dict, origin: Origin) -> dict[str, Any]:
        sidechain = bool(event.get("isSidechain")) or origin.is_agent_file
        session = event.get("sessionId") if isinstance(event.get("sessionId"), str) else None
        session = session or origin.stem
        conversation = session
        if sidechain:
            # A sub-agent's exchange is its own conversation: interleaved with the main
            # session it would put the agent's chatter before the owner's replies.
            agent = event.get("agentId") or (origin.stem if origin.is_agent_file else "sidechain")
            agent = agent if str(agent).startswith("agent-") or agent == "sidechain" else f"agent-{agent}"
            conversation = f"{session}:{agent}"
        return {
            "conversation_id": conversation,
            "sent_at": utc_from_iso(event.get("timestamp")),
            "sidechain": sidechain,
            "meta": {
                "project": origin.project,
                "session_id": session,
                "cwd": event.get("cwd") or None,
                "git_branch": event.get("gitBranch") or None,
                "version": event.get("version"),
                "event_type": event.get("type"),
                "sidechain": sidechain or None,
                "is_meta": bool(event.get("isMeta")) or None,
            },
        }

    def _row(self, base, source_id, kind, text, is_owner, sender, extra, reply_to=None) -> dict:
        meta = {k: v for k, v in {**base["meta"], **extra}.items() if v is not None}
        return {
            "source_id": source_id,
            "conversation_id": base["conversation_id"],
            "sent_at": base["sent_at"],
            "sender": sender,
            "is_owner": is_owner,
            "kind": kind,
            "text": text,
            "reply_to": reply_to,
            "metadata": meta,
        }


class _Malformed(Exception):
    """An event that is JSON but not the shape Claude Code writes; it is quarantined."""


# ----------------------------------------------------------------------------- helpers


def _lines(handle) -> Iterator[tuple[bytes, bool]]:
    """(line with its newline, complete?) from a binary stream."""
    for raw in handle:
        yield raw, raw.endswith(b"\n")


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(orjson.loads(raw), dict)
    except orjson.JSONDecodeError:
        return False


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _event_id(event: dict) -> str:
    uuid = event.get("uuid")
    return uuid if isinstance(uuid, str) and uuid else _content_id(event)


def _content_id(event: dict) -> str:
    """An id for an event that has no uuid (summaries, web exports): its content's hash,
    so the same event repeated in a resumed session lands once."""
    return "sha256:" + hashlib.sha256(canonical_json(event).encode()).hexdigest()[:32]


def _is_usage_record(event: dict) -> bool:
    message = event.get("message")
    return ("costUSD" in event or isinstance(message, dict) and "usage" in message) and not (
        isinstance(message, dict) and message.get("content")
    )


def _system_marker(text: str, event: dict) -> str | None:
    """Why a user text block is not something the person typed, or None."""
    stripped = text.strip()
    if event.get("isCompactSummary") or stripped.startswith(_CONTINUED):
        return "compact_summary"
    if event.get("isMeta"):
        return "meta"
    if event.get("isVisibleInTranscriptOnly"):
        return "transcript_only"
    family = meta_text.classify(stripped)
    if family is not None:
        return _MARKERS.get(family, family.removeprefix("meta:"))
    return None


def _result_text(content: Any) -> str | None:
    """A tool result's text: a string, or the text of its blocks (images as a placeholder)."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for item in content:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                parts.append(item["text"])
            elif isinstance(item, dict):
                parts.append(f"[{item.get('type', 'block')}]")
            else:
                parts.append(str(item))
        return "\n".join(parts)
    return canonical_json(content)



def _project_of(file: InputFile, roots) -> str | None:
    """The project folder (`-Users-sam-code-app`) a session file belongs to: the folder
    holding it, or for a sub-agent (`<session>/subagents/agent-*.jsonl`) the folder
    holding its session's folder."""
    if file.member:
        parts = PurePosixPath(file.member).parts
    else:
        parts = file.path.parts
        for root in roots:
            root = root.expanduser()
            try:
                parts = (root.name, *file.path.relative_to(root).parts) if root.is_dir() else parts
                break
            except ValueError:
                continue
    folders = list(parts[:-1])
    if "subagents" in folders:
        folders = folders[: max(folders.index("subagents") - 1, 0)]
    return folders[-1] if folders else None
