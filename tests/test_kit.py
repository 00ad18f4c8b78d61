"""The connector kit (`sources/base.py`): what every connector gets without writing it,
and the README's example connector, run as written."""

from __future__ import annotations

import json
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from etl.ingest import run_ingest
from etl.schemas.owner import Owner
from etl.sources import SOURCES, SourceContext, SourceError
from etl.sources.base import Quarantined, Skip, metadata_json, recognise, source
from etl.warehouse import open_warehouse

REPO = Path(__file__).resolve().parent.parent


def readme_example() -> str:
    section = (REPO / "README.md").read_text(encoding="utf-8").split("## Writing a connector", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def example():
    """The README's connector, registered for the test and removed after it."""
    namespace: dict = {"__name__": "example_chat"}
    exec(compile(readme_example(), "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    yield SOURCES["example-chat"]
    del SOURCES["example-chat"]


def export(tmp_path: Path) -> Path:
    chats = {"chats": [
        {"id": "c1", "title": "Climbing", "messages": [
            {"id": "1", "at": "2024-03-01T18:00:00+01:00", "from": "lena", "text": "Tonight?"},
            {"id": "2", "at": "2024-03-01T18:05:00+01:00", "from": "sam", "text": "Yes!", "edited": True},
            {"id": "3", "from": "sam", "text": "no time"},
        ]},
        {"title": "a chat without an id", "messages": []},
    ]}  # fmt: skip
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("Example Chat/chat.json", json.dumps(chats))
    return archive


def test_the_readme_example_is_short_and_lands_through_the_loader(example, tmp_path):
    assert len(readme_example().splitlines()) < 80
    warehouse = tmp_path / "w.duckdb"
    result = run_ingest(warehouse, example, [export(tmp_path)], {"me": ("sam",)}, Owner())
    assert (result.new, result.quarantined) == (2, 2)
    with open_warehouse(warehouse, read_only=True) as con:
        rows = con.execute("SELECT source, source_id, sent_at, is_owner, metadata FROM raw_messages ORDER BY 2").fetchall()
        reasons = sorted(r for (r,) in con.execute("SELECT reason FROM quarantine").fetchall())
        (files,) = con.execute("SELECT file_sha256 FROM ingest_runs").fetchone()
    assert [(r[0], r[1], r[3]) for r in rows] == [("example-chat", "c1:1", False), ("example-chat", "c1:2", True)]
    assert rows[0][2] == datetime(2024, 3, 1, 17, 0, tzinfo=UTC)
    assert json.loads(rows[0][4]) == {} and json.loads(rows[1][4]) == {"edited": True}
    assert reasons == ["a chat without an id", "no id or time"]
    assert list(json.loads(files)) == [str(tmp_path / "export.zip")]
    # Run again: nothing new, nothing lost.
    again = run_ingest(warehouse, example, [export(tmp_path)], {"me": ("sam",)}, Owner())
    assert (again.new, again.unchanged) == (0, 2)


def read(src, *paths, options=None, owner=None):
    ctx = SourceContext(paths=list(paths), options=dict(options or {}), owner=owner or Owner(),
                        previous_watermark=lambda s: None)  # fmt: skip
    batches = list(src.read(ctx))
    return [r for b in batches for r in b.rows.iter_rows(named=True)], [q for b in batches for q in b.quarantined], ctx


def test_no_input_is_one_line_naming_the_paths_and_what_was_expected(example, tmp_path):
    with pytest.raises(SourceError) as error:
        read(example, tmp_path)
    assert str(error.value) == (f"{tmp_path}: no chat.json found; "
                                "expected Example Chat's chat.json (chats with messages), its folder or the .zip")  # fmt: skip
    with pytest.raises(SourceError, match="no such file or folder"):
        read(example, tmp_path / "missing")


def test_truncated_and_invalid_json_say_which(example, tmp_path):
    (tmp_path / "chat.json").write_text('{"chats": [{"id": "c1", "mess')
    with pytest.raises(SourceError, match=r"chat\.json: truncated JSON .*download or unzip it again"):
        read(example, tmp_path)
    (tmp_path / "chat.json").write_text('{"chats": [}] tail')
    with pytest.raises(SourceError, match=r"chat\.json: not valid JSON"):
        read(example, tmp_path)


def test_me_adds_to_the_owner_and_unknown_stays_unknown(example, tmp_path):
    path = export(tmp_path)
    rows, _, ctx = read(example, path)
    assert [r["is_owner"] for r in rows] == [None, None]
    assert any("pass --me (your Example Chat user name)" in n and "is_owner unknown" in n for n in ctx.notes)
    rows, _, _ = read(example, path, options={"me": "sam"}, owner=Owner(names=("Lena",)))
    assert [r["is_owner"] for r in rows] == [True, True]
    rows, _, ctx = read(example, path, owner=Owner(names=("Nobody",)))
    assert [r["is_owner"] for r in rows] == [False, False]
    assert any("none of the authors" in n for n in ctx.notes)
    # A phone number matches however it is written.
    assert SourceContext([], {}, Owner(phones=("+15551234567",)), lambda s: None).is_owner("+1 (555) 123-4567")


def test_me_and_timezone_come_from_the_declaration(example):
    assert [p.name for p in example.params] == ["me"] and example.params[0].multiple


@pytest.fixture
def local_times():
    @source("zoned", version=1, help="Times without a zone.", expects="a list of times", timezone=True)
    def read_zoned(ctx):
        for i, at in enumerate(["2024-07-01T12:00:00", "2024-12-01T12:00:00"]):
            yield {"source_id": str(i), "sent_at": ctx.to_utc(datetime.fromisoformat(at)), "kind": "text"}

    yield SOURCES["zoned"]
    del SOURCES["zoned"]


def test_zoneless_times_use_the_machines_zone_said_once(local_times, monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Berlin")
    rows, _, ctx = read(local_times)
    assert [r["sent_at"].hour for r in rows] == [10, 11]  # summer and winter time
    assert ctx.notes == ["times written without a zone were read as Europe/Berlin (this machine's zone); "
                         "pass --timezone to read them in another"]  # fmt: skip
    rows, _, ctx = read(local_times, options={"timezone": "America/New_York"})
    assert [r["sent_at"].hour for r in rows] == [16, 17] and ctx.notes == []
    with pytest.raises(SourceError, match="--timezone 'Mars/Base': not a known time zone"):
        read(local_times, options={"timezone": "Mars/Base"})
    assert [p.name for p in local_times.params] == ["timezone"]


def test_an_unreadable_file_in_a_folder_is_quarantined_and_the_run_goes_on(tmp_path):
    @source("per-file", version=1, help="One JSON file per chat.", expects="JSON files",
            accept=lambda rel: rel.endswith(".json"))  # fmt: skip
    def read_per_file(ctx):
        def rows(file):
            data = ctx.load_json(file, skip=True)
            yield {"source_id": file.name, "text": data["text"], "kind": "text", "metadata": {"n": None}}

        yield from ctx.each(ctx.inputs(), rows, where=lambda i, f: f.location, payload=lambda f: None)

    try:
        (tmp_path / "a.json").write_text('{"text": "fine"}')
        (tmp_path / "b.json").write_text('{"text": "cut sh')
        rows, quarantined, ctx = read(SOURCES["per-file"], tmp_path)
    finally:
        del SOURCES["per-file"]
    assert [(r["source_id"], r["source"], r["metadata"]) for r in rows] == [("a.json", "per-file", "{}")]
    (broken,) = quarantined
    assert broken.location == str(tmp_path / "b.json") and broken.reason.startswith("truncated JSON")
    assert sorted(Path(p).name for p in ctx.files) == ["a.json", "b.json"]


def test_skip_quarantines_one_unit_whole(tmp_path):
    from etl.sources.base import SourceContext as Ctx

    ctx = Ctx([], {}, Owner(), lambda s: None)

    def rows(unit):
        yield {"source_id": f"{unit}:1"}
        if unit == "bad":
            raise Skip("broken links", source_id="bad")

    got = list(ctx.each(["good", "bad", "fine"], rows, where=lambda i, u: f"unit {i}"))
    assert [g["source_id"] for g in got if isinstance(g, dict)] == ["good:1", "fine:1"]
    assert [g for g in got if isinstance(g, Quarantined)] == [Quarantined("unit 1", "broken links", '"bad"', "bad")]


def test_one_metadata_rule():
    assert metadata_json({"b": None, "a": [], "c": 0, "d": False, "e": ""}) == '{"a":[],"c":0,"d":false,"e":""}'


def test_a_connector_pointed_at_another_apps_export_names_the_right_command():
    head = "12/01/2024, 09:14 - Lena: hi\n".encode()
    assert recognise(head, but="telegram").name == "whatsapp"
    assert recognise(b'{"chats": []}', but="telegram") is None
