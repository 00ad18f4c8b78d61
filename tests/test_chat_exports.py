"""The chat-export connectors (Messenger, Instagram, Google Chat, Slack, Discord)
against our own small exports in tests/data/, the shared real fixtures and broken input.

Counts by kind and owner of our exports are kept in tests/data/<app>/expected.json;
after a deliberate change regenerate them with
    ETL_UPDATE_GOLDEN=1 python -m pytest tests/test_chat_exports.py
and read the diff.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from conftest import shared_fixture
from etl.cli import cli
from etl.config import Owner
from etl.ingest import run_ingest
from etl.schemas.tables import KINDS, RAW_MESSAGES
from etl.sources import SourceContext, SourceError, get_source
from etl.sources.google_chat import DateError, parse_created_date
from etl.sources.messenger import repair_escaped_utf8
from etl.warehouse import open_warehouse
from factories import dialogue, land

DATA = Path(__file__).parent / "data"
JORDAN = Owner(names=("Jordan Rivera",))

# app -> (connector, input, options, owner) of our own sample export
SAMPLES = {
    "messenger": ("messenger", DATA / "messenger", {}, JORDAN),
    "instagram": ("instagram", DATA / "instagram", {}, JORDAN),
    # The owner comes from the export's own Users/*/user_info.json.
    # Zoneless dates are read in --timezone, else in this machine's zone: pinned for the golden rows.
    "google_chat": ("google-chat", DATA / "google_chat" / "Takeout", {"timezone": "UTC"}, Owner()),
    "slack": ("slack", DATA / "slack" / "export", {"me": "U01JORDAN"}, Owner()),
    "discord": ("discord", DATA / "discord" / "export", {"me": "111111111111111111"}, Owner()),
}


def read(name: str, *paths: Path, options: dict | None = None, owner: Owner | None = None):
    """Rows, quarantined rows and notes a connector yields for `paths`."""
    ctx = SourceContext(
        paths=list(paths), options=dict(options or {}), owner=owner or Owner(), previous_watermark=lambda s: None
    )
    batches = list(get_source(name).read(ctx))
    rows = pl.concat([b.rows for b in batches]) if batches else RAW_MESSAGES.empty_frame(exclude=("ingest_run_id",))
    return rows, [q for b in batches for q in b.quarantined], ctx.notes


def read_sample(app: str, path: Path | None = None):
    name, sample, options, owner = SAMPLES[app]
    return read(name, path or sample, options=options, owner=owner)


def ingest(warehouse: Path, app: str, path: Path | None = None):
    name, sample, options, owner = SAMPLES[app]
    return run_ingest(warehouse, get_source(name), [path or sample], dict(options), owner)


def counts(rows: pl.DataFrame) -> dict:
    owner = (
        pl.when(pl.col("is_owner")).then(pl.lit("owner"))
        .when(~pl.col("is_owner")).then(pl.lit("other"))
        .otherwise(pl.lit("unknown"))
    )  # fmt: skip
    tallied = rows.with_columns(owner=owner)

    def tally(*columns: str) -> dict:
        groups = tallied.group_by(columns).len().iter_rows()
        return {" ".join(str(v) for v in key): n for *key, n in sorted(groups)}

    return {
        "rows": rows.height,
        "by_kind": tally("kind"),
        "by_owner": tally("owner"),
        "by_kind_and_owner": tally("kind", "owner"),
    }


def one(rows: pl.DataFrame, **equal) -> dict:
    found = rows.filter(*(pl.col(k) == v for k, v in equal.items()))
    assert found.height == 1, (equal, found)
    return found.row(0, named=True)


def meta(row: dict) -> dict:
    return json.loads(row["metadata"])


def zip_folder(folder: Path, archive: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.name != "expected.json":
                out.write(path, prefix + path.relative_to(folder).as_posix())
    return archive


def copy_sample(app: str, tmp_path: Path) -> Path:
    sample = SAMPLES[app][1]
    target = tmp_path / sample.name
    shutil.copytree(sample, target, ignore=shutil.ignore_patterns("expected.json"))
    return target


def first_json(folder: Path, name: str | None = None) -> Path:
    return next(p for p in sorted(folder.rglob(name or "*.json")) if p.name != "expected.json")


# ----------------------------------------------------------------------------- every connector


@pytest.mark.parametrize("app", SAMPLES)
def test_sample_matches_golden_counts(app):
    rows, quarantined, _ = read_sample(app)
    produced = {**counts(rows), "quarantined": len(quarantined)}
    golden = DATA / app / "expected.json"
    if os.environ.get("ETL_UPDATE_GOLDEN") == "1":
        golden.write_text(json.dumps(produced, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    assert produced == json.loads(golden.read_text(encoding="utf-8"))


@pytest.mark.parametrize("app", SAMPLES)
def test_sample_rows_fit_the_raw_schema(app):
    rows, _, _ = read_sample(app)
    assert rows.schema == RAW_MESSAGES.polars_schema(exclude=("ingest_run_id",))
    assert rows["source_id"].is_unique().all()
    assert rows["sent_at"].null_count() == 0
    assert set(rows["kind"]) <= set(KINDS)
    assert all(isinstance(json.loads(m), dict) for m in rows["metadata"].drop_nulls())
    # Every reaction points at a landed message.
    reactions = rows.filter(pl.col("kind") == "reaction", pl.col("reply_to").is_not_null())
    assert set(reactions["reply_to"]) <= set(rows["source_id"])


@pytest.mark.parametrize("app", SAMPLES)
def test_second_ingest_adds_nothing(app, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    first = ingest(warehouse, app)
    second = ingest(warehouse, app)
    assert first.new > 0 and first.new == read_sample(app)[0].height
    assert (second.new, second.unchanged) == (0, first.new)


def _add_one_message(app: str, export: Path) -> None:
    """Turn a copy of a sample into its next download: one message more."""
    if app in ("messenger", "instagram"):
        path = first_json(export, "message_1.json")
        data = json.loads(path.read_text())
        data["messages"].insert(0, {"sender_name": "Jordan Rivera", "timestamp_ms": 1709999999000, "content": "one more"})
    elif app == "google_chat":
        path = first_json(export, "messages.json")
        data = json.loads(path.read_text())
        data["messages"].append(
            {
                "creator": {"name": "Jordan Rivera", "email": "jordan.rivera@example.com", "user_type": "Human"},
                "created_date": "Friday, March 1, 2024 at 8:00:00\u202fAM UTC",
                "text": "one more",
                "topic_id": "zz1",
                "message_id": "7aBcD3fGhIk/zz1/zz1",
            }
        )
    elif app == "slack":
        path = export / "general" / "2024-03-03.json"
        data = [{"type": "message", "user": "U01JORDAN", "text": "one more", "ts": "1709460000.000100"}]
    else:
        path = first_json(export)
        data = json.loads(path.read_text())
        data["messages"].append({**data["messages"][-1], "id": "1300000000000000001", "content": "one more", "reactions": []})
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("app", SAMPLES)
def test_a_later_export_adds_only_its_new_message(app, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    export = copy_sample(app, tmp_path)
    first = ingest(warehouse, app, export)
    _add_one_message(app, export)
    second = ingest(warehouse, app, export)
    assert (second.new, second.unchanged) == (1, first.new)


@pytest.mark.parametrize("app", SAMPLES)
def test_the_downloaded_zip_gives_the_same_rows(app, tmp_path):
    folder_rows, _, _ = read_sample(app)
    archive = zip_folder(SAMPLES[app][1], tmp_path / "export.zip", prefix="download/")
    zip_rows, _, _ = read_sample(app, archive)
    assert zip_rows.sort("source_id").equals(folder_rows.sort("source_id"))


@pytest.mark.parametrize("app", SAMPLES)
def test_truncated_json_fails_with_one_line_and_lands_nothing(app, tmp_path):
    copy = copy_sample(app, tmp_path)
    broken = first_json(copy, "messages.json" if app == "google_chat" else None)
    if app == "messenger":
        broken = first_json(copy, "message_1.json")
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="truncated JSON") as error:
        ingest(tmp_path / "new.duckdb", app, copy)
    assert str(broken) in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "new.duckdb").exists()
    # Into a warehouse that already holds messages: the failed run adds nothing at all.
    warehouse = tmp_path / "w.duckdb"
    land(warehouse, dialogue("kept", [(False, "hello there friend"), (True, "hey, long time no see")]))
    with pytest.raises(SourceError):
        ingest(warehouse, app, copy)
    with open_warehouse(warehouse) as con:
        assert con.execute("select count(*) from raw_messages").fetchone() == (2,)
        assert con.execute("select count(*) from ingest_runs").fetchone() == (1,)


WHATSAPP_TXT = "[03/01/2024, 09:15:02] Ana: hello\n[03/01/2024, 09:16:10] Jordan: hi!\n"


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ("messenger", "Download your information"),
        ("instagram", "Download your information"),
        ("google_chat", "Google Takeout export of Google Chat"),
        ("slack", "Slack workspace export"),
        ("discord", "DiscordChatExporter JSON"),
    ],
)
def test_a_whatsapp_text_export_is_refused_naming_the_expected_input(app, expected, tmp_path):
    chat = tmp_path / "WhatsApp Chat with Ana.txt"
    chat.write_text(WHATSAPP_TXT)
    for given in (chat, zip_folder_of(chat, tmp_path / "WhatsApp Chat with Ana.zip")):
        with pytest.raises(SourceError, match=expected):
            read(SAMPLES[app][0], given)


def zip_folder_of(file: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as out:
        out.write(file, "_chat.txt")
    return archive


@pytest.mark.parametrize(
    ("app", "other", "expected"),
    [
        ("messenger", "slack", "Download your information"),
        ("google_chat", "messenger", "Google Takeout export of Google Chat"),
        ("slack", "discord", "Slack workspace export"),
        ("discord", "slack", "DiscordChatExporter JSON"),
        ("discord", "messenger", "DiscordChatExporter JSON"),
    ],
)
def test_another_apps_export_is_refused(app, other, expected):
    with pytest.raises(SourceError, match=expected):
        read(SAMPLES[app][0], SAMPLES[other][1])


def test_a_missing_path_is_one_clear_error(tmp_path):
    for name, *_ in SAMPLES.values():
        with pytest.raises(SourceError, match="no such file or folder"):
            read(name, tmp_path / "nowhere")


# ----------------------------------------------------------------------------- command line


CLI_ARGS = {
    "messenger": ["--me", "Jordan Rivera"],
    "instagram": ["--me", "Jordan Rivera"],
    "google_chat": ["--timezone", "Europe/Paris"],
    "slack": ["--me", "U01JORDAN"],
    "discord": ["--me", "111111111111111111"],
}


@pytest.mark.parametrize("app", SAMPLES)
def test_cli_end_to_end(app, tmp_path):
    name, sample, _, _ = SAMPLES[app]
    warehouse = tmp_path / "w.duckdb"

    def invoke(*args):
        return CliRunner().invoke(cli, ["--warehouse", str(warehouse), *args])

    expected = read(name, sample, options=dict(zip(CLI_ARGS[app][::2], CLI_ARGS[app][1::2])))[0].height
    first = invoke("ingest", name, str(sample), *CLI_ARGS[app])
    assert first.exit_code == 0, first.output
    assert f"{expected:,} new" in first.output
    again = invoke("ingest", name, str(sample), *CLI_ARGS[app])
    assert again.exit_code == 0 and "nothing new since the last run" in again.output
    owned = invoke("sql", f"select count(*) as n from raw_messages where source = '{name}' and is_owner", "--format", "csv")
    assert owned.exit_code == 0 and int(owned.output.splitlines()[1]) > 0


@pytest.mark.parametrize("app", SAMPLES)
def test_cli_wrong_input_is_one_line(app, tmp_path):
    chat = tmp_path / "chat.txt"
    chat.write_text(WHATSAPP_TXT)
    result = CliRunner().invoke(cli, ["--warehouse", str(tmp_path / "w.duckdb"), "ingest", SAMPLES[app][0], str(chat)])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("etl: error: ") and str(chat) in lines[0], result.output


# ----------------------------------------------------------------------------- Messenger


@pytest.fixture(scope="module")
def messenger_rows() -> pl.DataFrame:
    return read_sample("messenger")[0]


def test_messenger_repairs_every_string(messenger_rows):
    zoe = messenger_rows.filter(pl.col("conversation_id") == "zoemuller_10158123456789012")
    assert set(zoe["conversation_title"]) == {"Zoë Müller"}
    assert set(zoe["sender_name"]) == {"Zoë Müller", "Jordan Rivera"}
    assert "Hey! Are you coming to the Café Renée tomorrow?" in zoe["text"].to_list()
    assert "Yes! See you at the café 😂" in zoe["text"].to_list()
    assert "ñandú means rhea" in zoe["text"].to_list()
    # A string that does not round-trip was not mojibake: kept as exported.
    assert "Café is spelled right here already" in zoe["text"].to_list()
    book_club = messenger_rows.filter(pl.col("conversation_id") == "bookclub_2345678901234567")
    assert set(book_club["conversation_title"]) == {"Book club 📚"}
    assert set(messenger_rows.filter(pl.col("kind") == "reaction")["text"]) == {"👍", "❤", "😂"}
    assert not any("Ã" in (t or "") or "ð" in (t or "") for t in messenger_rows["text"])


def test_messenger_reactions_are_rows_with_ids_derived_from_their_message(messenger_rows):
    message = one(messenger_rows, text="Yes! See you at the café 😂")
    reaction = one(messenger_rows, kind="reaction", reply_to=message["source_id"])
    assert reaction["source_id"].startswith(message["source_id"] + ":reaction:")
    assert (reaction["text"], reaction["sender_name"], reaction["is_owner"]) == ("👍", "Zoë Müller", False)
    assert reaction["sent_at"] == message["sent_at"]
    shared = one(messenger_rows, text="Read this before Saturday")
    reactors = messenger_rows.filter(pl.col("reply_to") == shared["source_id"])
    assert sorted(reactors["sender_name"]) == ["Jordan Rivera", "Zoë Müller"]
    assert reactors.filter(pl.col("sender_name") == "Jordan Rivera")["is_owner"].to_list() == [True]


def test_messenger_kinds(messenger_rows):
    shared = one(messenger_rows, text="Read this before Saturday")
    assert shared["kind"] == "text" and meta(shared)["share"]["link"] == "https://example.org/articles/slow-coffee"
    link_only = one(messenger_rows, text="Zoë Müller sent a link.")
    assert link_only["kind"] == "attachment" and meta(link_only)["share"]["link"] == "https://example.com/menu"
    assert one(messenger_rows, text="Zoë called you.")["kind"] == "system"
    assert meta(one(messenger_rows, text="Zoë called you."))["call_duration"] == 125
    assert messenger_rows.filter(pl.col("kind") == "deleted")["sender_name"].to_list() == ["Zoë Müller"]
    media = messenger_rows.filter(pl.col("kind") == "attachment", pl.col("text").is_null())
    assert sorted(next(iter(meta(r).get("media", {"sticker": 0}))) for r in media.iter_rows(named=True)) == [
        "audio_files", "files", "gifs", "photos", "sticker", "videos",
    ]  # fmt: skip
    for line in ("Sam Lee added Zoë Müller to the group.", "Sam Lee named the group Book club 📚.",
                 "Sam Lee left the group.", "You are now connected on Messenger"):  # fmt: skip
        assert one(messenger_rows, text=line)["kind"] == "system", line
    # Typed by a person, though it reads like a line the app writes.
    assert one(messenger_rows, text="I sent a photo.")["kind"] == "text"


def test_messenger_true_repeats_get_a_counter(messenger_rows):
    repeats = messenger_rows.filter(pl.col("text") == "haha").sort("source_id")
    assert repeats.height == 2
    first, second = repeats["source_id"].to_list()
    assert second == first + "~1"


def test_messenger_owner_is_by_display_name(messenger_rows):
    mine = messenger_rows.filter(pl.col("is_owner"))
    assert set(mine["sender_name"]) == {"Jordan Rivera"}
    assert messenger_rows["is_owner"].null_count() == 0


def test_messenger_without_owner_suggests_the_participant_of_every_thread():
    rows, _, notes = read("messenger", SAMPLES["messenger"][1])
    assert rows["is_owner"].null_count() == rows.height
    assert any("'Jordan Rivera' takes part in all 3 conversations" in n for n in notes)


def test_messenger_ids_stay_when_a_reexport_adds_messages_and_shifts_files(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    copy = copy_sample("messenger", tmp_path)
    first = ingest(warehouse, "messenger", copy)
    thread = next(copy.rglob("zoemuller_10158123456789012"))
    newest, older = (json.loads((thread / f"message_{n}.json").read_text()) for n in (1, 2))
    # The next download: one new message on top, and the file boundary moved by one.
    newest["messages"].insert(0, {"sender_name": "Jordan Rivera", "timestamp_ms": 1704400000000, "content": "new one"})
    older["messages"].insert(0, newest["messages"].pop())
    for n, data in ((1, newest), (2, older)):
        (thread / f"message_{n}.json").write_text(json.dumps(data))
    second = ingest(warehouse, "messenger", copy)
    assert (second.new, second.unchanged) == (1, first.new)


def test_messenger_the_same_export_given_twice_lands_once(tmp_path):
    sample = SAMPLES["messenger"][1]
    archive = zip_folder(sample, tmp_path / "facebook-jordan.zip")
    once, _, _ = read_sample("messenger")
    twice, _, _ = read("messenger", sample, archive, owner=JORDAN)
    assert sorted(twice["source_id"]) == sorted(once["source_id"])


def test_messenger_one_file_given_alone_keeps_its_conversation(messenger_rows):
    single = next(SAMPLES["messenger"][1].rglob("samlee_3456789012345678")) / "message_1.json"
    rows, _, _ = read("messenger", single, owner=JORDAN)
    expected = messenger_rows.filter(pl.col("conversation_id") == "samlee_3456789012345678")
    assert sorted(rows["source_id"]) == sorted(expected["source_id"])


def test_messenger_html_download_is_refused_with_a_hint(tmp_path):
    thread = tmp_path / "messages" / "inbox" / "ana_123"
    thread.mkdir(parents=True)
    (thread / "message_1.html").write_text("<html><body>hi</body></html>")
    with pytest.raises(SourceError, match="HTML format.*Format: JSON"):
        read("messenger", tmp_path)


def test_messenger_refuses_json_of_another_shape(tmp_path):
    telegram = tmp_path / "result.json"
    telegram.write_text(json.dumps({"name": "Ana", "messages": [{"id": 1, "date": "2024-01-01T10:00:00", "text": "hi"}]}))
    with pytest.raises(SourceError, match="no timestamp_ms"):
        read("messenger", telegram)


def repaired(raw_string: str) -> str:
    """One JSON string literal's text, repaired and parsed as the connector does."""
    return json.loads(repair_escaped_utf8(b'"' + raw_string.encode("ascii") + b'"'))


def test_repair_of_escaped_bytes():
    assert repaired(r"Caf\u00c3\u00a9") == "Café"
    assert repaired(r"\u00f0\u009f\u0091\u008d and \u00e2\u009d\u00a4") == "👍 and ❤"
    # A run that is not UTF-8 was not mojibake: kept. The next run is still repaired.
    assert repaired(r"Caf\u00e9 or Caf\u00c3\u00a9") == "Café or Café"
    # Escaped backslashes: literal text, whatever follows them.
    assert repaired(r"\\u00c3\u00a9 \\\\u00c3 \\\u00c3\u00a9") == "\\u00c3© \\\\u00c3 \\é"
    # A file some tool already decoded (raw UTF-8, or escapes beyond U+00FF) is left alone.
    for decoded in (r'{"name": "NESTL\u00c9\u00ae fan \ud83d\udc4d"}', '{"name": "NESTLÉ® É¿"}'):
        raw = decoded.encode("utf-8")
        assert repair_escaped_utf8(raw) == raw


def test_restore_utf8_cases_from_deface():
    cases = json.loads(shared_fixture("mojibake/deface/restore_utf8_cases.json").read_text(encoding="utf-8"))["cases"]
    assert len(cases) == 3
    for case in cases:
        raw = case["input_raw_json_bytes"]
        if "expected" in case:
            # Exact: the decomposed accents of "Róisín" stay decomposed (no NFC).
            assert repaired(raw) == case["expected"]
            # The same as repairing the parsed string.
            assert json.loads(f'"{raw}"').encode("latin-1").decode("utf-8") == case["expected"]
        else:
            # An escaped backslash is the text of an escape, not an escape.
            assert repair_escaped_utf8(raw.encode()) == case["expected_raw_unchanged"].encode()
            assert repaired(raw) == json.loads(f'"{raw}"')


def test_chat_miner_instagram_export_matches_its_target():
    export = shared_fixture("chat_exports/chat-miner/instagram/test_export.json")
    target = json.loads(export.with_name("target.json").read_text(encoding="utf-8"))
    rows, quarantined, _ = read("instagram", export)
    assert not quarantined
    produced = [
        {"timestamp": r["sent_at"].astimezone(UTC).replace(tzinfo=None).isoformat(), "author": r["sender"], "message": r["text"]}
        for r in rows.sort("sent_at", descending=True).iter_rows(named=True)
    ]
    assert produced == target
    assert set(rows["kind"]) == {"text"} and set(rows["conversation_id"]) == {"test_export"}


# ----------------------------------------------------------------------------- Instagram


def test_instagram_sample():
    rows, _, _ = read_sample("instagram")
    assert one(rows, text="Grüße aus München! The light here is unreal")["kind"] == "text"
    assert set(rows["conversation_title"]) == {"River Photos", "Lena ✈️"}
    assert one(rows, text="Hi! Would you like to join our photo walk in São Paulo?")["sender_name"] == "Lena ✈️"
    # Instagram wrote some reactions as messages of their own.
    assert one(rows, text="Liked a message")["kind"] == "reaction"
    assert one(rows, text="Reacted ❤️ to your message ")["kind"] == "reaction"
    fire = one(rows, text="🔥")
    assert fire["kind"] == "reaction" and fire["is_owner"] is True
    assert fire["sent_at"] == datetime(2024, 2, 1, 9, 34, 10, tzinfo=UTC)  # its own timestamp
    shared = one(rows, kind="attachment")
    assert meta(shared)["share"]["link"] == "https://www.instagram.com/p/C2abcdEFGhi/"
    assert one(rows, kind="deleted")["sender_name"] == "River Photos"
    assert {meta(r)["box"] for r in rows.iter_rows(named=True)} == {"inbox", "message_requests"}


# ----------------------------------------------------------------------------- Google Chat


@pytest.fixture(scope="module")
def google_rows() -> pl.DataFrame:
    return read_sample("google_chat")[0]


@pytest.mark.parametrize(
    ("written", "expected", "named_zone"),
    [
        ("Monday, January 15, 2024 at 3:04:05\u202fPM UTC", datetime(2024, 1, 15, 15, 4, 5, tzinfo=UTC), True),
        ("Monday, January 15, 2024 at 3:04:05 PM UTC", datetime(2024, 1, 15, 15, 4, 5, tzinfo=UTC), True),
        ("Thursday, November 3, 2016 at 11:59:50 AM UTC", datetime(2016, 11, 3, 11, 59, 50, tzinfo=UTC), True),
        ("Monday, 15 January 2024 at 15:04:05 UTC", datetime(2024, 1, 15, 15, 4, 5, tzinfo=UTC), True),
        ("Monday, January 15, 2024 at 12:04:05\u202fam UTC", datetime(2024, 1, 15, 0, 4, 5, tzinfo=UTC), True),
        ("Monday, January 15, 2024 at 3:04:05 PM PST", datetime(2024, 1, 15, 23, 4, 5, tzinfo=UTC), True),
        ("Monday, January 15, 2024 at 3:04:05 PM GMT+05:30", datetime(2024, 1, 15, 9, 34, 5, tzinfo=UTC), True),
        ("Monday, January 15, 2024 at 3:04:05 PM", datetime(2024, 1, 15, 14, 4, 5, tzinfo=UTC), False),
        ("2024-01-15T15:04:05+00:00", datetime(2024, 1, 15, 15, 4, 5, tzinfo=UTC), True),
    ],
)
def test_google_chat_dates(written, expected, named_zone):
    from zoneinfo import ZoneInfo

    assert parse_created_date(written, ZoneInfo("Europe/Paris")) == (expected, named_zone)


@pytest.mark.parametrize("written", ["Dienstag, 16. Januar 2024 um 09:05:00 UTC", "Monday, January 15, 2024 at 3:04:05 PM XYZ", ""])
def test_google_chat_unreadable_dates_raise(written):
    with pytest.raises(DateError):
        parse_created_date(written, UTC)


def test_google_chat_owner_comes_from_user_info(google_rows):
    _, _, notes = read_sample("google_chat")
    assert any("owner taken from" in n and "jordan.rivera@example.com" in n for n in notes)
    mine = google_rows.filter(pl.col("is_owner"))
    assert set(mine["sender"]) == {"jordan.rivera@example.com"}
    assert google_rows["is_owner"].null_count() == 0


def test_google_chat_ids_threads_and_quotes(google_rows):
    asked = one(google_rows, text="Sure, 12:30 works")
    assert asked["source_id"] == "7aBcD3fGhIk/r2T5vBn7pLk/r2T5vBn7pLk"
    assert asked["conversation_id"] == "DM 7aBcD3fGhIk" and asked["conversation_title"] == "Priya Natarajan"
    assert one(google_rows, text="Perfect")["reply_to"] == asked["source_id"]  # a quote-reply
    root = "AAAAq1w2e3r/Kp3Lm9Xq2Rt/Kp3Lm9Xq2Rt"
    assert one(google_rows, text="Thanks! Smoke tests are green on my side too")["reply_to"] == root
    assert one(google_rows, source_id=root)["conversation_title"] == "Launch crew"


def test_google_chat_kinds(google_rows):
    assert one(google_rows, text="LAUNCH-42 moved to Done")["kind"] == "automated"
    assert one(google_rows, source_id="AAAAq1w2e3r/As4Df5Gh6Jk/As4Df5Gh6Jk")["kind"] == "system"  # a Meet call
    assert one(google_rows, source_id="AAAAq1w2e3r/Zx9Cv8Bn7Mm/Zx9Cv8Bn7Mm")["kind"] == "attachment"  # a Drive file
    assert one(google_rows, source_id="7aBcD3fGhIk/t3E6rFg8hJk/t3E6rFg8hJk")["kind"] == "attachment"
    assert one(google_rows, source_id="7aBcD3fGhIk/v5Q8aSd0fGh/v5Q8aSd0fGh")["kind"] == "deleted"
    ticks = google_rows.filter(pl.col("kind") == "reaction", pl.col("text") == "✅")
    assert sorted(ticks["sender_name"]) == ["Marco Bianchi", "Priya Natarajan"]
    assert set(ticks["reply_to"]) == {"AAAAq1w2e3r/Kp3Lm9Xq2Rt/Lk2Jh3Gf4Ds"}


def test_google_chat_keeps_earlier_versions_as_superseded(google_rows):
    current = one(google_rows, text="Actually make it 12:45, I have a call until half past")
    earlier = one(google_rows, text="Actually make it 12:40")
    assert earlier["source_id"] == current["source_id"] + ":version:0"
    assert meta(earlier)["superseded"] is True and "superseded" not in meta(current)


def test_google_chat_zoneless_dates_use_timezone_and_say_so(monkeypatch):
    # Without --timezone, as for every source: this machine's zone, said once.
    monkeypatch.setenv("TZ", "America/New_York")
    rows, quarantined, notes = read("google-chat", SAMPLES["google_chat"][1])
    late = one(rows, text="Morning! Running 5 minutes late")
    assert late["sent_at"] == datetime(2024, 1, 16, 14, 0, tzinfo=UTC)
    assert [n for n in notes if "America/New_York" in n] == [
        "times written without a zone were read as America/New_York (this machine's zone); "
        "pass --timezone to read them in another"
    ]
    monkeypatch.setenv("TZ", "UTC")
    rows, _, notes = read("google-chat", SAMPLES["google_chat"][1])
    assert one(rows, text="Morning! Running 5 minutes late")["sent_at"] == datetime(2024, 1, 16, 9, 0, tzinfo=UTC)
    paris, _, notes = read("google-chat", SAMPLES["google_chat"][1], options={"timezone": "Europe/Paris"})
    assert one(paris, text="Morning! Running 5 minutes late")["sent_at"] == datetime(2024, 1, 16, 8, 0, tzinfo=UTC)
    assert one(paris, text="Sure, 12:30 works")["sent_at"] == datetime(2024, 1, 15, 15, 5, 10, tzinfo=UTC)
    assert not any("zone" in n for n in notes)  # chosen, so nothing to say
    # The German date is not read: quarantined, not guessed.
    assert [q.reason for q in quarantined] == ["unrecognised date 'Dienstag, 16. Januar 2024 um 09:05:00 UTC'"]
    assert quarantined[0].source_id == "7aBcD3fGhIk/y8U1vBn3mQw/y8U1vBn3mQw"


def test_google_chat_unknown_timezone_option():
    with pytest.raises(SourceError, match="not a known time zone"):
        read("google-chat", SAMPLES["google_chat"][1], options={"timezone": "Mars/Olympus"})


def test_google_chat_one_messages_json_with_its_group_info(google_rows):
    group = SAMPLES["google_chat"][1] / "Google Chat" / "Groups" / "Space AAAAq1w2e3r"
    rows, _, _ = read("google-chat", group / "messages.json", owner=Owner(emails=("jordan.rivera@example.com",)))
    expected = google_rows.filter(pl.col("conversation_id") == "Space AAAAq1w2e3r")
    assert rows.sort("source_id").equals(expected.sort("source_id"))


# ----------------------------------------------------------------------------- Slack


@pytest.fixture(scope="module")
def slack_rows() -> pl.DataFrame:
    return read_sample("slack")[0]


def test_slack_resolves_markup(slack_rows):
    hello = one(slack_rows, source_id="C01GENERAL:1709284000.000300")
    assert hello["text"] == "Hi @Jordan, the plan is in #general and the launch doc & @here please read it by Friday"
    assert meta(hello)["text_raw"].startswith("Hi <@U01JORDAN>, the plan is in <#C01GENERAL|general>")
    thanks = one(slack_rows, source_id="C01GENERAL:1709370060.000200")
    assert thanks["text"] == "Thank you all, especially @Ana Souza for the 2am fix <3"
    assert meta(thanks)["edited_ts"] == "1709370100.000000"
    assert not any("<@" in (t or "") for t in slack_rows["text"])


def test_slack_conversations_threads_and_reactions(slack_rows):
    titles = dict(slack_rows.select("conversation_id", "conversation_title").unique().iter_rows())
    assert titles == {
        "C01GENERAL": "#general",
        "G01SECRET": "#secret-project",
        "D01JORANA": "Jordan, Ana Souza",
        "G02MPIM": "mpdm-jordan--ana--li-1",
    }
    parent = "C01GENERAL:1709290000.000400"
    replies = slack_rows.filter(pl.col("reply_to") == parent, pl.col("kind") == "text")
    assert sorted(replies["text"]) == ["great, see you at noon", "me! the ramen place?"]
    assert one(slack_rows, source_id=parent)["reply_to"] is None
    plus_one = slack_rows.filter(pl.col("kind") == "reaction", pl.col("text") == ":+1:")
    assert sorted(plus_one["source_id"]) == [
        "C01GENERAL:1709370000.000100:reaction:+1:U01JORDAN",
        "C01GENERAL:1709370000.000100:reaction:+1:U03LI",
    ]
    assert sorted(plus_one["is_owner"]) == [False, True]
    assert meta(one(slack_rows, source_id="C01GENERAL:1709290120.000600"))["client_msg_id"].endswith("0004")


def test_slack_kinds(slack_rows):
    assert one(slack_rows, source_id="C01GENERAL:1709290800.000700")["kind"] == "automated"
    assert one(slack_rows, source_id="C01GENERAL:1709291000.000900")["kind"] == "attachment"
    assert one(slack_rows, source_id="C01GENERAL:1709291100.001000")["kind"] == "text"
    assert one(slack_rows, source_id="C01GENERAL:1709291200.001100")["kind"] == "deleted"
    # Old exports: "<@U…> uploaded a file: <…> and commented: …" keeps what was typed.
    commented = one(slack_rows, source_id="C01GENERAL:1709370120.000300")
    assert (commented["kind"], commented["text"]) == ("text", "first draft, be kind")
    system = slack_rows.filter(pl.col("kind") == "system")
    assert sorted(meta(r)["subtype"] for r in system.iter_rows(named=True)) == [
        "channel_join", "channel_join", "channel_leave", "channel_topic", "group_join",
    ]  # fmt: skip


def test_slack_owner_by_email_too():
    rows, _, _ = read("slack", SAMPLES["slack"][1], owner=Owner(emails=("jordan.rivera@example.com",)))
    assert set(rows.filter(pl.col("is_owner"))["sender"]) == {"U01JORDAN"}


def test_slack_without_channel_list_notes_the_fallback(tmp_path):
    copy = copy_sample("slack", tmp_path)
    for name in ("channels.json", "groups.json", "mpims.json", "dms.json"):
        (copy / name).unlink()
    rows, _, notes = read("slack", copy)
    assert "general" in set(rows["conversation_id"])
    assert any("no channels.json" in n for n in notes)


def test_slack_testarchive():
    archive = shared_fixture("chat_exports/slack/hfaran_slack-export-viewer/testarchive.zip")
    rows, quarantined, _ = read("slack", archive)
    assert not quarantined
    messages = rows.filter(pl.col("kind") != "reaction")
    assert messages.height == 158
    subtypes = messages.with_columns(subtype=pl.col("metadata").str.json_path_match("$.subtype").fill_null("(none)"))
    by_subtype = {s: dict(g.group_by("kind").len().iter_rows()) for (s,), g in subtypes.group_by("subtype")}
    assert by_subtype == {
        "bot_message": {"automated": 94},
        "(none)": {"text": 49},
        "channel_join": {"system": 8},
        "bot_add": {"system": 3},
        "file_share": {"attachment": 3},
        "file_comment": {"text": 1},
    }
    assert set(rows["conversation_title"]) == {"#enrique", "#traveling-sailor"}
    assert set(rows["conversation_id"]) == {"C0JGLMMNX", "C0JL6CGQ2"}
    assert not any("<@U" in (t or "") for t in rows["text"])
    assert "@abilinski: Created an issue for a setup.py so that it can be installed to a standard place" in rows["text"].to_list()
    assert one(rows, source_id="C0JGLMMNX:1452837318.000002")["text"] == "@hamza has joined the channel"
    assert set(messages.filter(pl.col("kind") != "automated")["sender_name"]) == {
        "hamza", "abilinski", "doubledeez", "heroeshannibal",
    }  # fmt: skip
    comment = one(rows, source_id="C0JL6CGQ2:1459106048.000018")
    assert comment["text"].startswith("```'cities': {") and comment["sender_name"] == "doubledeez"


# ----------------------------------------------------------------------------- Discord


@pytest.fixture(scope="module")
def discord_rows() -> pl.DataFrame:
    return read_sample("discord")[0]


def test_discord_sample(discord_rows):
    hello = one(discord_rows, source_id="1200000000000000002")
    assert hello["sent_at"] == datetime(2024, 3, 1, 9, 15, 30, 123000, tzinfo=UTC)  # +01:00 in the file
    assert (hello["sender_name"], hello["is_owner"], hello["kind"]) == ("Jordy", True, "text")
    assert hello["conversation_title"] == "Friends / #general"
    assert one(discord_rows, source_id="1200000000000000003")["reply_to"] == "1200000000000000002"
    waves = discord_rows.filter(pl.col("reply_to") == "1200000000000000002", pl.col("kind") == "reaction")
    assert sorted(waves["source_id"]) == [
        "1200000000000000002:reaction:987654321098765432",
        "1200000000000000002:reaction:👋:222222222222222222",
        "1200000000000000002:reaction:👋:333333333333333333",
    ]
    parrot = one(discord_rows, source_id="1200000000000000002:reaction:987654321098765432")
    assert (parrot["text"], parrot["sender"], meta(parrot)["count"]) == ("partyparrot", None, 3)
    assert meta(one(discord_rows, source_id="1200000000000000004"))["author_tag"] == "marco#4321"
    kind_of = dict(discord_rows.select("source_id", "kind").iter_rows())
    assert kind_of["1200000000000000001"] == "system"  # GuildMemberJoin
    assert kind_of["1200000000000000004"] == "attachment"
    assert kind_of["1200000000000000005"] == "attachment"  # a sticker
    assert kind_of["1200000000000000006"] == "automated"  # a bot
    assert kind_of["1200000000000000007"] == "automated"  # a slash-command reply
    assert kind_of["1200000000000000008"] == "system"  # ChannelPinnedMessage
    assert kind_of["1200000000000000009"] == "system"  # ThreadCreated
    assert kind_of["1200000000000000103"] == "system"  # Call
    assert set(discord_rows.filter(pl.col("conversation_id") == "900000000000000020")["conversation_title"]) == {"Ana"}


def test_discord_unreadable_timestamp_is_quarantined():
    _, quarantined, _ = read_sample("discord")
    assert [(q.reason, q.source_id) for q in quarantined] == [("no readable timestamp", "1200000000000000010")]


def test_discord_dm_2a_2m():
    export = shared_fixture("chat_exports/chat-analytics/discord/DM_2A_2M.json")
    expected = json.loads((export.parent.parent / "expected.json").read_text(encoding="utf-8"))["discord/DM_2A_2M.json"]
    rows, quarantined, _ = read("discord", export)
    assert not quarantined
    messages = rows.filter(pl.col("kind").is_in(["text", "automated"])).sort("sent_at")
    assert [
        {"id": r["source_id"], "author": r["sender"], "text": r["text"], "iso": r["sent_at"].isoformat(timespec="milliseconds")}
        for r in messages.iter_rows(named=True)
    ] == [
        {"id": m["id"], "author": m["author"], "text": m["text"], "iso": m["iso"]} for m in expected["messages"]
    ]
    # The nickname is preferred; the bot's message is automated, not the owner's voice.
    authors = {a["id"]: a for a in expected["authors"]}
    for row in messages.iter_rows(named=True):
        tag = f"{row['sender_name']}#{meta(row)['author_tag'].split('#')[1]}"
        assert tag == authors[row["sender"]]["name"]
        assert (row["kind"] == "automated") == authors[row["sender"]]["bot"]
    (reaction,) = rows.filter(pl.col("kind") == "reaction").iter_rows(named=True)
    assert (reaction["text"], meta(reaction)["count"], reaction["reply_to"]) == ("👆", 42, "530805779645595660")
    # The call is landed, but as an event, not a message.
    (call,) = rows.filter(pl.col("kind") == "system").iter_rows(named=True)
    assert call["source_id"] == expected["calls"][0]["id"] and call["text"] == "Started a call that lasted 251 minutes."
    assert meta(call)["call_ended_at"] == "2020-07-17T21:14:52.787+00:00"
    assert set(rows["conversation_id"]) == {expected["channel"]["id"]}


def test_discord_other_formats_and_stray_json(tmp_path):
    html = tmp_path / "general.html"
    html.write_text("<html></html>")
    with pytest.raises(SourceError, match="--format Json"):
        read("discord", html)
    folder = tmp_path / "exports"
    shutil.copytree(SAMPLES["discord"][1], folder)
    (folder / "settings.json").write_text('{"theme": "dark"}')
    rows, _, notes = read("discord", folder)
    assert rows.height == read_sample("discord")[0].height
    assert any("skipped 1 JSON file(s)" in n for n in notes)
