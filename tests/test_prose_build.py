"""`etl build --corpus prose` end to end, the deterministic pairs, and the target checks."""

from __future__ import annotations

import json

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import prose_books as book
from etl.cli import cli
from etl.prose import pairs
from etl.warehouse import open_warehouse

P1, P2, P3, P4 = book.PROSE


# ----------------------------------------------------------------------------- pairs


def test_info_dropout_removes_adjectives_and_adverbs_but_keeps_negation():
    [tokens] = pairs.tag(["Slowly, the dark and cold river never moved quietly past the old mill."])
    assert pairs.info_dropout(tokens) == "The river never moved past the mill."


def test_abstract_replaces_nouns_and_runs_of_nouns_with_placeholders():
    [tokens] = pairs.tag(["The river authority kept the gauges at Harrow Bend for Mara."])
    assert pairs.abstract(tokens) == "The [THING] kept the [THINGS] at [NAME] for [NAME]."


def test_the_tags_do_not_depend_on_the_batch():
    alone = [pairs.tag([p])[0] for p in book.PROSE]
    together = pairs.tag(list(book.PROSE) * 3)[:4]
    assert alone == together
    assert [pairs.info_dropout(t) for t in alone] == [pairs.info_dropout(t) for t in together]


@given(st.text(alphabet=st.characters(categories=("Ll", "Lu", "Zs", "Po")), max_size=120))
@settings(max_examples=40, deadline=None)
def test_pairs_never_add_words_that_were_not_there(text):
    [tokens] = pairs.tag([text])
    original = set(text.lower().split())
    dropped = pairs.info_dropout(tokens)
    assert len(dropped.split()) <= len(text.split()) + 1
    placeholders = {pairs.NOUN.lower(), pairs.NOUNS.lower(), pairs.NAME.lower()}
    for word in pairs.abstract(tokens).lower().split():
        assert any(p in word for p in placeholders) or any(word.strip(",.;:!?") in o for o in original) or not word.strip(
            ",.;:!?")


@pytest.mark.parametrize("text, problem", [
    ("As an AI language model, I cannot write in this style.", "assistant_voice"),
    ("I am an AI and have no grandmother.", "assistant_voice"),
    ("I'm sorry, but I can't help with that request.", "assistant_voice"),
    ("Great question! The river is long.", "slop"),
    ("I hope this helps you understand the gauge.", "slop"),
    (P1, None),
    ("I understand the river now, she said, and I cannot forgive it.", None),
])
def test_targets_in_an_assistant_voice_are_refused(text, problem):
    assert pairs.target_problem(text) == problem


# ----------------------------------------------------------------------------- the build


@pytest.fixture
def etl(tmp_path):
    def run(*args):
        return CliRunner().invoke(cli, ["--warehouse", str(tmp_path / "wh.duckdb"), "--datasets",
                                        str(tmp_path / "datasets"), *map(str, args)])

    run.warehouse, run.datasets = tmp_path / "wh.duckdb", tmp_path / "datasets"
    return run


def _sql(warehouse, query):
    with open_warehouse(warehouse, read_only=True) as con:
        return con.execute(query).fetchall()


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_prose_version_end_to_end(tmp_path, etl):
    book.write_all(tmp_path / "book")
    book.write_essays(tmp_path / "essays", 6)
    slop = tmp_path / "ghost.txt"
    slop.write_text("As an AI language model, I cannot recall a river, but " + P3)
    assert etl("ingest", "prose", tmp_path / "book", tmp_path / "essays", slop).exit_code == 0
    result = etl("build", "--version", "p1", "--corpus", "prose", "--chunk-tokens", 200)
    assert result.exit_code == 0, result.output
    assert "chunks have no neutral rewrite yet: run `etl train neutral --version p1" in result.output
    version = etl.datasets / "p1"
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["corpus"] == "prose" and manifest["sft_data"] == "completions"
    assert manifest["config"]["prose"]["min_para_words"] == 60
    counts = manifest["counts"]
    assert counts["pairs_by_kind"] == {"abstract": counts["chunks"]["kept"], "info_dropout": counts["chunks"]["kept"]}
    assert counts["chunks_without_neutral"] == counts["chunks"]["kept"]
    assert sum(counts["splits"].values()) == counts["examples"] and all(counts["splits"].values())

    completions = [r for s in ("train", "valid", "test") for r in _lines(version / "completions" / f"{s}.jsonl")]
    assert len(completions) == counts["examples"]
    assert all(set(r) == {"prompt", "completion"} for r in completions)
    assert all(r["prompt"].startswith("[SYSTEM ROLE]:\nYou are the Systems Theologian.") for r in completions)
    assert all("\n\n[INSTRUCTION]:\n" in r["prompt"] and r["prompt"].endswith("\n") for r in completions)
    # Targets are the author's own paragraphs, whole and clean of the fourth wall.
    paragraphs = {p for r in completions for p in r["completion"].split("\n\n")}
    assert P1 in paragraphs and book.COPYRIGHT not in paragraphs and not any("[^" in p for p in paragraphs)
    assert not any("As an AI" in r["completion"] for r in completions)
    chat = _lines(version / "chatml" / "train.jsonl")
    assert [m["role"] for m in chat[0]["messages"]] == ["system", "user", "assistant"]

    # No document in two splits.
    assert _sql(etl.warehouse, "select count(*) from (select document_id from prose_chunks where version = 'p1' "
                               "group by 1 having count(distinct split) > 1)") == [(0,)]
    reasons = dict(_sql(etl.warehouse, "select reason, sum(dropped) from build_drop_reasons where version = 'p1' "
                                       "group by 1"))
    for reason in ("copyright", "toc", "heading", "running_header", "footnote", "boilerplate", "duplicate",
                   "assistant_voice", "no_neutral_rewrite", "footnote_marker"):
        assert reason in reasons, reason
    assert "| fourth_wall | copyright |" in (version / "README.md").read_text()

    verified = etl("verify", "p1", "--rebuild")
    assert verified.exit_code == 0, verified.output
    assert "a fresh rebuild from the warehouse gives identical files" in verified.output
    again = etl("build", "--version", "p1", "--corpus", "prose")
    assert again.exit_code == 4 and "versions are immutable" in again.output


def test_budget_and_tokenizer_are_honoured_and_recorded(tmp_path, etl):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(book.PROSE, trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]"]))
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    book.write_essays(tmp_path / "essays", 4)
    assert etl("ingest", "prose", tmp_path / "essays").exit_code == 0
    result = etl("build", "--version", "p1", "--corpus", "prose", "--tokenizer", tmp_path / "tokenizer.json",
                 "--target-tokens", 700, "--chunk-tokens", 200)
    assert result.exit_code == 0, result.output
    manifest = json.loads((etl.datasets / "p1" / "manifest.json").read_text())
    assert manifest["inputs"]["tokenizer"]["counted_in"] == "tokens"
    assert manifest["counts"]["chunks"]["tokens"] <= 700
    per_doc = _sql(etl.warehouse, "select document_id, sum(tokens) from prose_chunks group by 1")
    assert len(per_doc) == 4  # every document got its share
    assert "over_budget" in dict(_sql(etl.warehouse, "select reason, dropped from build_drop_reasons"))
    assert etl("verify", "p1", "--rebuild").exit_code == 0
    # A changed tokenizer cannot pass for the one the version was counted with.
    tokenizer.train_from_iterator(book.PROSE[:1], trainers.BpeTrainer(vocab_size=100, special_tokens=["[UNK]"]))
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    changed = etl("verify", "p1", "--rebuild")
    assert changed.exit_code != 0 and "not the tokenizer this version was counted with" in changed.output


def test_no_prose_of_the_owner_is_one_line(tmp_path, etl):
    other = tmp_path / "guest.md"
    other.write_text(P1)
    assert etl("ingest", "prose", other, "--author", "Guest").exit_code == 0
    result = etl("build", "--version", "p1", "--corpus", "prose")
    assert result.exit_code == 1
    assert result.output.strip() == "etl: error: no prose of the owner's in the warehouse; land some with " \
                                    "`etl ingest prose PATH`"
    assert not (etl.datasets / "p1").exists()


def test_prose_config_comes_from_corpus_toml(tmp_path, etl):
    book.write_essays(tmp_path / "essays", 3)
    config = tmp_path / "corpus.toml"
    config.write_text('[prose]\nsystem_prompt = "You are Mara Quill."\nkinds = ["info_dropout"]\n'
                      '[prose.instructions]\ninfo_dropout = "Put the style back."\n')
    base = ["--warehouse", str(etl.warehouse), "--datasets", str(etl.datasets), "--config", str(config)]
    assert CliRunner().invoke(cli, [*base, "ingest", "prose", str(tmp_path / "essays")]).exit_code == 0
    result = CliRunner().invoke(cli, [*base, "build", "--version", "p1", "--corpus", "prose"])
    assert result.exit_code == 0, result.output
    records = _lines(etl.datasets / "p1" / "completions" / "train.jsonl")
    assert records and all(r["prompt"].startswith("[SYSTEM ROLE]:\nYou are Mara Quill.\n\n[INSTRUCTION]:\n"
                                                  "Put the style back.") for r in records)
    config.write_text("[prose]\nmin_para_word = 3\n")
    bad = CliRunner().invoke(cli, [*base, "build", "--version", "p2", "--corpus", "prose"])
    assert bad.exit_code == 1 and "unknown key(s) in [prose]: min_para_word" in bad.output


def test_the_report_of_a_prose_version(tmp_path, etl):
    import re
    import stat

    book.write_essays(tmp_path / "essays", 4)
    assert etl("ingest", "prose", tmp_path / "essays").exit_code == 0
    assert etl("build", "--version", "p1", "--corpus", "prose", "--chunk-tokens", 200).exit_code == 0
    result = etl("report", "p1")
    assert result.exit_code == 0, result.output
    page = tmp_path / "reports" / "p1" / "report.html"
    text = page.read_text()
    data = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)[1])
    manifest = json.loads((etl.datasets / "p1" / "manifest.json").read_text())
    assert data["kind"] == "prose" and data["overview"]["chunks"] == manifest["counts"]["chunks"]["kept"]
    assert sorted(d["title"] for d in data["documents"]) == [f"Essay {o.title()}" for o in sorted(book.ORDINALS[:4])]
    assert data["words_per_chunk"]["count"] == manifest["counts"]["chunks"]["kept"]
    assert {d["reason"] for d in data["drops"]} >= {"heading", "no_neutral_rewrite"}
    assert data["pairs_by_kind"] == manifest["counts"]["pairs_by_kind"]
    assert "Words per chunk" in text and "data:image/png;base64," in text
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
