"""Signal Desktop's database, built here with the tables and message JSON Signal writes,
both as a real SQLCipher file opened through signal-export and decrypted to plain SQLite.

After a deliberate change to the connector, regenerate the golden rows with
    ETL_UPDATE_GOLDEN=1 python -m pytest tests/test_signal.py
"""

from __future__ import annotations

import json
import os
import sqlite3
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

GOLDEN = Path(__file__).parent / "data" / "signal" / "expected_rows.json"
KEY = "0f" * 32
ME, LENA, ALEX = "aci-0000-me", "aci-1111-lena", "aci-2222-alex"
T = 1_709_280_000_000  # 2024-03-01T08:00:00Z

SCHEMA = """
CREATE TABLE conversations (id STRING PRIMARY KEY ASC, json TEXT, active_at INTEGER, type STRING, members TEXT,
  name TEXT, profileName TEXT, profileFamilyName TEXT, profileFullName TEXT, e164 TEXT, serviceId TEXT, groupId TEXT,
  profileLastFetchedAt INTEGER);
CREATE TABLE messages (rowid INTEGER PRIMARY KEY ASC, id STRING UNIQUE, json TEXT, readStatus INTEGER,
  expires_at INTEGER, sent_at INTEGER, schemaVersion INTEGER, conversationId STRING, received_at INTEGER,
  source STRING, hasAttachments INTEGER, hasFileAttachments INTEGER, hasVisualMediaAttachments INTEGER,
  expireTimer INTEGER, expirationStartTimestamp INTEGER, type STRING, body TEXT, messageTimer INTEGER,
  messageTimerStart INTEGER, messageTimerExpiresAt INTEGER, isErased INTEGER, isViewOnce INTEGER,
  sourceServiceId TEXT, serverGuid STRING NULL, sourceDevice INTEGER, storyId STRING, isStory INTEGER,
  isChangeCreatedByUs INTEGER NOT NULL DEFAULT 0, shouldAffectActivity INTEGER, seenStatus NUMERIC DEFAULT 0,
  timestamp INTEGER, serverTimestamp INTEGER);
CREATE TABLE items (id STRING PRIMARY KEY ASC, json TEXT);
CREATE TABLE sessions (id TEXT NOT NULL PRIMARY KEY, ourServiceId TEXT NOT NULL, serviceId TEXT NOT NULL,
  conversationId TEXT NOT NULL, deviceId INTEGER NOT NULL, record BLOB NOT NULL) STRICT;
"""

CONVERSATIONS = [
    ("c-me", "private", None, "Jordan", None, "+15550000001", ME, {}),
    ("c-lena", "private", "Lena Fischer", "Lena", "F.", "+4915112345678", LENA, {"profileFamilyName": "F."}),
    ("c-alex", "private", None, "Alex", "Brandt", None, ALEX, {"profileFamilyName": "Brandt"}),
    ("c-crew", "group", "Climbing crew", None, None, None, None, {"groupVersion": 2}),
]


def message(mid: str, conversation: str, kind: str, minutes: float, body: str | None, author: str | None = None,
            **extra) -> tuple:
    sent = T + int(minutes * 60_000)
    record = {"id": mid, "conversationId": conversation, "type": kind, "sent_at": sent, "timestamp": sent,
              "body": body, "sourceServiceId": author, **extra}
    return (mid, conversation, kind, body, sent, author, json.dumps(record, ensure_ascii=False))


MESSAGES = [
    message("m1", "c-lena", "incoming", 0, "Climbing tonight?", LENA,
            reactions=[{"emoji": "👍", "fromId": "c-me", "targetTimestamp": T, "timestamp": T + 30_000}]),
    message("m2", "c-lena", "outgoing", 1, "Yes! 7pm", None,
            quote={"id": T, "authorAci": LENA, "text": "Climbing tonight?", "attachments": []},
            reactions=[{"emoji": "❤️", "fromId": "c-lena", "targetTimestamp": T + 60_000, "timestamp": T + 90_000}]),
    message("m3", "c-lena", "outgoing", 2, "Make it 7:30, traffic", None,
            editHistory=[{"body": "Make it 7:30, traffic", "timestamp": T + 200_000},
                         {"body": "Make it 7:15", "timestamp": T + 150_000},
                         {"body": "Make it 7", "timestamp": T + 120_000}]),
    message("m4", "c-lena", "incoming", 3, "this disappears in a day", LENA, expireTimer=86400,
            expirationStartTimestamp=T + 180_000),
    message("m5", "c-lena", "incoming", 4, None, LENA, deletedForEveryone=True),
    message("m6", "c-lena", "incoming", 5, None, LENA, attachments=[{"contentType": "image/jpeg", "fileName": "crag.jpg"}]),
    message("m7", "c-lena", "incoming", 6, None, LENA, isViewOnce=True, isErased=True),
    message("m8", "c-crew", "group-v2-change", 10, None, ALEX, groupV2Change={"from": ALEX, "details": [{"type": "create"}]}),
    message("m9", "c-crew", "incoming", 11, "who's in for Saturday?", ALEX),
    message("m10", "c-crew", "outgoing", 12, "me!", None),
    message("m11", "c-lena", "keychange", 13, None, LENA),
    message("m12", "c-me", "story", 14, "a story", None, storyId="s1"),
]
LANDED = 11 + 2 + 2  # all but the story; two earlier versions of m3; two reactions


def build(path: Path, *, key: str | None = None, broken: tuple[int, str, object] | None = None) -> Path:
    if key:
        from sqlcipher3 import dbapi2

        con = dbapi2.connect(str(path))
        for pragma in (f"PRAGMA KEY = \"x'{key}'\"", "PRAGMA cipher_page_size = 4096", "PRAGMA kdf_iter = 64000",
                       "PRAGMA cipher_hmac_algorithm = HMAC_SHA512", "PRAGMA cipher_kdf_algorithm = PBKDF2_HMAC_SHA512"):
            con.execute(pragma)
    else:
        con = sqlite3.connect(path)
    con.executescript(SCHEMA)
    for cid, kind, name, profile, family, e164, service, extra in CONVERSATIONS:
        con.execute("INSERT INTO conversations (id, type, name, profileName, profileFamilyName, e164, serviceId, json)"
                    " VALUES (?,?,?,?,?,?,?,?)", (cid, kind, name, profile, family, e164, service, json.dumps(extra)))
    for index, row in enumerate(MESSAGES):
        row = list(row)
        if broken and broken[0] == index:
            row[{"json": 6, "sent_at": 4, "conversation": 1}[broken[1]]] = broken[2]
        mid, conversation, kind, body, sent, author, raw = row
        con.execute("INSERT INTO messages (id, conversationId, type, body, sent_at, sourceServiceId, json)"
                    " VALUES (?,?,?,?,?,?,?)", (mid, conversation, kind, body, sent, author, raw))
    con.execute("INSERT INTO items VALUES ('uuid_id', ?)", (json.dumps({"id": "uuid_id", "value": f"{ME}.1"}),))
    con.commit()
    con.close()
    return path


def signal_folder(root: Path, **kw) -> Path:
    (root / "sql").mkdir(parents=True)
    build(root / "sql" / "db.sqlite", key=KEY, **kw)
    (root / "config.json").write_text(json.dumps({"key": KEY}))
    return root


def read(*paths: Path, **options):
    ctx = SourceContext(paths=list(paths), options=options, owner=Owner(), previous_watermark=lambda s: None)
    batches = list(get_source("signal").read(ctx))
    rows = pl.concat([b.rows for b in batches]) if batches else RAW_MESSAGES.empty_frame(exclude=("ingest_run_id",))
    return rows, [q for b in batches for q in b.quarantined], ctx.notes


def one(rows: pl.DataFrame, **equal) -> dict:
    found = rows.filter(*(pl.col(k) == v for k, v in equal.items()))
    assert found.height == 1, (equal, found)
    return found.row(0, named=True)


@pytest.fixture
def plain(tmp_path) -> Path:
    return build(tmp_path / "db.sqlite")


def test_matches_golden_rows(plain):
    rows, quarantined, notes = read(plain)
    produced = [{**r, "sent_at": r["sent_at"].isoformat(), "metadata": json.loads(r["metadata"])}
                for r in rows.iter_rows(named=True)]
    if os.environ.get("ETL_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(produced, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert produced == json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert quarantined == [] and notes == []
    assert rows.height == LANDED and rows["source_id"].is_unique().all()
    assert rows.schema == RAW_MESSAGES.polars_schema(exclude=("ingest_run_id",)) and set(rows["kind"]) <= set(KINDS)


def test_the_encrypted_database_opened_through_signal_export_reads_the_same(plain, tmp_path):
    folder = signal_folder(tmp_path / "Signal")
    assert (folder / "sql" / "db.sqlite").read_bytes()[:16] != b"SQLite format 3\x00"
    encrypted, _, _ = read(folder)
    assert encrypted.sort("source_id").equals(read(plain)[0].sort("source_id"))
    # The key can come from the command line (or SIGNAL_DB_KEY) instead of config.json.
    (folder / "config.json").unlink()
    assert read(folder / "sql" / "db.sqlite", key=KEY)[0].height == LANDED


def test_a_wrong_key_or_a_sealed_key_is_one_line(tmp_path):
    folder = signal_folder(tmp_path / "Signal")
    with pytest.raises(SourceError, match="wrong key") as error:
        read(folder, key="ab" * 32)
    assert "\n" not in str(error.value)
    (folder / "config.json").write_text(json.dumps({"encryptedKey": "763130" + "00" * 80}))
    with pytest.raises(SourceError, match="could not be unsealed") as error:
        read(folder, password="not-the-password")
    assert "\n" not in str(error.value)


def test_kinds_owner_and_names(plain):
    rows, _, _ = read(plain)
    assert set(rows.filter(pl.col("is_owner"), pl.col("kind") == "text", ~pl.col("metadata").str.contains("superseded"))["text"]) == {
        "Yes! 7pm", "Make it 7:30, traffic", "me!"}
    first = one(rows, text="Climbing tonight?")
    assert (first["sender"], first["sender_name"], first["conversation_title"]) == ("+4915112345678", "Lena Fischer", "Lena Fischer")
    assert one(rows, text="who's in for Saturday?")["sender_name"] == "Alex Brandt"
    assert one(rows, text="me!")["conversation_title"] == "Climbing crew"
    assert rows.filter(pl.col("kind") == "deleted")["source_id"].sort().to_list() == ["m5", "m7"]
    assert rows.filter(pl.col("kind") == "system")["source_id"].sort().to_list() == ["m11", "m8"]
    assert one(rows, source_id="m6")["kind"] == "attachment"
    assert json.loads(one(rows, source_id="m4")["metadata"])["expire_timer"] == 86400
    assert "a story" not in rows["text"].to_list()


def test_quotes_reactions_and_edits(plain):
    rows, _, _ = read(plain)
    assert one(rows, source_id="m2")["reply_to"] == "m1"
    reactions = rows.filter(pl.col("kind") == "reaction").sort("source_id")
    assert reactions.select("reply_to", "text", "is_owner", "sender_name").rows() == [
        ("m1", "👍", True, "Jordan"), ("m2", "❤️", False, "Lena Fischer")]
    edited = json.loads(one(rows, source_id="m3")["metadata"])
    assert (edited["edited"], edited["edit_count"]) == (True, 2)
    earlier = rows.filter(pl.col("source_id").str.starts_with("m3:v")).sort("source_id")
    assert earlier["text"].to_list() == ["Make it 7", "Make it 7:15"]
    assert all(json.loads(m)["superseded"] for m in earlier["metadata"])


def ingest(warehouse: Path, path: Path):
    return run_ingest(warehouse, get_source("signal"), [path], {}, Owner())


def test_second_ingest_adds_nothing(plain, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    first, second = ingest(warehouse, plain), ingest(warehouse, plain)
    assert first.new == LANDED and (second.new, second.unchanged) == (0, LANDED)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    index=st.sampled_from([0, 2, 3, 5, 8, 9]),
    how=st.sampled_from([("json", "{not json"), ("json", "[1, 2]"), ("sent_at", None), ("conversation", "c-gone")]),
)
def test_one_corrupted_record_is_quarantined_and_the_rest_lands(tmp_path_factory, index, how):
    path = build(tmp_path_factory.mktemp("sig") / "db.sqlite", broken=(index, *how))
    rows, quarantined, _ = read(path)
    (bad,) = quarantined
    assert bad.location == f"{path} messages rowid {index + 1}" and bad.reason and bad.source_id == MESSAGES[index][0]
    lost = {0: 2, 2: 3}.get(index, 1)  # a message goes with its reactions and earlier versions
    assert rows.height == LANDED - lost


def test_cli_end_to_end_and_one_line_errors(tmp_path):
    folder = signal_folder(tmp_path / "Signal")
    warehouse = tmp_path / "w.duckdb"

    def invoke(*args):
        return CliRunner().invoke(cli, ["--warehouse", str(warehouse), *args])

    first = invoke("ingest", "signal", str(folder))
    assert first.exit_code == 0 and f"{LANDED} new" in first.output, first.output
    again = invoke("ingest", "signal", str(folder))
    assert again.exit_code == 0 and "nothing new since the last run" in again.output
    assert "signal" in invoke("sources").output
    # The key never reaches the run record.
    runs = invoke("sql", "select options from ingest_runs", "--format", "csv")
    assert KEY not in runs.output
    for wrong in (tmp_path / "nowhere", tmp_path):
        result = invoke("ingest", "signal", str(wrong))
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("etl: error: "), result.output
