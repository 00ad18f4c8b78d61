"""Speaker labels: names where the owner or the export gave one, else pseudonyms; never a handle."""

import json
import re
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl.build import build_version
from etl.config import Config, Owner, load_config
from etl.transforms.labels import (
    apply_contacts,
    identity_key,
    label_speakers,
    looks_like_handle,
    normalise_phone,
)
from factories import land, message

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
SCHEMA = {
    "source": pl.String, "source_id": pl.String, "sent_at": pl.Datetime("us", "UTC"),
    "sender": pl.String, "sender_name": pl.String, "is_owner": pl.Boolean,
}


def _frame(rows):
    """rows: (sender, sender_name, is_owner)"""
    return pl.DataFrame(
        [
            {"source": "s", "source_id": f"m{i:03d}", "sent_at": T0 + timedelta(minutes=i),
             "sender": s, "sender_name": n, "is_owner": o}
            for i, (s, n, o) in enumerate(rows)
        ],
        schema=SCHEMA,
    )


@pytest.mark.parametrize(("text", "region", "expected"), [
    ("+1 (415) 555-0167", None, "+14155550167"),
    ("(415) 555-0167", "US", "+14155550167"),
    ("0151 23456789", "DE", "+4915123456789"),
    ("0049 151 23456789", None, "+4915123456789"),
    ("06 12 34 56 78", "FR", "+33612345678"),
    ("lena@example.com", "US", None),
    ("12", "US", None),
])
def test_phone_numbers_compare_in_e164(text, region, expected):
    assert normalise_phone(text, region) == expected


def test_identity_keys_fold_addresses_and_prefixes():
    assert identity_key("mailto:Lena.Fischer@Example.com") == "lena.fischer@example.com"
    assert identity_key("tel:+14155550167") == identity_key("+1 415-555-0167") == "+14155550167"
    assert identity_key("  ") is None


@pytest.mark.parametrize("value", ["+14155550167", "lena@example.com", "@lena_f", "(415) 555-0167", "0151 23456789"])
def test_handles_are_recognised(value):
    assert looks_like_handle(value)


@pytest.mark.parametrize("value", ["Lena Fischer", "Speaker 2", "小明", "Jo", "R2-D2", ""])
def test_names_are_not_handles(value):
    assert not looks_like_handle(value)


def test_pseudonyms_number_people_by_first_message():
    frame = _frame([
        ("+14155550167", None, False),
        ("me", None, True),
        ("lena@example.com", None, False),
        ("+14155550167", None, False),
        ("+1 415 555 0199", None, False),
    ])
    labelled, pseudonyms = label_speakers(frame, region="US")
    assert labelled["author"].to_list() == ["Friend 1", None, "Friend 2", "Friend 1", "Friend 3"]
    assert sorted(pseudonyms.values()) == ["Friend 1", "Friend 2", "Friend 3"]


def test_names_stay_in_names_mode_and_go_in_pseudonyms_mode():
    frame = _frame([("+14155550167", "Lena", False), ("+14155550111", None, False), ("+14155550122", "Kai", False)])
    assert label_speakers(frame)[0]["author"].to_list() == ["Lena", "Friend 1", "Kai"]
    assert label_speakers(frame, mode="pseudonyms")[0]["author"].to_list() == ["Friend 1", "Friend 2", "Friend 3"]


def test_a_name_that_is_a_handle_is_not_a_label():
    # WhatsApp shows an unsaved contact by their number, in the name's place.
    frame = _frame([("+49 151 23456789", "+49 151 23456789", False), ("x", "lena@example.com", False)])
    assert label_speakers(frame)[0]["author"].to_list() == ["Friend 1", "Friend 2"]


def test_one_number_written_two_ways_is_one_person():
    frame = _frame([("+14155550167", None, False), ("(415) 555-0167", None, False)])
    assert label_speakers(frame, region="US")[0]["author"].to_list() == ["Friend 1", "Friend 1"]


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="speaker_labels"):
        label_speakers(_frame([("a", None, False)]), mode="initials")


def test_contacts_fill_in_and_override_names():
    frame = _frame([("+14155550167", None, False), ("(415) 555-0111", "Old name", False), ("kai@x.org", None, False)])
    named = apply_contacts(frame, {"+1 415 555 0167": "Lena", "+14155550111": "Omar", "KAI@X.ORG": "Kai"}, "US")
    assert named["sender_name"].to_list() == ["Lena", "Omar", "Kai"]


_senders = st.sampled_from(["+14155550101", "+14155550102", "a@example.com", "b@example.com", "me"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_senders, st.sampled_from([None, "Ana", "Bo"])), min_size=1, max_size=30), st.randoms())
def test_labels_are_deterministic_and_never_handles(rows, rnd):
    frame = _frame([(s, n if s != "me" else None, s == "me") for s, n in rows])
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=rnd.randint(0, 2**31))
    for mode in ("names", "pseudonyms"):
        a, pa = label_speakers(frame, mode=mode)
        b, pb = label_speakers(shuffled, mode=mode)
        assert pa == pb
        by_id = dict(zip(a["source_id"], a["author"]))
        assert dict(zip(b["source_id"], b["author"])) == by_id
        for label, owner in zip(a["author"], a["is_owner"]):
            assert (label is None) == owner
            assert label is None or not looks_like_handle(label)
        numbers = [int(p.split()[1]) for p in pa.values()]
        assert sorted(numbers) == list(range(1, len(numbers) + 1))


# ----------------------------------------------------------------------------- through a build

GROUP = [
    message("g1", "who's in for Yosemite?", owner=False, conversation="g", minutes=0, sender="+14155550167"),
    message("g2", "me!! I asked for Friday off", owner=False, conversation="g", minutes=1, sender="lena@example.com"),
    message("g3", "in. I can drive, the car fits four", owner=True, conversation="g", minutes=2),
]


def _prompts(version_path):
    lines = (version_path / "chatml" / "train.jsonl").read_text().splitlines()
    lines += (version_path / "chatml" / "valid.jsonl").read_text().splitlines() if (version_path / "chatml" / "valid.jsonl").exists() else []
    return [m["content"] for line in lines for m in json.loads(line)["messages"] if m["role"] == "user"]


def test_group_chat_labels_without_contacts_are_pseudonyms(tmp_path):
    land(tmp_path / "w.duckdb", GROUP)
    built = build_version(tmp_path / "w.duckdb", tmp_path / "d", "v1", Config(owner=Owner(names=("Sam",))))
    text = "\n".join(_prompts(built.path))
    assert "Friend 1: who's in for Yosemite?" in text and "Friend 2: me!!" in text
    assert not re.search(r"\+1415|@example", text)
    assert built.manifest["privacy"]["pseudonyms"] == 2


def test_group_chat_labels_with_contacts_are_names(tmp_path):
    (tmp_path / "corpus.toml").write_text(
        '[owner]\nnames = ["Sam"]\nregion = "US"\n\n[contacts]\n"(415) 555-0167" = "Lena"\n"LENA@example.com" = "Lena F"\n'
    )
    config = load_config(tmp_path / "corpus.toml")
    land(tmp_path / "w.duckdb", GROUP)
    built = build_version(tmp_path / "w.duckdb", tmp_path / "d", "v1", config)
    text = "\n".join(_prompts(built.path))
    assert "Lena: who's in for Yosemite?" in text and "Lena F: me!!" in text
    # The manifest says how many contacts there were, never who.
    manifest = (built.path / "manifest.json").read_text()
    assert "Lena" not in manifest and "5550167" not in manifest and "example.com" not in manifest
    assert built.manifest["config"]["contacts"]["entries"] == 2

    pseudo = build_version(tmp_path / "w.duckdb", tmp_path / "d", "v2", config.with_build(speaker_labels="pseudonyms"))
    assert "Lena" not in "\n".join(_prompts(pseudo.path))
    assert pseudo.manifest["config_sha256"] != built.manifest["config_sha256"]


def test_bad_speaker_labels_value_is_a_clear_error(tmp_path):
    (tmp_path / "corpus.toml").write_text('[build]\nspeaker_labels = "initials"\n')
    from etl.errors import EtlError

    with pytest.raises(EtlError, match='speaker_labels must be "names" or "pseudonyms"'):
        load_config(tmp_path / "corpus.toml")


def test_contacts_must_map_handles_to_names(tmp_path):
    (tmp_path / "corpus.toml").write_text('[contacts]\n"+14155550167" = 3\n')
    from etl.errors import EtlError

    with pytest.raises(EtlError, match=r"\[contacts\] maps a handle to a name"):
        load_config(tmp_path / "corpus.toml")


def test_names_inside_texts_become_the_same_pseudonym():
    from etl.transforms.labels import replace_names

    frame = pl.DataFrame({
        "text": ["Lena Fischer says LENA FISCHER is late; ask Lena or Fischer", "will Will come?", "小明来了吗", "Sam and Kai"],
        "redactions": [[], [], ["email"], []],
    })
    names = {"Lena Fischer": "Friend 1", "Will": "Friend 2", "小明": "Friend 3", "Kai Sam": "Friend 4"}
    out, n = replace_names(frame, names, owner_names=["Sam Rivera"])
    assert out["text"].to_list() == [
        "Friend 1 says Friend 1 is late; ask Friend 1 or Friend 1",
        "will Friend 2 come?",  # a name that is also a word is replaced only as a name
        "小明来了吗",  # no word boundary inside CJK text: left (a known limit)
        "Sam and Friend 4",  # the owner's own name stays
    ]
    assert n == 6 and out["redactions"].to_list()[0] == ["name"] * 4 and out["redactions"][2].to_list() == ["email"]


def test_redact_pii_alone_labels_with_pseudonyms_and_replaces_names(tmp_path):
    (tmp_path / "corpus.toml").write_text('[owner]\nnames = ["Sam"]\n\n[contacts]\n"+14155550167" = "Lena Fischer"\n')
    config = load_config(tmp_path / "corpus.toml").with_build(redact_pii=True)
    rows = [
        *GROUP,
        message("g4", "Lena Fischer, call me at +44 20 7946 0958", owner=False, conversation="g", minutes=3,
                sender="lena@example.com"),
        message("g5", "sure thing, will ring you tonight", owner=True, conversation="g", minutes=4),
    ]
    land(tmp_path / "w.duckdb", rows)
    built = build_version(tmp_path / "w.duckdb", tmp_path / "d", "v1", config)
    text = "\n".join(_prompts(built.path))
    assert "Friend 1: who's in for Yosemite?" in text
    assert "Friend 2: Friend 1, call me at [PII:phone]" in text
    assert "Lena" not in text and "7946" not in text
    assert built.manifest["privacy"]["speaker_labels"] == "pseudonyms"
    assert built.manifest["redactions"]["name"] == 1 and built.manifest["redactions"]["phone"] == 1
