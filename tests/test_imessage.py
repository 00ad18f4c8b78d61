"""The iMessage connector against the bundled sample, the shared fixtures and broken input."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from conftest import shared_fixture
from etl.samples import make_chatdb as sample
from etl.schemas.records import canonical_json
from etl.schemas.tables import RAW_MESSAGES
from etl.sources import SourceContext, SourceError, get_source
from etl.sources.imessage import apple_time_us_sql
from etl.sources.message_summary import parse_summary_info
from etl.sources.typedstream import encode_attributed_body, encode_attributed_runs

SAMPLE = Path(sample.__file__).with_name("chat.db")
UTC = UTC


def read(db: Path, watermark: dict | None = None):
    """Every batch the connector yields for `db`, and its context."""
    ctx = SourceContext(
        paths=[], options={"db": str(db)}, owner=None, previous_watermark=lambda stream: watermark
    )
    return list(get_source("imessage").read(ctx)), ctx


def rows_of(db: Path, watermark: dict | None = None) -> pl.DataFrame:
    batches, _ = read(db, watermark)
    if not batches:
        return RAW_MESSAGES.empty_frame(exclude=("ingest_run_id",))
    return pl.concat([b.rows for b in batches])


@pytest.fixture(scope="module")
def landed() -> pl.DataFrame:
    return rows_of(SAMPLE)


@pytest.fixture()
def sample_copy(tmp_path) -> Path:
    copy = tmp_path / "chat.db"
    shutil.copyfile(SAMPLE, copy)
    return copy


def by_rowid(frame: pl.DataFrame, rowid: int) -> dict:
    return frame.filter(pl.col("metadata").str.json_path_match("$.rowid") == str(rowid)).row(0, named=True)


# ----------------------------------------------------------------------------- the sample


def test_counts_by_kind_and_owner(landed):
    assert landed.height == 244
    assert dict(landed.group_by("kind").len().iter_rows()) == {
        "text": 212,
        "reaction": 26,
        "attachment": 3,
        "system": 2,
        "deleted": 1,
    }
    assert dict(landed.group_by("is_owner").len().iter_rows()) == {True: 97, False: 147}
    assert landed.filter((pl.col("kind") == "text") & pl.col("is_owner")).height == 92


def test_schema_keys_and_json(landed):
    assert landed.schema == RAW_MESSAGES.polars_schema(exclude=("ingest_run_id",))
    assert landed["source"].unique().to_list() == ["imessage"]
    assert landed["source_id"].is_unique().all()
    with sqlite3.connect(SAMPLE) as con:
        guids = [g for (g,) in con.execute("SELECT guid FROM message ORDER BY ROWID")]
    assert landed["source_id"].to_list() == guids  # keyed on guid, in ROWID order
    for text in landed["metadata"]:
        assert canonical_json(json.loads(text)) == text  # sorted keys, one canonical form


def test_most_text_comes_from_attributed_body(landed):
    with sqlite3.connect(SAMPLE) as con:
        body_only = con.execute(
            "SELECT COUNT(*) FROM message WHERE text IS NULL AND attributedBody IS NOT NULL"
        ).fetchone()[0]
    assert body_only == 181
    interview = by_rowid(landed, 27)
    assert interview["text"].startswith("Honestly better than I expected.")
    assert interview["text"].endswith("I never really know with these.")
    assert len(interview["text"]) > 400
    assert by_rowid(landed, 1)["text"] == "are you still at the office?"  # text column only (old row)
    assert by_rowid(landed, 40)["kind"] == "reaction"


def test_traps_are_landed_verbatim(landed):
    texts = landed["text"].drop_nulls().to_list()
    # Raw text is never cleaned at ingest: mojibake and pasted secrets land as sent,
    # for the build to repair and redact.
    assert "Iâ€™m in, just tell me when we leave" in texts
    assert any("AKIAFAKE0EXAMPLE1234" in t for t in texts)
    assert any("ghp_FAKE0123456789abcdefghijklmnopqrstuv" in t for t in texts)
    assert {"Running 10 min late, sorry!", "running 10 mins late sorry", "Running 10 minutes late, sorry!!"} <= set(texts)


def test_utc_timestamps(landed):
    first, second = landed["sent_at"][0], landed["sent_at"][1]
    assert first == datetime(2024, 3, 4, 19, 41, 20, 654845, tzinfo=UTC)
    assert second == datetime(2024, 3, 4, 19, 43, 19, 526891, tzinfo=UTC)
    assert landed["sent_at"].is_sorted()
    assert landed["sent_at"].null_count() == 0


def test_senders_and_owner(landed):
    mine = landed.filter(pl.col("is_owner"))
    assert mine["sender"].unique().to_list() == ["+14155550100"]  # destination_caller_id
    assert mine["account"].unique().to_list() == ["+14155550100"]
    theirs = landed.filter(~pl.col("is_owner"))
    assert "+14155550100" not in theirs["sender"].to_list()
    assert landed["sender_name"].null_count() == landed.height


def test_group_chats_and_membership(landed):
    groups = landed.filter(pl.col("conversation_id").str.contains(";+;", literal=True))
    titles = dict(groups.group_by("conversation_id").agg(pl.col("conversation_title").first()).iter_rows())
    assert sorted(titles.values(), key=str) == ["Climbing crew", None, "Platform team 🚀"]
    members = {
        title: json.loads(meta)["members"]
        for title, meta in groups.group_by("conversation_title").agg(pl.col("metadata").first()).iter_rows()
    }
    assert members["Climbing crew"] == ["+14155550142", "+14155550167", "+14155550199", "lena.fischer@example.com"]
    assert members["Platform team 🚀"] == ["+14155550178", "+14155550189", "mei.chen@example.com"]
    assert len(members[None]) == 3
    for meta in groups["metadata"]:
        assert json.loads(meta)["is_group"] is True
    one_to_one = landed.filter(pl.col("conversation_id") == "iMessage;-;+14155550123")
    assert one_to_one.height == 57
    assert set(one_to_one["sender"]) == {"+14155550100", "+14155550123"}
    assert all("members" not in json.loads(m) and not json.loads(m)["is_group"] for m in one_to_one["metadata"])


def test_reactions(landed):
    reactions = landed.filter(pl.col("kind") == "reaction")
    metas = [json.loads(m) for m in reactions["metadata"]]
    assert all(m["associated_message_guid"].startswith("p:0/") for m in metas)
    targets = {m["associated_message_guid"][4:] for m in metas}
    assert targets <= set(landed["source_id"])
    types = {m["associated_message_type"] for m in metas}
    assert {2000, 2001, 2003, 2006, 3001} <= types
    emoji = [m for m in metas if m["associated_message_type"] == 2006]
    assert emoji[0]["associated_message_emoji"] == "😍"
    assert "associated_message_guid" not in json.loads(landed.filter(pl.col("kind") == "text")["metadata"][0])


def test_attachments_edits_unsends_and_system_rows(landed):
    photo = by_rowid(landed, 65)
    assert photo["kind"] == "attachment" and photo["text"] is None
    assert json.loads(photo["metadata"])["attachments"] == 1
    captioned = landed.filter(pl.col("text") == "this is what my legs looked like after the last 'mostly flat' approach")
    assert captioned["kind"].to_list() == ["text"]  # placeholder stripped, caption kept
    assert json.loads(captioned["metadata"][0])["attachments"] == 1
    assert not any("\ufffc" in t for t in landed.filter(pl.col("kind") == "text")["text"].drop_nulls())

    edited = by_rowid(landed, 72)
    assert edited["text"] == "can you pick up milk on the way home?"  # the latest version
    assert json.loads(edited["metadata"]).items() >= {"edited": True, "edit_count": 1}.items()

    unsent = by_rowid(landed, 121)
    assert unsent["kind"] == "deleted" and unsent["text"] is None and unsent["is_owner"]

    rename, added = landed.filter(pl.col("kind") == "system").iter_rows(named=True)
    assert json.loads(rename["metadata"])["group_title"] == "Platform team 🚀"
    assert json.loads(added["metadata"])["other_handle"] == "+14155550199"


def test_threaded_replies(landed):
    replies = landed.filter(pl.col("reply_to").is_not_null())
    assert replies.height == 3
    assert set(replies["reply_to"]) <= set(landed["source_id"])


def test_batch_carries_stream_watermark_and_file_hash():
    batches, ctx = read(SAMPLE)
    assert [b.stream for b in batches] == [str(SAMPLE.resolve())]
    assert batches[-1].watermark == {"rowid": 244}
    assert batches[-1].seen == 244
    assert ctx.files == {str(SAMPLE): hashlib.sha256(SAMPLE.read_bytes()).hexdigest()}


# ----------------------------------------------------------------------------- incremental


def test_incremental_read_from_the_watermark(tmp_path):
    db = tmp_path / "chat.db"
    sample.make_chatdb(db, n_messages=200)
    first = rows_of(db)
    assert first.height == 200
    sample.make_chatdb(db, n_messages=44)  # Messages.app adds rows
    again = rows_of(db, watermark={"rowid": 200})
    assert again.height == 44
    assert set(again["source_id"]).isdisjoint(first["source_id"])
    assert rows_of(db, watermark={"rowid": 244}).height == 0
    # Appending equals generating the whole history at once.
    assert pl.concat([first, again]).equals(rows_of(SAMPLE))


def test_batches_stream_in_rowid_order(tmp_path, monkeypatch):
    from etl.sources import imessage

    monkeypatch.setattr(imessage, "BATCH_ROWS", 50)
    batches, _ = read(SAMPLE)
    assert [b.rows.height for b in batches] == [50, 50, 50, 50, 44]
    assert [b.watermark["rowid"] for b in batches] == [50, 100, 150, 200, 244]
    assert pl.concat([b.rows for b in batches]).equals(rows_of(SAMPLE))


@pytest.mark.parametrize("db", [SAMPLE, "imessage/chatdb/iwvelando_imessage-archiver_chat.db"], ids=["sample", "macos15"])
def test_arrow_reader_and_sqlite3_reader_land_the_same_rows(monkeypatch, db):
    from etl.sources import imessage

    db = db if isinstance(db, Path) else shared_fixture(db)
    reader = imessage.MessageReader(imessage.open_database(db), db)
    assert reader.arrow is not None, "adbc-driver-sqlite is a dependency: the Arrow reader must open"
    assert reader.arrow.read(0).height > 0
    through_arrow = rows_of(db)
    monkeypatch.setattr(imessage.ArrowMessages, "open", classmethod(lambda cls, path, sql: None))
    assert through_arrow.equals(rows_of(db))


def test_a_batch_the_arrow_reader_cannot_give_is_read_by_sqlite3(sample_copy, monkeypatch):
    from etl.sources import imessage

    def fails(self, *args):
        raise RuntimeError("unexpected column type")

    monkeypatch.setattr(imessage.ArrowMessages, "query", fails)
    assert rows_of(sample_copy).equals(rows_of(SAMPLE))


# ----------------------------------------------------------------------------- the generator


def test_sample_generation_is_byte_reproducible(tmp_path):
    one, two = tmp_path / "one.db", tmp_path / "two.db"
    sample.make_chatdb(one)
    sample.make_chatdb(two)
    assert hashlib.sha256(one.read_bytes()).digest() == hashlib.sha256(two.read_bytes()).digest()
    assert one.stat().st_size < 512 * 1024


def test_bundled_sample_matches_the_generator(tmp_path):
    fresh = tmp_path / "fresh.db"
    sample.make_chatdb(fresh)

    def dump(path):
        with sqlite3.connect(path) as con:
            return {
                table: con.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
                for table in ("message", "handle", "chat", "chat_handle_join", "chat_message_join", "attachment")
            }

    assert dump(fresh) == dump(SAMPLE)


def test_generator_writes_the_real_schema(tmp_path):
    db = tmp_path / "chat.db"
    sample.make_chatdb(db, n_messages=10)
    with sqlite3.connect(db) as con:
        columns = [row[1] for row in con.execute("PRAGMA table_info(message)")]
    assert len(columns) == 92
    assert {"attributedBody", "associated_message_emoji", "date_retracted", "date_edited"} <= set(columns)


# ----------------------------------------------------------------------------- shared fixtures


def test_shared_chat_db():
    db = shared_fixture("imessage/chatdb/iwvelando_imessage-archiver_chat.db")
    expected = json.loads(shared_fixture("imessage/expected_other.json").read_text())["chat_db"]["expected"]
    landed = rows_of(db)
    assert landed["source_id"].to_list() == [m["guid"] for m in expected["messages"]]
    assert landed["text"].to_list() == [m["text"] for m in expected["messages"]]
    assert set(landed["conversation_id"]) == {"CHAT1"}
    assert set(landed["conversation_title"]) == {"Test Chat"}
    assert set(landed["sender"]) == {"+10005551234"}
    assert landed["is_owner"].to_list() == [False, False]
    assert set(landed["kind"]) == {"text"}
    # MSG1 is 2024-01-01T12:00:00Z exactly (expected_other.json, date_utc).
    assert landed["sent_at"][0] == datetime(2024, 1, 1, 12, tzinfo=UTC)
    # MSG2 is stored as 725812199999986560 ns: 14:29:59.99998656. Sub-microsecond digits
    # are truncated, never rounded up to a second that was not stored.
    assert landed["sent_at"][1] == datetime(2024, 1, 1, 14, 29, 59, 999986, tzinfo=UTC)


def _summary(name: str) -> bytes:
    return shared_fixture(f"imessage/message_summary_info/{name}").read_bytes()


def test_message_summary_fixtures():
    cases = json.loads(shared_fixture("imessage/expected_other.json").read_text())["message_summary_info"]["cases"]
    for case in cases:
        info = parse_summary_info(_summary(case["file"].split("/")[-1]))
        events = [event for _, versions in sorted(info.edits.items()) for event in versions]
        expected = case["expected_events"]
        assert [e.text for e in events] == [text for _, text, _ in expected], case["file"]
        assert [e.balloon_guid for e in events] == [guid for _, _, guid in expected], case["file"]
        # Upstream states the times in whole seconds since 2001; ours keep microseconds.
        epoch = datetime(2001, 1, 1, tzinfo=UTC)
        assert [int((e.at - epoch).total_seconds()) * 10**9 for e in events] == [ns for ns, _, _ in expected]
        assert info.deleted == case.get("expected_is_deleted", False), case["file"]


def test_edited_and_unsent_summaries():
    edited = parse_summary_info(_summary("Edited.plist"))
    assert edited.edited and edited.edit_count == 3 and edited.latest_text() == "Edited message"
    assert not edited.deleted
    back = parse_summary_info(_summary("EditedToLinkAndBack.plist"))
    assert back.edit_count == 2 and back.latest_text() == "And edit it back to a normal message..."
    to_link = parse_summary_info(_summary("EditedToLink.plist"))
    assert to_link.edit_count == 1
    assert to_link.latest_text() == "https://github.com/ReagentX/imessage-exporter/issues/10"
    deleted = parse_summary_info(_summary("Deleted.plist"))
    assert deleted.deleted and not deleted.edited and deleted.latest_text() is None


def test_unsent_summary_makes_a_deleted_row_even_without_date_retracted(sample_copy):
    with sqlite3.connect(sample_copy) as con:
        con.execute(
            "UPDATE message SET message_summary_info = ?, text = NULL WHERE ROWID = 7",
            (_summary("Deleted.plist"),),
        )
        con.execute(
            "UPDATE message SET message_summary_info = ?, text = NULL, attributedBody = NULL WHERE ROWID = 8",
            (_summary("Edited.plist"),),
        )
    landed = rows_of(sample_copy)
    unsent = by_rowid(landed, 7)
    assert unsent["kind"] == "deleted" and unsent["text"] is None
    edited = by_rowid(landed, 8)
    assert edited["text"] == "Edited message"  # no body left: the latest edit is the text
    assert json.loads(edited["metadata"])["edit_count"] == 3


# ----------------------------------------------------------------------------- dates


def _apple_time(value) -> int | None:
    with sqlite3.connect(":memory:") as con:
        return con.execute(f"SELECT {apple_time_us_sql('date')} FROM (SELECT ? AS date)", (value,)).fetchone()[0]


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (0, None),  # unknown
        (None, None),
        (725803200, datetime(2024, 1, 1, 12, tzinfo=UTC)),  # seconds (macOS ≤ 10.12)
        (725803200.25, datetime(2024, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)),
        (725803200000000000, datetime(2024, 1, 1, 12, tzinfo=UTC)),  # nanoseconds
        (725812199999986560, datetime(2024, 1, 1, 14, 29, 59, 999986, tzinfo=UTC)),
        (1_000_000_000_000_001, datetime(2001, 1, 12, 13, 46, 40, tzinfo=UTC)),  # just above 1e15: ns
        (-31_622_400, datetime(2000, 1, 1, tzinfo=UTC)),  # before 2001 (2000 was a leap year)
    ],
)
def test_apple_epoch_conversion(stored, expected):
    micros = _apple_time(stored)
    if expected is None:
        assert micros is None
    else:
        assert datetime.fromtimestamp(0, UTC) + timedelta(microseconds=micros) == expected


def test_seconds_and_unknown_dates_through_the_connector(sample_copy):
    with sqlite3.connect(sample_copy) as con:
        con.execute("UPDATE message SET date = 725803200 WHERE ROWID = 1")
        con.execute("UPDATE message SET date = 0 WHERE ROWID = 2")
    landed = rows_of(sample_copy)
    assert by_rowid(landed, 1)["sent_at"] == datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert by_rowid(landed, 2)["sent_at"] is None


# ----------------------------------------------------------------------------- bad input


def test_undecodable_body_without_text_is_quarantined(sample_copy):
    broken = shared_fixture("imessage/attributedBody/ExtraData").read_bytes()
    with sqlite3.connect(sample_copy) as con:
        con.execute("UPDATE message SET text = NULL, attributedBody = ? WHERE ROWID = 100", (broken,))
        con.execute("UPDATE message SET text = 'kept', attributedBody = ? WHERE ROWID = 101", (broken,))
        guid = con.execute("SELECT guid FROM message WHERE ROWID = 100").fetchone()[0]
    batches, _ = read(sample_copy)
    (batch,) = batches
    assert batch.rows.height == 243 and batch.seen == 244
    (q,) = batch.quarantined
    assert q.source_id == guid
    assert q.location == f"{sample_copy} message ROWID 100"
    assert q.reason.startswith("attributedBody: ") and "157" in q.reason
    assert base64.b64decode(q.payload) == broken
    kept = by_rowid(batch.rows, 101)
    assert kept["text"] == "kept"
    assert "157" in json.loads(kept["metadata"])["attributed_body_error"]


def test_body_in_another_layout_goes_through_the_full_parser(sample_copy):
    multipart = shared_fixture("imessage/attributedBody/URL").read_bytes()
    with sqlite3.connect(sample_copy) as con:
        con.execute("UPDATE message SET text = NULL, attributedBody = ? WHERE ROWID = 150", (multipart,))
        # A blob whose stored text is shorter than the decoded one loses to it.
        con.execute(
            "UPDATE message SET text = 'short', attributedBody = ? WHERE ROWID = 151",
            (encode_attributed_body("short, and then the rest"),),
        )
    landed = rows_of(sample_copy)
    assert by_rowid(landed, 150)["text"] == "https://github.com/ReagentX/Logria"
    assert by_rowid(landed, 151)["text"] == "short, and then the rest"


def test_an_attachment_between_two_runs_keeps_them_apart(sample_copy):
    separate = encode_attributed_runs([("test 1", 0, None), ("\ufffc", 1, "at_1_A"), ("test 2", 2, None)])
    inline = encode_attributed_runs([("look at ", 0, None), ("\ufffc", 0, "at_0_B"), ("this", 0, None)])
    many = encode_attributed_runs(
        [("\ufffc", 0, "at_0_C"), ("one", 1, None), ("\ufffc", 2, "at_2_C"), ("two ", 3, None), ("\ufffc", 4, "at_4_C"),
         ("three", 5, None), ("\ufffc", 6, "at_6_C")]
    )
    with sqlite3.connect(sample_copy) as con:
        for rowid, body in ((150, separate), (151, inline), (154, many)):
            con.execute("UPDATE message SET text = NULL, attributedBody = ? WHERE ROWID = ?", (body, rowid))
        # Older rows keep the placeholder in message.text itself, without runs to tell.
        con.execute("UPDATE message SET text = ?, attributedBody = NULL WHERE ROWID = 153", ("before\ufffcafter",))
    landed = rows_of(sample_copy)
    assert by_rowid(landed, 150)["text"] == "test 1\ntest 2"  # two bubbles: two paragraphs
    assert by_rowid(landed, 151)["text"] == "look at this"  # one bubble: the space already there
    assert by_rowid(landed, 154)["text"] == "one\ntwo\nthree"
    assert by_rowid(landed, 153)["text"] == "before after"
    assert all(by_rowid(landed, r)["kind"] == "text" for r in (150, 151, 153, 154))


def test_text_that_is_not_utf8_is_read_leniently(sample_copy):
    with sqlite3.connect(sample_copy) as con:
        con.execute("UPDATE message SET text = CAST(X'6869FF21' AS TEXT), attributedBody = NULL WHERE ROWID = 5")
    batches, ctx = read(sample_copy)
    landed = pl.concat([b.rows for b in batches])
    assert by_rowid(landed, 5)["text"] == "hi\ufffd!"
    assert any("not valid UTF-8" in note for note in ctx.notes)


def test_older_schema_without_newer_columns(tmp_path):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as con:
        con.executescript(
            """
            CREATE TABLE handle (ROWID INTEGER PRIMARY KEY, id TEXT, service TEXT);
            CREATE TABLE message (ROWID INTEGER PRIMARY KEY, guid TEXT, text TEXT, handle_id INTEGER,
                date INTEGER, is_from_me INTEGER, service TEXT, account TEXT);
            INSERT INTO handle VALUES (1, 'old.friend@example.com', 'iMessage');
            INSERT INTO message VALUES (1, 'G1', 'from 2012', 1, 372000000, 0, 'iMessage', 'e:me@example.com');
            INSERT INTO message VALUES (2, 'G2', 'reply', 1, 372000060, 1, 'iMessage', 'e:me@example.com');
            """
        )
    landed = rows_of(db)
    assert landed["text"].to_list() == ["from 2012", "reply"]
    assert landed["conversation_id"].to_list() == ["handle:old.friend@example.com"] * 2
    assert landed["sender"].to_list() == ["old.friend@example.com", "me@example.com"]
    assert landed["sent_at"][0] == datetime(2012, 10, 15, 13, 20, tzinfo=UTC)
    assert set(landed["kind"]) == {"text"}


def _one_line_source_error(db: Path, *needles: str):
    with pytest.raises(SourceError) as error:
        read(db)
    message = str(error.value)
    assert "\n" not in message
    for needle in (str(db), *needles):
        assert needle in message
    return message


def test_missing_database(tmp_path):
    _one_line_source_error(tmp_path / "nope.db", "no iMessage database", "Full Disk Access")


def test_not_a_sqlite_file(tmp_path):
    bogus = tmp_path / "chat.db"
    bogus.write_text("hello\n" * 50)
    _one_line_source_error(bogus, "not a SQLite database")


def test_sqlite_without_messages(tmp_path):
    other = tmp_path / "notes.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE notes (body TEXT)")
    _one_line_source_error(other, "without a message table")


def test_truncated_database(tmp_path):
    for fraction in (3, 2):
        broken = tmp_path / f"truncated-{fraction}.db"
        data = SAMPLE.read_bytes()
        broken.write_bytes(data[: len(data) // fraction])
        _one_line_source_error(broken)


def test_a_folder_instead_of_a_file(tmp_path):
    _one_line_source_error(tmp_path, "folder")


def test_database_is_opened_read_only(sample_copy):
    before = hashlib.sha256(sample_copy.read_bytes()).hexdigest()
    sample_copy.chmod(0o444)
    try:
        assert rows_of(sample_copy).height == 244
    finally:
        sample_copy.chmod(0o644)
    assert hashlib.sha256(sample_copy.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in sample_copy.parent.iterdir()) == ["chat.db"]


# ----------------------------------------------------------------------------- through the CLI


def _cli():
    return pytest.importorskip("etl.cli")


def test_cli_ingest_is_idempotent_and_incremental(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    from click.testing import CliRunner

    cli = _cli().cli
    db, warehouse = tmp_path / "chat.db", tmp_path / "w.duckdb"
    sample.make_chatdb(db, n_messages=200)

    def ingest():
        result = CliRunner().invoke(cli, ["--warehouse", str(warehouse), "ingest", "imessage", "--db", str(db)])
        assert result.exit_code == 0, result.output
        return result.output

    assert "200 read, 200 new" in ingest()
    assert "0 new" in ingest()  # nothing new: nothing added
    sample.make_chatdb(db, n_messages=44)
    assert "44 read, 44 new" in ingest()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT source_id) FROM raw_messages").fetchone() == (244, 244)
        (value,) = con.execute("SELECT value FROM watermarks WHERE source = 'imessage'").fetchone()
        assert json.loads(value) == {"rowid": 244}
        landed = con.execute("SELECT source_id, text FROM raw_messages ORDER BY sent_at").fetchall()
    expected = rows_of(SAMPLE).sort("sent_at").select("source_id", "text").rows()
    assert landed == expected


def test_a_replaced_database_is_read_again(tmp_path):
    db = tmp_path / "chat.db"
    sample.make_chatdb(db, n_messages=20)
    batches, ctx = read(db, watermark={"rowid": 244})  # the last run saw a longer history
    assert sum(b.rows.height for b in batches) == 20
    assert any("read again from the start" in note for note in ctx.notes)


def test_read_ahead_keeps_order_raises_errors_and_stops_when_closed():
    from etl.sources.base import read_ahead_of as read_ahead

    assert list(read_ahead(iter(range(10)))) == list(range(10))

    def failing():
        yield 1
        raise SourceError("damaged")

    ahead = read_ahead(failing())
    assert next(ahead) == 1
    with pytest.raises(SourceError, match="damaged"):
        next(ahead)

    produced = []

    def endless():
        for i in range(1000):
            produced.append(i)
            yield i

    ahead = read_ahead(endless())
    assert next(ahead) == 0
    ahead.close()  # the consumer gave up: the thread stops instead of reading on
    assert len(produced) <= 3
