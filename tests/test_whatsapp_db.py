"""WhatsApp's own databases, built here with the tables and columns the app writes (iOS
ChatStorage.sqlite, Android msgstore.db and wa.db), plus broken rows and files and the
overlap with a chat's .txt export.

After a deliberate change to the connector, regenerate the golden rows with
    ETL_UPDATE_GOLDEN=1 python -m pytest tests/test_whatsapp_db.py
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime
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

GOLDEN = Path(__file__).parent / "data" / "whatsapp_db"
APPLE = 978_307_200
LENA, ALEX, SAM = "4915112345678@s.whatsapp.net", "4917600011122@s.whatsapp.net", "4915200033344@s.whatsapp.net"
GROUP = "120363012345678901@g.us"


def apple(when: str) -> float:
    return datetime.fromisoformat(when).replace(tzinfo=UTC).timestamp() - APPLE


def ms(when: str) -> int:
    return int(datetime.fromisoformat(when).replace(tzinfo=UTC).timestamp() * 1000)


def pb(*fields: tuple[int, bytes | int]) -> bytes:
    """A protobuf message of length-delimited and varint fields."""

    def varint(n: int) -> bytes:
        out = b""
        while True:
            byte, n = n & 0x7F, n >> 7
            out += bytes([byte | (0x80 if n else 0)])
            if not n:
                return out

    blob = b""
    for number, value in fields:
        if isinstance(value, int):
            blob += varint(number << 3) + varint(value)
        else:
            blob += varint(number << 3 | 2) + varint(len(value)) + value
    return blob


# ----------------------------------------------------------------------------- iOS ChatStorage.sqlite

IOS_SCHEMA = """
CREATE TABLE ZWACHATSESSION (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZARCHIVED INTEGER,
  ZSESSIONTYPE INTEGER, ZUNREADCOUNT INTEGER, ZGROUPINFO INTEGER, ZLASTMESSAGE INTEGER, ZLASTMESSAGEDATE TIMESTAMP,
  ZCONTACTJID VARCHAR, ZPARTNERNAME VARCHAR, ZLASTMESSAGETEXT VARCHAR);
CREATE TABLE ZWAGROUPMEMBER (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZISADMIN INTEGER,
  ZCHATSESSION INTEGER, ZCONTACTNAME VARCHAR, ZFIRSTNAME VARCHAR, ZMEMBERJID VARCHAR);
CREATE TABLE ZWAPROFILEPUSHNAME (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZJID VARCHAR, ZPUSHNAME VARCHAR);
CREATE TABLE ZWAMESSAGEINFO (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZMESSAGE INTEGER, ZRECEIPTINFO BLOB);
CREATE TABLE ZWAMEDIAITEM (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZFILESIZE INTEGER,
  ZMESSAGE INTEGER, ZLATITUDE FLOAT, ZLONGITUDE FLOAT, ZMEDIALOCALPATH VARCHAR, ZMEDIAURL VARCHAR, ZTITLE VARCHAR,
  ZVCARDNAME VARCHAR, ZVCARDSTRING VARCHAR, ZXMPPTHUMBPATH VARCHAR, ZMETADATA BLOB);
CREATE TABLE ZWAMESSAGE (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZCHILDMESSAGESDELIVEREDCOUNT INTEGER,
  ZFILTEREDRECIPIENTCOUNT INTEGER, ZFLAGS INTEGER, ZGROUPEVENTTYPE INTEGER, ZISFROMME INTEGER, ZMESSAGEERRORSTATUS INTEGER,
  ZMESSAGESTATUS INTEGER, ZMESSAGETYPE INTEGER, ZSORT INTEGER, ZSPOTLIGHTSTATUS INTEGER, ZSTARRED INTEGER,
  ZCHATSESSION INTEGER, ZGROUPMEMBER INTEGER, ZLASTSESSION INTEGER, ZMEDIAITEM INTEGER, ZMESSAGEINFO INTEGER,
  ZPARENTMESSAGE INTEGER, ZMESSAGEDATE TIMESTAMP, ZSENTDATE TIMESTAMP, ZFROMJID VARCHAR, ZMEDIASECTIONID VARCHAR,
  ZPHASH VARCHAR, ZPUSHNAME VARCHAR, ZSTANZAID VARCHAR, ZTEXT VARCHAR, ZTOJID VARCHAR);
"""


def make_ios(path: Path, broken: dict | None = None) -> Path:
    con = sqlite3.connect(path)
    con.executescript(IOS_SCHEMA)
    con.executemany("INSERT INTO ZWACHATSESSION (Z_PK, ZSESSIONTYPE, ZGROUPINFO, ZCONTACTJID, ZPARTNERNAME) VALUES (?,?,?,?,?)", [
        (1, 0, None, LENA, "Lena Fischer"), (2, 1, 7, GROUP, "Climbing crew"), (3, 0, None, "status@broadcast", "Status"),
    ])
    con.executemany("INSERT INTO ZWAGROUPMEMBER (Z_PK, ZCHATSESSION, ZCONTACTNAME, ZMEMBERJID) VALUES (?,?,?,?)", [
        (1, 2, "Alex Brandt", ALEX), (2, 2, None, SAM),
    ])
    con.execute("INSERT INTO ZWAPROFILEPUSHNAME (ZJID, ZPUSHNAME) VALUES (?, ?)", (SAM, "Sam 🧗"))
    others = pb((2, LENA.encode()), (3, "❤️".encode()), (4, str(ms("2024-03-01T09:03:30")).encode()))
    mine = pb((2, "👍".encode()), (3, str(ms("2024-03-01T09:04:00")).encode()))
    reactions = pb((7, pb((1, others), (2, mine))))
    con.execute("INSERT INTO ZWAMESSAGEINFO (Z_PK, ZMESSAGE, ZRECEIPTINFO) VALUES (1, 3, ?)", (reactions,))
    con.executemany("INSERT INTO ZWAMEDIAITEM (Z_PK, ZMESSAGE, ZMEDIALOCALPATH, ZTITLE, ZMETADATA) VALUES (?,?,?,?,?)", [
        (1, 4, "Media/IMG_1.jpg", "the crag at dawn", None),
        (2, 5, None, None, pb((5, b"3A1F00000000000000B1"), (6, LENA.encode()))),
        (3, 9, "Media/map.jpg", None, None),
    ])
    messages = [
        # Z_PK, session, from_me, date, text, type, event, member, from_jid, stanza, info
        (1, 1, 0, "2024-03-01T09:00:05", "Morning! Climbing tonight?", 0, None, None, LENA, "3A1F00000000000000B1", None),
        (2, 1, 1, "2024-03-01T09:01:40", "Yes! 7pm at the gym", 0, None, None, None, "3EB0AAAA0000000000C2", None),
        (3, 1, 0, "2024-03-01T09:02:10", "Bring the new rope\nand chalk", 0, None, None, LENA, "3A1F00000000000000B3", 1),
        (4, 1, 1, "2024-03-01T09:05:00", None, 1, None, None, None, "3EB0AAAA0000000000C4", None),
        (5, 1, 1, "2024-03-01T09:06:00", "see you then", 0, None, None, None, "3EB0AAAA0000000000C5", None),
        (6, 1, 0, "2024-03-01T09:07:00", None, 14, None, None, LENA, "3A1F00000000000000B6", None),
        (7, 2, 0, "2024-03-02T18:00:00", "Alex created group “Climbing crew”", 6, 12, 1, GROUP, "3A1F00000000000000B7", None),
        (8, 2, 0, "2024-03-02T18:01:00", "who's in for Saturday?", 0, None, 1, GROUP, "3A1F00000000000000B8", None),
        (9, 2, 0, "2024-03-02T18:02:00", None, 1, None, 2, GROUP, "3A1F00000000000000B9", None),
        (10, 2, 1, "2024-03-02T18:03:00", "me, if it stays dry", 0, None, None, None, "3EB0AAAA0000000000CA", None),
        (11, 3, 0, "2024-03-02T18:04:00", "a status update", 0, None, None, LENA, "3A1F00000000000000BB", None),
    ]
    for m in messages:
        row = list(m)
        if broken and broken["pk"] == m[0]:
            row[broken["column"]] = broken["value"]
        pk, session, me, date, text, mtype, event, member, jid, stanza, info = row
        con.execute(
            "INSERT INTO ZWAMESSAGE (Z_PK, ZCHATSESSION, ZISFROMME, ZMESSAGEDATE, ZTEXT, ZMESSAGETYPE, ZGROUPEVENTTYPE,"
            " ZGROUPMEMBER, ZFROMJID, ZSTANZAID, ZMESSAGEINFO) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (pk, session, me, apple(date) if isinstance(date, str) else date, text, mtype, event, member, jid, stanza, info),
        )
    con.commit()
    con.close()
    return path


IOS_MESSAGES = 10 + 2  # 11 messages but the status one, plus two reactions


# ----------------------------------------------------------------------------- Android msgstore.db

ANDROID_SCHEMA = """
CREATE TABLE jid (_id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL, server TEXT NOT NULL, agent INTEGER,
  device INTEGER, type INTEGER, raw_string TEXT);
CREATE TABLE chat (_id INTEGER PRIMARY KEY AUTOINCREMENT, jid_row_id INTEGER UNIQUE, hidden INTEGER, subject TEXT,
  created_timestamp INTEGER, display_message_row_id INTEGER, last_message_row_id INTEGER, archived INTEGER);
CREATE TABLE message (_id INTEGER PRIMARY KEY AUTOINCREMENT, chat_row_id INTEGER NOT NULL, from_me INTEGER NOT NULL,
  key_id TEXT NOT NULL, sender_jid_row_id INTEGER, status INTEGER, broadcast INTEGER, recipient_count INTEGER,
  participant_hash TEXT, origination_flags INTEGER, origin INTEGER, timestamp INTEGER, received_timestamp INTEGER,
  receipt_server_timestamp INTEGER, message_type INTEGER, text_data TEXT, starred INTEGER, lookup_tables INTEGER,
  sort_id INTEGER NOT NULL DEFAULT 0, message_add_on_flags INTEGER);
CREATE TABLE message_quoted (message_row_id INTEGER PRIMARY KEY, chat_row_id INTEGER NOT NULL, parent_message_chat_row_id INTEGER,
  from_me INTEGER NOT NULL, sender_jid_row_id INTEGER, key_id TEXT NOT NULL, timestamp INTEGER, message_type INTEGER,
  origin INTEGER, text_data TEXT, payment_transaction_id TEXT, lookup_tables INTEGER);
CREATE TABLE message_system (message_row_id INTEGER PRIMARY KEY, action_type INTEGER NOT NULL);
CREATE TABLE message_add_on (_id INTEGER PRIMARY KEY AUTOINCREMENT, chat_row_id INTEGER NOT NULL, from_me INTEGER NOT NULL,
  key_id TEXT NOT NULL, sender_jid_row_id INTEGER, parent_message_row_id INTEGER, timestamp INTEGER, status INTEGER,
  message_add_on_type INTEGER);
CREATE TABLE message_add_on_reaction (message_add_on_row_id INTEGER PRIMARY KEY, reaction TEXT, sender_timestamp INTEGER);
"""


def make_android(folder: Path, broken: dict | None = None, with_names: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "msgstore.db"
    con = sqlite3.connect(path)
    con.executescript(ANDROID_SCHEMA)
    con.executemany("INSERT INTO jid (_id, user, server, type, raw_string) VALUES (?,?,?,?,?)", [
        (1, "4915112345678", "s.whatsapp.net", 0, LENA), (2, "120363012345678901", "g.us", 1, GROUP),
        (3, "4917600011122", "s.whatsapp.net", 0, ALEX), (4, "99887766554433", "lid", 19, "99887766554433@lid"),
        (5, "4915200033344", "s.whatsapp.net", 0, SAM), (6, "status", "broadcast", 5, "status@broadcast"),
    ])
    con.executemany("INSERT INTO chat (_id, jid_row_id, subject) VALUES (?,?,?)", [(1, 1, None), (2, 2, "Climbing crew"), (3, 6, None)])
    messages = [
        # _id, chat, from_me, key_id, sender_row, status, timestamp, type, text
        (1, 1, 0, "3A1F00000000000000B1", None, 0, "2024-03-01T09:00:05", 0, "Morning! Climbing tonight?"),
        (2, 1, 1, "3EB0AAAA0000000000C2", None, 13, "2024-03-01T09:01:40", 0, "Yes! 7pm at the gym"),
        (3, 1, 0, "3A1F00000000000000B3", None, 0, "2024-03-01T09:02:10", 0, "Bring the new rope\nand chalk"),
        (4, 1, 1, "3EB0AAAA0000000000C4", None, 13, "2024-03-01T09:05:00", 1, "the crag at dawn"),
        (5, 1, 1, "3EB0AAAA0000000000C5", None, 13, "2024-03-01T09:06:00", 0, "see you then"),
        (6, 1, 0, "3A1F00000000000000B6", None, 0, "2024-03-01T09:07:00", 15, None),
        (7, 2, 0, "3A1F00000000000000B7", 3, 6, "2024-03-02T18:00:00", 7, None),
        (8, 2, 0, "3A1F00000000000000B8", 3, 0, "2024-03-02T18:01:00", 0, "who's in for Saturday?"),
        (9, 2, 0, "3A1F00000000000000B9", 4, 0, "2024-03-02T18:02:00", 1, None),
        (10, 2, 1, "3EB0AAAA0000000000CA", None, 13, "2024-03-02T18:03:00", 0, "me, if it stays dry"),
        (11, 3, 0, "3A1F00000000000000BB", 1, 0, "2024-03-02T18:04:00", 0, "a status update"),
    ]
    for m in messages:
        row = list(m)
        if broken and broken["pk"] == m[0]:
            row[broken["column"]] = broken["value"]
        mid, chat, me, key, sender, status, when, mtype, text = row
        con.execute(
            "INSERT INTO message (_id, chat_row_id, from_me, key_id, sender_jid_row_id, status, timestamp, message_type,"
            " text_data) VALUES (?,?,?,?,?,?,?,?,?)",
            (mid, chat, me, key, sender, status, when if when != m[6] else ms(when), mtype, text),
        )
    con.execute("INSERT INTO message_system VALUES (7, 11)")
    con.execute("INSERT INTO message_quoted (message_row_id, chat_row_id, from_me, key_id, text_data) "
                "VALUES (5, 1, 0, '3A1F00000000000000B1', 'Morning! Climbing tonight?')")
    con.executemany("INSERT INTO message_add_on (_id, chat_row_id, from_me, key_id, sender_jid_row_id, parent_message_row_id)"
                    " VALUES (?,?,?,?,?,?)", [(1, 1, 0, "R1", 1, 3), (2, 1, 1, "R2", None, 3), (3, 1, 0, "R3", 1, 2)])
    con.executemany("INSERT INTO message_add_on_reaction VALUES (?,?,?)", [
        (1, "❤️", ms("2024-03-01T09:03:30")), (2, "👍", ms("2024-03-01T09:04:00")), (3, "", ms("2024-03-01T09:04:10")),
    ])
    con.execute("CREATE TABLE jid_map (lid_row_id INTEGER PRIMARY KEY, jid_row_id INTEGER)")
    con.execute("INSERT INTO jid_map VALUES (4, 5)")  # the LID 9988… is Sam's number
    con.commit()
    con.close()
    if with_names:
        contacts = sqlite3.connect(folder / "wa.db")
        contacts.execute("CREATE TABLE wa_contacts (_id INTEGER PRIMARY KEY, jid TEXT, display_name TEXT, wa_name TEXT)")
        contacts.executemany("INSERT INTO wa_contacts (jid, display_name, wa_name) VALUES (?,?,?)", [
            (LENA, "Lena Fischer", "Lena"), (ALEX, "Alex Brandt", None), (SAM, None, "Sam 🧗"),
        ])
        contacts.commit()
        contacts.close()
    return path


ANDROID_MESSAGES = 10 + 2  # the status one left out; the emptied reaction is a reaction taken back


def read(*paths: Path):
    ctx = SourceContext(paths=list(paths), options={}, owner=Owner(), previous_watermark=lambda s: None)
    batches = list(get_source("whatsapp-db").read(ctx))
    rows = pl.concat([b.rows for b in batches]) if batches else RAW_MESSAGES.empty_frame(exclude=("ingest_run_id",))
    return rows, [q for b in batches for q in b.quarantined], ctx.notes


def one(rows: pl.DataFrame, **equal) -> dict:
    found = rows.filter(*(pl.col(k) == v for k, v in equal.items()))
    assert found.height == 1, (equal, found)
    return found.row(0, named=True)


@pytest.fixture
def ios(tmp_path) -> Path:
    return make_ios(tmp_path / "ChatStorage.sqlite")


@pytest.fixture
def android(tmp_path) -> Path:
    return make_android(tmp_path / "android")


@pytest.mark.parametrize("platform", ["ios", "android"])
def test_matches_golden_rows(platform, tmp_path):
    path = make_ios(tmp_path / "ChatStorage.sqlite") if platform == "ios" else make_android(tmp_path / "a")
    rows, quarantined, _ = read(path)
    produced = [{**r, "sent_at": r["sent_at"].isoformat(), "metadata": json.loads(r["metadata"])}
                for r in rows.iter_rows(named=True)]
    golden = GOLDEN / f"{platform}_rows.json"
    if os.environ.get("ETL_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(json.dumps(produced, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert produced == json.loads(golden.read_text(encoding="utf-8"))
    assert quarantined == []
    assert rows.schema == RAW_MESSAGES.polars_schema(exclude=("ingest_run_id",))
    assert rows["source_id"].is_unique().all() and set(rows["kind"]) <= set(KINDS)
    assert rows.height == (IOS_MESSAGES if platform == "ios" else ANDROID_MESSAGES)


@pytest.mark.parametrize("platform", ["ios", "android"])
def test_both_platforms_read_the_same_chats_alike(platform, tmp_path):
    path = make_ios(tmp_path / "ChatStorage.sqlite") if platform == "ios" else make_android(tmp_path / "a")
    rows, _, _ = read(path)
    assert rows["is_owner"].null_count() == 0
    assert sorted(rows.filter(pl.col("is_owner"), pl.col("kind") == "text")["text"]) == [
        "Yes! 7pm at the gym", "me, if it stays dry", "see you then", "the crag at dawn"]
    morning = one(rows, text="Morning! Climbing tonight?")
    assert (morning["sender"], morning["sender_name"], morning["conversation_title"]) == (
        "+4915112345678", "Lena Fischer", "Lena Fischer")
    assert morning["sent_at"].isoformat() == "2024-03-01T09:00:05+00:00"
    # The reply quotes Lena's first message.
    assert one(rows, text="see you then")["reply_to"] == morning["source_id"]
    # Group: senders by member, names from the contacts or their push name.
    assert one(rows, text="who's in for Saturday?")["sender_name"] == "Alex Brandt"
    assert one(rows, conversation_title="Climbing crew", kind="attachment")["sender"] == "+4915200033344"
    assert rows.filter(pl.col("kind") == "deleted").height == 1
    assert rows.filter(pl.col("kind") == "system").height == 1
    assert "a status update" not in rows["text"].to_list()
    rope = one(rows, text="Bring the new rope\nand chalk")
    reactions = rows.filter(pl.col("kind") == "reaction").sort("text")
    assert reactions["reply_to"].to_list() == [rope["source_id"]] * 2
    assert reactions.select("text", "is_owner").rows() == [("❤️", False), ("👍", True)]
    assert reactions["sent_at"].max().isoformat() == "2024-03-01T09:04:00+00:00"


def test_the_same_message_key_on_both_phones_lands_once(ios, android, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    first = run_ingest(warehouse, get_source("whatsapp-db"), [ios], {}, Owner())
    second = run_ingest(warehouse, get_source("whatsapp-db"), [android], {}, Owner())
    assert first.new == IOS_MESSAGES
    # Same WhatsApp keys: only what the Android sample holds beyond the iOS one is new
    # (its system line has a different type, its attachment messages are the same keys).
    assert second.new == 0 and second.unchanged == ANDROID_MESSAGES


def test_second_ingest_adds_nothing(ios, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    first = run_ingest(warehouse, get_source("whatsapp-db"), [ios], {}, Owner())
    again = run_ingest(warehouse, get_source("whatsapp-db"), [ios], {}, Owner())
    assert first.new == IOS_MESSAGES and (again.new, again.unchanged) == (0, IOS_MESSAGES)


def test_messages_already_landed_from_the_txt_export_are_not_landed_twice(ios, tmp_path):
    chat = tmp_path / "WhatsApp Chat with Lena Fischer.txt"
    chat.write_text(
        "01/03/2024, 09:00 - Lena Fischer: Morning! Climbing tonight?\n"
        "01/03/2024, 09:01 - Jordan: Yes! 7pm at the gym\n"
        "01/03/2024, 09:02 - Lena Fischer: Bring the new rope\nand chalk\n"
        "01/03/2024, 09:06 - Lena Fischer: see you then\n",  # not Lena's, though the same minute and text
        encoding="utf-8",
    )
    warehouse = tmp_path / "w.duckdb"
    txt = run_ingest(warehouse, get_source("whatsapp"), [chat], {"timezone": "UTC"}, Owner(names=("Jordan",)))
    assert txt.new == 4
    first = run_ingest(warehouse, get_source("whatsapp-db"), [ios], {}, Owner())
    assert first.new == IOS_MESSAGES - 3 and first.seen == IOS_MESSAGES
    assert any("already landed from the chats' .txt exports" in n for n in first.notes)
    again = run_ingest(warehouse, get_source("whatsapp-db"), [ios], {}, Owner())
    assert again.new == 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    platform=st.sampled_from(["ios", "android"]),
    pk=st.sampled_from([1, 2, 3, 5, 8, 10]),
    how=st.sampled_from(["date", "id", "chat"]),
)
def test_one_corrupted_record_is_quarantined_and_the_rest_lands(tmp_path_factory, platform, pk, how):
    folder = tmp_path_factory.mktemp("db")
    if platform == "ios":
        column = {"date": 3, "id": 9, "chat": 1}[how]
        value = {"date": None, "id": None, "chat": 99}[how]
        path = make_ios(folder / "ChatStorage.sqlite", broken={"pk": pk, "column": column, "value": value})
        where = f"{path} ZWAMESSAGE Z_PK {pk}"
    else:
        column = {"date": 6, "id": 3, "chat": 1}[how]
        value = {"date": "yesterday", "id": "", "chat": 99}[how]
        path = make_android(folder, broken={"pk": pk, "column": column, "value": value})
        where = f"{path} message _id {pk}"
    rows, quarantined, _ = read(path)
    (bad,) = quarantined
    assert bad.location == where and bad.reason and bad.payload
    lost = 1 + (2 if pk == 3 else 0)  # the reactions to a quarantined message go with it
    assert rows.height == (IOS_MESSAGES if platform == "ios" else ANDROID_MESSAGES) - lost


def test_an_ios_backup_folder_is_searched_for_the_hashed_file(tmp_path):
    backup = tmp_path / "Backup" / "00008110-001A2B3C4D5E6F70"
    (backup / "7c").mkdir(parents=True)
    make_ios(backup / "7c" / "7c7fba66680ef796b916b067077cc246adacf01d")
    (backup / "Manifest.plist").write_bytes(b"bplist00")
    rows, _, _ = read(tmp_path / "Backup")
    assert rows.height == IOS_MESSAGES


def test_wrong_files_are_one_clear_error(tmp_path):
    not_db = tmp_path / "msgstore.db"
    not_db.write_bytes(b"\x00" * 64 + b"encrypted crypt15 bytes")
    other = tmp_path / "other" / "ChatStorage.sqlite"
    other.parent.mkdir()
    sqlite3.connect(other).execute("CREATE TABLE notes (id INTEGER)").connection.close()
    for wrong, match in ((not_db, "not a readable SQLite database"), (other, "no WhatsApp tables"),
                         (tmp_path / "nowhere", "no such file or folder"), (tmp_path / "other", "no WhatsApp tables")):
        with pytest.raises(SourceError, match=match) as error:
            read(wrong)
        assert "\n" not in str(error.value)


def test_cli_end_to_end(ios, tmp_path):
    warehouse = tmp_path / "w.duckdb"

    def invoke(*args):
        return CliRunner().invoke(cli, ["--warehouse", str(warehouse), *args])

    first = invoke("ingest", "whatsapp-db", str(ios))
    assert first.exit_code == 0 and f"{IOS_MESSAGES} new" in first.output, first.output
    again = invoke("ingest", "whatsapp-db", str(ios))
    assert again.exit_code == 0 and "nothing new since the last run" in again.output
    assert "whatsapp-db" in invoke("sources").output
    wrong = invoke("ingest", "whatsapp-db", str(tmp_path / "missing.db"))
    lines = [line for line in wrong.output.splitlines() if line.strip()]
    assert wrong.exit_code != 0 and len(lines) == 1 and lines[0].startswith("etl: error: ")
