"""Outlook .pst / .ost through libpff.

No PST can be written here: libpff only reads, and no package on the index ships a sample
with mail in it. So the mapping from Outlook's items to rows is tested on objects shaped
exactly like pypff's (file, folder, message, record sets of MAPI properties), the real
libpff is driven on broken files, and on java-libpst's public sample PST
(`src/test/resources/dist-list.pst`, Apache-2.0) when it is present in the shared fixtures
(`pst/dist-list.pst`) or named by ETL_SAMPLE_PST.
"""

from __future__ import annotations

import json
import os
import sys
import types
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from etl.cli import cli
from etl.config import Owner
from etl.ingest import run_ingest
from etl.schemas.tables import KINDS, RAW_MESSAGES
from etl.sources import SourceContext, SourceError, get_source

GOLDEN = Path(__file__).parent / "data" / "pst" / "expected_rows.json"
SAMPLE = Path(os.environ.get("ETL_SAMPLE_PST", Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "pst" / "dist-list.pst"))
STRING, BINARY, INTEGER = 0x001F, 0x0102, 0x0003
UID = bytes.fromhex("a41d63dbc53b8e4ab8071e15e55750ce")


class Entry:
    def __init__(self, entry_type: int, value):
        self.entry_type = entry_type
        self.value_type = STRING if isinstance(value, str) else INTEGER if isinstance(value, int) else BINARY
        self.data = value if isinstance(value, bytes) else b""
        self._value = value

    def get_data_as_string(self):
        return self._value

    def get_data_as_integer(self):
        return self._value


class RecordSet:
    def __init__(self, props: dict[int, object]):
        self.entries = [Entry(k, v) for k, v in props.items()]


class Message:
    def __init__(self, identifier: int, props: dict, *, headers: str | None = None, plain: str | None = None,
                 html: bytes | None = None, submitted: datetime | None = None, index: bytes | None = None):
        self.identifier = identifier
        self.record_sets = [RecordSet(props)]
        self.transport_headers = headers
        self.sender_name = props.get(0x0C1A)
        self.subject = props.get(0x0037)
        self.client_submit_time = submitted
        self.delivery_time = submitted
        self.plain_text_body = plain.encode() if plain else None
        self.html_body = html
        self.conversation_index = index


class Broken:
    identifier = 0

    def __getattr__(self, name):
        raise OSError("libpff_message_get_record_set: unable to retrieve record set 0")


class Folder:
    def __init__(self, identifier: int, name: str | None, messages=(), folders=()):
        self.identifier, self.name = identifier, name
        self._messages, self._folders = list(messages), list(folders)
        self.number_of_sub_messages, self.number_of_sub_folders = len(self._messages), len(self._folders)

    def get_sub_message(self, index: int):
        message = self._messages[index]
        if isinstance(message, Broken):
            raise OSError("libpff_folder_get_sub_message: unable to retrieve sub message 1")
        return message

    def get_sub_folder(self, index: int):
        return self._folders[index]


THREAD = bytes.fromhex("01d9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2") + b"\x00\x01"
CP1252 = "<html><body><p>Caf\xe9 at 9? I\u2019ll book.</p><img src='https://t.example/p.gif' width=1 height=1></body></html>"


def mailbox() -> Folder:
    inbox_messages = [
        Message(2097188, {0x001A: "IPM.Note", 0x0037: "Saturday climbing", 0x0C1A: "Ana Lima"},
                headers="Received: from mx.example.org\r\nMessage-ID: <a1@example.org>\r\nFrom: Ana Lima <ana@example.org>\r\n"
                        "To: Jordan Rivera <jordan@example.com>\r\nSubject: Saturday climbing\r\n"
                        "Date: Fri, 01 Mar 2024 09:00:00 +0100\r\nContent-Type: text/plain; charset=utf-8\r\n",
                plain="Shall we go Saturday morning?\r\n\r\nAna", submitted=datetime(2024, 3, 1, 8, 0)),
        Message(2097220, {0x001A: "IPM.Note", 0x0037: "Your weekly digest", 0x0C1A: "Gym News", 0x3FDE: 1252},
                headers="Message-ID: <n1@news.example>\r\nFrom: Gym News <news@gym.example>\r\nSubject: Your weekly digest\r\n"
                        "Date: Sat, 02 Mar 2024 06:00:00 +0000\r\nList-Unsubscribe: <mailto:u@gym.example>\r\n",
                html=CP1252.encode("cp1252"), submitted=datetime(2024, 3, 2, 6, 0)),
        Broken(),
        Message(2097252, {0x001A: "IPM.Note", 0x0037: "Route beta", 0x0C1A: "Alex Brandt", 0x5D01: "alex@example.net",
                          0x1035: "<b1@example.net>"},
                plain="The crux is the third bolt.", submitted=datetime(2024, 3, 3, 18, 0), index=THREAD),
    ]
    projects = Folder(32900, "Projects", [
        Message(2097284, {0x001A: "IPM.Note.SMIME", 0x0037: "Re: Route beta", 0x0C1A: "Alex Brandt",
                          0x5D01: "alex@example.net", 0x1035: "<b2@example.net>"},
                plain="Also: bring a 70m rope.", submitted=datetime(2024, 3, 3, 19, 0), index=THREAD + b"\x00" * 5),
    ])
    sent_messages = [
        Message(2097316, {0x001A: "IPM.Note", 0x0037: "Re: Saturday climbing", 0x0C1A: "Jordan Rivera",
                          0x0C1F: "/O=EXCHANGELABS/OU=EXCHANGE ADMINISTRATIVE GROUP/CN=RECIPIENTS/CN=JORDAN",
                          0x5D01: "jordan@example.com", 0x0E04: "Ana Lima", 0x1035: "<s1@example.com>",
                          0x1042: "<a1@example.org>", 0x1039: "<a1@example.org>"},
                plain="Yes, 9am at the gym.", submitted=datetime(2024, 3, 1, 9, 15)),
        Message(2097348, {0x001A: "IPM.Note", 0x0037: "quick note", 0x0C1A: "Jordan Rivera", 0x300B: bytes.fromhex("33e8e3dab52aeb4e")},
                plain="Remember the chalk.", submitted=datetime(2024, 3, 4, 7, 30)),
    ]
    top = Folder(32802, "Top of Personal Folders", folders=[
        Folder(32898, "Posteingang", inbox_messages, [projects]),
        Folder(32962, "Gesendete Elemente", sent_messages),  # Sent Items, localized: found by the store's entry id
        Folder(33090, "Contacts", [Message(2097400, {0x001A: "IPM.Contact", 0x0037: "Ana Lima"})]),
        Folder(33058, "Calendar", [Message(2097432, {0x001A: "IPM.Appointment", 0x0037: "Climbing"})]),
    ])
    return Folder(290, None, folders=[top])


LANDED = 6


class FakeFile:
    def open(self, path: str) -> None:
        self.root = mailbox()

    def get_message_store(self):
        store = types.SimpleNamespace()
        store.record_sets = [RecordSet({0x35E4: b"\x00" * 4 + UID + (32962).to_bytes(4, "little"),
                                        0x35E2: b"\x00" * 4 + UID + (32930).to_bytes(4, "little")})]
        return store

    def get_root_folder(self):
        return self.root

    def close(self) -> None:
        pass


@pytest.fixture
def fake_pypff(monkeypatch):
    monkeypatch.setitem(sys.modules, "pypff", types.SimpleNamespace(file=FakeFile))


@pytest.fixture
def pst(tmp_path, fake_pypff) -> Path:
    path = tmp_path / "Outlook.pst"
    path.write_bytes(b"!BDN" + b"\x00" * 508)
    return path


def read(*paths: Path, owner: Owner | None = None):
    ctx = SourceContext(paths=list(paths), options={}, owner=owner or Owner(), previous_watermark=lambda s: None)
    batches = list(get_source("pst").read(ctx))
    rows = pl.concat([b.rows for b in batches]) if batches else RAW_MESSAGES.empty_frame(exclude=("ingest_run_id",))
    return rows, [q for b in batches for q in b.quarantined], ctx.notes


def one(rows: pl.DataFrame, **equal) -> dict:
    found = rows.filter(*(pl.col(k) == v for k, v in equal.items()))
    assert found.height == 1, (equal, found)
    return found.row(0, named=True)


def test_matches_golden_rows(pst):
    rows, quarantined, notes = read(pst)
    produced = [{**r, "sent_at": r["sent_at"].isoformat(), "metadata": json.loads(r["metadata"])}
                for r in rows.drop("source").iter_rows(named=True)]
    if os.environ.get("ETL_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(produced, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert produced == json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert rows.height == LANDED and rows["source_id"].is_unique().all() and set(rows["kind"]) <= set(KINDS)
    assert "left out 2 item(s) that are not messages: 1 IPM.Contact, 1 IPM.Appointment" in notes


def test_one_unreadable_item_is_quarantined_and_the_rest_lands(pst):
    rows, quarantined, _ = read(pst)
    (bad,) = quarantined
    assert bad.location == f"{pst} folder 'Top of Personal Folders/Posteingang' item 2"
    assert "libpff cannot read this item" in bad.reason and "\n" not in bad.reason
    assert rows.height == LANDED


def test_keys_owner_threads_and_bodies(pst):
    rows, _, _ = read(pst)
    assert sorted(rows["source_id"]) == sorted(["a1@example.org", "n1@news.example", "b1@example.net",
                                                 "b2@example.net", "s1@example.com", "pst:33e8e3dab52aeb4e"])
    # Sent Items is the owner's under any folder name, with no [owner] configured.
    assert set(rows.filter(pl.col("is_owner"))["source_id"]) == {"s1@example.com", "pst:33e8e3dab52aeb4e"}
    reply = one(rows, source_id="s1@example.com")
    assert (reply["sender"], reply["reply_to"], reply["text"].strip()) == ("jordan@example.com", "a1@example.org", "Yes, 9am at the gym.")
    assert reply["conversation_id"] == one(rows, source_id="a1@example.org")["conversation_id"]
    # No References: the conversation index's thread part joins the two messages.
    assert one(rows, source_id="b1@example.net")["conversation_id"] == one(rows, source_id="b2@example.net")["conversation_id"]
    assert json.loads(one(rows, source_id="b2@example.net")["metadata"])["pst_folder"] == "Top of Personal Folders/Posteingang/Projects"
    digest = one(rows, source_id="n1@news.example")
    assert digest["kind"] == "automated" and "Café at 9? I’ll book." in digest["text"] and "gif" not in digest["text"]
    assert one(rows, source_id="a1@example.org")["sent_at"].isoformat() == "2024-03-01T08:00:00+00:00"


def ingest(warehouse: Path, source: str, path: Path):
    return run_ingest(warehouse, get_source(source), [path], {}, Owner(emails=("jordan@example.com",)))


def test_second_ingest_adds_nothing(pst, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    first, second = ingest(warehouse, "pst", pst), ingest(warehouse, "pst", pst)
    assert first.new == LANDED and (second.new, second.unchanged) == (0, LANDED)


def test_messages_already_landed_from_an_mbox_of_the_same_mailbox_are_not_landed_twice(pst, tmp_path):
    mbox = tmp_path / "Takeout.mbox"
    mbox.write_text(
        "From ana@example.org Fri Mar  1 08:00:00 2024\nMessage-ID: <a1@example.org>\nFrom: Ana Lima <ana@example.org>\n"
        "To: jordan@example.com\nSubject: Saturday climbing\nDate: Fri, 01 Mar 2024 09:00:00 +0100\n\n"
        "Shall we go Saturday morning?\n\nAna\n"
    )
    warehouse = tmp_path / "w.duckdb"
    assert ingest(warehouse, "email", mbox).new == 1
    result = ingest(warehouse, "pst", pst)
    assert result.new == LANDED - 1
    assert any("already landed from an mbox export" in n for n in result.notes)


def test_the_real_libpff_refuses_broken_files_in_one_line(tmp_path):
    pytest.importorskip("pypff")
    not_pst = tmp_path / "notes.pst"
    not_pst.write_text("just some text")
    damaged = tmp_path / "damaged.pst"
    damaged.write_bytes(b"!BDN" + os.urandom(2000))
    for path, match in ((not_pst, "no !BDN signature"), (damaged, "libpff cannot open it"), (tmp_path / "no.pst", "no such file")):
        with pytest.raises(SourceError, match=match) as error:
            read(path)
        assert "\n" not in str(error.value)


def test_the_public_sample_pst_through_the_real_libpff():
    pytest.importorskip("pypff")
    if not SAMPLE.exists():
        pytest.skip(f"java-libpst's dist-list.pst not present at {SAMPLE}")
    rows, quarantined, notes = read(SAMPLE)
    # It holds an appointment, a contact, a distribution list and free/busy data: no mail.
    assert rows.height == 0 and quarantined == []
    assert notes == ["left out 4 item(s) that are not messages: 1 IPM.Appointment, 1 IPM.DistList, 1 IPM.Contact, "
                     "1 IPM.Microsoft.ScheduleData.FreeBusy"]


def test_cli_end_to_end(pst, tmp_path):
    warehouse = tmp_path / "w.duckdb"

    def invoke(*args):
        return CliRunner().invoke(cli, ["--warehouse", str(warehouse), *args])

    first = invoke("ingest", "pst", str(pst))
    assert first.exit_code == 0 and f"{LANDED} new" in first.output, first.output
    again = invoke("ingest", "pst", str(pst))
    assert again.exit_code == 0 and "nothing new since the last run" in again.output
    assert "pst" in invoke("sources").output
    wrong = invoke("ingest", "pst", str(tmp_path / "missing.pst"))
    lines = [line for line in wrong.output.splitlines() if line.strip()]
    assert wrong.exit_code != 0 and len(lines) == 1 and lines[0].startswith("etl: error: ")
