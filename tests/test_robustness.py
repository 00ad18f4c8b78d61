"""One odd record never rejects its file: each connector reads its own sample with one
message corrupted (a list or a number where a name or a text is, a time out of range,
deep nesting, an object as content); that message is quarantined with its location,
the others land."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl.cli import cli
from etl.config import Owner
from etl.schemas.tables import RAW_MESSAGES
from etl.sources import SourceContext, get_source

DATA = Path(__file__).parent / "data"

# connector -> (sample, the JSON files holding messages, where the message list is, options)
SAMPLES = {
    "messenger": (DATA / "messenger", "**/message_*.json", "messages", {}),
    "instagram": (DATA / "instagram", "**/message_*.json", "messages", {}),
    "slack": (DATA / "slack" / "export", "*/*.json", None, {"me": "U01JORDAN"}),
    "discord": (DATA / "discord" / "export", "**/*.json", "messages", {}),
    "google-chat": (DATA / "google_chat" / "Takeout", "**/messages.json", "messages", {"timezone": "UTC"}),
}

BIG = "__BIG_NUMBER__"
# What one record may hold instead of its value; BIG is written as 1e999 (orjson refuses it).
BAD_VALUES = [
    ["a", "list", 1],
    12345,
    3.5,
    {"an": "object"},
    BIG,
    -9223372036854775808,
    9223372036854775807,
    253402300800000,  # past year 9999 in ms
    "0001-01-01T00:00:00",
    True,
    None,
    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
]


def read(name: str, path: Path, options: dict):
    ctx = SourceContext(paths=[path], options=dict(options), owner=Owner(names=("Jordan Rivera",)),
                        previous_watermark=lambda s: None)  # fmt: skip
    batches = list(get_source(name).read(ctx))
    rows = pl.concat([b.rows for b in batches]) if batches else RAW_MESSAGES.empty_frame(exclude=("ingest_run_id",))
    return rows, [q for b in batches for q in b.quarantined]


def message_files(name: str, root: Path) -> list[Path]:
    sample, pattern, _, _ = SAMPLES[name]
    return [root] if pattern is None else sorted(p for p in root.glob(pattern) if p.is_file())


def messages_of(name: str, data):
    key = SAMPLES[name][2]
    if name == "telegram":
        return data["chats"]["list"][0]["messages"] if "chats" in data else data["messages"]
    return data if key is None else data.get(key)


def copy(name: str, tmp: Path) -> Path:
    sample = SAMPLES[name][0]
    target = tmp / sample.name
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    (shutil.copytree if sample.is_dir() else shutil.copy)(sample, target)
    return target


@pytest.mark.parametrize("name", sorted(SAMPLES))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_one_corrupt_record_is_quarantined_and_the_rest_lands(name, data, tmp_path):
    root = copy(name, tmp_path)
    clean_rows, clean_quarantine = read(name, root, SAMPLES[name][3])
    files = [f for f in message_files(name, root) if isinstance(messages_of(name, json.loads(f.read_text())), list)
             and messages_of(name, json.loads(f.read_text()))]  # fmt: skip
    file = data.draw(st.sampled_from(files))
    doc = json.loads(file.read_text())
    messages = messages_of(name, doc)
    index = data.draw(st.integers(0, len(messages) - 1))
    message = messages[index]
    field = data.draw(st.sampled_from(sorted(message)))
    message[field] = data.draw(st.sampled_from(BAD_VALUES))
    file.write_text(json.dumps(doc).replace(f'"{BIG}"', "1e999"))

    rows, quarantine = read(name, root, SAMPLES[name][3])

    # The others land: at most the rows of that one message (its reactions, its parts) are missing.
    assert rows.height >= clean_rows.height - 6
    # Every quarantine row names where it was and why; a new one names the corrupted file.
    assert all(q.location and q.reason for q in quarantine)
    before = {q.location for q in clean_quarantine}
    assert all(file.name in q.location for q in quarantine if q.location not in before)


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("bad", [["a", "list", 1], 12345, {"an": "object"}, BIG, -9223372036854775808])
def test_a_message_whose_every_field_is_bad_is_one_quarantine_row(name, bad, tmp_path):
    root = copy(name, tmp_path)
    clean_rows, clean_quarantine = read(name, root, SAMPLES[name][3])
    file = next(f for f in message_files(name, root) if messages_of(name, json.loads(f.read_text())))
    doc = json.loads(file.read_text())
    messages = messages_of(name, doc)
    messages[0] = {key: bad for key in messages[0]}
    file.write_text(json.dumps(doc).replace(f'"{BIG}"', "1e999"))
    rows, quarantine = read(name, root, SAMPLES[name][3])
    assert rows.height >= clean_rows.height - 6 > 0
    before = {q.location for q in clean_quarantine}
    new = [q for q in quarantine if q.location not in before]
    assert len(new) == 1 and file.name in new[0].location and new[0].reason


def test_cli_lands_the_rest_without_a_traceback(tmp_path):
    root = copy("messenger", tmp_path)
    file = message_files("messenger", root)[0]
    doc = json.loads(file.read_text())
    doc["messages"][0]["sender_name"] = ["Jordan", 1]
    doc["messages"][-1]["timestamp_ms"] = -9223372036854775808
    file.write_text(json.dumps(doc))
    result = CliRunner().invoke(cli, ["--warehouse", str(tmp_path / "w.duckdb"), "ingest", "messenger", str(root)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert "quarantine" in result.output
