"""msgvault's `export-messages` stream, made here to its published contract
(schema msgvault-message-export/1), plus truncated, altered and partly corrupt streams.

After a deliberate change to the connector, regenerate the golden rows with
    ETL_UPDATE_GOLDEN=1 python -m pytest tests/test_msgvault.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl.cli import cli
from etl.config import Owner
from etl.ingest import run_ingest
from etl.schemas.tables import KINDS, RAW_MESSAGES
from etl.sources import SourceContext, SourceError, get_source
from etl.warehouse import open_warehouse
from factories import dialogue, land

GOLDEN = Path(__file__).parent / "data" / "msgvault" / "expected_rows.json"
GMAIL = {"source_type": "gmail", "source_identifier": "jordan@example.com"}
SMS = {"source_type": "synctech_sms", "source_identifier": "phone|primary"}
DISCORD = {"source_type": "discord", "source_identifier": "123456789012345678"}


def manifest(**filters) -> dict:
    return {
        "record_type": "manifest", "schema": "msgvault-message-export/1", "msgvault_version": "v0.19.0",
        "window": {"start": "2024-01-01T00:00:00Z", "end": "2024-04-01T00:00:00Z"},
        "filters": {"message_types": [], "sources": [], **filters},
    }  # fmt: skip


def src(kind: dict, name: str) -> dict:
    return {"record_type": "source", "source_type": kind["source_type"], "identifier": kind["source_identifier"],
            "display_name": name, "last_successful_sync_at": "2024-03-31T12:00:00Z"}


def conv(kind: dict, cid: str, title: str, ctype: str, parent: str | None = None) -> dict:
    return {"record_type": "conversation", **kind, "id": cid, "title": title, "conversation_type": ctype,
            "parent_id": parent}


def msg(kind: dict, mid: str, cid: str, mtype: str, text: str, author: tuple[str, str] | None, at: str, *,
        subject: str = "", deleted: bool = False) -> dict:
    return {"record_type": "message", **kind, "id": mid, "conversation_id": cid, "message_type": mtype,
            "subject": subject, "text": text,
            "author": {"display_name": author[0], "address": author[1]} if author else None,
            "occurred_at": at, "deleted_from_source": deleted}


SOURCES = [src(DISCORD, "Climbing crew"), src(GMAIL, ""), src(SMS, "Pixel 8")]
CONVERSATIONS = [
    conv(DISCORD, "987654321098765432", "beta-talk", "thread", parent="876543210987654321"),
    conv(GMAIL, "18e1f2a3b4c5d6e7", "Saturday climbing", "email_thread"),
    conv(SMS, "thread-1", "Ana Lima", "direct_chat"),
]
MESSAGES = [
    msg(DISCORD, "112233445566778899", "987654321098765432", "discord", "anyone up for the 6b tonight?",
        ("Robin", ""), "2024-03-01T18:20:31Z"),
    msg(DISCORD, "112233445566778900", "987654321098765432", "discord", "me! leaving at 7",
        ("jordan.r", ""), "2024-03-01T18:21:02.250Z"),
    msg(GMAIL, "18e1f2a3b4c5d6e7", "18e1f2a3b4c5d6e7", "email", "Shall we go Saturday morning?\n\nAna",
        ("Ana Lima", "ana@example.org"), "2024-03-02T08:00:00+01:00", subject="Saturday climbing"),
    msg(GMAIL, "18e1f2a3b4c5d6f0", "18e1f2a3b4c5d6e7", "email", "Yes, 9am at the gym.",
        ("Jordan Rivera", "Jordan@Example.com"), "2024-03-02T09:15:00Z", subject="Re: Saturday climbing"),
    msg(GMAIL, "18e1f2a3b4c5d6f1", "18e1f2a3b4c5d6e7", "email", "Sorry, scratch that.",
        ("Ana Lima", "ana@example.org"), "2024-03-02T10:00:00Z", subject="Re: Saturday climbing", deleted=True),
    msg(SMS, "sms-1", "thread-1", "sms", "bring the rope?", ("Ana Lima", "+33612345678"), "2024-03-03T09:00:00.1200-07:00"),
    msg(SMS, "sms-2", "thread-1", "sms", "on it", None, "2024-03-03T16:05:00Z"),
    msg(SMS, "call-1", "thread-1", "synctech_sms_call", "", ("Ana Lima", "+33612345678"), "2024-03-03T16:30:00Z"),
]


def stream(records: list[dict] | None = None, *, complete: dict | None = None, trailer: bool = True) -> list[str]:
    records = [*SOURCES, *CONVERSATIONS, *MESSAGES] if records is None else records
    lines = [json.dumps(manifest(), separators=(",", ":"))] + [json.dumps(r, separators=(",", ":")) for r in records]
    if trailer:
        counts = {f"{p}s": sum(r["record_type"] == p for r in records) for p in ("source", "conversation", "message")}
        lines.append(json.dumps(complete or {"record_type": "complete", "counts": counts}))
    return lines


def write(tmp_path: Path, lines: list[str], name: str = "vault.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read(*paths: Path, owner: Owner | None = None, **options):
    ctx = SourceContext(paths=list(paths), options=options, owner=owner or Owner(), previous_watermark=lambda s: None)
    batches = list(get_source("msgvault").read(ctx))
    rows = pl.concat([b.rows for b in batches]) if batches else RAW_MESSAGES.empty_frame(exclude=("ingest_run_id",))
    return rows, [q for b in batches for q in b.quarantined], ctx.notes


def one(rows: pl.DataFrame, **equal) -> dict:
    found = rows.filter(*(pl.col(k) == v for k, v in equal.items()))
    assert found.height == 1, (equal, found)
    return found.row(0, named=True)


@pytest.fixture
def sample(tmp_path) -> Path:
    return write(tmp_path, stream())


def test_matches_golden_rows(sample):
    rows, quarantined, _ = read(sample, me="jordan.r")
    produced = [{**r, "sent_at": r["sent_at"].isoformat(), "metadata": json.loads(r["metadata"])}
                for r in rows.iter_rows(named=True)]
    if os.environ.get("ETL_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(produced, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert produced == json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert quarantined == []


def test_rows_fit_the_raw_schema(sample):
    rows, _, _ = read(sample)
    assert rows.height == len(MESSAGES)
    assert rows.schema == RAW_MESSAGES.polars_schema(exclude=("ingest_run_id",))
    assert rows["source_id"].is_unique().all() and set(rows["kind"]) <= set(KINDS)


def test_owner_from_the_accounts_address_then_owner_identities(sample):
    rows, _, notes = read(sample)
    assert one(rows, text="Yes, 9am at the gym.")["is_owner"] is True  # the Gmail account's own address
    assert one(rows, text="Shall we go Saturday morning?\n\nAna")["is_owner"] is False
    # Discord and SMS accounts are not addresses: unknown without [owner] or --me.
    assert one(rows, text="me! leaving at 7")["is_owner"] is None
    assert any("is_owner unknown" in n for n in notes)
    rows, _, _ = read(sample, owner=Owner(names=("jordan.r",)))
    assert one(rows, text="me! leaving at 7")["is_owner"] is True
    assert one(rows, text="anyone up for the 6b tonight?")["is_owner"] is False


def test_conversations_titles_kinds_and_times(sample):
    rows, _, _ = read(sample)
    reply = one(rows, text="me! leaving at 7")
    assert reply["conversation_title"] == "beta-talk" and reply["account"] == "discord:123456789012345678"
    assert json.loads(reply["metadata"])["parent_conversation"] == "876543210987654321"
    assert reply["sent_at"].isoformat() == "2024-03-01T18:21:02.250000+00:00"
    assert one(rows, text="bring the rope?")["sent_at"].isoformat() == "2024-03-03T16:00:00.120000+00:00"
    mail = rows.filter(pl.col("account") == "gmail:jordan@example.com")
    assert mail["conversation_id"].n_unique() == 1 and set(mail["conversation_title"]) == {"Saturday climbing"}
    deleted = one(rows, text="Sorry, scratch that.")
    assert deleted["kind"] == "text" and json.loads(deleted["metadata"])["deleted_from_source"] is True
    call = rows.filter(pl.col("kind") == "system")
    assert call.height == 1 and json.loads(call["metadata"][0])["message_type"] == "synctech_sms_call"


def test_ids_are_scoped_by_source(tmp_path):
    # The same provider id in two accounts is two messages.
    other = {"source_type": "gmail", "source_identifier": "work@example.com"}
    records = [*SOURCES, CONVERSATIONS[1], conv(other, "18e1f2a3b4c5d6e7", "Saturday climbing", "email_thread"),
               MESSAGES[2], {**MESSAGES[2], **other}]
    rows, _, _ = read(write(tmp_path, stream(records)))
    assert rows.height == 2 and rows["source_id"].n_unique() == 2


# ----------------------------------------------------------------------------- refusing a partial stream


def ingest(warehouse: Path, *paths: Path):
    return run_ingest(warehouse, get_source("msgvault"), list(paths), {}, Owner())


def _refused(tmp_path: Path, lines: list[str], match: str) -> str:
    path = write(tmp_path, lines, "bad.jsonl")
    warehouse = tmp_path / "w.duckdb"
    land(warehouse, dialogue("kept", [(False, "hello there friend"), (True, "hey, long time no see")]))
    with pytest.raises(SourceError, match=match) as error:
        ingest(warehouse, path)
    with open_warehouse(warehouse) as con:
        assert con.execute("select count(*) from raw_messages").fetchone() == (2,)
    assert "\n" not in str(error.value) and str(path) in str(error.value)
    return str(error.value)


def test_a_stream_without_its_trailer_is_refused_and_nothing_lands(tmp_path):
    _refused(tmp_path, stream(trailer=False), "truncated: no completion record")
    # Cut in the middle of a line, as an interrupted redirect leaves it.
    text = "\n".join(stream())
    _refused(tmp_path, [text[: len(text) * 2 // 3]], "truncated")


def test_a_count_that_does_not_match_is_refused(tmp_path):
    complete = {"record_type": "complete", "counts": {"sources": 3, "conversations": 3, "messages": 9}}
    message = _refused(tmp_path, stream(complete=complete), "truncated: the completion record counts")
    assert "9 messages" in message and "8 messages" in message


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (lambda s: [*s, s[1]], "after the completion record"),
        (lambda s: [s[0], *s], "second manifest"),
        (lambda s: s[1:], "first record is 'source'"),
        (lambda s: [s[0].replace("export/1", "export/2"), *s[1:]], "is not msgvault-message-export/1"),
        (lambda s: ["not json", *s], "not JSON"),
    ],
)
def test_an_altered_stream_is_refused(tmp_path, lines, match):
    _refused(tmp_path, lines(stream()), match)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    at=st.integers(min_value=0, max_value=len(MESSAGES) - 1),
    how=st.sampled_from(["json", "time", "id"]),
)
def test_one_corrupted_record_is_quarantined_and_the_rest_lands(tmp_path, at, how):
    lines = stream()
    line = 1 + len(SOURCES) + len(CONVERSATIONS) + at  # 0-based index of that message's line
    if how == "json":
        lines[line] = lines[line][: len(lines[line]) // 2]
    else:
        record = json.loads(lines[line])
        record["occurred_at" if how == "time" else "id"] = "last Tuesday" if how == "time" else ""
        lines[line] = json.dumps(record)
    path = write(tmp_path, lines)
    rows, quarantined, _ = read(path)
    assert rows.height == len(MESSAGES) - 1
    (bad,) = quarantined
    assert bad.location == f"{path} line {line + 1}" and bad.reason and bad.payload


def test_second_ingest_adds_nothing_and_an_overlapping_window_adds_only_the_new(sample, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    first, second = ingest(warehouse, sample), ingest(warehouse, sample)
    assert first.new == len(MESSAGES) and (second.new, second.unchanged) == (0, len(MESSAGES))
    later = [*MESSAGES[5:], msg(SMS, "sms-3", "thread-1", "sms", "see you there", None, "2024-03-04T08:00:00Z")]
    window = write(tmp_path, stream([SOURCES[2], CONVERSATIONS[2], *later]), "april.jsonl")
    third = ingest(warehouse, window)
    assert (third.new, third.unchanged) == (1, len(MESSAGES) - 5)


def test_cli_end_to_end_and_one_line_errors(sample, tmp_path):
    warehouse = tmp_path / "w.duckdb"

    def invoke(*args):
        return CliRunner().invoke(cli, ["--warehouse", str(warehouse), *args])

    first = invoke("ingest", "msgvault", str(sample))
    assert first.exit_code == 0 and f"{len(MESSAGES)} new" in first.output, first.output
    again = invoke("ingest", "msgvault", str(sample))
    assert again.exit_code == 0 and "nothing new since the last run" in again.output
    assert "msgvault" in invoke("sources").output
    cut = write(tmp_path, stream(trailer=False), "cut.jsonl")
    for wrong in (tmp_path / "nowhere.jsonl", cut):
        result = invoke("ingest", "msgvault", str(wrong))
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("etl: error: "), result.output
