"""normalise_text, strip_quotes_and_signatures and drop_meta_messages."""

from __future__ import annotations

import email
import json
import unicodedata

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import shared_fixture
from etl.schemas.tables import KINDS
from etl.transforms import text as T
from etl.transforms.text import (
    STRIP_RULES,
    drop_meta_messages,
    meta_reason_str,
    normalise_str,
    normalise_text,
    strip_details_str,
    strip_quotes_and_signatures,
    strip_reply_str,
)


def messages(texts, kinds=None, reasons=None) -> pl.DataFrame:
    n = len(texts)
    return pl.DataFrame(
        {
            "source": ["test"] * n,
            "source_id": [str(i) for i in range(n)],
            "kind": kinds or ["text"] * n,
            "text": texts,
            "is_owner": [True] * n,
            "metadata": ["{}"] * n,
            "drop_reason": reasons or [None] * n,
        },
        schema_overrides={"text": pl.String, "drop_reason": pl.String, "kind": pl.String},
    )


def run(transform, texts, **kw) -> pl.DataFrame:
    frame = messages(texts, **kw)
    out = transform(frame.lazy()).collect()
    assert out.height == frame.height, "a transform must never remove rows"
    assert out["source_id"].to_list() == frame["source_id"].to_list(), "row order must be kept"
    return out


def basic_only(s: str) -> str:
    """The vectorised rules alone (no ftfy, no HTML), to build expectations."""
    return T._basic_normalise_series(pl.Series([s], dtype=pl.String))[0]


# ============================================================================ normalise_text

NORMALISE_CASES = [
    # (input, expected, why)
    ("Hello\r\nWorld", "Hello\nWorld", "CRLF to LF"),
    ("a\rb", "a\nb", "lone CR to LF"),
    ("a  \nb\t\nc", "a\nb\nc", "trailing spaces and tabs per line"),
    ("a\n\n\n\n\nb", "a\n\nb", "3+ blank lines collapse to one"),
    ("a\n\n\nb", "a\n\nb", "two blank lines also collapse to one"),
    ("a\n\nb", "a\n\nb", "one blank line stays"),
    ("  \n hi there \n\n ", "hi there", "outer whitespace trimmed"),
    ("10\u00a0km and 5\u202fPM", "10 km and 5 PM", "NBSP and narrow NBSP become spaces"),
    ("zero\u200bwidth", "zerowidth", "zero-width space removed"),
    ("\u200eimage\u200f", "image", "LRM/RLM removed"),
    ("\u202ab\u202c\u2066c\u2069", "bc", "bidi embeddings and isolates removed"),
    ("\ufeffBOM", "BOM", "BOM removed"),
    ("word\u2060joiner", "wordjoiner", "word joiner removed"),
    ("\ufffctest 1\ufffctest 2 \ufffctest 3", "test 1 test 2 test 3", "attachment placeholders removed"),
    ("family 👨\u200d👩\u200d👧 ok", "family 👨\u200d👩\u200d👧 ok", "ZWJ kept inside an emoji sequence"),
    ("🏳️\u200d🌈", "🏳️\u200d🌈", "ZWJ kept after a variation selector"),
    ("stray\u200d joiner", "stray joiner", "stray ZWJ removed"),
    ("a\u200cb", "ab", "stray ZWNJ removed"),
    ("می\u200cخواهم", "می\u200cخواهم", "ZWNJ kept in Persian spelling"),
    ("e\u0301", "\u00e9", "NFC composes"),
    ("😂👍❤️", "😂👍❤️", "emoji kept"),
    ("Caf\u00c3\u00a9 tonight? It\u00e2\u0080\u0099s on me", "Café tonight? It’s on me", "mojibake repaired"),
    ("He's Justin\u00e2\u009d\u00a4", "He's Justin❤", "mojibake emoji repaired"),
    ("“curly” quotes stay", "“curly” quotes stay", "curly quotes are not uncurled"),
    ("café, naïve, São Paulo", "café, naïve, São Paulo", "correct accents untouched"),
    (
        "<html><head><style>p{color:red}</style></head><body><p>Hello <b>there</b></p>"
        "<div>Line<br>two</div><script>alert(1)</script></body></html>",
        "Hello there\n\nLine\ntwo",
        "HTML to text: script/style dropped, <p>/<div>/<br> break lines",
    ),
    ("<div>Caf&eacute; &amp; bar</div>", "Café & bar", "HTML entities decoded"),
    ("<div>a\n   b</div>", "a b", "HTML source whitespace collapsed"),
    ("why does my <div> not center?", "why does my <div> not center?", "a message mentioning a tag is not HTML"),
    ("use <b>bold</b> here", "use <b>bold</b> here", "HTML must start the message"),
    ("AT&amp;T", "AT&amp;T", "entities in plain text are left alone"),
]


@pytest.mark.parametrize(("text", "expected", "why"), NORMALISE_CASES, ids=[c[2] for c in NORMALISE_CASES])
def test_normalise_rules(text, expected, why):
    assert normalise_str(text) == expected
    # The frame path and the string helper agree, and the result is stable.
    assert run(normalise_text, [text])["text"][0] == expected
    assert normalise_str(expected) == expected


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "\u200b", "\ufffc", "\u200e\u200f ", None])
def test_normalise_empty_text_dropped(text):
    out = run(normalise_text, [text, "kept"])
    assert out["drop_reason"].to_list() == ["empty", None]


def test_normalise_leaves_empty_non_text_kinds_to_meta():
    out = run(normalise_text, [None, ""], kinds=["reaction", "attachment"])
    assert out["drop_reason"].to_list() == [None, None]
    out = drop_meta_messages(out.lazy()).collect()
    assert out["drop_reason"].to_list() == ["kind:reaction", "kind:attachment"]


def test_normalise_first_reason_wins():
    out = run(normalise_text, ["", "", "fine"], reasons=["duplicate", None, "duplicate"])
    assert out["drop_reason"].to_list() == ["duplicate", "empty", "duplicate"]


def test_normalise_many_rows_mixed():
    texts = ["plain", "Caf\u00c3\u00a9", "a\r\nb", "<div>x</div>", "ok 👍", "", "x\u200by"] * 50
    out = run(normalise_text, texts)
    assert out["text"].to_list() == [normalise_str(t) for t in texts[:7]] * 50


def _ftfy_cases(name):
    return json.loads(shared_fixture(f"mojibake/ftfy/{name}").read_bytes())


@pytest.mark.parametrize("name", ["in-the-wild.json", "synthetic.json", "language-names.json"])
def test_normalise_repairs_ftfy_mojibake_cases(name):
    cases = [c for c in _ftfy_cases(name) if c.get("expect", "pass") == "pass"]
    got = run(normalise_text, [c["original"] for c in cases])["text"].to_list()
    wrong = [
        (c["label"], g)
        for c, g in zip(cases, got)
        if g != basic_only(c.get("fixed-encoding", c["fixed"]))
    ]
    assert wrong == []


def test_normalise_leaves_ftfy_negative_cases_alone():
    # Compared with `fixed-encoding` (fallback `fixed`): one "mostly negative" case does
    # need its C1 control characters fixed; every other one must come back as it was.
    cases = _ftfy_cases("negative.json")
    expected = [c.get("fixed-encoding", c["fixed"]) for c in cases]
    assert sum(e != c["original"] for e, c in zip(expected, cases)) == 1
    got = run(normalise_text, [c["original"] for c in cases])["text"].to_list()
    assert [g for e, g in zip(expected, got) if g != basic_only(e)] == []


def test_mojibake_detector_matches_ftfy():
    """The Rust translation of ftfy's detector flags exactly what ftfy's flags."""
    from ftfy.badness import is_bad

    texts = [c["original"] for n in ("in-the-wild.json", "synthetic.json", "negative.json") for c in _ftfy_cases(n)]
    texts += [normalise_str(t) for t in texts] + ["plain ascii", "café", "naïve £5", "Ã©", "â€™"]
    rust = pl.DataFrame({"t": texts}).select(pl.col("t").str.contains(T._mojibake_pattern())).to_series()
    assert rust.to_list() == [is_bad(t) for t in texts]


def test_nfc_gate_is_exact():
    """Texts with no character from the NFC gate are unchanged by NFC."""
    gate = T._nfc_sensitive()
    sample = [chr(cp) for cp in range(0xC0, 0x3000)] + ["e\u0301", "\u1100\u1161", "\u212b", "क़"]
    flagged = pl.DataFrame({"t": sample}).select(pl.col("t").str.contains(gate)).to_series().to_list()
    for ch, hit in zip(sample, flagged):
        if not hit:
            assert unicodedata.normalize("NFC", "a" + ch) == "a" + ch, repr(ch)


# Pieces that exercise every rule and their interactions (HTML inside mojibake, an
# invisible character splitting a mojibake pair, entities that decode to tags...).
NORMALISE_PIECES = st.sampled_from(
    [
        "<p>", "</p>", "<div>", "</div>", "<br>", "<b>", "</b>", "<html>", "</html>", "<script>x</script>",
        "&amp;", "&lt;p&gt;", "&nbsp;", "&Atilde;&copy;", "Ã©", "Ã", "©", "â€™", "â€", "Â", "\xa0", "Ã\xa0",
        "\x80", "\x9d", "Ð¸", "\u200b", "\u200c", "\u200d", "\u200e", "\u202a", "\u2066", "\ufeff", "\ufffc",
        "\u202f", "\r\n", "\r", "\n", "\n\n\n", " ", "\t", "👨", "👩", "🏳", "\ufe0f", "e", "\u0301", "a",
        "hello", "می", "خ", "क", "\u094d", "\u212a", "\u2028", "—", "…", "’", "“", "<", ">", "√©", "Р", "ґ",
    ]
)  # fmt: skip
NORMALISE_TEXTS = st.one_of(
    st.lists(NORMALISE_PIECES, max_size=20).map("".join),
    st.text(max_size=40),
    st.lists(st.one_of(NORMALISE_PIECES, st.text(max_size=3)), max_size=15).map("".join),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(NORMALISE_TEXTS, min_size=1, max_size=20))
def test_normalise_is_idempotent(texts):
    once = run(normalise_text, texts)["text"]
    twice = run(normalise_text, once.to_list())["text"]
    assert twice.to_list() == once.to_list()


# Unicode White_Space (Python's str.isspace also counts the \x1c-\x1f separators).
WHITE_SPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace() and not 0x1C <= c <= 0x1F)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(NORMALISE_TEXTS, min_size=1, max_size=20))
def test_normalise_output_invariants(texts):
    for out in run(normalise_text, texts)["text"].to_list():
        assert out == out.strip(WHITE_SPACE)
        assert "\r" not in out and "\n\n\n" not in out and "\ufffc" not in out
        assert not any(line != line.rstrip(WHITE_SPACE) for line in out.split("\n"))
        assert not set(out) & {"\u200b", "\u200e", "\u200f", "\ufeff", "\u2060", "\xa0", "\u202f", "\u202a", "\u2066"}
        assert unicodedata.is_normalized("NFC", out)


# ============================================================================ strip: fixtures

TALON = "email_reply/talon/inline_text_cases.json"
# Known failures, by case index in inline_text_cases.json, with the reason.
TALON_KNOWN_FAILURES = {
    0: "test_too_many_lines ran upstream with MAX_LINES_COUNT=1 patched (informational); we keep 'Hi'",
    40: "test_quotation_marker_false_positive: a '>>> … <<<' banner line mid-message is removed, "
    "because every '>' line is treated as quoted text (interleaved quotes are someone else's words)",
}
TALON_PASS_FLOOR = 50  # of 52


def _talon_cases():
    return json.loads(shared_fixture(TALON).read_bytes())["cases"]


def test_talon_inline_cases_pass_rate():
    cases = _talon_cases()
    results = [strip_reply_str(c["input"]) == c["expected"] for c in cases]
    failing = {i for i, ok in enumerate(results) if not ok}
    assert len(cases) == 52
    assert sum(results) >= TALON_PASS_FLOOR
    assert failing == set(TALON_KNOWN_FAILURES), f"unexpected change in failing cases: {sorted(failing)}"


@pytest.mark.parametrize(
    "index",
    [
        pytest.param(i, marks=pytest.mark.xfail(reason=TALON_KNOWN_FAILURES[i], strict=True))
        if i in TALON_KNOWN_FAILURES
        else i
        for i in range(52)
    ],
)
def test_talon_inline_case(index):
    case = _talon_cases()[index]
    assert strip_reply_str(case["input"]) == case["expected"], case["test"]


def _talon_plain_part(path) -> str:
    message = email.message_from_binary_file(path.open("rb"))
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode("utf-8")
    raise AssertionError(f"no text/plain part in {path}")


@pytest.mark.parametrize(
    "client",
    ["android", "aol", "apple_mail", "apple_mail_2", "comcast", "gmail", "hotmail", "iphone", "outlook",
     "sparrow", "thunderbird", "yahoo"],
)  # fmt: skip
def test_talon_standard_replies(client):
    # Upstream keeps the iPhone and Sparrow signatures; here mobile and "-- " signatures
    # go too, so every client's reply is just "Hello".
    body = _talon_plain_part(shared_fixture(f"email_reply/talon/standard_replies/{client}.eml"))
    assert strip_reply_str(body) == "Hello"


GITHUB = "email_reply/github_email_reply_parser"
# Upstream parse_reply(): the visible (non-hidden) fragments, right-stripped. Taken from
# expected.json where it states the reply, else derived from its fragment assertions
# (pathological.txt has none about content: there it is the visible text above the quote).
GITHUB_EXPECTED = {
    "correct_sig.txt": "this is an email with a correct -- signature.",
    "email_1_1.txt": "Hi folks\n\nWhat is the best way to clear a Riak bucket of all key, values after \n"
    "running a test?\nI am currently using the Java HTTP API.",
    "email_1_3.txt": "Oh thanks.\n\nHaving the function would be great.",
    "email_1_4.txt": "Awesome! I haven't had another problem with it.",
    "email_1_6.txt": "I get proper rendering as well.\n\nSent from a magnificent torch of pixels",
    "email_1_7.txt": ":+1:",
    "email_2_1.txt": "Outlook with a reply",
    "email_2_2.txt": "Outlook with a reply directly above line",
    "email_2_3.txt": "Outlook with a reply directly above line",
    "email_iPhone.txt": "Here is another email",
    "email_BlackBerry.txt": "Here is another email",
    "email_multi_word_sent_from_my_mobile_device.txt": "Here is another email",
    "email_sent_from_my_not_signature.txt": "Here is another email\n\n"
    "Sent from my desk, is much easier then my mobile phone.",
    "email_bullets.txt": "test 2 this should list second\n\nand have spaces\n\nand retain this formatting\n\n\n"
    "   - how about bullets\n   - and another",
    "email_one_is_not_on.txt": "Thank, this is really helpful.\n\nOne outstanding question I had:\n\n"
    "Locally (on development), when I run...",
    "greedy_on.txt": "On your remote host you can run:\n\n     telnet 127.0.0.1 52698\n\n"
    "This should connect to TextMate (on your Mac, via the tunnel). If that\nfails, the tunnel is not working.",
    "pathological.txt": "I think you're onto something. I will try to fix the problem as soon as I\n"
    "get back to a computer.",
    "email_sig_delimiter_in_middle_of_line.txt": "Hi there!\n\nStuff happened.\n\n"
    "And here is a fix -- this is not a signature.\n\nkthxbai",
}
# By design these differ from upstream, whose visible reply keeps the quoted fragments
# above inline answers: here quotes are someone else's words and always go.
GITHUB_BY_DESIGN = {
    "email_1_2.txt": None,  # checked in test_github_interleaved_replies
    "email_1_8.txt": "I will reply under this one\n\nand under this.",
}


def _read(relpath) -> str:
    return shared_fixture(relpath).read_bytes().decode("utf-8")


def test_github_fixture_set_is_complete():
    names = {p.name for p in shared_fixture(f"{GITHUB}/emails").glob("*.txt")}
    assert names == set(GITHUB_EXPECTED) | set(GITHUB_BY_DESIGN) | {"email_1_5.txt", "email_long_quote.txt"}


@pytest.mark.parametrize("name", sorted(GITHUB_EXPECTED))
def test_github_parse_reply(name):
    assert strip_reply_str(_read(f"{GITHUB}/emails/{name}")).rstrip() == GITHUB_EXPECTED[name]


def test_github_expected_json_replies_all_match():
    expected = json.loads(shared_fixture(f"{GITHUB}/expected.json").read_bytes())["cases"]
    checked = 0
    for case in expected:
        if "expected_reply" not in case:
            continue
        text = case["inline_input"] if "inline_input" in case else _read(f"{GITHUB}/{case['file']}")
        assert strip_reply_str(text).rstrip() == case["expected_reply"], case.get("file")
        checked += 1
    assert checked == 9


def test_github_unquoted_email_unchanged():
    text = _read(f"{GITHUB}/emails/email_1_5.txt")
    assert strip_details_str(text) == (text, 0, [])


def test_github_interleaved_replies():
    got = strip_reply_str(_read(f"{GITHUB}/emails/email_1_2.txt"))
    assert got.startswith("Hi,\nYou can list the keys for the bucket and call delete for each.")
    assert got.endswith('you\u2019ll need to delete them all individually."')
    assert "\n>" not in got and "mailing list" not in got and "wrote:" not in got
    assert strip_reply_str(_read(f"{GITHUB}/emails/email_1_8.txt")) == GITHUB_BY_DESIGN["email_1_8.txt"]


def test_github_long_quote_and_pathological_inputs():
    got, removed, rules = strip_details_str(_read(f"{GITHUB}/emails/email_long_quote.txt"))
    assert got.startswith("Hi folks\n\nWhat is the best way")
    assert got.endswith("I am currently using the Java HTTP API.")
    assert "\n>" not in got and "riak-users" not in got and "Abhishek" not in got
    assert set(rules) == {"quote_lines", "mailing_list_footer", "signoff"} and removed > 0
    # Ten thousand '>' on one line, a 700 KB line: linear-time regexes, no blow-up.
    assert strip_reply_str(_read(f"{GITHUB}/emails/pathological.txt")).startswith("I think you're onto")


ZAPIER = "email_reply/zapier_email_reply_parser"


def test_zapier_cases():
    cases = json.loads(shared_fixture(f"{ZAPIER}/expected.json").read_bytes())["cases"]
    checks = 0
    for case in cases:
        reply = strip_reply_str(_read(f"{ZAPIER}/{case['file']}"))
        if "expected_reply" in case:
            assert reply.rstrip() == case["expected_reply"], case["file"]
            checks += 1
        if "expected_reply_stripped" in case:
            assert reply.strip() == case["expected_reply_stripped"], case["file"]
            checks += 1
        for fragment in case.get("reply_contains", []):
            assert fragment in reply, case["file"]
            checks += 1
        for fragment in case.get("reply_not_contains", []):
            assert fragment not in reply, case["file"]
            checks += 1
    assert checks == 9


# ============================================================================ strip: rules

STRIP_CASES = [
    # (input, expected, rules)
    ("Sure\n\nOn Mon, Jan 2, 2023 at 9:00 AM Ann <a@x.com> wrote:\nold text", "Sure", ["reply_header"]),
    ("Ja\n\nAm 25.11.2014 um 14:59 schrieb Max Muster <m@x.de>:\nalt", "Ja", ["reply_header"]),
    ("Oui\n\nLe 23 janv. 2015 à 22:03, Brendan <b@x.fr> a écrit :\nvieux", "Oui", ["reply_header"]),
    ("Sí\n\nEl 3 mar 2020, a las 10:00, Ana <a@x.es> escribió:\nviejo", "Sí", ["reply_header"]),
    ("Ja\n\nOp 13-02-2014 3:18 schreef Julius <j@x.nl>:\noud", "Ja", ["reply_header"]),
    ("Sì\n\nIl giorno 23/01/2015, alle ore 22:03, Marco <m@x.it> ha scritto:\nvecchio", "Sì", ["reply_header"]),
    ("Ok\n\nOn 1 May 2020, Bob wrote:\n> quoted\n\nthanks again", "Ok\n\nthanks again", ["quoted_reply"]),
    ("Hi\n-----Original Message-----\nFrom: a", "Hi", ["original_message"]),
    ("Hi\n-----Ursprüngliche Nachricht-----\nVon: a", "Hi", ["original_message"]),
    ("Hi\n\nFrom: Ann [mailto:a@x.com]\nSent: Monday\nTo: me\nSubject: hi\n\nold", "Hi", ["outlook_header"]),
    ("Hi\n\nVon: Ann\nGesendet: Montag\nAn: ich\nBetreff: hallo\n\nalt", "Hi", ["outlook_header"]),
    ("Hi\n\nDe : Ann\nEnvoyé : lundi\nÀ : moi\nObjet : salut\n\nvieux", "Hi", ["outlook_header"]),
    ("Thanks\n-- \nJane Doe\nACME", "Thanks", ["signature"]),
    ("Thanks\n\n> what about you?\n> ok", "Thanks", ["quote_lines"]),
    ("> what about you?\n\nme too", "me too", ["quote_lines"]),
    ("On it\n\nSent from my iPhone", "On it", ["mobile_signature"]),
    ("On it\n\nSent from my Android", "On it", ["mobile_signature"]),
    ("On it\nSent from my BlackBerry", "On it", ["mobile_signature"]),
    ("On it\n\nSent from my mobile device", "On it", ["mobile_signature"]),
    ("On it\n\nGet Outlook for iOS", "On it", ["mobile_signature"]),
    ("On it\n\nGet Outlook for Android<https://aka.ms/ghei36>", "On it", ["mobile_signature"]),
    ("On it\n\nSent with Sparrow (http://www.sparrowmailapp.com/?sig)", "On it", ["mobile_signature"]),
    ("Question\n\n-Abhishek", "Question", ["signoff"]),
    ("Hi\n\n____________________\nriak mailing list\nlist@x", "Hi", ["mailing_list_footer"]),
]


@pytest.mark.parametrize(("text", "expected", "rules"), STRIP_CASES)
def test_strip_rules(text, expected, rules):
    got, removed, fired = strip_details_str(text)
    assert (got, fired) == (expected, rules)
    assert removed == len(text) - len(expected)


KEPT_AS_IS = [
    "On Monday I'll be there",
    "On your remote host you can run:\n\n  telnet 127.0.0.1",
    "Sent from my desk, is much easier then my mobile phone.",
    "Sent from my iPhone\n\nbut I'm writing more below it",  # not the last line
    "a -- b -- c",
    "2 > 1 and 3 > 2",
    ">_< sorry",
    "Date: Wednesday 3, October 2011\nTime: 7:00am\nAddress: 130 Fox St",
    "- first\n- second",
    "FYI\n\n---------- Forwarded message ----------\nFrom: bob@example.com\nDate: Tue, Sep 4, 2012\nSubject: x\n"
    "To: rob@example.com\n\n> quoted in the forward\nText",
    "Begin forwarded message:\n\nFrom: a@b.c\nSubject: hi\nTo: me\n\nbody",
]


@pytest.mark.parametrize("text", KEPT_AS_IS)
def test_strip_keeps(text):
    assert strip_details_str(text) == (text, 0, [])


def test_strip_forwarded_message_stripped_above_only():
    text = "Look\n> old quote\n\n---------- Forwarded message ----------\nFrom: a@b.c\nDate: Mon, 1 Jan 2024\n\nbody"
    got, removed, rules = strip_details_str(text)
    assert got == "Look\n---------- Forwarded message ----------\nFrom: a@b.c\nDate: Mon, 1 Jan 2024\n\nbody"
    assert rules == ["quote_lines"]


def test_strip_columns_and_reasons():
    texts = ["plain", "> only a quote", "Sent from my iPhone", "ok\n\nOn 1/2/2020, X wrote:\n> q", None, "> q"]
    out = run(strip_quotes_and_signatures, texts, reasons=[None, None, None, None, None, "duplicate"])
    assert out.schema["stripped_chars"] == pl.Int64
    assert out.schema["strip_rules"] == pl.List(pl.String)
    assert out["text"].to_list() == ["plain", "", "", "ok", None, ""]
    assert out["stripped_chars"].to_list() == [0, 14, 19, len(texts[3]) - 2, 0, 3]
    assert out["strip_rules"].to_list() == [
        [], ["quote_lines"], ["mobile_signature"], ["quoted_reply"], [], ["quote_lines"]
    ]
    # First reason wins: the duplicate stays a duplicate.
    assert out["drop_reason"].to_list() == [None, "empty_after_strip", "empty_after_strip", None, None, "duplicate"]


def test_strip_rule_names_are_documented():
    assert set(STRIP_RULES) == {
        "quoted_reply", "reply_header", "original_message", "outlook_header", "signature",
        "mailing_list_footer", "quote_lines", "mobile_signature", "signoff",
    }  # fmt: skip


EMAIL_PIECES = st.sampled_from(
    [
        "Thanks!", "On Tue, Apr 11, 2017 at 10:07 PM, John <j@x.com> wrote:", "> quoted", ">", "-- ", "--",
        "Sent from my iPhone", "Get Outlook for iOS", "-----Original Message-----", "From: a@b.c",
        "Sent: Monday", "To: me", "Subject: hi", "Date: Mon, 1 Jan 2024 10:00", "______________________",
        "riak mailing list", "-Ann", "---------- Forwarded message ----------", "Am 1.2.2020 schrieb X:",
        "2011/4/7 Nathan <n@x.com>", "hello there", "", " ", "*From:* x", "- item", "reply--- On 1/2/2020, a@b wrote:",
    ]
)  # fmt: skip
EMAILS = st.lists(st.one_of(EMAIL_PIECES, st.text(max_size=8)), max_size=12).map("\n".join)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(EMAILS, min_size=1, max_size=10))
def test_strip_hint_never_hides_a_rule(texts):
    """The cheap pre-filter is only an optimisation: the result is the same without it."""
    frame = messages(texts).lazy()
    gated = T._apply_strip(frame, gate=True).collect()
    ungated = T._apply_strip(frame, gate=False).collect()
    assert gated.equals(ungated)


# ============================================================================ drop_meta_messages


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "text"])
def test_meta_non_text_kinds(kind):
    assert meta_reason_str("anything", kind=kind) == f"kind:{kind}"


META_CASES = [
    ("[Request interrupted by user]", "meta:interrupted"),
    ("[Request interrupted by user for tool use]", "meta:interrupted"),
    ("No response requested.", "meta:no_response"),
    ("<Media omitted>", "meta:media_placeholder"),
    ("image omitted", "meta:media_placeholder"),
    ("\u200eimage omitted", "meta:media_placeholder"),
    ("video omitted", "meta:media_placeholder"),
    ("audio omitted", "meta:media_placeholder"),
    ("sticker omitted", "meta:media_placeholder"),
    ("GIF omitted", "meta:media_placeholder"),
    ("document omitted", "meta:media_placeholder"),
    ("Report.pdf • 3 pages document omitted", "meta:media_placeholder"),
    ("<attached: 00000012-PHOTO-2020-01-01-12-00-00.jpg>", "meta:media_placeholder"),
    ("IMG-20200101-WA0001.jpg (file attached)", "meta:media_placeholder"),
    ("This message was deleted", "meta:deleted"),
    ("You deleted this message", "meta:deleted"),
    ("Loved “see you tomorrow”", "meta:tapback"),
    ('Liked "sounds good"', "meta:tapback"),
    ("Disliked “that”", "meta:tapback"),
    ("Laughed at “lol\nthat was funny”", "meta:tapback"),
    ("Emphasized “important”", "meta:tapback"),
    ("Questioned “really?”", "meta:tapback"),
    ("Loved an image", "meta:tapback"),
    ("Reacted 👍 to “ok”", "meta:tapback"),
    ("Removed a heart from “ok”", "meta:tapback"),
    ("<command-name>/init</command-name>\n<command-message>init is analyzing…</command-message>", "meta:command"),
    ("<local-command-stdout>done</local-command-stdout>", "meta:command"),
    (
        "Caveat: The messages below were generated by the user while running local commands. DO NOT respond.",
        "meta:command",
    ),
    ("  image omitted  ", "meta:media_placeholder"),
]


@pytest.mark.parametrize(("text", "reason"), META_CASES)
def test_meta_reasons(text, reason):
    assert meta_reason_str(text) == reason


@pytest.mark.parametrize(
    "text",
    [
        "the image omitted from the deck was the best one",
        "I loved “Dune” so much, you should see it",
        "No response requested. But I replied anyway",
        "[Request interrupted by user] is what it printed",
        "my <command-name> tag",
        "This message was deleted?? by whom",
        "Liked it",
        "",
    ],
)
def test_meta_keeps_real_messages(text):
    assert meta_reason_str(text) is None


def test_meta_first_reason_wins():
    out = run(
        drop_meta_messages,
        ["image omitted", "image omitted", "hello", "hello"],
        kinds=["text", "text", "reaction", "text"],
        reasons=["empty", None, "duplicate", None],
    )
    assert out["drop_reason"].to_list() == ["empty", "meta:media_placeholder", "duplicate", None]


def test_meta_drops_superseded_versions():
    frame = pl.DataFrame(
        {
            "text": ["the answer before regenerating", "the answer shown", "hello", "no metadata"],
            "kind": ["text", "text", "attachment", "text"],
            "metadata": ['{"on_path":false,"superseded":true}', '{"on_path":true}', '{"superseded": true}', None],
            "drop_reason": [None, None, None, None],
        },
        schema_overrides={"drop_reason": pl.String},
    )
    out = drop_meta_messages(frame.lazy()).collect()
    assert out["drop_reason"].to_list() == ["superseded", None, "superseded", None]


def test_meta_drops_what_the_owner_forwarded_but_keeps_it_as_others_context():
    forwarded = '{"forwarded_from":"Daily Digest"}'
    frame = pl.DataFrame(
        {
            "text": ["Big news about the launch today", "Big news about the launch today", "my own words"],
            "kind": ["text", "text", "text"],
            "is_owner": [True, False, True],
            "metadata": [forwarded, forwarded, "{}"],
            "drop_reason": [None, None, None],
        },
        schema_overrides={"drop_reason": pl.String},
    )
    out = drop_meta_messages(frame.lazy()).collect()
    assert out["drop_reason"].to_list() == ["forwarded", None, None]


def test_transforms_compose():
    texts = ["Loved “ok”", "Sounds good\n\nSent from my iPhone", "CafÃ© at 5?", "> just a quote", "  "]
    out = drop_meta_messages(strip_quotes_and_signatures(normalise_text(messages(texts).lazy()))).collect()
    assert out["text"].to_list()[:3] == ["Loved “ok”", "Sounds good", "Café at 5?"]
    assert out["drop_reason"].to_list() == ["meta:tapback", None, None, "empty_after_strip", "empty"]


@pytest.mark.parametrize("transform", [normalise_text, strip_quotes_and_signatures, drop_meta_messages])
def test_empty_frame(transform):
    out = transform(messages([]).lazy()).collect()
    assert out.height == 0 and "drop_reason" in out.columns


def test_other_columns_pass_through():
    frame = messages(["Caf\u00c3\u00a9\n\nSent from my iPhone", "ok"]).with_columns(pl.Series("metadata", ['{"a": 1}', "{}"]))
    out = drop_meta_messages(strip_quotes_and_signatures(normalise_text(frame.lazy()))).collect()
    assert out.select("source", "source_id", "kind", "is_owner", "metadata").equals(
        frame.select("source", "source_id", "kind", "is_owner", "metadata")
    )
    assert out["text"].to_list() == ["Café", "ok"]
