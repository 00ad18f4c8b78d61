"""Android SMS and MMS from an "SMS Backup & Restore" XML backup, made here in the shapes
the app writes (fields as SyncTech documents them), plus broken and partial backups.

After a deliberate change to the connector, regenerate the golden rows with
    ETL_UPDATE_GOLDEN=1 python -m pytest tests/test_android_sms.py
and read the diff before committing it.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
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
from etl.sources.android_sms import _events, is_automated_sender, number_key, repair_char_refs

GOLDEN = Path(__file__).parent / "data" / "android_sms" / "expected_rows.json"

ANA, ANA_NATIONAL, BEN, ME = "+33 6 12 34 56 78", "0612345678", "+15551230000", "+15559990000"

RECORDS = [
    # Ana writes; the app's emoji option wrote 😀 as two surrogate references.
    f'<sms protocol="0" address="{ANA}" date="1709280000000" type="1" subject="null" body="Salut! On se voit demain? &#55357;&#56832;" '
    'toa="null" sc_toa="null" service_center="+33609001390" read="1" status="-1" locked="0" date_sent="1709279998000" '
    'sub_id="1" readable_date="1 mars 2024 09:00:00" contact_name="Ana Lima" />',
    # The owner answers; the phone stored her number in its national form.
    f'<sms protocol="0" address="{ANA_NATIONAL}" date="1709280060000" type="2" subject="null" body="Oui, 10h au café" '
    'toa="null" sc_toa="null" service_center="null" read="1" status="-1" locked="0" date_sent="0" sub_id="1" '
    'readable_date="1 mars 2024 09:01:00" contact_name="Ana Lima" />',
    '<sms protocol="0" address="72975" date="1709280120000" type="1" subject="null" body="Your code is 481 516. Do not share it." '
    'toa="null" sc_toa="null" service_center="null" read="1" status="-1" locked="0" date_sent="1709280119000" '
    'readable_date="" contact_name="(Unknown)" />',
    '<sms protocol="0" address="72975" date="1709280180000" type="2" subject="null" body="STOP" toa="null" sc_toa="null" '
    'service_center="null" read="1" status="-1" locked="0" date_sent="0" readable_date="" contact_name="(Unknown)" />',
    '<sms protocol="0" address="AMAZON" date="1709280240000" type="1" subject="null" body="Your parcel arrives today." '
    'toa="null" sc_toa="null" service_center="null" read="0" status="-1" locked="0" date_sent="0" readable_date="" '
    'contact_name="(Unknown)" />',
    # A control character reference, which XML forbids.
    f'<sms protocol="0" address="{ANA}" date="1709280300000" type="1" subject="null" body="ok&#1;" toa="null" sc_toa="null" '
    'service_center="null" read="1" status="-1" locked="0" date_sent="0" readable_date="" contact_name="Ana Lima" />',
    # True repeats: the same text twice in the same millisecond.
    f'<sms protocol="0" address="{ANA}" date="1709280360000" type="1" subject="null" body="haha" toa="null" sc_toa="null" '
    'service_center="null" read="1" status="-1" locked="0" date_sent="0" readable_date="" contact_name="Ana Lima" />',
    f'<sms protocol="0" address="{ANA}" date="1709280360000" type="1" subject="null" body="haha" toa="null" sc_toa="null" '
    'service_center="null" read="1" status="-1" locked="0" date_sent="0" readable_date="" contact_name="Ana Lima" />',
    f'<sms protocol="0" address="{ANA}" date="1709280420000" type="3" subject="null" body="not sent yet" toa="null" '
    'sc_toa="null" service_center="null" read="1" status="-1" locked="0" date_sent="0" readable_date="" contact_name="Ana Lima" />',
    # One MMS to one person: it joins the SMS conversation with her.
    f'<mms date="1709280480000" rr="129" sub="null" ct_t="application/vnd.wap.multipart.related" read_status="null" seen="1" '
    f'msg_box="1" address="{ANA}" sub_cs="null" resp_st="null" retr_st="null" d_tm="null" text_only="0" exp="null" '
    'locked="0" m_id="mavodi-1-89-2-4-ana" st="null" retr_txt_cs="null" retr_txt="null" creator="com.google.android.apps.messaging" '
    'date_sent="1709280478000" read="1" m_size="48211" rpt_a="null" ct_cls="null" pri="129" sub_id="1" tr_id="T1" '
    'resp_txt="null" ct_l="null" m_cls="personal" d_rpt="129" v="18" _id="1" m_type="132" readable_date="" contact_name="Ana Lima">'
    '<parts><part seq="-1" ct="application/smil" name="null" chset="null" cd="null" fn="null" cid="&lt;smil&gt;" cl="smil.xml" '
    'ctt_s="null" ctt_t="null" text="&lt;smil&gt;&lt;body&gt;&lt;/body&gt;&lt;/smil&gt;" />'
    '<part seq="0" ct="image/jpeg" name="IMG_0412.jpg" chset="null" cd="null" fn="null" cid="&lt;0&gt;" cl="IMG_0412.jpg" '
    'ctt_s="null" ctt_t="null" text="null" data="/9j/4AAQSkZJRgABAQ==" />'
    '<part seq="1" ct="text/plain" name="null" chset="106" cd="null" fn="null" cid="&lt;1&gt;" cl="text_1.txt" ctt_s="null" '
    'ctt_t="null" text="La terrasse, regarde" /></parts>'
    f'<addrs><addr address="{ANA}" type="137" charset="106" /><addr address="{ME}" type="151" charset="106" /></addrs></mms>',
    # A group MMS the owner sent to Ana and Ben.
    f'<mms date="1709280540000" sub="null" msg_box="2" address="{ANA}~{BEN}" m_id="null" m_type="128" text_only="1" '
    'read="1" sub_id="1" readable_date="" contact_name="Ana Lima, (Unknown)">'
    '<parts><part seq="0" ct="text/plain" name="null" chset="106" cd="null" fn="null" cid="&lt;0&gt;" cl="text_0.txt" '
    'ctt_s="null" ctt_t="null" text="Dinner Friday, all three of us?" /></parts>'
    f'<addrs><addr address="{ME}" type="137" charset="106" /><addr address="{ANA}" type="151" charset="106" />'
    f'<addr address="{BEN}" type="151" charset="106" /></addrs></mms>',
    # Ben answers the group.
    f'<mms date="1709280600000" sub="null" msg_box="1" address="{BEN}~{ANA}" m_id="ben-2" m_type="132" text_only="1" '
    'read="1" sub_id="1" readable_date="" contact_name="(Unknown), Ana Lima">'
    '<parts><part seq="0" ct="text/plain" name="null" chset="106" cd="null" fn="null" cid="&lt;0&gt;" cl="text_0.txt" '
    'ctt_s="null" ctt_t="null" text="Count me in" /></parts>'
    f'<addrs><addr address="{BEN}" type="137" charset="106" /><addr address="{ME}" type="151" charset="106" />'
    f'<addr address="{ANA}" type="151" charset="106" /></addrs></mms>',
    # A picture and nothing else, from Ben alone.
    f'<mms date="1709280660000" sub="null" msg_box="1" address="{BEN}" m_id="ben-3" m_type="132" text_only="0" read="1" '
    'readable_date="" contact_name="(Unknown)"><parts><part seq="0" ct="image/png" name="map.png" chset="null" cd="null" '
    'fn="null" cid="&lt;0&gt;" cl="map.png" ctt_s="null" ctt_t="null" text="null" data="iVBORw0KGgo=" /></parts>'
    f'<addrs><addr address="{BEN}" type="137" charset="106" /><addr address="{ME}" type="151" charset="106" /></addrs></mms>',
]
BROKEN = (
    f'<sms protocol="0" address="{ANA}" date="yesterday" type="1" subject="null" body="lost date" toa="null" sc_toa="null" '
    'service_center="null" read="1" status="-1" locked="0" date_sent="0" readable_date="" contact_name="Ana Lima" />'
)


def backup(records: list[str], count: int | None = None) -> str:
    body = "\n  ".join(records)
    count = len(records) if count is None else count
    return (
        "<?xml version='1.0' encoding='UTF-8' standalone='yes' ?>\n"
        "<!--File Created By SMS Backup & Restore v10.20.002 on 05/03/2024 10:00:00-->\n"
        '<?xml-stylesheet type="text/xsl" href="sms.xsl"?>\n'
        f'<smses count="{count}" backup_set="3c1f" backup_date="1709632800000" type="full">\n  {body}\n</smses>\n'
    )


def write(tmp_path: Path, records: list[str] = RECORDS, name: str = "sms-20240305100000.xml", **kw) -> Path:
    path = tmp_path / name
    path.write_text(backup(records, **kw), encoding="utf-8")
    return path


def read(*paths: Path, owner: Owner | None = None):
    ctx = SourceContext(paths=list(paths), options={}, owner=owner or Owner(), previous_watermark=lambda s: None)
    batches = list(get_source("android-sms").read(ctx))
    rows = pl.concat([b.rows for b in batches]) if batches else RAW_MESSAGES.empty_frame(exclude=("ingest_run_id",))
    return rows, [q for b in batches for q in b.quarantined], ctx.notes


def one(rows: pl.DataFrame, **equal) -> dict:
    found = rows.filter(*(pl.col(k) == v for k, v in equal.items()))
    assert found.height == 1, (equal, found)
    return found.row(0, named=True)


@pytest.fixture
def sample(tmp_path) -> Path:
    return write(tmp_path)


# ----------------------------------------------------------------------------- golden


def test_matches_golden_rows(sample):
    rows, quarantined, notes = read(sample)
    produced = [
        {**r, "sent_at": r["sent_at"].isoformat(), "metadata": json.loads(r["metadata"])}
        for r in rows.iter_rows(named=True)
    ]
    if os.environ.get("ETL_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(produced, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert produced == json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert quarantined == [] and notes == []


def test_rows_fit_the_raw_schema(sample):
    rows, _, _ = read(sample)
    assert rows.height == len(RECORDS)
    assert rows.schema == RAW_MESSAGES.polars_schema(exclude=("ingest_run_id",))
    assert rows["source_id"].is_unique().all() and rows["sent_at"].null_count() == 0
    assert set(rows["kind"]) <= set(KINDS)


def test_owner_comes_from_type_and_msg_box_without_configuration(sample):
    rows, _, _ = read(sample)
    assert rows["is_owner"].null_count() == 0
    mine = rows.filter(pl.col("is_owner"))
    assert sorted(mine["text"]) == ["Dinner Friday, all three of us?", "Oui, 10h au café", "STOP", "not sent yet"]
    draft = one(rows, text="not sent yet")
    assert json.loads(draft["metadata"])["box"] == "draft" and draft["kind"] == "system"


def test_one_number_written_two_ways_is_one_conversation(sample):
    rows, _, _ = read(sample)
    ana = one(rows, text="Salut! On se voit demain? 😀")
    reply = one(rows, text="Oui, 10h au café")
    picture = one(rows, text="La terrasse, regarde")
    assert ana["conversation_id"] == reply["conversation_id"] == picture["conversation_id"]
    assert (ana["sender"], ana["sender_name"], ana["conversation_title"]) == (ANA, "Ana Lima", "Ana Lima")
    assert number_key("+33 6 12 34 56 78") == number_key("06 12 34 56 78") == number_key("0033612345678")
    assert number_key("+1 555 123 0000") != number_key("+1 555 123 0001")


def test_a_group_mms_is_its_own_conversation_keyed_by_its_addresses(sample):
    rows, _, _ = read(sample)
    sent = one(rows, text="Dinner Friday, all three of us?")
    answer = one(rows, text="Count me in")
    assert sent["conversation_id"] == answer["conversation_id"]
    assert sent["conversation_id"] not in {one(rows, text="Oui, 10h au café")["conversation_id"]}
    assert (answer["sender"], answer["is_owner"]) == (BEN, False)
    assert json.loads(answer["metadata"])["group"] is True
    # Named the same whoever wrote, from the contact names the SMS taught.
    assert sent["conversation_title"] == answer["conversation_title"] == "+15551230000, Ana Lima"
    # Ben alone is a third conversation.
    alone = rows.filter(pl.col("kind") == "attachment").row(0, named=True)
    assert alone["conversation_id"] not in {sent["conversation_id"], answer["conversation_id"]}


def test_mms_text_parts_are_the_text_and_media_are_listed(sample):
    rows, _, _ = read(sample)
    picture = one(rows, text="La terrasse, regarde")
    assert picture["kind"] == "text"
    assert json.loads(picture["metadata"])["attachments"] == [{"ct": "image/jpeg", "name": "IMG_0412.jpg", "cl": "IMG_0412.jpg"}]
    only_media = rows.filter(pl.col("kind") == "attachment")
    assert only_media.height == 1 and only_media["text"].to_list() == [None]
    assert "data" not in (only_media["metadata"][0] or "") and "iVBOR" not in only_media["metadata"][0]


def test_short_codes_and_alphanumeric_senders_are_automated_but_not_the_owners_reply(sample):
    rows, _, _ = read(sample)
    assert sorted(rows.filter(pl.col("kind") == "automated")["sender"]) == ["72975", "AMAZON"]
    stop = one(rows, text="STOP")
    assert (stop["kind"], stop["is_owner"]) == ("text", True)
    assert json.loads(stop["metadata"])["to_automated_sender"] is True


@pytest.mark.parametrize(
    ("address", "automated"),
    [("72975", True), ("262966", True), ("AMAZON", True), ("VM-HDFCBK", True), ("Uber", True), ("+4915112345678", False),
     ("5551234567", False), ("+1 555", False), ("jordan@example.com", False), ("", False)],
)
def test_automated_senders(address, automated):
    assert is_automated_sender(address) is automated


def test_character_references_are_repaired(sample):
    rows, _, _ = read(sample)
    assert one(rows, text="ok\ufffd")["kind"] == "text"
    assert repair_char_refs(b"&#xD83D;&#xDE00;") == b"&#128512;"
    assert repair_char_refs(b"a &#55357; b") == b"a &#65533; b"
    assert repair_char_refs(b"&amp;#55357; &#233;") == b"&amp;#55357; &#233;"


@pytest.mark.parametrize("chunk", [1, 3, 7, 8, 9, 15, 16, 17, 31, 64])
def test_a_surrogate_pair_split_across_chunks_is_still_one_character(chunk, monkeypatch):
    import etl.sources.android_sms as module

    monkeypatch.setattr(module, "_CHUNK", chunk)
    xml = '<smses count="1"><sms body="x &#55357;&#56832;&#55357;&#56832; y" /></smses>'.encode()
    bodies = [e.get("body") for event, e in _events(io.BytesIO(xml)) if event == "end" and e.tag == "sms"]
    assert bodies == ["x 😀😀 y"]


def test_true_repeats_get_a_counter(sample):
    rows, _, _ = read(sample)
    first, second = sorted(rows.filter(pl.col("text") == "haha")["source_id"])
    assert second == first + "~1"


# ----------------------------------------------------------------------------- landing


def ingest(warehouse: Path, *paths: Path):
    return run_ingest(warehouse, get_source("android-sms"), list(paths), {}, Owner())


def test_second_ingest_adds_nothing(sample, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    first, second = ingest(warehouse, sample), ingest(warehouse, sample)
    assert first.new == len(RECORDS)
    assert (second.new, second.unchanged) == (0, len(RECORDS))


def test_a_later_backup_adds_only_what_is_new(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    ingest(warehouse, write(tmp_path / "old", RECORDS[:6]))
    later = ingest(warehouse, write(tmp_path / "new", RECORDS))
    assert (later.new, later.unchanged) == (len(RECORDS) - 6, 6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    at=st.integers(min_value=0, max_value=len(RECORDS)),
    broken=st.sampled_from([
        BROKEN,
        '<sms address="+15550001111" date="1709280000000" type="9" body="unknown box" />',
        '<sms address="null" date="1709280000000" type="1" body="no address" />',
        '<mms date="1709280000000" msg_box="1" m_type="132"><parts /><addrs /></mms>',
        '<sms address="+15550001111" date="-5" type="1" body="negative date" />',
    ]),
)
def test_one_corrupted_record_is_quarantined_and_the_rest_lands(tmp_path, at, broken):
    path = write(tmp_path, [*RECORDS[:at], broken, *RECORDS[at:]])
    rows, quarantined, _ = read(path)
    assert rows.height == len(RECORDS)
    (bad,) = quarantined
    tag = "sms" if broken.startswith("<sms") else "mms"
    ordinal = sum(r.startswith(f"<{tag}") for r in RECORDS[:at]) + 1
    assert bad.location == f"{path} <{tag}> {ordinal}"
    assert bad.reason and "\n" not in bad.reason and bad.payload


def test_a_cut_off_backup_lands_what_was_whole_and_quarantines_the_break(tmp_path):
    text = backup(RECORDS)
    cut = text.index("<sms", text.index("STOP"))
    path = tmp_path / "sms-partial.xml"
    path.write_text(text[: cut + 40], encoding="utf-8")
    rows, quarantined, notes = read(path)
    assert rows.height == 4
    (bad,) = quarantined
    assert bad.location.startswith(f"{path} line ") and "not well-formed XML" in bad.reason
    assert any("read up to there" in n for n in notes)


def test_a_count_that_does_not_match_is_noted(tmp_path):
    _, _, notes = read(write(tmp_path, count=20))
    assert notes == [f"{tmp_path / 'sms-20240305100000.xml'}: the backup says it holds 20 messages, {len(RECORDS)} were found"]


def test_a_folder_or_zip_with_a_call_log_reads_the_messages_only(tmp_path):
    write(tmp_path)
    (tmp_path / "calls-20240305100000.xml").write_text('<?xml version="1.0"?><calls count="0"></calls>')
    rows, _, notes = read(tmp_path)
    assert rows.height == len(RECORDS) and "not SMS backups" in notes[0]
    archive = tmp_path / "backup.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.write(tmp_path / "sms-20240305100000.xml", "SMSBackupRestore/sms-20240305100000.xml")
    assert read(archive)[0].sort("source_id").equals(rows.sort("source_id"))


def test_a_call_log_given_alone_is_one_clear_error(tmp_path):
    calls = tmp_path / "calls.xml"
    calls.write_text('<?xml version="1.0"?><calls count="0"></calls>')
    with pytest.raises(SourceError, match="call log") as error:
        read(calls)
    assert "\n" not in str(error.value)


def test_cli_end_to_end_and_one_line_errors(sample, tmp_path):
    warehouse = tmp_path / "w.duckdb"

    def invoke(*args):
        return CliRunner().invoke(cli, ["--warehouse", str(warehouse), *args])

    first = invoke("ingest", "android-sms", str(sample))
    assert first.exit_code == 0 and f"{len(RECORDS)} new" in first.output, first.output
    again = invoke("ingest", "android-sms", str(sample))
    assert again.exit_code == 0 and "nothing new since the last run" in again.output
    listed = invoke("sources")
    assert "android-sms" in listed.output and "SMS Backup & Restore" in listed.output
    for wrong in (tmp_path / "nowhere.xml", tmp_path / "chat.txt"):
        if wrong.suffix == ".txt":
            wrong.write_text("hello")
        result = invoke("ingest", "android-sms", str(wrong))
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("etl: error: "), result.output
