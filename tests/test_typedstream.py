"""attributedBody decoding: the shared crabstep blobs, the encoder round trip, bad input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_fixture
from etl.sources.typedstream import (
    DecodeError,
    decode_attributed_body,
    decode_attributed_body_full,
    decode_common_layout,
    encode_attributed_body,
    encode_attributed_runs,
    join_around_attachments,
    message_runs,
)


def _blobs():
    expected = json.loads(shared_fixture("imessage/expected_attributedBody.json").read_text())
    folder = shared_fixture("imessage")
    return [(case, (folder / case["file"]).read_bytes()) for case in expected["blobs"]]


def test_every_fixture_blob_decodes_to_the_expected_text():
    seen = set()
    for case, blob in _blobs():
        name = case["file"].split("/")[-1]
        seen.add(name)
        if case["expected_text"] is None:
            continue
        assert decode_attributed_body(blob) == case["expected_text"], name
        # The fast path and the full typedstream parser agree.
        assert decode_attributed_body_full(blob) == case["expected_text"], name
    assert seen == {
        "AttributedBodyTextOnly",
        "AttributedBodyTextOnly2",
        "Blank",
        "ExtraData",
        "MultiPart",
        "URL",
        "WeirdText",
    }


def test_fixture_specifics():
    blobs = {case["file"].split("/")[-1]: blob for case, blob in _blobs()}
    assert decode_attributed_body(blobs["Blank"]) == ""
    assert decode_attributed_body(blobs["WeirdText"]) == "𝖍𝖊𝖑𝖑𝖔 𝖜𝖔𝖗𝖑𝖉"  # outside the BMP
    assert decode_attributed_body(blobs["MultiPart"]).count("\ufffc") == 3  # attachment placeholders
    # NSMutableAttributedString and NSAttributedString layouts both take the fast path.
    assert decode_common_layout(blobs["AttributedBodyTextOnly"]) == "Noter test"
    assert decode_common_layout(blobs["AttributedBodyTextOnly2"]) == "Test 3"


def test_truncated_stream_is_a_decode_error_not_a_guess():
    """ExtraData claims a 157-byte string but holds 17 bytes before the stream ends.

    A strict parser must refuse it (crabstep); guessing from the bytes that happen
    to be there is how heuristic decoders truncate or garble text. The connector
    quarantines such a row with this reason.
    """
    blob = {case["file"].split("/")[-1]: blob for case, blob in _blobs()}["ExtraData"]
    assert decode_common_layout(blob) is None
    with pytest.raises(DecodeError) as error:
        decode_attributed_body(blob)
    assert "157" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("blob", [b"", b"\x04", b"\x04\x0bstreamtyped", b"not a typedstream at all", b"\x00" * 64])
def test_garbage_raises_decode_error(blob):
    with pytest.raises(DecodeError):
        decode_attributed_body(blob)


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_never_crash(blob):
    try:
        result = decode_attributed_body(blob)
    except DecodeError:
        return
    assert isinstance(result, str)


# Text of every kind: any code point but surrogates (which UTF-8 cannot carry),
# including the non-BMP ones that are two UTF-16 units in NSString.
texts = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=400)
long_texts = st.builds(lambda piece, times: piece * times, st.text(min_size=1, max_size=12), st.integers(1, 9000))


@given(st.one_of(texts, long_texts))
@settings(max_examples=200, deadline=None)
def test_round_trip_through_both_decoders(text):
    blob = encode_attributed_body(text)
    assert decode_attributed_body(blob) == text
    assert decode_common_layout(blob) == text
    assert decode_attributed_body_full(blob) == text


@pytest.mark.parametrize(
    ("size", "length_prefix"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x81\x80\x00"),  # one byte would read as a tag: 2-byte form
        (32767, b"\x81\xff\x7f"),
        (32768, b"\x82\x00\x80\x00\x00"),  # past int16: 4-byte form
        (100_000, b"\x82\xa0\x86\x01\x00"),
    ],
)
def test_length_forms(size, length_prefix):
    text = "x" * size
    blob = encode_attributed_body(text)
    assert length_prefix + b"x" in blob if size else length_prefix + b"\x86" in blob
    assert decode_attributed_body(blob) == text
    assert decode_attributed_body_full(blob) == text


def test_length_counts_utf8_bytes_not_characters():
    text = "é" * 100  # 200 bytes, 100 characters
    assert b"\x81\xc8\x00" in encode_attributed_body(text)
    assert decode_attributed_body(encode_attributed_body(text)) == text


@given(texts, st.data())
@settings(max_examples=100, deadline=None)
def test_truncated_blobs_give_the_exact_text_or_an_error(text, data):
    blob = encode_attributed_body(text)
    cut = data.draw(st.integers(0, len(blob) - 1))
    try:
        assert decode_attributed_body(blob[:cut]) == text
    except DecodeError:
        pass


def test_decode_error_is_a_value_error():
    # Callers that only know ValueError still catch it.
    assert issubclass(DecodeError, ValueError)


def _column_common_layout(blobs: list[bytes]) -> list[str | None]:
    import polars as pl

    from etl.sources.typedstream import common_layout_texts

    return common_layout_texts(pl.Series(blobs, dtype=pl.Binary)).to_list()


def test_column_fast_path_agrees_on_every_fixture_blob():
    blobs = [blob for _, blob in _blobs()]
    assert _column_common_layout(blobs) == [decode_common_layout(b) for b in blobs]


@settings(max_examples=150, deadline=None)
@given(
    text=st.one_of(st.text(max_size=300), st.text(min_size=120, max_size=140), st.just("é" * 40_000)),
    cut=st.integers(0, 40),
)
def test_column_fast_path_agrees_with_python(text, cut):
    blob = encode_attributed_body(text)
    truncated = blob[: len(blob) - 1 - cut]
    broken = blob.replace(text.encode("utf-8")[:1], b"\xff", 1) if text else blob
    blobs = [blob, truncated, broken, b"", b"\x04\x0bstreamtyped", b"\x00" * 64]
    assert _column_common_layout(blobs) == [decode_common_layout(b) for b in blobs]
    assert _column_common_layout([blob]) == [text]


# ----------------------------------------------------------------------------- runs around attachments

_WORDS = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Cc"), blacklist_characters="\ufffc"), min_size=1, max_size=12)


def test_runs_of_a_real_multipart_body():
    runs = message_runs(shared_fixture("imessage/attributedBody/MultiPart").read_bytes())
    assert [(piece, part, attachment) for piece, part, attachment in runs] == [
        ("\ufffc", 0, True), ("test 1", 1, False), ("\ufffc", 2, True), ("test 2 ", 3, False), ("\ufffc", 4, True),
        ("test 3", 5, False),
    ]
    text = decode_attributed_body(shared_fixture("imessage/attributedBody/MultiPart").read_bytes())
    assert join_around_attachments(text, runs) == "test 1\ntest 2\ntest 3"


@settings(max_examples=80, deadline=None)
@given(words=st.lists(_WORDS, min_size=2, max_size=6), same_bubble=st.booleans())
def test_every_text_run_stays_separate(words, same_bubble):
    runs, part = [], 0
    for index, word in enumerate(words):
        if index:
            runs.append(("\ufffc", part if same_bubble else part + 1, f"at_{index}_X"))
            part += 0 if same_bubble else 2
        runs.append((word, part, None))
    body = encode_attributed_runs(runs)
    text = decode_attributed_body(body)
    assert text == "\ufffc".join(words)
    joined = join_around_attachments(text, message_runs(body))
    assert joined == (" " if same_bubble else "\n").join(words)


def test_single_run_bodies_have_one_run():
    assert message_runs(encode_attributed_body("hello", part=2)) == [("hello", 2, False)]
    assert message_runs(b"not a typedstream") is None
