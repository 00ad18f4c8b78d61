"""Transcripts: the shared subtitle fixtures, our Plaud/Otter/VTT/SRT samples, owners,
times, bad input, and the cue-to-turn merge."""

import codecs
import itertools
import json
import os
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from conftest import shared_fixture
from etl.cli import cli
from etl.config import Owner
from etl.sources.base import SourceContext, SourceError
from etl.sources.transcript import (
    Cue,
    decode,
    detect_format,
    merge_turns,
    parse_cues,
    parse_transcript,
    read_transcripts,
)

DATA = Path(__file__).parent / "data" / "transcript"
GOLDEN = DATA / "plaud.golden.json"
SUBTITLE_FIXTURES = ("transcripts/webvtt-py", "transcripts/pysrt")


def read(*paths, owner=None, watermarks=None, **options):
    ctx = SourceContext(
        paths=[Path(p) for p in paths],
        options=options,
        owner=owner or Owner(),
        previous_watermark=lambda stream: (watermarks or {}).get(stream),
    )
    return list(read_transcripts(ctx)), ctx


def rows_of(*paths, **kwargs) -> pl.DataFrame:
    batches, _ = read(*paths, **kwargs)
    return pl.concat([b.rows for b in batches])


def meta(row) -> dict:
    return json.loads(row["metadata"])


@pytest.fixture
def utc_plus_one():
    """Header times carry no zone: they are read in this machine's zone, fixed here."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "CET-1"  # POSIX for UTC+1 all year; needs no zoneinfo files
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


# ----------------------------------------------------------------------------- shared fixtures


def _subtitle_files() -> list[str]:
    root = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"
    found = sorted(
        p.relative_to(root).as_posix()
        for folder in SUBTITLE_FIXTURES
        for p in (root / folder).glob("*")
        if p.suffix in (".srt", ".vtt", ".sbv")
    )
    # Without the shared folder the test below still runs once, and skips.
    return found or ["transcripts/webvtt-py/sample.vtt"]


# What each shared file gives: the number of cues with text, and of quarantined
# pieces; or the words of the one-line error. Every file is listed, so a new
# fixture has to be looked at.
OUTCOMES = {
    "pysrt/bom-utf-16-be.srt": (7, 0),
    "pysrt/bom-utf-16-le.srt": (7, 0),
    "pysrt/bom-utf-32-be.srt": (7, 0),
    "pysrt/bom-utf-32-le.srt": (7, 0),
    "pysrt/bom-utf-8.srt": (7, 0),
    "pysrt/capability_tester.srt": (37, 0),
    "pysrt/empty.srt": (5, 0),  # 7 cues, two of them without text
    "pysrt/invalid.srt": "timing '00:00:01 --> 00:00:10' cannot be read",  # no milliseconds
    "pysrt/no-indexes.srt": (7, 0),
    "webvtt-py/captions_with_bom.vtt": (4, 0),
    "webvtt-py/comments.vtt": (3, 0),
    "webvtt-py/cue_tags.vtt": (3, 0),
    "webvtt-py/empty.vtt": "the file is empty",
    "webvtt-py/invalid.vtt": "does not start with a WEBVTT line",
    "webvtt-py/invalid_format.sbv": "no readable cue",
    "webvtt-py/invalid_format1.srt": "no readable cue",
    "webvtt-py/invalid_format2.srt": "no readable cue",
    "webvtt-py/invalid_format3.srt": "no readable cue",
    "webvtt-py/invalid_format4.srt": "1 cue(s), all empty",
    "webvtt-py/invalid_timeframe.sbv": (4, 1),
    # `00:00:07,000 --> 00:00:11.890` mixes separators but means one thing; read, as
    # srt 3.5 and webvtt-py 0.6 read it today.
    "webvtt-py/invalid_timeframe.srt": (5, 0),
    "webvtt-py/invalid_timeframe.vtt": (6, 1),
    "webvtt-py/invalid_timeframe_in_cue_text.vtt": (3, 0),  # 4 cues, one empty
    "webvtt-py/metadata_headers.vtt": (2, 0),
    "webvtt-py/metadata_headers_multiline.vtt": (2, 0),
    "webvtt-py/missing_caption_text.sbv": (4, 0),
    "webvtt-py/missing_caption_text.srt": (4, 0),
    "webvtt-py/missing_caption_text.vtt": (4, 0),
    "webvtt-py/missing_timeframe.sbv": (4, 1),
    "webvtt-py/missing_timeframe.srt": (4, 1),
    "webvtt-py/missing_timeframe.vtt": (6, 1),
    "webvtt-py/no_captions.vtt": "no readable cue",
    "webvtt-py/one_caption.srt": (1, 0),
    "webvtt-py/one_caption.vtt": (1, 0),
    "webvtt-py/sample.sbv": (5, 0),
    "webvtt-py/sample.srt": (5, 0),
    "webvtt-py/sample.vtt": (16, 0),
    "webvtt-py/styles.vtt": (1, 0),
    "webvtt-py/two_captions.sbv": (2, 0),
    "webvtt-py/using_identifiers.vtt": (6, 0),
    "webvtt-py/youtube_dl.vtt": (4, 0),
}


def test_every_shared_transcript_has_a_stated_outcome():
    files = {name.removeprefix("transcripts/") for name in _subtitle_files()}
    shared_fixture("transcripts/webvtt-py")
    assert files == set(OUTCOMES)


@pytest.mark.parametrize("relpath", _subtitle_files())
def test_shared_transcript_ingests_or_fails_clearly(relpath):
    path = shared_fixture(relpath)
    outcome = OUTCOMES[relpath.removeprefix("transcripts/")]
    if isinstance(outcome, str):
        with pytest.raises(SourceError) as error:
            read(path)
        message = str(error.value)
        assert "\n" not in message and message.startswith(str(path))
        assert outcome in message and "expected " in message
        return
    with_text, quarantined = outcome
    batches, ctx = read(path)
    (batch,) = batches
    cues = parse_cues(path.read_bytes(), path.name)
    assert sum(1 for cue in cues if cue.text) == with_text
    assert len(batch.quarantined) == quarantined
    # No labels in these files: one row per cue with text, owner unknown.
    assert batch.rows.height == with_text
    assert batch.rows["is_owner"].null_count() == with_text
    assert any("no speaker labels" in note for note in ctx.notes)
    for q in batch.quarantined:
        assert q.location.startswith(f"{path} ") and "line " in q.location and q.reason and q.payload


def _expected(name: str) -> dict:
    return json.loads(shared_fixture(f"transcripts/{name}/expected.json").read_text())


def _cues(relpath: str) -> list[Cue]:
    path = shared_fixture(f"transcripts/{relpath}")
    return parse_cues(path.read_bytes(), path.name)


def _seconds(stamp: str) -> float:
    hours, minutes, seconds = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def test_webvtt_py_expectations():
    """The counts and texts webvtt-py's own tests assert (expected.json)."""
    expected = _expected("webvtt-py")
    for case in expected["vtt"] + expected["srt"]:
        name = case["file"]
        if ".." in name or "expect" in case:
            continue  # the error cases are in OUTCOMES
        cues = _cues(f"webvtt-py/{name}")
        if "captions" in case:
            # webvtt-py keeps empty WebVTT captions and drops empty SubRip ones.
            counted = cues if name.endswith(".vtt") else [c for c in cues if c.text]
            assert len(counted) == case["captions"], name
        if "total_length_s" in case:
            assert cues[-1].end_ms // 1000 - cues[0].start_ms // 1000 == case["total_length_s"], name
        for key, value in case.items():
            if not key.startswith("captions["):
                continue
            position = int(key[len("captions["):].split("]")[0])
            cue = cues[position]
            field = key.split("].", 1)[1] if "]." in key else None
            if field == "text":
                assert cue.text == value, name
            elif field == "lines":
                assert cue.text.split("\n") == value, name
            else:
                assert cue.start_ms == _seconds(value["start"]) * 1000, name
                assert cue.end_ms == round(_seconds(value["end"]) * 1000), name
                if "lines" in value:
                    assert cue.text.split("\n") == value["lines"], name
        for position, identifier in case.get("identifiers", {}).items():
            assert cues[int(position)].identifier == identifier, name


def test_pysrt_expectations():
    for case in _expected("pysrt")["cases"]:
        if "items" not in case:
            continue
        cues = _cues(f"pysrt/{case['file']}")
        assert len(cues) == case["items"], case["file"]
        if "first_index" in case:
            assert cues[0].identifier == str(case["first_index"]), case["file"]


def test_byte_order_marks_decide_the_encoding():
    texts = {name: [c.text for c in _cues(f"pysrt/{name}")] for name in (
        "bom-utf-8.srt", "bom-utf-16-le.srt", "bom-utf-16-be.srt", "bom-utf-32-le.srt", "bom-utf-32-be.srt",
    )}
    assert len({tuple(t) for t in texts.values()}) == 1
    assert texts["bom-utf-8.srt"][0] == "About 2 months ago I found myself on\nthe comment section of YouTube"


def test_webvtt_markup_comments_and_styles_are_not_speech():
    tags = _cues("webvtt-py/cue_tags.vtt")
    assert [c.text for c in tags] == ["When the moon hits your eye", "Like a big-a pizza pie", "That's amore"]
    assert tags[0].start_ms == 16_500  # the short mm:ss.ttt form
    assert [c.text for c in _cues("webvtt-py/styles.vtt")] == ["- Hello world."]
    comments = " ".join(c.text for c in _cues("webvtt-py/comments.vtt"))
    assert "Kyle" not in comments and "may not translate" not in comments
    youtube = _cues("webvtt-py/youtube_dl.vtt")
    assert [c.text for c in youtube[:2]] == ["yeah", "yeah\nwhat"]  # a timing line right after text


def test_a_bad_timing_is_quarantined_with_its_place(tmp_path):
    path = shared_fixture("transcripts/webvtt-py/invalid_timeframe.vtt")
    (batch,), _ = read(path)
    (bad,) = batch.quarantined
    assert bad.location == f"{path} cue 2 / line 6"
    assert bad.reason.startswith("timing '00:00:07.000 --> 00:00:1d.890' cannot be read")
    assert bad.payload == "00:00:07.000 --> 00:00:1d.890\nCaption text #2"
    assert "Caption text #2" not in batch.rows["text"].to_list()
    missing = shared_fixture("transcripts/webvtt-py/missing_timeframe.srt")
    (batch,), _ = read(missing)
    (orphan,) = batch.quarantined
    assert orphan.location == f"{missing} line 5" and orphan.reason == "text without a timing line"


# ----------------------------------------------------------------------------- our fixtures


def _golden_view(rows: pl.DataFrame) -> list[dict]:
    return [
        {
            "source_id": row["source_id"],
            "conversation_id": row["conversation_id"],
            "conversation_title": row["conversation_title"],
            "sent_at": row["sent_at"].isoformat(),
            "sender": row["sender"],
            "is_owner": row["is_owner"],
            "text": row["text"],
            "metadata": meta(row),
        }
        for row in rows.iter_rows(named=True)
    ]


def test_plaud_transcript_matches_golden_turns(utc_plus_one):
    """Regenerate after a deliberate change: ETL_UPDATE_GOLDEN=1 pytest tests/test_transcript.py"""
    produced = _golden_view(rows_of(DATA / "plaud.txt", me=("Speaker 1",)))
    if os.environ.get("ETL_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(produced, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    assert produced == json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_plaud_turns_and_owner(utc_plus_one):
    batches, ctx = read(DATA / "plaud.txt", me=("speaker 1",))
    rows = batches[0].rows
    assert rows["sender"].to_list() == ["Speaker 1", "Speaker 2"] * 3 + ["Speaker 1"]
    assert rows["is_owner"].to_list() == [True, False] * 3 + [True]
    merged = rows.row(2, named=True)
    assert merged["text"] == "Fair. I wrote it at midnight, so that tracks.\nWhich part dragged the most?"
    assert meta(merged)["cues"] == 2 and meta(merged)["start_s"] == 15
    # The header's 10:03:12 is local time (UTC+1 here); cue offsets are added to it.
    assert rows["sent_at"][0] == datetime(2024, 3, 5, 9, 3, 15, tzinfo=UTC)
    assert rows["sent_at"][-1] == datetime(2024, 3, 5, 9, 4, 20, tzinfo=UTC)
    assert set(rows["conversation_title"]) == {"Weekly sync with Alex"}
    # A sentence ending in a time is not a speaker line.
    assert rows["text"][4].endswith("Let's look at it again at 10:30")
    assert {meta(r)["time_basis"] for r in rows.iter_rows(named=True)} == {"file header"}
    assert any("header" in note and "plaud.txt (2024-03-05T10:03:12+01:00)" in note for note in ctx.notes)
    assert any("without a zone were read as this computer's local time: plaud.txt (+0100)" in note for note in ctx.notes)


def test_otter_transcript_with_owner_from_config(utc_plus_one):
    rows = rows_of(DATA / "otter.txt", owner=Owner(names=("Sam Rivera",)))
    assert rows["sender"].to_list() == ["Jordan Lee", "Sam Rivera", "Jordan Lee", "Sam Rivera", "Jordan Lee"]
    assert rows["is_owner"].to_list() == [False, True, False, True, False]
    assert rows["sent_at"][0] == datetime(2024, 3, 12, 15, 15, 2, tzinfo=UTC)  # 4:15PM local
    assert rows["sent_at"][3] == datetime(2024, 3, 12, 15, 15, 19, tzinfo=UTC)
    assert not any("otter.ai" in text for text in rows["text"])  # the footer is not speech
    assert set(rows["conversation_title"]) == {"Coffee with Jordan"}


def test_vtt_voices_merge_into_turns():
    rows = rows_of(DATA / "voices.vtt", owner=Owner(speaker_labels=("Sam",)))
    assert rows["sender"].to_list() == ["Sam", "Alex Chen", "Sam", "Alex Chen"]
    assert rows["is_owner"].to_list() == [True, False, True, False]
    assert rows["text"][0] == (
        "Okay, let's start with the onboarding screens. I moved the sign-up button above the fold "
        "like we said last week."
    )
    assert rows["text"][2] == "Yes, it passes & looks better on dark mode."  # tags and entities
    first = meta(rows.row(0, named=True))
    assert first == {
        "cues": 2, "end_s": 7.9, "file": "voices.vtt", "first_cue": 1, "format": "vtt", "last_cue": 2,
        "speaker": "Sam", "start_s": 1.0, "time_basis": "file header",
    }
    # `Recorded:` in the WebVTT header names UTC.
    assert rows["sent_at"][1] == datetime(2024, 4, 2, 18, 30, 8, 500000, tzinfo=UTC)
    assert set(rows["conversation_title"]) == {"Design review"}
    assert "yellow" not in " ".join(rows["text"]) and "by hand" not in " ".join(rows["text"])


def test_a_vtt_cue_with_two_voices_is_two_turns():
    data = b"WEBVTT\n\n00:01.000 --> 00:02.500\n<v Sam>Ready?</v>\n<v Alex>Almost.</v>\n"
    cues = parse_cues(data, "two.vtt")
    assert [(c.speaker, c.text, c.start_ms) for c in cues] == [("Sam", "Ready?", 1000), ("Alex", "Almost.", 1000)]


def test_srt_without_labels_lands_with_owner_unknown():
    batches, ctx = read(DATA / "unlabelled.srt", me=("Speaker 1",))
    rows = batches[0].rows
    assert rows["text"].to_list() == [
        "Welcome back to the channel.",
        "Today we are fixing a squeaky door hinge.",  # <i> removed
        "All you need is a screwdriver and a bit of oil.",  # CRLF, a caption's line break
    ]
    assert rows["is_owner"].to_list() == [None, None, None]
    assert rows["sender"].to_list() == [None, None, None]
    assert any("unlabelled.srt: no speaker labels" in note and "owner" in note for note in ctx.notes)


def test_srt_name_prefixes_are_labels_when_the_file_uses_them():
    rows = rows_of(DATA / "labelled.srt", me=("Sam",))
    assert rows["sender"].to_list() == ["Sam", "Alex", "Sam", "Alex", "Sam"]
    assert rows["is_owner"].to_list() == [True, False, True, False, True]
    # "Note:" is not a speaker; the unlabelled cue 4 continues Sam.
    assert rows["text"][2] == (
        "Please do, it was freezing this morning. Note: the boiler code is on the fridge. "
        "and the manual is in the drawer."
    )
    assert meta(rows.row(2, named=True))["speaker_carried_cues"] == 1
    # One cue, two speakers (`- Alex: Got it.` / `- Sam: Thanks!`): two turns, same time.
    assert rows["text"][3:].to_list() == ["Got it.", "Thanks!"]
    assert rows["sent_at"][3] == rows["sent_at"][4]


def test_a_lone_name_prefix_stays_text(tmp_path):
    path = tmp_path / "talk.srt"
    path.write_text(
        "1\n00:00:01,000 --> 00:00:02,000\nRemember: the key is under the mat.\n\n"
        "2\n00:00:02,000 --> 00:00:03,000\nThanks, see you at 10:30.\n"
    )
    rows = rows_of(path)
    assert rows["text"].to_list() == ["Remember: the key is under the mat.", "Thanks, see you at 10:30."]
    assert rows["sender"].to_list() == [None, None]


def test_one_line_utterances():
    rows = rows_of(DATA / "utterances.txt", me=("Speaker 2",))
    assert rows["sender"].to_list() == ["Speaker 1", "Speaker 2", "Speaker 1", "Speaker 2"]
    assert rows["is_owner"].to_list() == [False, True, False, True]
    assert rows["text"][2] == (
        "No worries, we'll be there until nine anyway.\nThe new routes went up on Monday.\nI want to try the orange one."
    )


def test_prose_ending_in_a_time_is_not_a_speaker_line(tmp_path):
    path = tmp_path / "call.txt"
    path.write_text(
        "Speaker 1  00:00:01\nAre we still on for tomorrow?\n\n"
        "Speaker 2  00:00:04\nYes.\n\nMeet Sam at 10:30\n\n"
        "Speaker 1  00:00:09\nPerfect.\n"
    )
    rows = rows_of(path)
    assert rows["text"].to_list() == ["Are we still on for tomorrow?", "Yes.\nMeet Sam at 10:30", "Perfect."]


def test_one_off_speakers_count_when_their_time_fits(tmp_path):
    path = tmp_path / "standup.txt"
    path.write_text(
        "Standup Meeting 10:00\n\n"
        "Speaker 2  00:00:00\nHello?\n\n"
        "Speaker 1  00:00:03\nHi.\n\n"
        "Speaker 3  00:00:05\nHey all.\n\n"
        "Speaker 1  00:00:09\nLet us start.\n\n"
        "Room B 45:00\n\n"
        "Speaker 1  00:00:15\nOk.\n"
    )
    transcript = parse_transcript(path.read_bytes(), path.name)
    assert transcript.title == "Standup Meeting 10:00"
    assert [(c.speaker, c.start_ms, c.text) for c in transcript.cues] == [
        ("Speaker 2", 0, "Hello?"),
        ("Speaker 1", 3000, "Hi."),
        ("Speaker 3", 5000, "Hey all."),
        ("Speaker 1", 9000, "Let us start.\nRoom B 45:00"),  # 45:00 is past the next line's time
        ("Speaker 1", 15000, "Ok."),
    ]


def test_an_srt_cue_number_glued_to_the_previous_text(tmp_path):
    path = tmp_path / "glued.srt"
    path.write_text("1\n00:00:01,000 --> 00:00:02,000\nHello\n2\n00:00:02,000 --> 00:00:03,000\nWorld\n")
    cues = parse_cues(path.read_bytes(), path.name)
    assert [(c.identifier, c.text) for c in cues] == [("1", "Hello"), ("2", "World")]


# ----------------------------------------------------------------------------- owner options


def test_labels_per_file_win_over_me():
    rows = rows_of(DATA / "plaud.txt", me=("Speaker 1",), labels={"plaud.txt": "Speaker 2"})
    assert rows.filter(pl.col("is_owner"))["sender"].unique().to_list() == ["Speaker 2"]
    other = rows_of(DATA / "utterances.txt", me=("Speaker 1",), labels={"plaud.txt": "Speaker 2"})
    assert other.filter(pl.col("is_owner"))["sender"].unique().to_list() == ["Speaker 1"]


def test_no_speaker_matching_the_owner_leaves_it_unknown_with_a_note():
    batches, ctx = read(DATA / "plaud.txt", me=("Speaker 3",))
    assert batches[0].rows["is_owner"].null_count() == batches[0].rows.height
    assert any("none of its speakers (Speaker 1, Speaker 2) is you by --me 'Speaker 3'" in note for note in ctx.notes)


def test_me_replaces_speaker_labels_but_names_still_count():
    owner = Owner(names=("Sam Rivera",), speaker_labels=("Speaker 2",))
    rows = rows_of(DATA / "plaud.txt", DATA / "otter.txt", owner=owner, me=("Speaker 1",))
    assert sorted(rows.filter(pl.col("is_owner"))["sender"].unique()) == ["Sam Rivera", "Speaker 1"]
    without_me = rows_of(DATA / "plaud.txt", owner=owner)
    assert without_me.filter(pl.col("is_owner"))["sender"].unique().to_list() == ["Speaker 2"]


def test_labels_must_be_a_table():
    with pytest.raises(SourceError, match="labels must map file names"):
        read(DATA / "plaud.txt", labels="Speaker 2")


# ----------------------------------------------------------------------------- times


def test_recorded_at_option():
    batches, ctx = read(DATA / "voices.vtt", recorded_at="2024-05-01T09:00:00+02:00")
    rows = batches[0].rows
    assert rows["sent_at"][0] == datetime(2024, 5, 1, 7, 0, 1, tzinfo=UTC)
    assert meta(rows.row(0, named=True))["time_basis"] == "recorded-at option"
    assert any("--recorded-at" in note for note in ctx.notes)


def test_recorded_at_needs_one_recording_and_an_iso_time():
    with pytest.raises(SourceError, match="start of one recording, but 2 transcripts"):
        read(DATA / "voices.vtt", DATA / "plaud.txt", recorded_at="2024-05-01T09:00:00")
    with pytest.raises(SourceError, match="not an ISO date and time"):
        read(DATA / "voices.vtt", recorded_at="yesterday")


def test_modification_time_is_the_last_resort(tmp_path):
    path = tmp_path / "talk.srt"
    path.write_bytes((DATA / "unlabelled.srt").read_bytes())
    stamp = datetime(2023, 7, 1, 12, 0, tzinfo=UTC).timestamp()
    os.utime(path, (stamp, stamp))
    batches, ctx = read(path)
    rows = batches[0].rows
    assert rows["sent_at"][1] == datetime(2023, 7, 1, 12, 0, 3, 500000, tzinfo=UTC)
    assert meta(rows.row(0, named=True))["time_basis"] == "modification time"
    assert any("modification time" in note and "talk.srt" in note for note in ctx.notes)


def test_a_date_in_the_file_name(tmp_path, utc_plus_one):
    path = tmp_path / "Recording 2024-03-05 10-03-12.srt"
    path.write_bytes((DATA / "unlabelled.srt").read_bytes())
    rows = rows_of(path)
    assert rows["sent_at"][0] == datetime(2024, 3, 5, 9, 3, 13, tzinfo=UTC)
    assert meta(rows.row(0, named=True))["time_basis"] == "file name"


# ----------------------------------------------------------------------------- encodings and bad input


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be-bom", "utf-32", "utf-32-be-bom", "crlf"])
def test_encodings_and_line_ends_give_the_same_conversation(tmp_path, encoding):
    text = (DATA / "plaud.txt").read_text(encoding="utf-8")
    if encoding == "crlf":
        data = text.replace("\n", "\r\n").encode()
    elif encoding.endswith("-bom"):
        codec = encoding.removesuffix("-bom")
        bom = codecs.BOM_UTF16_BE if codec == "utf-16-be" else codecs.BOM_UTF32_BE
        data = bom + text.encode(codec)
    else:
        data = text.encode(encoding)
    path = tmp_path / "plaud.txt"
    path.write_bytes(data)
    expected = rows_of(DATA / "plaud.txt")
    got = rows_of(path)
    assert got.select("source_id", "sender", "text").equals(expected.select("source_id", "sender", "text"))


def test_text_that_is_not_utf8_is_read_as_cp1252_with_a_note(tmp_path):
    path = tmp_path / "cafe.srt"
    path.write_bytes("1\n00:00:01,000 --> 00:00:02,000\nUn café, s’il vous plaît.\n".encode("cp1252"))
    batches, ctx = read(path)
    assert batches[0].rows["text"].to_list() == ["Un café, s’il vous plaît."]
    assert any("cafe.srt: not UTF-8; read as Windows-1252" in note for note in ctx.notes)


def test_utf16_without_a_byte_order_mark():
    text, encoding, note = decode("WEBVTT\n\n00:01.000 --> 00:02.000\nhi\n".encode("utf-16-le"), "x.vtt")
    assert encoding == "utf-16-le" and text.startswith("WEBVTT") and "no byte-order mark" in note


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("audio.m4a", b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00isomM4A \x00\x00\x00\x00", "binary data"),
        ("notes.txt", b"Groceries: eggs, milk, bread.\nCall the dentist.\n", "no readable cue"),
        ("empty.srt", b"\n\n", "the file is empty"),
        ("broken.vtt", b"WEBVTT\n\n00:00:01.000 --> 00:00:0x.000\nhi\n", "timing '00:00:01.000 --> 00:00:0x.000'"),
    ],
)
def test_a_file_that_is_not_a_transcript_is_one_clear_error(tmp_path, name, data, needle):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(SourceError) as error:
        read(path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(path)) and needle in message and "expected" in message


def test_folders_and_zips_are_read_recursively(tmp_path):
    folder = tmp_path / "exports"
    (folder / "2024" / "march").mkdir(parents=True)
    (folder / "2024" / "march" / "plaud.txt").write_bytes((DATA / "plaud.txt").read_bytes())
    (folder / "voices.vtt").write_bytes((DATA / "voices.vtt").read_bytes())
    (folder / "recording.mp3").write_bytes(b"ID3\x00\x00binary")  # not a transcript name: skipped
    with zipfile.ZipFile(folder / "more.zip", "w") as archive:
        archive.write(DATA / "labelled.srt", "otter/labelled.srt")
        archive.writestr("otter/audio.m4a", b"\x00\x01")
    batches, _ = read(folder, me=("Sam",))
    streams = [b.stream.removeprefix(f"{folder.resolve()}/") for b in batches]
    assert streams == ["2024/march/plaud.txt", "more.zip!otter/labelled.srt", "voices.vtt"]
    rows = pl.concat([b.rows for b in batches])
    assert rows["conversation_id"].n_unique() == 3
    zipped = rows.filter(pl.col("metadata").str.contains("labelled.srt"))
    assert zipped.height == 5 and zipped["is_owner"].to_list() == [True, False, True, False, True]


def test_a_folder_without_transcripts(tmp_path):
    (tmp_path / "recording.mp3").write_bytes(b"ID3")
    with pytest.raises(SourceError, match="no transcript files in it"):
        read(tmp_path)


def test_a_changed_file_and_a_new_owner_are_noted(tmp_path):
    path = tmp_path / "plaud.txt"
    path.write_bytes((DATA / "plaud.txt").read_bytes())
    (batch,), _ = read(path, me=("Speaker 1",))
    previous = {batch.stream: batch.watermark}
    _, ctx = read(path, me=("Speaker 2",), watermarks=previous)
    assert any("keep those owner flags" in note for note in ctx.notes)
    path.write_text(path.read_text() + "\nSpeaker 2  00:01:15\nBye!\n")
    _, ctx = read(path, me=("Speaker 1",), watermarks=previous)
    assert any("changed since it was last ingested" in note for note in ctx.notes)


# ----------------------------------------------------------------------------- through the CLI


def _invoke(warehouse, *args):
    return CliRunner().invoke(cli, ["--warehouse", str(warehouse), "ingest", "transcript", *args])


def test_cli_ingest_is_idempotent(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    args = [str(DATA / "plaud.txt"), str(DATA / "voices.vtt"), "--me", "Speaker 1", "--me", "Sam"]
    first = _invoke(warehouse, *args)
    assert first.exit_code == 0, first.output
    assert "transcript: 11 read, 11 new" in first.output
    assert "note: recording start from the date in the file's header" in first.output
    second = _invoke(warehouse, *args)
    assert second.exit_code == 0 and "11 read, 0 new" in second.output
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT source_id) FROM raw_messages").fetchone() == (11, 11)
        owners = con.execute("SELECT sender FROM raw_messages WHERE is_owner GROUP BY 1 ORDER BY 1").fetchall()
    assert owners == [("Sam",), ("Speaker 1",)]


def test_cli_labels_from_corpus_toml(tmp_path, monkeypatch):
    config = tmp_path / "corpus.toml"
    config.write_text('[sources.transcript]\nme = "Speaker 1"\nlabels = { "utterances.txt" = "Speaker 2" }\n')
    warehouse = tmp_path / "w.duckdb"
    result = CliRunner().invoke(
        cli, ["--warehouse", str(warehouse), "--config", str(config), "ingest", "transcript",
              str(DATA / "plaud.txt"), str(DATA / "utterances.txt")],
    )
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(warehouse), read_only=True) as con:
        owners = con.execute(
            "SELECT json_extract_string(metadata, '$.file'), sender FROM raw_messages WHERE is_owner GROUP BY ALL ORDER BY 1"
        ).fetchall()
    assert owners == [("plaud.txt", "Speaker 1"), ("utterances.txt", "Speaker 2")]


def test_cli_bad_file_is_one_line_and_lands_nothing(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    bad = tmp_path / "meeting.vtt"
    bad.write_text("00:00:01.000 --> 00:00:02.000\nno header\n")
    result = _invoke(warehouse, str(DATA / "plaud.txt"), str(bad))
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        (
            f"etl: error: {bad}: does not start with a WEBVTT line; expected a WebVTT file: a WEBVTT line, "
            "then cues timed 'HH:MM:SS.mmm --> HH:MM:SS.mmm'"
        )
    ]
    assert "Traceback" not in result.output
    assert not warehouse.exists()  # the run was all or nothing, and it was the first


def test_cli_quarantines_a_bad_cue_and_lands_the_rest(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    result = _invoke(warehouse, str(shared_fixture("transcripts/webvtt-py/invalid_timeframe.vtt")))
    assert result.exit_code == 0, result.output
    assert "6 new" in result.output and "1 quarantined" in result.output
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (location,) = con.execute("SELECT location FROM quarantine").fetchone()
    assert location.endswith("invalid_timeframe.vtt cue 2 / line 6")


# ----------------------------------------------------------------------------- merging cues into turns

_speakers = st.sampled_from(["Sam", "Alex", "Speaker 1"])


def _cue_list(pairs) -> list[Cue]:
    return [Cue(i + 1, i + 1, i * 1000, None, text, speaker=speaker) for i, (speaker, text) in enumerate(pairs)]


@given(st.lists(st.tuples(_speakers, st.text(min_size=1)), max_size=30), st.sampled_from([" ", "\n"]))
def test_merged_turns_alternate_speakers_and_keep_the_text(pairs, joiner):
    cues = _cue_list(pairs)
    turns = merge_turns(cues, joiner)
    assert all(a.speaker != b.speaker for a, b in itertools.pairwise(turns))
    assert [c for t in turns for c in t.cues] == cues
    assert all({c.speaker for c in t.cues} == {t.speaker} for t in turns)
    assert all(t.text == joiner.join(c.text for c in t.cues) for t in turns)
    assert joiner.join(t.text for t in turns) == joiner.join(text for _, text in pairs)


@given(st.lists(st.tuples(st.one_of(st.none(), _speakers), st.text(max_size=5)), max_size=30))
def test_unlabelled_cues_stay_apart_and_empty_ones_drop(pairs):
    cues = _cue_list(pairs)
    turns = merge_turns(cues)
    assert [c for t in turns for c in t.cues] == [c for c in cues if c.text]
    assert all(len(t.cues) == 1 for t in turns if t.speaker is None)
    assert all(a.speaker != b.speaker for a, b in itertools.pairwise(turns) if a.speaker is not None)


def test_parse_transcript_reports_format_and_title():
    transcript = parse_transcript((DATA / "voices.vtt").read_bytes(), "voices.vtt")
    assert (transcript.format, transcript.title, transcript.recorded_at_text) == (
        "vtt", "Design review", "Recorded: 2024-04-02T18:30:00Z",
    )


# ----------------------------------------------------------------------------- meeting tools

MEETINGS = DATA / "meetings"
MEETINGS_GOLDEN = MEETINGS / "meetings.golden.json"


def test_meeting_transcripts_match_golden_turns(utc_plus_one):
    """Teams and Zoom WebVTT and a Google Meet transcript, as those tools write them.
    Regenerate after a deliberate change: ETL_UPDATE_GOLDEN=1 pytest tests/test_transcript.py"""
    produced = {
        "teams": _golden_view(rows_of(MEETINGS / "Budget review.vtt", recorded_at="2024-03-05T10:00:00+00:00")),
        "zoom": _golden_view(rows_of(MEETINGS / "zoom GMT20240305-100012_Recording.transcript.vtt", me=("Sam Rivera",))),
        "meet": _golden_view(rows_of(MEETINGS / "Product sync - Transcript.txt", me=("Sam Rivera",))),
    }
    if os.environ.get("ETL_UPDATE_GOLDEN") == "1":
        MEETINGS_GOLDEN.write_text(json.dumps(produced, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    assert produced == json.loads(MEETINGS_GOLDEN.read_text(encoding="utf-8"))


def test_teams_vtt_lands_its_speakers_as_senders():
    rows = rows_of(MEETINGS / "Budget review.vtt", recorded_at="2024-03-05T10:00:00+00:00")
    assert rows["sender"].to_list() == ["Adele Vance", "Megan Bowen", "Adele Vance", "Megan Bowen", "Adele Vance"]
    # A voice without its closing </v>, continued in the next cue, is one turn.
    assert rows["text"][1] == "Morning! Can you all hear me okay?"
    # Unpadded times, including a one-digit fraction.
    assert [meta(r)["start_s"] for r in rows.iter_rows(named=True)] == [0.21, 2.1, 6.5, 9.4, 61.9]
    assert meta(rows.row(3, named=True))["end_s"] == 62.5


def test_unpadded_teams_timings_read_as_offsets():
    cues = parse_transcript("WEBVTT\n\n0:0:0.0 --> 0:0:3.270\n<v Megan Bowen>Hi everyone\n".encode(), "t.vtt").cues
    assert [(c.start_ms, c.end_ms, c.speaker, c.text) for c in cues] == [(0, 3270, "Megan Bowen", "Hi everyone")]


def test_zoom_vtt_names_each_speaker_in_the_cue_even_one_heard_once():
    rows = rows_of(MEETINGS / "zoom GMT20240305-100012_Recording.transcript.vtt", me=("Sam Rivera",))
    assert rows["sender"].to_list() == ["Sam Rivera", "Jordan Lee", "Sam Rivera"]
    assert rows["text"][1] == "Yes, loud and clear."
    assert rows["is_owner"].to_list() == [True, False, True]


def test_google_meet_transcript_speakers_times_and_header():
    transcript = parse_transcript((MEETINGS / "Product sync - Transcript.txt").read_bytes(), "meet.txt")
    assert transcript.format == "meet" and transcript.title == "Product sync"
    assert transcript.recorded_at == datetime(2024, 3, 5, 18, 2, tzinfo=UTC)
    assert [(c.speaker, c.start_ms) for c in transcript.cues] == [
        ("Sam Rivera", 0), ("Jordan Lee", 0), ("Sam Rivera", 0), ("Priya Natarajan", 300_000), ("Sam Rivera", 300_000),
    ]
    # The speech of one paragraph runs on over lines; the footer is not speech.
    assert transcript.cues[2].text == "First item is the pricing page.\nIt still shows last year's plans."
    assert not any("Meeting ended" in c.text or "computer generated" in c.text for c in transcript.cues)


def test_google_meet_only_attendees_are_speakers():
    text = (
        "Transcript\nAttendees\nAna Silva, Ben Okafor\nTranscript\nAna Silva: Note: the room changed.\n"
        "Reminder: bring the badge.\nBen Okafor: Thanks.\n"
    )
    cues = parse_transcript(text.encode(), "meeting.txt").cues
    assert [(c.speaker, c.text) for c in cues] == [
        ("Ana Silva", "Note: the room changed.\nReminder: bring the badge."), ("Ben Okafor", "Thanks."),
    ]


def test_a_plain_text_transcript_is_not_taken_for_meet():
    assert detect_format("Speaker 1  00:00:03\nHello there\n\nSpeaker 2  00:00:07\nHi\n", "x.txt") == "text"


def test_zoom_recording_names_are_utc(utc_plus_one):
    rows = rows_of(MEETINGS / "zoom GMT20240305-100012_Recording.transcript.vtt")
    assert rows["sent_at"][0] == datetime(2024, 3, 5, 10, 0, 13, 350000, tzinfo=UTC)
