"""With --redact-pii, no file of a version carries another person's phone number,
address or name: an independent scan of everything written, over the demo and the
sample exports (bundled and shared).

The scan does not use the redactor's rules: it collects what the warehouse knows of
other people (their handles, the names exports and contacts gave them, any number or
address in what they wrote) and searches every file for it.
"""

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import shared_fixture
from etl.cli import cli
from etl.demo import samples
from etl.transforms.labels import looks_like_handle, normalise_phone
from etl.warehouse import open_warehouse

DATA = Path(__file__).parent / "data"
OWNER_NAMES = ["Sam Rivera", "Sam", "Jordan Rivera", "Ash Ketchum", "Mary"]
CONFIG = """\
[owner]
names = ["Sam Rivera", "Sam", "Jordan Rivera", "Ash Ketchum", "Mary"]
emails = ["sam@example.com", "jordan.rivera@example.com"]
phones = ["+15550100100"]
handles = ["U01JORDAN", "111111111111111111"]
region = "US"

[contacts]
"+14155550167" = "Lena Fischer"
"mei.chen@example.com" = "Mei Chen"
"""
OWNER_EMAILS = {"sam@example.com", "jordan.rivera@example.com"}
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
DIGIT_RUN = re.compile(r"\+?\(?\d[\d\s().\-]{5,}\d")


def _ingests(tmp_path):
    yield ["imessage", "--db", str(samples() / "chat.db")]
    yield ["whatsapp", "--timezone", "UTC", str(DATA / "whatsapp")]
    yield ["telegram", "--timezone", "UTC", str(DATA / "telegram" / "result.json")]
    yield ["email", str(DATA / "mail" / "takeout.mbox")]
    yield ["slack", "--me", "U01JORDAN", str(DATA / "slack" / "export")]
    yield ["discord", "--me", "111111111111111111", str(DATA / "discord" / "export")]
    yield ["messenger", str(DATA / "messenger")]
    yield ["transcript", "--me", "Speaker 1", str(DATA / "transcript" / "labelled.srt")]
    yield ["whatsapp", "--timezone", "UTC", str(shared_fixture("whatsapp/whatstk/pokemon.txt"))]
    yield ["whatsapp", "--timezone", "UTC", str(shared_fixture("whatsapp/whatstk/lorem.txt"))]
    yield ["telegram", "--timezone", "UTC", str(shared_fixture("chat_exports/chat-miner/telegram/test_single_export.json"))]
    yield ["email", str(shared_fixture("mbox/mail-parser"))]


@pytest.fixture(scope="module")
def version(tmp_path_factory):
    home = tmp_path_factory.mktemp("scan")
    (home / "corpus.toml").write_text(CONFIG)
    base = ["--config", str(home / "corpus.toml"), "--warehouse", str(home / "w.duckdb"), "--datasets", str(home / "d")]
    runner = CliRunner()
    for args in _ingests(home):
        result = runner.invoke(cli, [*base, "ingest", *args])
        assert result.exit_code == 0, (args, result.output)
    result = runner.invoke(cli, [*base, "build", "--version", "p1", "--redact-pii"])
    assert result.exit_code == 0, result.output
    return home / "w.duckdb", home / "d" / "p1"


def _others(warehouse):
    """Phone numbers (E.164), addresses and names of everyone but the owner."""
    with open_warehouse(warehouse, read_only=True) as con:
        rows = con.execute(
            "SELECT sender, sender_name, text, is_owner FROM raw_messages"
        ).fetchall()
    phones, emails, names = set(), set(), set()
    for sender, name, text, is_owner in rows:
        for value in (sender, name):
            if value and looks_like_handle(value):
                if "@" in value:
                    emails.add(value.strip().lower())
                elif (e164 := normalise_phone(value, "US")) is not None:
                    phones.add(e164)
        if name and not looks_like_handle(name) and not is_owner:
            names.add(name.strip())
        for found in EMAIL.findall(text or ""):
            emails.add(found.lower())
    emails -= OWNER_EMAILS
    names |= {"Lena Fischer", "Mei Chen"}
    names -= set(OWNER_NAMES)
    return phones - {"+15550100100"}, emails, names


def _files(path):
    return {p.relative_to(path).as_posix(): p.read_text(encoding="utf-8") for p in sorted(path.rglob("*")) if p.is_file()}


def test_the_version_has_examples_from_many_sources(version):
    _, path = version
    manifest = json.loads((path / "manifest.json").read_text())
    assert len(manifest["counts"]["examples_by_source"]) >= 4
    assert manifest["privacy"]["speaker_labels"] == "pseudonyms"


def test_no_other_persons_email_address_in_any_file(version):
    warehouse, path = version
    _, emails, _ = _others(warehouse)
    assert emails, "the samples name other people's addresses: the scan must have something to look for"
    for relpath, text in _files(path).items():
        found = {e.lower() for e in EMAIL.findall(text)} - OWNER_EMAILS
        assert not found, f"{relpath}: {sorted(found)[:5]}"


def test_no_other_persons_phone_number_in_any_file(version):
    warehouse, path = version
    phones, _, _ = _others(warehouse)
    assert phones
    tails = {p[-9:] for p in phones}  # the subscriber digits, whatever the written form
    for relpath, text in _files(path).items():
        for run in DIGIT_RUN.findall(text):
            digits = re.sub(r"\D", "", run)
            assert not any(t in digits for t in tails), f"{relpath}: {run!r}"
    # Any number a reader would dial, in the texts themselves (ids and hashes aside).
    for relpath in (p for p in _files(path) if p.endswith(".jsonl")):
        for line in (path / relpath).read_text().splitlines():
            record = json.loads(line)
            texts = [m["content"] for m in record.get("messages", [])] or [
                record.get(k, "") for k in ("system", "prompt", "chosen", "rejected")
            ]
            for run in DIGIT_RUN.findall("\n".join(texts)):
                if run.lstrip().startswith("+") or len(re.sub(r"\D", "", run)) >= 10:
                    assert normalise_phone(run, "US") is None, f"{relpath}: {run!r}"


def test_no_other_persons_name_in_any_file(version):
    warehouse, path = version
    _, _, names = _others(warehouse)
    assert "Lena Fischer" in names and len(names) >= 5
    for relpath, text in _files(path).items():
        for name in names:
            assert not re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.I), f"{relpath}: {name!r}"


def test_the_scan_finds_them_without_redaction(version):
    """The same warehouse built without --redact-pii: the scan has something to catch."""
    warehouse, path = version
    result = CliRunner().invoke(cli, [
        "--config", str(path.parent.parent / "corpus.toml"), "--warehouse", str(warehouse),
        "--datasets", str(path.parent), "build", "--version", "plain",
    ])
    assert result.exit_code == 0, result.output
    _, emails, names = _others(warehouse)
    text = "\n".join(_files(path.parent / "plain").values())
    assert any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", text, re.I) for n in names)
