"""Fourth-wall removal and chunking of prose: golden books, negative cases and properties."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prose_books as book
from etl.prose import chunks as chunking
from etl.prose import fourth_wall as fw
from etl.sources import Quarantined
from etl.sources import prose

P1, P2, P3, P4 = book.PROSE


def _frame(doc, doc_id="d") -> pl.DataFrame:
    return pl.DataFrame(
        [{"document_id": doc_id, "position": i, "kind": p.kind, "role": p.role, "text": p.text}
         for i, p in enumerate(doc.paragraphs)],
        schema={"document_id": pl.String, "position": pl.Int64, "kind": pl.String, "role": pl.String, "text": pl.String},
    )


def _clean(doc) -> pl.DataFrame:
    return fw.remove_fourth_wall(_frame(doc).lazy()).collect()


def _paras(*items, doc_id="d") -> pl.DataFrame:
    """Paragraphs given as text, or as (kind, text) / (kind, role, text)."""
    rows = []
    for i, item in enumerate(items):
        kind, role, text = ("text", None, item) if isinstance(item, str) else (
            (item[0], None, item[1]) if len(item) == 2 else item)
        rows.append({"document_id": doc_id, "position": i, "kind": kind, "role": role, "text": text})
    return pl.DataFrame(rows, schema={"document_id": pl.String, "position": pl.Int64, "kind": pl.String,
                                      "role": pl.String, "text": pl.String})


@pytest.mark.parametrize("fmt", ["txt", "md", "html", "docx", "epub"])
def test_only_the_prose_of_the_book_survives_in_every_format(tmp_path, fmt):
    [doc] = [d for d in prose.read_file(book.WRITERS[fmt](tmp_path)) if not isinstance(d, Quarantined)]
    out = _clean(doc)
    assert out.filter(pl.col("drop_reason").is_null())["text"].to_list() == [P1, P2, P3, P4]
    assert set(out["drop_reason"].drop_nulls()) <= set(fw.REASONS)


def test_each_part_of_the_book_is_dropped_for_its_own_reason(tmp_path):
    [txt] = list(prose.read_file(book.write_txt(tmp_path)))
    reasons = dict(zip(_clean(txt)["position"], _clean(txt)["drop_reason"]))
    by_text = {p.text: reasons[i] for i, p in enumerate(txt.paragraphs)}
    assert by_text[book.COPYRIGHT] == "copyright"
    assert by_text["Contents"] == "toc"
    assert by_text[book.DEDICATION] == "dedication"
    assert by_text["Chapter One: The Gauge"] == "heading"
    assert by_text["12"] == "page_number"
    assert by_text[book.TITLE] == "running_header"  # repeated on every page
    assert by_text[book.ACKNOWLEDGEMENTS] == "acknowledgements"
    assert by_text[book.ABOUT] == "about_author"
    [epub_doc] = list(prose.read_file(book.write_epub(tmp_path)))
    epub = _clean(epub_doc)
    assert set(epub.filter(pl.col("role").str.contains("nav.xhtml"))["drop_reason"]) == {"toc"}
    assert epub.filter(pl.col("text") == book.FOOTNOTE)["drop_reason"].to_list() == ["footnote"]
    assert epub.filter(pl.col("text").str.starts_with(P1[:30]))["markers"].to_list() == [["[^1]"]]


def test_blog_boilerplate_is_dropped_by_class_and_by_the_platforms_words(tmp_path):
    [post] = [d for d in prose.read_file(book.write_substack(tmp_path)) if not isinstance(d, Quarantined)]
    out = _clean(post)
    assert out["drop_reason"].to_list() == [None, None, "boilerplate", "boilerplate"]
    lines = _paras(P1, "Share this:", "Like this:", "Like Loading...",
                   "The post The Gauge appeared first on Quill.", "Originally published at quill.example on March 4.",
                   "Thanks for reading Quill! Subscribe for free to receive new posts and support my work.", "12 Likes")
    assert fw.remove_fourth_wall(lines.lazy()).collect()["drop_reason"].to_list() == [None] + ["boilerplate"] * 7


def test_prose_that_only_resembles_matter_around_it_is_kept():
    keep = [
        P1,
        # Starts like a dedication, but after the prose has begun and long.
        "For a long time the gauges were the only honest things along the river, and " + P2,
        # Mentions an index and a copyright in a sentence, with punctuation.
        "She kept an index of every flood in a ledger, and a copyright notice she had copied from a seed catalogue.",
        "I subscribe to no theory of rivers that cannot explain the silt.",
        "Figures of speech fail at the bank of a river in flood, where the water is neither metaphor nor fact.",
    ]
    out = fw.remove_fourth_wall(_paras(*keep).lazy()).collect()
    assert out["drop_reason"].to_list() == [None] * len(keep)


def test_hard_wrapped_text_is_joined_and_hyphenation_undone():
    out = fw.remove_fourth_wall(_paras("The river had been meas-\nured for three\nhundred years. " + P1).lazy()).collect()
    assert out["text"][0].startswith("The river had been measured for three hundred years. ")


def test_footnote_markers_are_removed_and_listed():
    out = fw.strip_markers(_paras(f"water[^3] and silt.[12] Then¹ more [^a].").with_columns(
        drop_reason=pl.lit(None, pl.String)).lazy()).collect()
    assert out["text"][0] == "water and silt. Then more."
    assert out["markers"][0].to_list() == ["[^3]", "[12]", "¹", "[^a]"]


words = st.text(alphabet=st.characters(categories=("Ll", "Lu", "Nd", "Zs", "Po")), min_size=0, max_size=80)


@given(st.lists(words, min_size=1, max_size=12))
@settings(max_examples=60, deadline=None)
def test_fourth_wall_keeps_rows_and_only_ever_names_declared_reasons(texts):
    frame = _paras(*texts)
    out = fw.remove_fourth_wall(frame.lazy()).collect()
    assert out.height == frame.height and out["position"].to_list() == frame["position"].to_list()
    assert set(out["drop_reason"].drop_nulls()) <= set(fw.REASONS)
    # Dropped rows are left exactly as they were.
    dropped = out.filter(pl.col("drop_reason").is_not_null())
    originals = dict(zip(frame["position"], frame["text"]))
    assert all(originals[p] == t for p, t in zip(dropped["position"], dropped["text"]))


@given(words)
@settings(max_examples=80, deadline=None)
def test_text_without_markers_is_not_touched_by_marker_removal(text):
    frame = _paras(text.replace("[", "").replace("]", "")).with_columns(drop_reason=pl.lit(None, pl.String))
    out = fw.strip_markers(frame.lazy()).collect()
    if not any(c in text for c in "¹²³⁴⁵⁶⁷⁸⁹⁰"):
        assert out["markers"][0].to_list() == []
        assert out["text"][0].split() == frame["text"][0].split() or "  " in frame["text"][0] or " ," in frame[
            "text"][0] or any(f" {c}" in frame["text"][0] for c in ",.;:")


# ----------------------------------------------------------------------------- chunking


def _kept(texts_by_doc: dict[str, list[str]]) -> pl.DataFrame:
    rows = [{"document_id": d, "position": i, "section": None, "text": t}
            for d, texts in texts_by_doc.items() for i, t in enumerate(texts)]
    return pl.DataFrame(rows, schema={"document_id": pl.String, "position": pl.Int64, "section": pl.String,
                                      "text": pl.String})


def test_short_paragraphs_are_dropped_at_min_para_words():
    frame = _paras(" ".join(["word"] * 59), " ".join(["word"] * 60)).with_columns(drop_reason=pl.lit(None, pl.String))
    assert chunking.drop_short(frame.lazy(), 60).collect()["drop_reason"].to_list() == ["short_paragraph", None]


def test_chunks_group_whole_paragraphs_up_to_the_target():
    kept = _kept({"a": [P1, P2, P3, P4]})
    # 69 + 77 words fit 150; a third paragraph would not.
    out = chunking.chunk_paragraphs(kept, chunk_tokens=150, target_tokens=10_000)
    assert out["text"].to_list() == [P1 + "\n\n" + P2, P3 + "\n\n" + P4]
    assert out["tokens"].to_list() == [69 + 77, 68 + 73]
    one_each = chunking.chunk_paragraphs(kept, chunk_tokens=10, target_tokens=10_000)
    assert one_each["text"].to_list() == [P1, P2, P3, P4]  # each longer than the target: never cut


def test_a_chunk_never_spans_two_sections():
    kept = _kept({"a": [P1, P2]}).with_columns(section=pl.Series(["one", "two"]))
    assert chunking.chunk_paragraphs(kept, chunk_tokens=10_000, target_tokens=10_000).height == 2


def test_even_shares_give_short_documents_all_and_the_rest_an_equal_cap():
    assert chunking.even_shares({"a": 100, "b": 1000, "c": 1000}, 700) == {"a": 100, "b": 300, "c": 300}
    assert chunking.even_shares({"a": 10, "b": 20}, 100) == {"a": 10, "b": 20}


paragraph = st.integers(min_value=1, max_value=120).map(lambda n: " ".join(f"w{i}" for i in range(n)))
corpus = st.dictionaries(st.sampled_from("abcdefgh"), st.lists(paragraph, min_size=1, max_size=8), min_size=1)


@given(corpus, st.integers(min_value=20, max_value=300), st.integers(min_value=0, max_value=3000))
@settings(max_examples=80, deadline=None)
def test_chunking_never_cuts_a_paragraph_honours_the_budget_and_is_deterministic(texts, chunk_tokens, budget):
    kept = _kept(texts)
    out = chunking.chunk_paragraphs(kept, chunk_tokens=chunk_tokens, target_tokens=budget)
    # Every paragraph is in exactly one chunk, whole, in order.
    for doc, paragraphs in texts.items():
        rebuilt = [p for t in out.filter(pl.col("document_id") == doc).sort("first_position")["text"]
                   for p in t.split("\n\n")]
        assert rebuilt == paragraphs
    # Over the target only as a single paragraph.
    assert out.filter((pl.col("tokens") > chunk_tokens) & (pl.col("paragraphs") > 1)).height == 0
    kept_chunks = out.filter(pl.col("drop_reason").is_null())
    assert kept_chunks["tokens"].sum() <= budget
    assert set(out["drop_reason"].drop_nulls()) <= {"over_budget"}
    # The same paragraphs in another row order give the same chunks.
    again = chunking.chunk_paragraphs(kept.reverse(), chunk_tokens=chunk_tokens, target_tokens=budget)
    assert again.equals(out)


@given(st.dictionaries(st.text(min_size=1, max_size=3), st.integers(0, 10_000), min_size=1), st.integers(0, 50_000))
def test_even_shares_is_max_min_fair(totals, budget):
    shares = chunking.even_shares(totals, budget)
    assert sum(shares.values()) <= budget or shares == totals
    assert all(0 <= shares[d] <= totals[d] for d in totals)
    unsaturated = [shares[d] for d in totals if shares[d] < totals[d]]
    if unsaturated:
        assert max(unsaturated) - min(unsaturated) == 0
        assert all(shares[d] <= unsaturated[0] for d in totals)


def test_tokens_come_from_a_local_tokenizer_json(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(book.PROSE, trainers.BpeTrainer(vocab_size=200, special_tokens=["[UNK]"]))
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    loaded = chunking.Tokenizer.load(tmp_path)
    count = loaded.counter()
    assert count([P1]) == [len(tokenizer.encode(P1).ids)] and count([P1])[0] > len(P1.split())
    out = chunking.chunk_paragraphs(_kept({"a": [P1, P2]}), chunk_tokens=10_000, target_tokens=10_000, count=count)
    assert out["tokens"].to_list() == [count([P1])[0] + count([P2])[0] + count(["\n\n"])[0]]
    with pytest.raises(Exception, match="no tokenizer.json"):
        chunking.Tokenizer.load(tmp_path / "missing")
