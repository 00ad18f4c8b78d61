"""Tests of the dedup stage, with datasketch as the oracle."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from datasketch import LeanMinHash, MinHash, MinHashLSH
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl.transforms.dedup import (
    _EXACT_MARGIN,
    DROP_DUPLICATE,
    DROP_NEAR_DUPLICATE,
    DROP_REPLY_REPEATS,
    DedupConfig,
    deduplicate,
    lsh_params,
    minhash_signatures,
    near_duplicate_groups,
    normalize_expr,
    permutations,
    shingle_hash32,
    shingles,
)
from etl.transforms.dedup import _near_duplicates
from etl.transforms.timer import Timer

# --------------------------------------------------------------------------
# Oracle helpers
# --------------------------------------------------------------------------


def oracle_minhash(text: str, cfg: DedupConfig) -> LeanMinHash:
    m = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, hashfunc=shingle_hash32)
    m.update_batch(shingles(text, cfg.ngram))
    return LeanMinHash(m)


def similarity(a: str, b: str, cfg: DedupConfig) -> float:
    """The MinHash estimate, or the exact shingle Jaccard within the exact margin of
    the threshold: the value the dedup decides on."""
    est = oracle_minhash(a, cfg).jaccard(oracle_minhash(b, cfg))
    if abs(est - cfg.threshold) < _EXACT_MARGIN:
        x, y = set(shingles(a, cfg.ngram)), set(shingles(b, cfg.ngram))
        return len(x & y) / len(x | y)
    return est


def reference_groups(texts: list[str], cfg: DedupConfig) -> tuple[list[int], list[float]]:
    """Greedy in index order over LSH-bucket-sharing, verified pairs: the MinHash
    estimate decides, except within the exact margin of the threshold, where the
    exact shingle Jaccard does."""
    b, r = lsh_params(cfg.threshold, cfg.num_perm)
    mhs = [oracle_minhash(t, cfg) for t in texts]
    bands = [[tuple(m.hashvalues[k * r : (k + 1) * r]) for k in range(b)] for m in mhs]
    keeper = list(range(len(texts)))
    jac = [1.0] * len(texts)
    kept: list[int] = []
    for j in range(len(texts)):
        for i in kept:  # ascending
            if any(bands[i][k] == bands[j][k] for k in range(b)):
                est = similarity(texts[i], texts[j], cfg)
                if est >= cfg.threshold:
                    keeper[j], jac[j] = i, est
                    break
        else:
            kept.append(j)
    return keeper, jac


def norm(texts: list[str]) -> list[str]:
    return pl.select(normalize_expr(pl.lit(pl.Series(texts, dtype=pl.String)))).to_series().to_list()


def frame(rows: list[tuple]) -> pl.DataFrame:
    """Rows of (example_id, prompt, response[, sent_at offset s[, drop_reason]])."""
    t0 = datetime(2024, 1, 1)
    out = []
    for k, row in enumerate(rows):
        eid, prompt, response = row[:3]
        off = row[3] if len(row) > 3 else k
        reason = row[4] if len(row) > 4 else None
        out.append((eid, prompt, response, t0 + timedelta(seconds=off), reason))
    return pl.DataFrame(
        out,
        schema={
            "example_id": pl.String,
            "prompt": pl.String,
            "response": pl.String,
            "sent_at": pl.Datetime("us"),
            "drop_reason": pl.String,
        },
        orient="row",
    )


def run(df: pl.DataFrame, cfg: DedupConfig | None = None, **kw) -> pl.DataFrame:
    return deduplicate(df, cfg or DedupConfig(), **kw)[0]


def by_id(out: pl.DataFrame) -> dict[str, dict]:
    return {r["example_id"]: r for r in out.iter_rows(named=True)}


# --------------------------------------------------------------------------
# Signatures: bit-identical to datasketch
# --------------------------------------------------------------------------


def _random_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = "abcde fgé👍❤️\u0301Ω中"
    fixed = ["", "a", "ok", "ok!", "abcd", "abcde", "abcdef", "👍", "merge it", "sounds good, merge it"]
    return fixed + ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(n)]


@pytest.mark.parametrize(("num_perm", "seed", "ngram"), [(128, 1, 5), (64, 7, 3), (17, 3, 1)])
def test_signatures_identical_to_datasketch(num_perm, seed, ngram):
    cfg = DedupConfig(num_perm=num_perm, seed=seed, ngram=ngram)
    # More texts than one signature block, so block edges are covered too.
    texts = _random_texts(2500, seed)
    sig = minhash_signatures(texts, num_perm=num_perm, seed=seed, ngram=ngram)
    assert sig.shape == (len(texts), num_perm) and sig.dtype == np.uint32
    for i, t in enumerate(texts):
        np.testing.assert_array_equal(sig[i], oracle_minhash(t, cfg).hashvalues, err_msg=repr(t))


def test_signatures_independent_of_threads():
    texts = _random_texts(3000, 11)
    one = minhash_signatures(texts, threads=1)
    two = minhash_signatures(texts, threads=2)
    np.testing.assert_array_equal(one, two)


def test_parameters_are_datasketchs():
    a, b = permutations(128, 1)
    np.testing.assert_array_equal(np.stack([a, b]), MinHash(num_perm=128, seed=1).permutations)
    lsh = MinHashLSH(threshold=0.8, num_perm=128, weights=(0.2, 0.8))
    assert lsh_params(0.8, 128) == (lsh.b, lsh.r) == (12, 10)


def test_a_pair_at_the_threshold_usually_shares_a_bucket():
    bands, rows = lsh_params(0.8, 128)
    assert 1 - (1 - 0.8**rows) ** bands > 0.7


def test_signature_rows_work_in_datasketch_lsh():
    cfg = DedupConfig()
    texts = ["the deploy failed on staging again", "the deploy failed on staging again!", "lunch?"]
    sig = minhash_signatures(texts)
    a, b = permutations(cfg.num_perm, cfg.seed)
    lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
    mhs = [MinHash(hashvalues=row, scheme="affine32", permutations=(a, b), seed=cfg.seed) for row in sig]
    for i, m in enumerate(mhs):
        lsh.insert(str(i), m)
    assert set(lsh.query(mhs[0])) == {"0", "1"}


def test_short_texts_are_one_shingle():
    assert shingles("ok", 5) == ["ok"]
    assert shingles("", 5) == [""]
    assert shingles("abcdef", 5) == ["abcde", "bcdef"]
    sig = minhash_signatures(["ok", "ok!", "merge it", "on it"])
    # No two of these share a single value: disjoint one-shingle sets.
    for i in range(4):
        for j in range(i + 1, 4):
            assert (sig[i] == sig[j]).mean() < 0.1


# --------------------------------------------------------------------------
# near_duplicate_groups
# --------------------------------------------------------------------------


def test_planted_paraphrases_collapse_to_one():
    base = "i looked into the deploy this morning and the root cause is a race in the worker"
    texts = [
        base,
        "lunch at noon",
        base + " again",
        base.replace("looked", "lookd"),
        base.replace("the root", "the actual root"),
        "merge it",
        base.replace("morning", "mornin"),
    ]
    g = near_duplicate_groups(pl.Series(texts), DedupConfig())
    assert g.columns == ["idx", "keeper", "jaccard"]
    keeper = g.get_column("keeper").to_list()
    assert keeper == [0, 1, 0, 0, 0, 5, 0]
    jac = g.get_column("jaccard").to_list()
    assert all(j >= 0.8 for j in jac)
    assert jac[0] == jac[1] == jac[5] == 1.0


def test_distinct_short_replies_are_not_near_duplicates():
    texts = ["ok", "ok!", "merge it", "sounds good", "on it", "on my way", "lgtm", "yes", "yep", "no"]
    g = near_duplicate_groups(pl.Series(texts), DedupConfig())
    assert g.get_column("keeper").to_list() == list(range(len(texts)))


def test_empty_and_single_input():
    g = near_duplicate_groups(pl.Series([], dtype=pl.String), DedupConfig())
    assert g.height == 0 and g.schema == {"idx": pl.UInt32, "keeper": pl.UInt32, "jaccard": pl.Float64}
    g = near_duplicate_groups(pl.Series(["only one"]), DedupConfig())
    assert g.rows() == [(0, 0, 1.0)]


def test_large_bucket_is_complete():
    """Many texts in one bucket: every one is checked against every kept one."""
    rng = random.Random(5)
    base = "can you check the migration before standup tomorrow please"
    texts = [base]
    while len(texts) < 60:
        w = rng.choice(texts).split()
        i = rng.randrange(len(w))
        w[i] = w[i][::-1] if rng.random() < 0.5 else w[i] + rng.choice("xyz")
        t = " ".join(w)
        if t not in texts:
            texts.append(t)
    cfg = DedupConfig(threshold=0.7, num_perm=64)
    _, _, found = _near_duplicates(pl.Series(texts), cfg, None, Timer())
    assert found["large_bucket_members"] > 0 and found["completion_checked"] > 0
    g = near_duplicate_groups(pl.Series(texts), cfg)
    keeper, jac = reference_groups(texts, cfg)
    assert g.get_column("keeper").to_list() == keeper
    assert g.get_column("jaccard").to_list() == pytest.approx(jac)


@st.composite
def near_text_lists(draw):
    alphabet = "abcdefgh "
    bases = draw(st.lists(st.text(alphabet=alphabet, min_size=0, max_size=40), min_size=1, max_size=5))
    out: list[str] = []
    for _ in range(draw(st.integers(1, 40))):
        t = draw(st.sampled_from(bases))
        for _ in range(draw(st.integers(0, 3))):
            pos = draw(st.integers(0, len(t)))
            ch = draw(st.sampled_from(alphabet))
            op = draw(st.sampled_from(["insert", "delete", "replace"]))
            if op == "insert":
                t = t[:pos] + ch + t[pos:]
            elif op == "delete":
                t = t[:pos] + t[pos + 1 :]
            else:
                t = t[:pos] + ch + t[pos + 1 :]
        out.append(t)
    return list(dict.fromkeys(out))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=near_text_lists(),
    threshold=st.sampled_from([0.5, 0.7, 0.8, 0.9]),
    num_perm=st.sampled_from([32, 64, 128]),
    ngram=st.sampled_from([2, 3, 5]),
)
def test_groups_equal_reference_greedy(texts, threshold, num_perm, ngram):
    cfg = DedupConfig(threshold=threshold, num_perm=num_perm, ngram=ngram)
    g = near_duplicate_groups(pl.Series(texts, dtype=pl.String), cfg)
    keeper = g.get_column("keeper").to_list()
    jac = g.get_column("jaccard").to_list()
    ref_keeper, ref_jac = reference_groups(texts, cfg)
    assert keeper == ref_keeper
    assert jac == pytest.approx(ref_jac)
    # The guarantees, stated directly.
    for j, k in enumerate(keeper):
        assert keeper[k] == k  # keepers are kept
        if k != j:
            assert k < j
            assert jac[j] == pytest.approx(similarity(texts[k], texts[j], cfg))
            assert jac[j] >= threshold
    # Threads do not change anything.
    g1 = near_duplicate_groups(pl.Series(texts, dtype=pl.String), cfg, threads=1)
    assert g1.equals(g)


# --------------------------------------------------------------------------
# deduplicate
# --------------------------------------------------------------------------


def test_exact_pair_repeats_are_duplicates():
    df = frame(
        [
            ("e1", "Can you review?", "Sounds good, merge it"),
            ("e2", "can you review", "sounds good merge it!"),
            ("e3", "Something else?", "Sounds good, merge it"),
            ("e4", "Can you review?", "Sounds good, merge it"),
        ]
    )
    out = by_id(run(df))
    assert out["e1"]["drop_reason"] is None
    assert out["e2"]["drop_reason"] == DROP_DUPLICATE
    assert out["e3"]["drop_reason"] is None  # same reply, another prompt: a repeat, under the cap
    assert out["e4"]["drop_reason"] == DROP_DUPLICATE
    assert {r["dup_cluster"] for r in out.values()} == {"e1"}
    assert all(r["dup_jaccard"] == 1.0 for r in out.values())


def test_reply_repeat_cap_keeps_earliest():
    rows = [(f"e{k}", f"prompt number {k}", "Sounds good!" if k % 2 else "sounds good") for k in range(7)]
    rows.append(("x", "p", "on my way"))
    out = run(frame(rows), DedupConfig(max_reply_repeats=3))
    got = by_id(out)
    reasons = [got[f"e{k}"]["drop_reason"] for k in range(7)]
    assert reasons == [None, None, None] + [DROP_REPLY_REPEATS] * 4
    assert {got[f"e{k}"]["dup_cluster"] for k in range(7)} == {"e0"}
    assert got["x"]["dup_cluster"] is None and got["x"]["dup_jaccard"] is None
    out1 = by_id(run(frame(rows), DedupConfig(max_reply_repeats=1)))
    assert [out1[f"e{k}"]["drop_reason"] for k in range(7)] == [None] + [DROP_REPLY_REPEATS] * 6


def test_short_replies_stay_distinct():
    replies = ["ok", "merge it", "sounds good", "on it", "on my way", "lgtm", "yes", "no", "👍", "❤️"]
    df = frame([(f"e{k}", f"prompt {k}", r) for k, r in enumerate(replies)])
    out = run(df)
    assert out.get_column("drop_reason").null_count() == len(replies)
    assert out.get_column("dup_cluster").null_count() == len(replies)


def test_near_duplicates_and_clusters():
    base = "I looked into the deploy this morning and the root cause is a race in the worker."
    df = frame(
        [
            ("a", "p1", base),
            ("b", "p2", base.replace("morning", "mornin")),
            ("c", "p3", "lunch?"),
            ("d", "p4", base.upper()),  # the same text after normalising
            ("e", "p5", base.replace("worker", "workers")),
        ]
    )
    out = by_id(run(df))
    assert out["a"]["drop_reason"] is None and out["c"]["drop_reason"] is None
    assert out["b"]["drop_reason"] == DROP_NEAR_DUPLICATE
    assert out["e"]["drop_reason"] == DROP_NEAR_DUPLICATE
    assert out["d"]["drop_reason"] is None  # a repeat of "a"'s text, under the cap
    for k in "abde":
        assert out[k]["dup_cluster"] == "a"
    assert out["a"]["dup_jaccard"] == out["d"]["dup_jaccard"] == 1.0
    assert 0.8 <= out["b"]["dup_jaccard"] < 1.0
    assert out["c"]["dup_cluster"] is None


def test_dropped_rows_pass_through_and_order_is_kept():
    df = frame(
        [
            ("z", "p", "the same reply text here", 5),
            ("y", "p", "the same reply text here", 1, "too_short"),
            ("x", "p", "the same reply text here", 3),
        ]
    ).with_columns(pl.lit(7).alias("extra"))
    out = run(df)
    assert out.get_column("example_id").to_list() == ["z", "y", "x"]
    assert out.get_column("extra").to_list() == [7, 7, 7]
    got = by_id(out)
    assert got["y"]["drop_reason"] == "too_short"
    assert got["y"]["dup_cluster"] is None and got["y"]["dup_jaccard"] is None
    assert got["x"]["drop_reason"] is None  # earliest active row
    assert got["z"]["drop_reason"] == DROP_DUPLICATE
    assert got["z"]["dup_cluster"] == "x"


def test_custom_key_and_order():
    df = frame([("a", "p", "x", 2), ("b", "p", "x", 1)]).with_columns(pl.col("response").alias("reply"), pl.Series("seq", [1, 2]))
    out = by_id(deduplicate(df, DedupConfig(), key="reply", order=["seq"])[0])
    assert out["a"]["drop_reason"] is None and out["b"]["drop_reason"] == DROP_DUPLICATE


def test_empty_frame():
    out = run(frame([]))
    assert out.height == 0
    assert {"dup_cluster", "dup_jaccard", "drop_reason"} <= set(out.columns)


WORDS = ["ok", "merge", "it", "sounds", "good", "deploy", "the", "staging", "now", "please", "thanks", "ship", "on", "my", "way"]


@st.composite
def example_frames(draw):
    n_base = draw(st.integers(1, 6))
    bases = [" ".join(draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=10))) for _ in range(n_base)]
    prompts = draw(st.lists(st.sampled_from(["hi", "Hi!", "pr ready?", "lunch", "status?"]), min_size=1, max_size=3))
    rows = []
    for k in range(draw(st.integers(0, 30))):
        text = draw(st.sampled_from(bases))
        edit = draw(st.sampled_from(["none", "upper", "punct", "word", "char"]))
        if edit == "upper":
            text = text.upper()
        elif edit == "punct":
            text = text + draw(st.sampled_from(["!", "?", " 👍", "..."]))
        elif edit == "word":
            text = text + " " + draw(st.sampled_from(WORDS))
        elif edit == "char" and text:
            i = draw(st.integers(0, len(text) - 1))
            text = text[:i] + draw(st.sampled_from("xyz")) + text[i + 1 :]
        reason = draw(st.sampled_from([None, None, None, None, "too_short"]))
        # Few distinct times: ties are broken by example_id.
        rows.append((f"ex{k:03d}", draw(st.sampled_from(prompts)), text, draw(st.integers(0, 5)), reason))
    return frame(rows)


CFGS = st.builds(
    DedupConfig,
    threshold=st.sampled_from([0.5, 0.7, 0.8]),
    num_perm=st.sampled_from([32, 128]),
    ngram=st.sampled_from([3, 5]),
    max_reply_repeats=st.integers(1, 3),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=example_frames(), cfg=CFGS)
def test_dedup_properties(df, cfg):
    out = run(df, cfg)
    assert out.height == df.height
    assert out.get_column("example_id").to_list() == df.get_column("example_id").to_list()
    rows = out.with_columns(
        normalize_expr(pl.col("response")).alias("nr"), normalize_expr(pl.col("prompt")).alias("np")
    ).sort("sent_at", "example_id")
    recs = rows.to_dicts()
    src = {r["example_id"]: r for r in df.to_dicts()}
    kept = [r for r in recs if r["drop_reason"] is None]
    kept_texts = {r["nr"] for r in kept}
    by = {r["example_id"]: r for r in recs}
    earlier: list[dict] = []
    for r in recs:
        if src[r["example_id"]]["drop_reason"] is None:
            earlier.append(r)
        if src[r["example_id"]]["drop_reason"] is not None:
            assert r["drop_reason"] == src[r["example_id"]]["drop_reason"]
            assert r["dup_cluster"] is None and r["dup_jaccard"] is None
            continue
        if r["drop_reason"] == DROP_NEAR_DUPLICATE:
            # Never dropped unless some kept text reaches the threshold ...
            assert max(similarity(r["nr"], k, cfg) for k in kept_texts) >= cfg.threshold
            # ... and its cluster's kept text does, directly.
            keeper = by[r["dup_cluster"]]
            assert keeper["drop_reason"] is None
            assert similarity(r["nr"], keeper["nr"], cfg) == pytest.approx(r["dup_jaccard"])
            assert r["dup_jaccard"] >= cfg.threshold
        elif r["drop_reason"] == DROP_DUPLICATE:
            # An exact repeat of an earlier row's pair (that row may itself
            # be a near duplicate of something else).
            assert any(k["nr"] == r["nr"] and k["np"] == r["np"] for k in earlier[:-1])
        elif r["drop_reason"] == DROP_REPLY_REPEATS:
            assert sum(k["nr"] == r["nr"] for k in kept) == cfg.max_reply_repeats
        if r["drop_reason"] is not None:
            # Whatever the reason, a dropped row is in a cluster whose kept
            # example reaches the threshold with it directly.
            assert r["dup_cluster"] is not None
        if r["dup_cluster"] is not None:
            keeper = by[r["dup_cluster"]]
            assert keeper["drop_reason"] is None
            assert similarity(r["nr"], keeper["nr"], cfg) == pytest.approx(r["dup_jaccard"])
            assert r["dup_jaccard"] >= cfg.threshold
    # At most max_reply_repeats kept rows per reply text; unique kept pairs.
    texts = [k["nr"] for k in kept]
    assert max((texts.count(t) for t in texts), default=0) <= cfg.max_reply_repeats
    assert len({(k["np"], k["nr"]) for k in kept}) == len(kept)

    # Input row order does not matter.
    shuffled = run(df.sample(fraction=1.0, shuffle=True, seed=1), cfg)
    assert shuffled.sort("example_id").equals(out.sort("example_id"))

    # Idempotent: the kept rows lose nothing more.
    again = run(out.filter(pl.col("drop_reason").is_null()).select(df.columns), cfg)
    assert again.get_column("drop_reason").null_count() == again.height


def test_normalised_key():
    raw = ["Hello,  World!! 👍", "OK!", "ok 👍", "👍 👍", "  \t❤️\n ", "☺️", "don't   stop", None, "Élan VITAL", "café ok", "1️⃣ x", "-- ..."]
    assert norm(raw) == ["hello world", "ok", "ok", "👍 👍", "❤️", "☺️", "don t stop", "", "élan vital", "café ok", "1 x", "-- ..."]


def test_parallel_normalisation_matches_expression():
    from etl.transforms.dedup import _normalize_series

    rng = random.Random(3)
    pool = ["Hello, World!", "ok 👍", "👍", "  ", "ÉLAN vital?!", "a_b-c", "x\ty", "❤️ ❤️", "", "line\nbreak"]
    s = pl.Series([rng.choice(pool) + rng.choice(["", "!", " 🎉", "..."]) for _ in range(120_000)])
    assert _normalize_series(s, 2).to_list() == pl.select(normalize_expr(pl.lit(s))).to_series().to_list()
