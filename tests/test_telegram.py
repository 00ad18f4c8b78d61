"""The Telegram connector: our own exports, the shared fixtures and bad input.

After a deliberate change to the connector, regenerate the golden rows with
    ETL_UPDATE_GOLDEN=1 python -m pytest tests/test_telegram.py
and read the diff before committing it.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from conftest import shared_fixture
from etl.cli import cli
from etl.config import Owner
from etl.ingest import run_ingest
from etl.schemas.tables import KINDS, RAW_MESSAGES
from etl.sources import SourceContext, SourceError, get_source
from etl.sources.telegram import flatten_text

DATA = Path(__file__).parent / "data" / "telegram"
EXPORT = DATA / "result.json"
SINGLE = DATA / "ChatExport_2024-03-05"
GOLDEN = DATA / "expected_rows.json"
BERLIN = {"timezone": "Europe/Berlin"}


def read(*paths: Path, owner: Owner | None = None, **options):
    ctx = SourceContext(
        paths=list(paths), options={**BERLIN, **options}, owner=owner or Owner(), previous_watermark=lambda s: None
    )
    batches = list(get_source("telegram").read(ctx))
    rows = pl.concat([b.rows for b in batches]) if batches else RAW_MESSAGES.empty_frame(exclude=("ingest_run_id",))
    return rows, [q for b in batches for q in b.quarantined], ctx


def counts(rows: pl.DataFrame) -> dict[str, int]:
    owner = {True: "owner", False: "other", None: "unknown"}
    tally: dict[str, int] = {}
    for kind, is_owner in rows.select("kind", "is_owner").iter_rows():
        key = f"{kind}/{owner[is_owner]}"
        tally[key] = tally.get(key, 0) + 1
    return dict(sorted(tally.items()))


@pytest.fixture(scope="module")
def export() -> pl.DataFrame:
    return read(EXPORT)[0]


def row(rows: pl.DataFrame, source_id: str) -> dict:
    return rows.filter(pl.col("source_id") == source_id).row(0, named=True)


# ----------------------------------------------------------------------------- our own export


def test_counts_by_kind_and_owner():
    rows, quarantined, ctx = read(EXPORT)
    assert counts(rows) == {
        "attachment/other": 4,
        "attachment/owner": 1,
        "reaction/other": 1,
        "reaction/owner": 2,
        "system/other": 2,
        "system/owner": 3,
        "text/other": 7,
        "text/owner": 7,
    }
    assert rows["source_id"].is_unique().all()
    assert rows.schema == RAW_MESSAGES.polars_schema(exclude=("ingest_run_id",))
    assert set(rows["kind"]) <= set(KINDS)
    (unsupported,) = quarantined
    assert unsupported.source_id == "1700000001:10" and "unsupported" in unsupported.reason
    # Reaction times and one older message carry no date_unixtime: --timezone applied.
    assert ctx.notes == ["4 Telegram date(s) had no date_unixtime and were read as Europe/Berlin"]


def test_matches_golden_rows(export):
    produced = [
        {**r, "sent_at": r["sent_at"].isoformat() if r["sent_at"] else None, "metadata": json.loads(r["metadata"])}
        for r in export.iter_rows(named=True)
    ]
    if os.environ.get("ETL_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(produced, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert produced == json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_ids_conversations_and_owner(export):
    assert set(export["conversation_title"]) == {"Lena Fischer", "Climbing crew", "Saved Messages", "Old hiking group"}
    first = row(export, "4411001:101")
    assert (first["conversation_id"], first["sender"], first["sender_name"]) == ("4411001", "user4411001", "Lena Fischer")
    # personal_information.user_id 5550100 is the owner, whatever the display name.
    assert set(export.filter(pl.col("is_owner"))["sender"]) == {"user5550100"}
    assert row(export, "5550100:1")["conversation_title"] == "Saved Messages"
    assert json.loads(row(export, "1200:1")["metadata"])["left_chat"] is True


def test_text_entities_are_concatenated_exactly(export):
    assert row(export, "4411001:102")["text"] == "yes! see https://example.com/map for where we meet"
    assert row(export, "4411001:111")["text"] == "Link: https://telegram.org/"
    assert row(export, "1700000001:11")["text"] == "Forecast\nsunny, 12°C"
    assert flatten_text(["a ", {"type": "bold", "text": "b"}, {"type": "italic", "text": "c"}]) == "a bc"


def test_replies_edits_and_deleted_accounts(export):
    assert row(export, "4411001:102")["reply_to"] == "4411001:101"
    assert row(export, "1700000001:4")["reply_to"] == "1700000001:3"
    edited = json.loads(row(export, "4411001:106")["metadata"])
    assert edited["edited"] is True and edited["edited_at"] == "2024-03-01T18:10:00+00:00"
    ghost = row(export, "1700000001:3")
    assert (ghost["sender"], ghost["sender_name"], ghost["is_owner"], ghost["kind"]) == (
        "user7770001", None, False, "text")


def test_service_messages_attachments_and_captions(export):
    call = row(export, "4411001:108")
    assert (call["kind"], call["text"], call["is_owner"]) == ("system", None, True)
    assert json.loads(call["metadata"]).items() >= {"action": "phone_call", "duration_seconds": 300}.items()
    created = json.loads(row(export, "1700000001:1")["metadata"])
    assert created["action"] == "create_group" and created["members"] == ["Mei Chen", "Jonas"]
    photo = row(export, "4411001:103")
    assert (photo["kind"], photo["text"]) == ("attachment", None)
    caption = row(export, "4411001:104")
    assert (caption["kind"], caption["text"]) == ("text", "the view from the hut")
    assert json.loads(caption["metadata"])["attachment"]["photo"].startswith("photos/")
    sticker = json.loads(row(export, "4411001:105")["metadata"])["attachment"]
    assert (sticker["media_type"], sticker["sticker_emoji"]) == ("sticker", "😂")
    assert {row(export, i)["kind"] for i in ("4411001:109", "1700000001:7", "1700000001:8")} == {"attachment"}
    assert json.loads(row(export, "4411001:110")["metadata"])["forwarded_from"] == "Alpine Weather"
    assert json.loads(row(export, "1700000001:11")["metadata"])["via_bot"] == "@alpinebot"


def test_reactions_land_as_rows_answering_the_message(export):
    reactions = export.filter(pl.col("kind") == "reaction")
    assert set(reactions["reply_to"]) == {"4411001:107"}
    assert reactions.select("sender", "is_owner", "text").rows() == [
        ("user5550100", True, "👍"), ("user4411001", False, "👍"), ("user5550100", True, None)
    ]
    # Reaction times are local (no date_unixtime): 19:12 in Berlin.
    assert reactions["sent_at"][0] == datetime(2024, 3, 1, 18, 12, tzinfo=UTC)
    totals = json.loads(row(export, "4411001:107")["metadata"])["reactions"]
    assert [(r["type"], r["count"]) for r in totals] == [("emoji", 2), ("custom_emoji", 3)]


def test_times_prefer_unixtime_and_else_use_the_timezone(export):
    assert row(export, "4411001:101")["sent_at"] == datetime(2024, 3, 1, 18, 2, 11, tzinfo=UTC)
    assert row(export, "1700000001:6")["sent_at"] == datetime(2024, 2, 21, 8, 0, tzinfo=UTC)  # "date" only
    rows, _, _ = read(EXPORT, timezone="America/New_York")
    assert row(rows, "1700000001:6")["sent_at"] == datetime(2024, 2, 21, 14, 0, tzinfo=UTC)
    assert row(rows, "4411001:101")["sent_at"] == datetime(2024, 3, 1, 18, 2, 11, tzinfo=UTC)  # unchanged


def test_one_chat_export_owner_by_name():
    rows, _, ctx = read(SINGLE)
    assert rows["is_owner"].to_list() == [None, None, None]
    assert any("pass --me" in n for n in ctx.notes)
    rows, _, ctx = read(SINGLE, owner=Owner(names=("Sam Rivera",)))
    assert rows["is_owner"].to_list() == [False, True, False]
    rows, _, _ = read(SINGLE, me=("Lena Fischer",))
    assert rows["is_owner"].to_list() == [True, False, True]


def test_folder_and_zip_read_the_same(tmp_path, export):
    archive = tmp_path / "Telegram Desktop.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(EXPORT, "DataExport_2024-03-05/result.json")
        z.writestr("DataExport_2024-03-05/photos/photo_1@01-03-2024_19-05-00.jpg", b"\xff\xd8\xff")
    assert read(archive)[0].equals(export)
    folder = tmp_path / "DataExport_2024-03-05"
    folder.mkdir()
    shutil.copyfile(EXPORT, folder / "result.json")
    assert read(folder)[0].equals(export)


# ----------------------------------------------------------------------------- idempotence, incremental


def ingest(warehouse: Path, *paths: Path, **options):
    return run_ingest(warehouse, get_source("telegram"), list(paths), {**BERLIN, **options}, Owner())


def test_second_ingest_adds_nothing(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    first = ingest(warehouse, EXPORT)
    second = ingest(warehouse, EXPORT)
    assert (first.new, first.quarantined) == (27, 1)
    assert (second.new, second.unchanged) == (0, 27)


def test_a_later_export_adds_only_new_messages(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    ingest(warehouse, EXPORT)
    later = ingest(warehouse, SINGLE)  # a one-chat export of the same chat, three days later
    assert (later.new, later.unchanged) == (1, 2)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT text FROM raw_messages WHERE source_id = '4411001:112'").fetchone() == (
            "same time next week?",)


# ----------------------------------------------------------------------------- shared fixtures


@pytest.mark.parametrize("name", ["test_single_export.json", "test_batch_export.json"])
def test_chat_miner_exports_give_the_target(name):
    path = shared_fixture(f"chat_exports/chat-miner/telegram/{name}")
    rows, quarantined, ctx = read(path)
    target = json.loads(shared_fixture("chat_exports/chat-miner/telegram/target.json").read_text(encoding="utf-8"))
    raw = json.loads(path.read_text(encoding="utf-8"))
    messages = raw["messages"] if "messages" in raw else raw["chats"]["list"][0]["messages"]
    # Upstream joins the pieces of an entity list with a space; we concatenate them, as
    # Telegram does (real exports carry the spaces as plain strings, so a space join
    # would double them). Compare after mapping ours to the pieces upstream joins.
    ours = []
    for r, message in zip(rows.iter_rows(named=True), messages, strict=True):
        pieces = message["text"] if isinstance(message["text"], list) else [message["text"]]
        texts = [p["text"] if isinstance(p, dict) else p for p in pieces]
        assert r["text"] == "".join(texts)
        ours.append({"timestamp": r["sent_at"].replace(tzinfo=None).isoformat(), "author": r["sender_name"],
                     "message": " ".join(texts)})
    assert ours == target
    assert rows["text"].to_list() == ["Minimal Message", "Link:https://telegram.org/"]
    assert set(rows["kind"]) == {"text"} and quarantined == []
    # No ids in these hand-made files: ids fall back to the chat's name and a hash.
    assert rows["source_id"].is_unique().all()
    if name == "test_batch_export.json":
        assert set(rows["conversation_title"]) == {"Chatname"}
    assert not any("date_unixtime" in n for n in ctx.notes)  # times came from date_unixtime


# ----------------------------------------------------------------------------- bad input


def test_truncated_json_fails_and_lands_nothing(tmp_path):
    broken = tmp_path / "broken" / "result.json"
    broken.parent.mkdir()
    data = EXPORT.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    warehouse = tmp_path / "w.duckdb"
    with pytest.raises(SourceError, match=r"result.json: is not complete JSON .*truncated"):
        ingest(warehouse, EXPORT, broken)
    assert not warehouse.exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("chat.txt", "12/01/2024, 09:14 - Lena: hi\n", "is a WhatsApp chat export, not Telegram's; use `etl ingest whatsapp`"),
        ("photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is a PNG image, not a Telegram export"),
        ("conversations.json", '[{"title": "a chat", "mapping": {}}]', "is JSON without Telegram chats"),
        ("notes.txt", "just some notes\n", "is not JSON; expected a Telegram Desktop JSON export"),
        ("messages.html", "<!DOCTYPE html><html></html>", "is Telegram's HTML export"),
    ],
)
def test_wrong_files_fail_with_one_clear_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(SourceError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        read(path)


def test_folders_without_a_json_export(tmp_path):
    html = tmp_path / "ChatExport_html"
    html.mkdir()
    (html / "messages.html").write_text("<html></html>")
    with pytest.raises(SourceError, match="HTML export; export again choosing the format"):
        read(html)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no result.json found"):
        read(empty)
    with pytest.raises(SourceError, match="not a known time zone"):
        read(EXPORT, timezone="Nowhere/Special")


def test_unreadable_messages_are_quarantined(tmp_path):
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"name": "x", "id": 1, "messages": [
        {"id": 1, "type": "message", "date_unixtime": "1700000000", "from": "A", "text": "fine"},
        {"id": 2, "type": "message", "date_unixtime": "1700000001", "from": "A", "text": [{"type": "bold"}]},
        "not a message",
    ]}))
    rows, quarantined, _ = read(path)
    assert rows["text"].to_list() == ["fine"]
    assert [q.reason.split(":")[0] for q in quarantined] == ["cannot be read", "not a JSON object"]


# ----------------------------------------------------------------------------- the command line


def test_cli_end_to_end(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    ok = CliRunner().invoke(cli, ["--warehouse", str(warehouse), "ingest", "telegram", str(EXPORT),
                                  "--timezone", "Europe/Berlin"])
    assert ok.exit_code == 0, ok.output
    assert "telegram: 28 read, 27 new, 0 already present, 1 quarantined" in ok.output
    assert "see why: etl sql" in ok.output
    wrong = CliRunner().invoke(cli, ["--warehouse", str(warehouse), "ingest", "telegram",
                                     str(Path(__file__).parent / "data" / "whatsapp" / "WhatsApp Chat with Aino.txt")])
    assert wrong.exit_code == 1
    lines = [line for line in wrong.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("etl: error: ") and "etl ingest whatsapp" in lines[0]
    assert "Traceback" not in wrong.output
