"""The build's strip stage for mail: quote headers, separators, header blocks, mobile
signatures and list footers in 25 languages (etl.transforms.replies)."""

from __future__ import annotations

import email
import json

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import shared_fixture
from email_corpus import LANGUAGES, cases
from etl.build import build_version
from etl.config import Config, Owner
from etl.transforms import replies
from etl.transforms.replies import REASONS, cut_reply, strip_replies, strip_reply, strip_reply_details
from factories import land, message
from test_transforms_text import GITHUB, GITHUB_EXPECTED, TALON_KNOWN_FAILURES, ZAPIER

CASES = cases()
TALON = "email_reply/talon"


@pytest.mark.parametrize("language", LANGUAGES)
def test_corpus_language(language):
    wrong = [
        (shape, body, strip_reply(body), expected)
        for lang, shape, body, expected in CASES
        if lang == language and strip_reply(body) != expected
    ]
    assert not wrong, wrong[:3]


def test_corpus_covers_every_language_and_shape():
    assert {c[0] for c in CASES} == set(LANGUAGES) and len(LANGUAGES) == 25
    assert len({c[1] for c in CASES}) >= 15
    assert set(replies.languages()) >= set(LANGUAGES)


def test_every_data_set_names_its_source():
    for name in ("quote_headers", "header_labels", "separators", "mobile_signatures"):
        data = replies._load(name)
        assert data["_about"] and data["sets"]
        assert all(entry["source"] and entry["client"] for entry in data["sets"])


# ---------------------------------------------------------------------------- the open suites


def _read(relpath) -> str:
    return shared_fixture(relpath).read_bytes().decode("utf-8")


def test_talon_inline_text_cases():
    cases_ = json.loads(shared_fixture(f"{TALON}/inline_text_cases.json").read_bytes())["cases"]
    failing = {i for i, c in enumerate(cases_) if strip_reply(c["input"]) != c["expected"]}
    assert failing == set(TALON_KNOWN_FAILURES)


@pytest.mark.parametrize(
    "client",
    ["android", "aol", "apple_mail", "apple_mail_2", "comcast", "gmail", "hotmail", "iphone", "outlook",
     "sparrow", "thunderbird", "yahoo"],
)  # fmt: skip
def test_talon_standard_replies(client):
    message_ = email.message_from_binary_file(shared_fixture(f"{TALON}/standard_replies/{client}.eml").open("rb"))
    body = next(p for p in message_.walk() if p.get_content_type() == "text/plain").get_payload(decode=True)
    assert strip_reply(body.decode("utf-8")) == "Hello"


@pytest.mark.parametrize("name", sorted(GITHUB_EXPECTED))
def test_github_replies(name):
    assert strip_reply(_read(f"{GITHUB}/emails/{name}")).rstrip() == GITHUB_EXPECTED[name]


def test_zapier_replies():
    for case in json.loads(shared_fixture(f"{ZAPIER}/expected.json").read_bytes())["cases"]:
        reply = strip_reply(_read(f"{ZAPIER}/{case['file']}"))
        if "expected_reply" in case:
            assert reply.rstrip() == case["expected_reply"], case["file"]
        if "expected_reply_stripped" in case:
            assert reply.strip() == case["expected_reply_stripped"], case["file"]
        for fragment in case.get("reply_contains", []):
            assert fragment in reply, case["file"]
        for fragment in case.get("reply_not_contains", []):
            assert fragment not in reply, case["file"]


# ---------------------------------------------------------------------------- reasons and shapes

REASON_CASES = [
    ("Ok\n\nAm 05.02.2024 um 10:00 schrieb Jan <j@x.de>:\n> alt", "Ok", ["quote_header:reply"]),
    ("Ok\n\n26.06.2014, 14:41, \"Bob\" <bob@example.com>:\nold", "Ok", ["quote_header:date_address"]),
    ("Ok\n\nVon: Jan <j@x.de>\nGesendet: Montag, 5. Februar 2024 10:00\nAn: Sam\nBetreff: x\n\nalt", "Ok",
     ["quote_header:outlook"]),
    ("Ok\n\n-----Původní zpráva-----\nOd: x", "Ok", ["quote_header:original_message"]),
    ("Ok\n\nWysłane z iPhone'a", "Ok", ["signature:mobile"]),
    ("Ok\n\n_______________\nteam mailing list\nhttps://x.org/mailman/listinfo/team", "Ok", ["footer:mailing_list"]),
    ("Ok\n-- \nJan", "Ok", ["signature:dashes"]),
    ("Ok\n\nDen 5. feb. 2024 kl. 10.00 skrev jan <jan@x.dk>:\n\n> q", "Ok", ["quote_header:reply"]),
    ("Ok\n\n> old\n> older", "Ok", ["quote:lines"]),
]


@pytest.mark.parametrize(("text", "expected", "reasons"), REASON_CASES)
def test_reasons(text, expected, reasons):
    got, chars, fired = strip_reply_details(text)
    assert (got, fired) == (expected, reasons)
    assert chars == len(text) - len(expected)
    assert set(fired) <= set(REASONS)


KEPT = [
    "I wrote 3 tests:\n- a\n- b",
    "Meeting on 12.03.2024 at 14:00 with Bob:\n- agenda",
    "Den 5. marts skrev jeg til kommunen og de svarede:\n- nej",
    "Am 3.5. schrieb ich dem Vermieter folgendes:\n- Heizung",
    "Name: John\nEmail: j@x.com\nPhone: 555-1234",
    "Sent from my desk, is much easier then my mobile phone.",
    "Sent with love",
    "Enviado desde casa, con calma.",
    "2 > 1 is true\nand 3 > 2",
    "FYI\n\n---------- Weitergeleitete Nachricht ---------\nVon: a@b.c\nDatum: Mo., 5. Feb. 2024\n\nbody",
    "Début du message réexpédié :\n\nDe: a@b.c\nObjet: x\n\ncorps",
]


@pytest.mark.parametrize("text", KEPT)
def test_owner_lines_that_look_like_headers_stay(text):
    assert strip_reply_details(text) == (text, 0, [])


def test_interleaved_reply_keeps_the_owner_between_quotes():
    text = (
        "> Can you come?\n\nYes, at 10.\n\nLe 5 févr. 2024 à 10:00, Jan <j@x.fr> a écrit :\n> Et le budget ?\n\n"
        "Budget: 300.\n\nEnvoyé de mon iPhone"
    )
    assert strip_reply(text) == "Yes, at 10.\n\nBudget: 300."


def test_a_huge_line_and_many_header_like_lines_cost_one_pass():
    # Lines longer than MAX_LINE are never candidates; short ones are tried against the
    # templates whose keyword they contain, so this is bounded by the input's size.
    huge = "Thanks\n\n" + "x" * 8_000_000 + "\n\nOn 5 Feb 2024, Jan <j@x.com> wrote:\n> q"
    assert strip_reply(huge) == "Thanks\n\n" + "x" * 8_000_000
    many = ("Den 5. " + "a " * 100 + "skrev b:\n") * 2000
    assert cut_reply(many) == (many, [])


PIECES = st.sampled_from(
    ["Thanks!", "On 5 Feb 2024, Jan <j@x.com> wrote:", "> quoted", "Von: Jan <j@x.de>", "Gesendet: 5.2.2024 10:00",
     "An: Sam", "Betreff: x", "-----Original Message-----", "Enviado desde mi iPhone", "_" * 20, "team mailing list",
     "26.06.2014, 14:41, Bob <b@x.ru>:", "", "Date: 1 May", "- item", "2 > 1"]
)  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.one_of(PIECES, st.text(max_size=12)), max_size=14).map("\n".join))
def test_cut_only_removes_lines(text):
    reply, reasons = cut_reply(text)
    if not reasons:
        assert reply == text
        return
    remaining = iter(text.split("\n"))
    assert all(any(line.rstrip() == other.rstrip() for other in remaining) for line in reply.split("\n") if line)


def test_chat_rows_keep_the_general_rules_only():
    frame = pl.DataFrame(
        {"source": ["email", "whatsapp"], "text": ["Ok\n\nWysłane z iPhone'a"] * 2, "drop_reason": [None, None]},
        schema_overrides={"drop_reason": pl.String},
    )
    out = strip_replies(frame.lazy()).collect()
    assert out["text"].to_list() == ["Ok", "Ok\n\nWysłane z iPhone'a"]


# ---------------------------------------------------------------------------- in the build

MAIL = [
    message("m1", "Kiedy się spotkamy?", owner=False, conversation="t1", source="email"),
    message("m2", "W czwartek o 10.\n\npon., 5 lut 2024 o 10:00 Jan Kowalski <jan@example.com> napisał(a):\n\n"
            "> Kiedy się spotkamy?\n", owner=True, conversation="t1", minutes=1, source="email"),
    message("m3", "Czy budżet jest gotowy?", owner=False, conversation="t2", source="email"),
    message("m4", "Tak, wysłałem go wczoraj.\n\nWysłane z iPhone'a", owner=True, conversation="t2", minutes=1,
            source="email"),
]


def _assistant_turns(path) -> list[str]:
    turns = []
    for split in sorted((path / "chatml").glob("*.jsonl")):
        for line in split.read_text().splitlines():
            turns += [m["content"] for m in json.loads(line)["messages"] if m["role"] == "assistant"]
    return turns


def test_build_cuts_are_recorded_with_their_reason(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    land(warehouse, MAIL, name="email")
    result = build_version(warehouse, tmp_path / "d", "v1", Config(owner=Owner(names=("Sam",))))
    assert sorted(_assistant_turns(result.path)) == ["Tak, wysłałem go wczoraj.", "W czwartek o 10."]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("SELECT message_id, reason, chars FROM build_cuts WHERE version = 'v1' ORDER BY 1").fetchall()
    assert rows == [("m2", "quote_header:reply", len(MAIL[1]["text"].rstrip()) - len("W czwartek o 10.")),
                    ("m4", "signature:mobile", len("\n\nWysłane z iPhone'a"))]  # fmt: skip


def test_a_warehouse_landed_before_gets_the_new_cuts_without_a_new_ingest(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    land(warehouse, MAIL, name="email")
    with duckdb.connect(str(warehouse)) as con:  # as the previous release left it
        con.execute("DROP TABLE build_cuts")
        con.execute("DELETE FROM _migrations WHERE name = 'm004_build_cuts'")
    result = build_version(warehouse, tmp_path / "d", "v1", Config(owner=Owner(names=("Sam",))))
    turns = _assistant_turns(result.path)
    assert "napisał" not in "".join(turns) and "iPhone" not in "".join(turns)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM build_cuts").fetchone() == (2,)


# ---------------------------------------------------------------------------- from the connector to the build


def _landed_and_stripped(paths) -> list[str]:
    from etl.sources import SourceContext, get_source
    from etl.transforms.text import normalise_text

    ctx = SourceContext(paths=list(paths), options={}, owner=Owner(), previous_watermark=lambda stream: None)
    rows = pl.concat([b.rows for b in get_source("email").read(ctx)])
    frame = rows.select("source", "source_id", "kind", "text").with_columns(drop_reason=pl.lit(None, pl.String))
    return strip_replies(normalise_text(frame.lazy())).collect().sort("source_id")["text"].to_list()


def test_talon_standard_replies_through_the_connector_and_the_strip_stage():
    folder = shared_fixture(f"{TALON}/standard_replies")
    assert _landed_and_stripped(sorted(folder.glob("*.eml"))) == ["Hello"] * len(list(folder.glob("*.eml")))


@pytest.mark.parametrize(
    "client",
    ["gmail", "hotmail", "mail_ru", "ms_outlook_2003", "ms_outlook_2007", "ms_outlook_2010", "thunderbird",
     "windows_mail", "yandex_ru"],
)  # fmt: skip
def test_talon_html_replies_land_marked_and_the_build_cuts_them(client, tmp_path):
    from email.message import EmailMessage

    html = shared_fixture(f"{TALON}/html_replies/{client}.html").read_bytes().decode("utf-8", "replace")
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "Robin <robin@example.com>", "sam@example.com", "Re: hi"
    mail["Message-ID"], mail["Date"] = f"<{client}@example.com>", "Mon, 5 Feb 2024 10:00:00 +0000"
    mail.set_content(html, subtype="html")
    path = tmp_path / f"{client}.eml"
    path.write_bytes(mail.as_bytes())
    (text,) = _landed_and_stripped([path])
    assert "".join(text.split()) == "Hi.Iamfine.Thanks,Alex"


def test_the_pre_filter_lets_every_mobile_signature_through():
    frame_texts = []
    for entry in replies._load("mobile_signatures")["sets"]:
        for templates in entry["templates"].values():
            frame_texts += ["Ok\n\n" + t.replace("{device}", "iPhone") for t in templates]
    hinted = pl.Series(frame_texts).str.contains(replies._hint())
    assert hinted.all(), [t for t, ok in zip(frame_texts, hinted) if not ok]
    assert not pl.Series(["plain words only", "Ok, see you"]).str.contains(replies._hint()).any()
