"""The AI-assistant connectors (claude-code, chatgpt, claude-ai) against the shared
fixtures, our own small exports in tests/data/ai_logs/, grown and broken input.

Counts by kind and owner of our exports are kept in tests/data/ai_logs/golden.json;
after a deliberate change regenerate them with
    ETL_UPDATE_GOLDEN=1 python -m pytest tests/test_ai_logs.py
and read the diff.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from conftest import shared_fixture
from etl.cli import cli
from etl.config import Owner
from etl.ingest import run_ingest
from etl.schemas.records import canonical_json
from etl.schemas.tables import RAW_MESSAGES
from etl.sources import SourceContext, SourceError, get_source

DATA = Path(__file__).parent / "data" / "ai_logs"
PROJECTS = DATA / "projects"
GARDEN = PROJECTS / "-Users-sam-code-garden"
SESSION = GARDEN / "5b0c9d4e-2f7a-4c1e-9a61-3d8e2b7f4a10.jsonl"
CHATGPT = DATA / "conversations.json"
CLAUDE_AI = DATA / "claude_ai" / "conversations.json"
GOLDEN = DATA / "golden.json"

OWNER = pl.col("is_owner").fill_null(False)
OTHER = pl.col("is_owner").not_().fill_null(False)


def read(source: str, *paths: Path, watermarks: dict | None = None):
    """(rows, quarantined, context) of one connector run, without a warehouse."""
    ctx = SourceContext(
        paths=[Path(p) for p in paths],
        options={},
        owner=Owner(),
        previous_watermark=lambda stream: (watermarks or {}).get(stream),
    )
    batches = list(get_source(source).read(ctx))
    frames = [b.rows for b in batches]
    rows = pl.concat(frames) if frames else RAW_MESSAGES.empty_frame(exclude=("ingest_run_id",))
    return rows, [q for b in batches for q in b.quarantined], ctx


def owner_texts(rows: pl.DataFrame) -> list[str]:
    return rows.filter(OWNER & (pl.col("kind") == "text")).sort("sent_at", "source_id")["text"].to_list()


def meta(rows: pl.DataFrame, source_id: str) -> dict:
    return json.loads(rows.filter(pl.col("source_id") == source_id)["metadata"].item())


def ingest(warehouse: Path, source: str, *paths: Path):
    return run_ingest(warehouse, get_source(source), [Path(p) for p in paths], {}, Owner())


def query(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def cli_run(warehouse: Path, *args: str):
    return CliRunner().invoke(cli, ["--warehouse", str(warehouse), *args])


def counts(rows: pl.DataFrame) -> dict[str, int]:
    """Rows by `kind/owner`: owner, other, or unknown."""
    who = pl.when(pl.col("is_owner").is_null()).then(pl.lit("unknown")).when(pl.col("is_owner")).then(
        pl.lit("owner")).otherwise(pl.lit("other"))
    tally = rows.group_by(pl.col("kind") + pl.lit("/") + who).len()
    return dict(sorted((k, int(n)) for k, n in tally.iter_rows()))


# ----------------------------------------------------------------------------- shared fixtures: Claude Code

# Per file: owner text, assistant text, tool, system, quarantined lines.
CLAUDE_CODE_SHARED = {
    "d-kimuson_claude-code-viewer/1af7fc5e-8455-4414-9ccd-011d40f70b2a.jsonl": (0, 3, 24, 2, 0),
    "d-kimuson_claude-code-viewer/agent-test-hash-123.jsonl": (0, 2, 0, 0, 0),
    "daaain_claude-code-log/edge_cases.jsonl": (3, 2, 4, 4, 7),
    "daaain_claude-code-log/representative_messages.jsonl": (4, 3, 4, 1, 0),
    "daaain_claude-code-log/session_b.jsonl": (2, 1, 0, 0, 0),
    "daaain_claude-code-log/todowrite_examples.jsonl": (2, 3, 6, 1, 0),
    "ryoppippi_ccusage/fixtures__claude__projects__project-alpha__session-alpha__chat.jsonl": (0, 0, 0, 0, 0),
    "ryoppippi_ccusage/fixtures__claude__projects__project-beta__session-beta__chat.jsonl": (0, 0, 0, 0, 0),
    "ryoppippi_ccusage/test-transcript.jsonl": (0, 0, 0, 0, 0),
    "simonw_claude-code-transcripts/sample_session.jsonl": (2, 2, 4, 1, 0),
    "simonw_claude-code-transcripts/sample_session.json": (5, 8, 24, 2, 0),
}


@pytest.mark.parametrize("relpath", sorted(CLAUDE_CODE_SHARED))
def test_shared_claude_code_files_ingest(relpath):
    rows, quarantined, _ = read("claude-code", shared_fixture(f"ai_chat/claude_code/{relpath}"))
    found = (
        rows.filter(OWNER & (pl.col("kind") == "text")).height,
        rows.filter(OTHER & (pl.col("kind") == "text")).height,
        rows.filter(pl.col("kind") == "tool").height,
        rows.filter(pl.col("kind") == "system").height,
        len(quarantined),
    )
    assert found == CLAUDE_CODE_SHARED[relpath]
    assert rows["source_id"].is_unique().all()
    # Tool traffic is never the owner's.
    assert rows.filter((pl.col("kind") == "tool") & OWNER).height == 0


def test_shared_claude_code_folder_ingests_whole():
    rows, quarantined, ctx = read("claude-code", shared_fixture("ai_chat/claude_code"))
    assert len(quarantined) == 7
    assert rows["source_id"].is_unique().all()
    # The folder walk reads *.jsonl only; edge_cases repeats an event of todowrite_examples.
    assert any("appeared in more than one session file" in note for note in ctx.notes)


def test_first_user_message_and_skipped_records():
    rows, _, _ = read("claude-code", shared_fixture("ai_chat/claude_code/simonw_claude-code-transcripts/sample_session.jsonl"))
    assert owner_texts(rows)[0] == "Create a hello world function"
    assert owner_texts(rows) == ["Create a hello world function", "Now add a goodbye function"]
    summary = rows.filter(pl.col("kind") == "system")
    assert summary["text"].to_list() == ["Test session for JSONL parsing"]
    assert summary["is_owner"].to_list() == [None]


def test_usage_only_records_give_no_rows():
    for path in sorted(shared_fixture("ai_chat/claude_code/ryoppippi_ccusage").glob("*.jsonl")):
        rows, quarantined, ctx = read("claude-code", path)
        assert rows.height == 0 and not quarantined, path
        assert any("landed nothing" in note for note in ctx.notes)


def test_invalid_lines_are_quarantined_with_their_line():
    path = shared_fixture("ai_chat/claude_code/daaain_claude-code-log/edge_cases.jsonl")
    rows, quarantined, _ = read("claude-code", path)
    assert [q.location for q in quarantined] == [f"{path} line {n}" for n in (10, 11, 13, 14, 15, 16, 18)]
    reasons = {int(q.location.rsplit(" ", 1)[1]): q.reason for q in quarantined}
    assert reasons[13] == "a JSON str, not an event object"
    assert reasons[14] == "a JSON object without a `type`"
    assert reasons[15] == "a JSON int, not an event object"
    assert "`message` has no `content`" in reasons[10]
    # The rest lands: the special characters message after the bad lines, the summary at the end.
    assert "Testing special characters: café, naïve, résumé, 中文, العربية, русский, 🎉 emojis 🚀 and symbols ∑∆√π∞" in owner_texts(rows)
    system = rows.filter(pl.col("kind") == "system")
    assert [json.loads(m)["marker"] for m in system["metadata"]] == ["local_command", "local_command", "local_command", "summary"]
    assert system["text"][0].startswith("Caveat: The messages below were generated by the user")


def test_slash_command_meta_and_subagent_are_not_the_owner():
    folder = shared_fixture("ai_chat/claude_code/d-kimuson_claude-code-viewer")
    rows, _, _ = read("claude-code", folder)
    assert rows.filter(OWNER).height == 0  # the person only typed /init
    init, meta_prompt = rows.filter(pl.col("kind") == "system").sort("sent_at").iter_rows(named=True)
    assert "<command-name>/init</command-name>" in init["text"]
    assert json.loads(meta_prompt["metadata"])["marker"] == "meta"
    agent = rows.filter(pl.col("conversation_id").str.ends_with(":agent-test-hash-123"))
    assert agent["is_owner"].to_list() == [False, False]
    assert agent["text"].to_list() == ["Run the test suite", "I'll run the test suite for you."]
    tools = rows.filter(pl.col("kind") == "tool")
    named = [json.loads(m).get("tool") for m in tools["metadata"]]
    assert None not in named and {"TodoWrite", "Bash", "Glob", "Write"} == set(named)


# ----------------------------------------------------------------------------- shared fixtures: ChatGPT


def test_chatgpt_active_path_leaves_out_the_abandoned_edit():
    rows, quarantined, _ = read("chatgpt", shared_fixture("ai_chat/chatgpt/mitkury_chatgpt-export-parser/example-conversation.json"))
    assert not quarantined
    superseded = pl.col("metadata").str.json_path_match("$.superseded") == "true"
    shown = rows.filter(~superseded.fill_null(False)).sort("sent_at")
    assert shown["source_id"].to_list() == ["msg-1", "msg-2", "msg-3", "msg-4", "msg-6"]
    assert rows.filter(superseded)["source_id"].to_list() == ["msg-5"]
    assert meta(rows, "msg-5") == {"content_type": "text", "on_path": False, "position": 3, "superseded": True}
    assert shown["kind"].to_list() == ["system", "text", "text", "text", "text"]
    assert shown["is_owner"].to_list() == [None, True, False, True, False]
    assert shown["text"][4].startswith("Here's how to write a function in JavaScript:")
    assert rows["conversation_id"].unique().to_list() == ["conv-123"]
    assert rows["conversation_title"].unique().to_list() == ["Sample conversation with branch"]
    assert meta(rows, "msg-6")["model"] == "gpt-4"
    assert rows.filter(pl.col("source_id") == "msg-6")["reply_to"].item() == "msg-4"


def test_chatgpt_thinking_keeps_only_the_final_answer():
    rows, _, _ = read("chatgpt", shared_fixture("ai_chat/chatgpt/pionxzh_chatgpt-exporter/thinking-single-preamble.json"))
    assistant = rows.filter(OTHER & (pl.col("kind") == "text"))
    assert assistant["text"].to_list() == ["answer 1"]
    system = rows.filter(pl.col("kind") == "system").sort("sent_at")
    assert [json.loads(m)["marker"] for m in system["metadata"]] == ["thoughts", "commentary", "reasoning_recap"]
    assert system["text"].to_list() == [None, "preamble 1", "Thought for 16s"]
    assert owner_texts(rows) == ["question 1"]
    # No create_time anywhere: times count up from the conversation's start, in thread order.
    assert rows.sort("sent_at")["source_id"].to_list() == ["m-n1", "m-n2", "m-n3", "m-n4", "m-n5"]
    assert all(json.loads(m)["sent_at_estimated"] for m in rows["metadata"])


# ----------------------------------------------------------------------------- our exports


def test_golden_counts():
    produced = {
        "claude-code": counts(read("claude-code", PROJECTS)[0]),
        "chatgpt": counts(read("chatgpt", CHATGPT)[0]),
        "claude-ai": counts(read("claude-ai", CLAUDE_AI)[0]),
    }
    if os.environ.get("ETL_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(produced, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    assert produced == json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_claude_code_owner_turns_are_exactly_what_was_typed():
    rows, quarantined, ctx = read("claude-code", PROJECTS)
    assert not quarantined
    assert owner_texts(rows) == [
        "Sort reading-list.md by author and drop the ones I marked done.",
        "This is how it renders on my phone, the dashes are gone. Use asterisks instead.",
        "The watering schedule test fails on DST days, can you look at it?",
        "Nice. Now also handle the fall-back hour, and please don't touch the cron parser.",
        "No wait, run only the schedule tests, the whole suite takes ages.",
        "Ok, last thing: add a changelog entry for the DST fix.",
        "Thanks, that's all for today. Leave the version alone.",
    ]
    assert ctx.notes == ["3 event(s) carried no message and landed nothing (file-history-snapshot 1, queue-operation 1, usage-only 1)"]


def test_claude_code_markers_tools_and_sidechain():
    rows, _, _ = read("claude-code", PROJECTS)
    system = rows.filter(pl.col("kind") == "system").sort("sent_at")
    assert [(json.loads(m)["marker"], (t or "")[:30]) for t, m in system.select("text", "metadata").iter_rows()] == [
        ("summary", "Tidying the reading list"),
        ("thinking", "The fall-back hour repeats 01:"),
        ("interrupted", "[Request interrupted by user f"),
        ("meta", "Caveat: The messages below wer"),
        ("local_command", "<command-name>/model</command-"),
        ("local_command", "<local-command-stdout>Set mode"),
        ("compact_boundary", "Conversation compacted"),
        ("compact_summary", "This session is being continue"),
        ("interrupted", "[Request interrupted by user]"),
    ]
    assert system.filter(OWNER).height == 0
    tools = rows.filter(pl.col("kind") == "tool")
    assert tools.filter(pl.col("is_owner").is_null() | pl.col("is_owner")).height == 0
    # A tool result names its tool and answers the call it belongs to.
    result = rows.filter(pl.col("source_id") == "00000004-7a1e-4c2b-9d3f-5e6a7b8c9d0e").row(0, named=True)
    assert json.loads(result["metadata"])["tool"] == "Bash"
    assert result["reply_to"] == "00000003-7a1e-4c2b-9d3f-5e6a7b8c9d0e"
    rejected = meta(rows, "00000012-7a1e-4c2b-9d3f-5e6a7b8c9d0e")
    assert rejected["is_error"] is True and rejected["tool"] == "Bash"
    # One assistant event with three blocks: three rows, numbered by block.
    assert rows.filter(pl.col("source_id").str.starts_with("00000011-"))["kind"].to_list() == ["system", "text", "tool"]
    agent = rows.filter(pl.col("conversation_id") == "5b0c9d4e-2f7a-4c1e-9a61-3d8e2b7f4a10:agent-4c1e9a61")
    assert agent.height == 4 and agent["is_owner"].to_list() == [False] * 4
    assert agent["sender"].to_list() == ["agent", "assistant", "tool", "assistant"]
    image = rows.filter(pl.col("kind") == "attachment").row(0, named=True)
    assert image["is_owner"] is True and image["source_id"].endswith("#0")


def test_claude_code_tool_activity_and_context():
    rows, _, _ = read("claude-code", SESSION)
    mine = rows.filter(OWNER).sort("sent_at")
    assert [json.loads(m)["tool_activity"] for m in mine["metadata"]] == [
        {},
        {"Bash": 1, "Edit": 1, "Read": 1},
        {"Bash": 1},  # the call the owner interrupted
        {"Bash": 1},
        {"Task": 1},
    ]
    first = json.loads(mine["metadata"][0])
    assert first["project"] == "-Users-sam-code-garden"
    assert first["git_branch"] == "fix-dst" and first["cwd"] == "/Users/sam/code/garden"
    assert mine["conversation_id"].unique().to_list() == ["5b0c9d4e-2f7a-4c1e-9a61-3d8e2b7f4a10"]
    assert mine["sender"].unique().to_list() == ["user"]


def test_chatgpt_branches_tools_and_hidden_messages():
    rows, quarantined, ctx = read("chatgpt", CHATGPT)
    assert not quarantined
    superseded = pl.col("metadata").str.json_path_match("$.superseded") == "true"
    assert owner_texts(rows.filter(~superseded.fill_null(False))) == [
        "Plan three easy days in Lisbon for my parents, they don't like long walks.",
        "What about a day trip to Sintra, by train, without the steep climb to Pena?",
        "Here's the hotel's map, is the station really this close?",
        "Is my electricity use going up? The bills are in the spreadsheet I sent you.",
        "Ok, that's the heat pump then. Thanks!",
    ]
    # The regenerated answer and the question before its edit land, marked.
    assert sorted(rows.filter(superseded)["text"].to_list()) == [
        "Day 1: Belém by tram 15, with the monastery and pastéis. Day 2: Alfama on tram 28. Day 3: Gulbenkian museum and garden.",
        "What about Sintra?",
    ]
    assert rows.filter(superseded)["is_owner"].to_list() == [False, True]
    # Custom instructions and the hidden system message are not conversation.
    hidden = rows.filter(pl.col("source_id").is_in(["b1a7e0c2-0001-4d5e-8f00-000000000001", "b1a7e0c2-0002-4d5e-8f00-000000000002"]))
    assert hidden["kind"].to_list() == ["system", "system"] and hidden["is_owner"].to_list() == [None, None]
    tools = rows.filter(pl.col("kind") == "tool")
    assert [json.loads(m)["tool"] for m in tools["metadata"]] == ["python", "python"]
    assert tools["is_owner"].to_list() == [False, False]
    assistant = rows.filter(OTHER & (pl.col("kind") == "text") & ~superseded.fill_null(False))
    assert "Thought for 9 seconds" not in assistant["text"].to_list()
    assert meta(rows, "c2b8f1d3-0001-4e6f-9a11-000000000001")["voice"] is True
    photo = rows.filter(pl.col("kind") == "attachment").row(0, named=True)
    assert photo["is_owner"] is True and json.loads(photo["metadata"])["images"] == 1
    # A null create_time: just after its parent, so the thread keeps its order.
    estimated = rows.filter(pl.col("source_id") == "b1a7e0c2-0008-4d5e-8f00-000000000008").row(0, named=True)
    parent = rows.filter(pl.col("source_id") == "b1a7e0c2-0007-4d5e-8f00-000000000007").row(0, named=True)
    assert (estimated["sent_at"] - parent["sent_at"]).total_seconds() == pytest.approx(1e-6)
    assert json.loads(estimated["metadata"])["sent_at_estimated"] is True
    assert any("had no current_node" in note for note in ctx.notes)


def test_claude_ai_blocks_branches_and_old_exports():
    rows, quarantined, _ = read("claude-ai", CLAUDE_AI)
    assert not quarantined
    superseded = pl.col("metadata").str.json_path_match("$.superseded") == "true"
    assert owner_texts(rows.filter(~superseded.fill_null(False))) == [
        "Make this cover letter less stiff, keep it under 200 words.",
        "My starter peaks at 6 hours. When should I mix if I want to bake at 5pm?",
        "4am is too early for me. Can the levain go overnight in the fridge?",
        "And when do I add the salt, with the flour or after the autolyse?",
    ]
    assert rows.filter(superseded)["text"].to_list() == [
        "Yes, but then it needs two hours to warm up before mixing.",
        "and the salt?",
    ]
    answer = rows.filter(pl.col("source_id") == "d3c9a2e4-0002-4f70-8b22-000000000002").row(0, named=True)
    # The visible text comes from the text blocks, not `text` with its placeholder.
    assert answer["text"] == "Feed the starter at 4am, mix at 10am, bulk until 3pm, shape, and bake from 4:15pm."
    blocks = rows.filter(pl.col("source_id").str.starts_with("d3c9a2e4-0002-4f70-8b22-000000000002#"))
    assert blocks["kind"].to_list() == ["system", "tool", "tool"]
    assert blocks["is_owner"].to_list() == [False, False, False]
    assert rows["conversation_title"].unique().sort().to_list() == ["Cover letter", "Sourdough schedule"]
    photo = rows.filter(pl.col("kind") == "attachment").row(0, named=True)
    assert photo["is_owner"] is True and json.loads(photo["metadata"])["attachments"] == ["crumb.jpg"]
    pasted = meta(rows, "d3c9a2e4-0007-4f70-8b22-000000000007")
    assert pasted["attachments"] == ["file"]  # the pasted recipe is not added to the typed text


# ----------------------------------------------------------------------------- incremental Claude Code

GLOB_CALL = {"type": "assistant", "uuid": "inc-1", "sessionId": "5b0c9d4e-2f7a-4c1e-9a61-3d8e2b7f4a10",
             "timestamp": "2025-10-02T10:00:00.000Z", "message": {"id": "msg_X1", "role": "assistant", "model": "m",
             "content": [{"type": "tool_use", "id": "toolu_g1", "name": "Glob", "input": {"pattern": "*.md"}}]}}
LATER = [
    {"type": "user", "uuid": "inc-2", "sessionId": "5b0c9d4e-2f7a-4c1e-9a61-3d8e2b7f4a10", "timestamp": "2025-10-02T10:00:01.000Z",
     "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_g1", "content": "CHANGELOG.md"}]}},
    {"type": "assistant", "uuid": "inc-3", "sessionId": "5b0c9d4e-2f7a-4c1e-9a61-3d8e2b7f4a10", "timestamp": "2025-10-02T10:00:02.000Z",
     "message": {"id": "msg_X2", "role": "assistant", "model": "m",
                 "content": [{"type": "tool_use", "id": "toolu_b9", "name": "Bash", "input": {"command": "git diff"}}]}},
    {"type": "user", "uuid": "inc-4", "sessionId": "5b0c9d4e-2f7a-4c1e-9a61-3d8e2b7f4a10", "timestamp": "2025-10-02T10:00:03.000Z",
     "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_b9", "content": "1 file changed"}]}},
    {"type": "user", "uuid": "inc-5", "sessionId": "5b0c9d4e-2f7a-4c1e-9a61-3d8e2b7f4a10", "timestamp": "2025-10-02T10:01:00.000Z",
     "message": {"role": "user", "content": "Looks good, commit it with a short message."}},
]


def _append(path: Path, *events) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for event in events:
            handle.write((event if isinstance(event, str) else json.dumps(event)) + "\n")


def test_incremental_ingest_adds_only_new_events(tmp_path):
    projects = tmp_path / "projects"
    shutil.copytree(PROJECTS, projects)
    session = projects / SESSION.parent.name / SESSION.name
    warehouse = tmp_path / "w.duckdb"
    first = ingest(warehouse, "claude-code", projects)
    assert first.new == 42
    again = ingest(warehouse, "claude-code", projects)
    assert (again.seen, again.new) == (0, 0)  # nothing grew: nothing is read

    _append(session, GLOB_CALL)
    grown = ingest(warehouse, "claude-code", projects)
    assert (grown.seen, grown.new) == (1, 1)
    _append(session, *LATER)
    grown = ingest(warehouse, "claude-code", projects)
    assert (grown.seen, grown.new) == (4, 4)
    assert query(warehouse, "select count(*) from raw_messages")[0][0] == 42 + 5

    # The counts and the pending call survived the run boundary.
    rows = dict(query(warehouse, "select source_id, metadata from raw_messages where source_id like 'inc-%'"))
    assert json.loads(rows["inc-5"])["tool_activity"] == {"Bash": 1, "Glob": 1}
    assert json.loads(rows["inc-2"])["tool"] == "Glob"
    assert query(warehouse, "select reply_to from raw_messages where source_id = 'inc-2'") == [("inc-1",)]
    watermark = json.loads(query(warehouse, f"select value from watermarks where stream = '{session.resolve()}'")[0][0])
    assert watermark["offset"] == session.stat().st_size and watermark["line"] == 32 + 5


def test_a_line_being_written_waits_for_the_next_run(tmp_path):
    session = tmp_path / "s.jsonl"
    shutil.copyfile(SESSION, session)
    warehouse = tmp_path / "w.duckdb"
    ingest(warehouse, "claude-code", session)
    line = json.dumps(LATER[-1])
    with session.open("a", encoding="utf-8") as handle:
        handle.write(line[:40])
    waiting = ingest(warehouse, "claude-code", session)
    assert waiting.new == 0 and waiting.quarantined == 0
    assert any("last line is incomplete" in note for note in waiting.notes)
    with session.open("a", encoding="utf-8") as handle:
        handle.write(line[40:] + "\n")
    done = ingest(warehouse, "claude-code", session)
    assert (done.new, done.quarantined) == (1, 0)


def test_a_replaced_session_is_read_again(tmp_path):
    session = tmp_path / "s.jsonl"
    shutil.copyfile(SESSION, session)
    warehouse = tmp_path / "w.duckdb"
    ingest(warehouse, "claude-code", session)
    lines = session.read_text(encoding="utf-8").splitlines(keepends=True)
    session.write_text("".join(lines[1:]) + "".join(json.dumps(e) + "\n" for e in LATER), encoding="utf-8")
    again = ingest(warehouse, "claude-code", session)
    assert again.new == 4 and again.unchanged == 31
    assert any("replaced since it was last read" in note for note in again.notes)
    session.write_text(lines[1], encoding="utf-8")  # shorter than the offset reached
    shrunk = ingest(warehouse, "claude-code", session)
    assert any("shorter than when it was last read" in note for note in shrunk.notes)


# ----------------------------------------------------------------------------- bad input


def test_a_malformed_line_is_quarantined_and_the_rest_lands(tmp_path):
    session = tmp_path / "s.jsonl"
    lines = SESSION.read_text(encoding="utf-8").splitlines(keepends=True)
    session.write_text("".join(lines[:4]) + '{"type": "user", "message": \n' + "[1, 2]\n" + "".join(lines[4:]), encoding="utf-8")
    rows, quarantined, _ = read("claude-code", session)
    assert [(q.location, q.reason.split(" (")[0]) for q in quarantined] == [
        (f"{session} line 5", "not JSON"),
        (f"{session} line 6", "a JSON list, not an event object"),
    ]
    assert quarantined[0].payload == '{"type": "user", "message": '
    assert rows.height == read("claude-code", SESSION)[0].height


def test_a_file_that_is_not_jsonl_is_an_error(tmp_path):
    folder = tmp_path / "projects" / "-Users-sam-x"
    folder.mkdir(parents=True)
    shutil.copyfile(SESSION, folder / "good.jsonl")
    (folder / "screenshot.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00")
    with pytest.raises(SourceError, match=r"screenshot\.jsonl: none of its 3 line\(s\) is a JSON event"):
        read("claude-code", tmp_path / "projects")
    warehouse = tmp_path / "w.duckdb"
    result = cli_run(warehouse, "ingest", "claude-code", str(tmp_path / "projects"))
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert result.output.startswith("etl: error: ") and "screenshot.jsonl" in result.output
    assert not warehouse.exists()  # nothing of the run landed, not even the good file


def test_no_sessions_under_the_folder_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SourceError, match=r"no Claude Code sessions \(\*\.jsonl\) found"):
        read("claude-code", tmp_path)
    with pytest.raises(SourceError, match="no such file or folder"):
        read("claude-code", tmp_path / "missing")


def _chatgpt_export(tmp_path: Path, change) -> Path:
    conversations = json.loads(CHATGPT.read_text(encoding="utf-8"))
    change(conversations[0])
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(conversations), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda c: c["mapping"]["aaa1d2c3-root"].update(parent="b1a7e0c2-0003-4d5e-8f00-000000000003"),
         "the parent links loop back to node"),
        (lambda c: c.update(current_node="b1a7e0c2-9999-4d5e-8f00-000000009999"),
         "current_node b1a7e0c2-9999-4d5e-8f00-000000009999 is not in `mapping`"),
        (lambda c: c["mapping"]["b1a7e0c2-0006-4d5e-8f00-000000000006"].update(parent="gone"),
         "node b1a7e0c2-0006-4d5e-8f00-000000000006 points to parent gone, which is not in `mapping`"),
    ],
    ids=["cycle", "dangling-current-node", "missing-parent"],
)
def test_a_broken_chatgpt_tree_quarantines_that_conversation(tmp_path, change, reason):
    path = _chatgpt_export(tmp_path, change)
    rows, quarantined, _ = read("chatgpt", path)
    assert len(quarantined) == 1
    assert quarantined[0].location == f"{path} conversation 6650f1aa-1b2c-4d3e-8f90-a1b2c3d4e5f6"
    assert reason in quarantined[0].reason
    assert quarantined[0].source_id == "6650f1aa-1b2c-4d3e-8f90-a1b2c3d4e5f6"
    # The other conversation lands whole.
    assert rows["conversation_id"].unique().to_list() == ["66700c0d-2e3f-4a5b-9c6d-7e8f9a0b1c2d"]
    warehouse = tmp_path / "w.duckdb"
    result = cli_run(warehouse, "ingest", "chatgpt", str(path))
    assert result.exit_code == 0, result.output
    assert "1 quarantined" in result.output
    assert query(warehouse, "select reason from quarantine")[0][0] == quarantined[0].reason


def test_a_truncated_export_lands_nothing(tmp_path):
    for source, original in (("chatgpt", CHATGPT), ("claude-ai", CLAUDE_AI)):
        path = tmp_path / source / "conversations.json"
        path.parent.mkdir()
        data = original.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        warehouse = tmp_path / f"{source}.duckdb"
        result = cli_run(warehouse, "ingest", source, str(path))
        assert result.exit_code != 0 and "Traceback" not in result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"etl: error: {path}: truncated JSON")
        assert "truncated or damaged" in lines[0]
        assert not warehouse.exists()


def test_the_other_assistant_export_is_named(tmp_path):
    with pytest.raises(SourceError, match=r"this is a Claude\.ai export .*use `etl ingest claude-ai .*expected ChatGPT's conversations\.json"):
        read("chatgpt", CLAUDE_AI)
    with pytest.raises(SourceError, match=r"this is a ChatGPT export .*use `etl ingest chatgpt .*expected Claude\.ai's conversations\.json"):
        read("claude-ai", CHATGPT)
    result = cli_run(tmp_path / "w.duckdb", "ingest", "chatgpt", str(CLAUDE_AI))
    assert result.exit_code != 0 and "etl ingest claude-ai" in result.output and "Traceback" not in result.output


def test_exports_are_read_from_the_downloaded_zip(tmp_path):
    for source, original in (("chatgpt", CHATGPT), ("claude-ai", CLAUDE_AI)):
        archive = tmp_path / f"{source}-export.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.write(original, "conversations.json")
            zf.writestr("user.json", '{"id": "user-1"}')
            zf.writestr("chat.html", "<html></html>")
        from_zip, _, _ = read(source, archive)
        plain, _, _ = read(source, original)
        assert from_zip.drop("metadata").equals(plain.drop("metadata"))
    with pytest.raises(SourceError, match="no conversations.json found"):
        empty = tmp_path / "empty.zip"
        with zipfile.ZipFile(empty, "w") as zf:
            zf.writestr("user.json", "{}")
        read("chatgpt", empty)


def test_a_conversation_that_is_not_an_object_is_quarantined(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([42, *json.loads(CLAUDE_AI.read_text(encoding="utf-8"))]), encoding="utf-8")
    rows, quarantined, _ = read("claude-ai", path)
    assert [(q.location, q.reason) for q in quarantined] == [(f"{path} conversation 0", "a JSON int, not a conversation object")]
    assert rows.height == read("claude-ai", CLAUDE_AI)[0].height


# ----------------------------------------------------------------------------- command line and build


@pytest.mark.parametrize(
    ("source", "path", "new"),
    [("claude-code", PROJECTS, 42), ("chatgpt", CHATGPT, 18), ("claude-ai", CLAUDE_AI, 14)],
)
def test_cli_ingest_is_idempotent(tmp_path, source, path, new):
    warehouse = tmp_path / "w.duckdb"
    first = cli_run(warehouse, "ingest", source, str(path))
    assert first.exit_code == 0, first.output
    assert f"{new:,} new" in first.output
    second = cli_run(warehouse, "ingest", source, str(path))
    assert second.exit_code == 0, second.output
    assert "nothing new since the last run" in second.output
    assert query(warehouse, f"select count(*) from raw_messages where source = '{source}'")[0][0] == new
    for (metadata,) in query(warehouse, "select metadata from raw_messages"):
        assert canonical_json(json.loads(metadata)) == metadata


def test_build_answers_only_with_what_the_owner_typed(tmp_path):
    warehouse, datasets = tmp_path / "w.duckdb", tmp_path / "datasets"
    assert cli_run(warehouse, "ingest", "claude-code", str(PROJECTS)).exit_code == 0
    result = CliRunner().invoke(cli, ["--warehouse", str(warehouse), "--datasets", str(datasets), "build", "--version", "v1"])
    assert result.exit_code == 0, result.output
    records = [
        json.loads(line)
        for split in sorted((datasets / "v1" / "chatml").glob("*.jsonl"))
        for line in split.read_text(encoding="utf-8").splitlines()
    ]
    typed = set(owner_texts(read("claude-code", PROJECTS)[0]))
    answers = [r["messages"][-1]["content"] for r in records]
    assert answers and set(answers) <= typed
    # Five replies follow something the assistant said; a session's opening prompt answers nothing.
    assert len(answers) == 5
    everything = json.dumps(records, ensure_ascii=False)
    for never in ("Request interrupted", "<command-name>", "<local-command-stdout>", "Caveat:", "3 passed in",
                  "This session is being continued", "toolu_", "The fall-back hour repeats"):
        assert never not in everything


def _paths(value, prefix=()):
    """Every (path, value) inside a JSON document."""
    yield prefix, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _replaced(document, path, new):
    copy = json.loads(json.dumps(document))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return copy


@pytest.mark.parametrize(("source", "original"), [("chatgpt", CHATGPT), ("claude-ai", CLAUDE_AI)])
def test_odd_values_anywhere_never_crash(tmp_path, source, original):
    """Each field of the export in turn becomes null or a list (unhashable, not text):
    the run lands, quarantines or fails with one line, never a traceback."""
    document = json.loads(original.read_text(encoding="utf-8"))
    path = tmp_path / "conversations.json"
    for where, _ in list(_paths(document))[1:]:
        for odd in (None, ["x"]):
            changed = _replaced(document, where, odd)
            # Only the conversation changed, to keep the run short.
            path.write_text(json.dumps([changed[where[0]]]), encoding="utf-8")
            try:
                read(source, path)
            except SourceError:
                pass


def test_odd_events_never_crash(tmp_path):
    events = [json.loads(line) for line in SESSION.read_text(encoding="utf-8").splitlines()]
    session = tmp_path / "s.jsonl"
    # One event of each shape: typed text, tool call, tool result, three blocks, meta, compaction marker.
    for number in (1, 3, 4, 11, 18, 21):
        event = events[number]
        for where, _ in list(_paths(event))[1:]:
            for odd in (None, ["x"]):
                changed = [*events[:number], _replaced(event, where, odd), *events[number + 1:]]
                session.write_text("".join(json.dumps(e) + "\n" for e in changed), encoding="utf-8")
                rows, _, _ = read("claude-code", session)
                assert rows["source_id"].is_unique().all()
