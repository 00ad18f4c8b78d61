import math
import random

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl.transforms.trajectory import (
    COLUMNS,
    FIXED_POINT,
    HASH_BASE,
    SCALARS,
    TRAJECTORY_VERSION,
    WINDOW,
    _bucket,
    _horner,
    _is_question,
    _lowercase,
    _sim,
    _turn_vector,
    _words,
    add_trajectory,
    trajectory_frame,
    trajectory_scalars,
    trajectory_tag,
    trajectory_tag_expr,
)

SLOW = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def frame(contexts: list) -> pl.LazyFrame:
    return pl.LazyFrame({"context": contexts}, schema={"context": pl.List(pl.String)})


def as_scalars(row: dict) -> dict:
    """An add_trajectory row in the shape trajectory_scalars returns."""
    out = {name: row[f"traj_{name}"] for name in SCALARS if row[f"traj_{name}"] is not None}
    out["regime"] = row["regime"]
    return out


def distinct_buckets(*texts: str) -> bool:
    """True when no two of the texts' features share a bucket (a precondition of the
    hand-computed cases below)."""
    seen: set[int] = set()
    for text in texts:
        buckets = set(_turn_vector(text))
        if buckets & seen:
            return False
        seen |= buckets
    return True


# ---- the definition, pinned ------------------------------------------------------------


def test_version_and_golden_tag():
    assert TRAJECTORY_VERSION == "trajectory_v1"
    conversation = [
        "Should we refactor or patch?",
        "Patch it, ship the fix.",
        "ok but the tests are flaky",
        "patch first, then fix the tests?",
    ]
    # A changed value here changes every tagged dataset: bump TRAJECTORY_VERSION.
    assert trajectory_tag(trajectory_scalars(conversation)) == (
        "[trajectory: c=0.16 u=0.32 p=0.59 r=0.10 k=0.40 n=0.70 s=0.82 regime=exploring]"
    )


def test_hash_is_polynomial_then_murmur_finaliser():
    assert _horner("") == 0
    assert _horner("ab") == (ord("a") * HASH_BASE + ord("b")) % 2**32
    assert _horner("a b") == ((ord("a") * HASH_BASE + 0x20) * HASH_BASE + ord("b")) % 2**32
    # Pinned buckets: they may only change with a new TRAJECTORY_VERSION.
    assert _bucket("hello") == 475
    assert _bucket("hello world") == 3792
    assert all(0 <= _bucket(w) < 4096 for w in ["", "x", "😂", "ünïcödé", "a" * 1000])


def test_words():
    lowered = _lowercase(pl.Series(["Don't STOP—me now!! l’été ❤️ x_y"])).item()
    assert _words(lowered) == ["dont", "stop", "me", "now", "lété", "❤", "x", "y"]
    assert _words("dont") == _words("don't") == _words("don’t")
    assert _words("a\u00a0b\u202fc\u200bd\u3000e") == ["a", "b", "c", "d", "e"]
    assert _words("...?!") == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("why?", True),
        ("ok?!", True),
        ("really??", True),
        ("what? no", True),
        ("？", True),
        ("see site.com/?id=1", False),
        ("a?b", False),
        ("no question", False),
        ("", False),
    ],
)
def test_questions(text, expected):
    assert _is_question(text) is expected


def test_similarity_by_hand():
    assert distinct_buckets("a", "b", "c") and distinct_buckets("a b", "c")
    ab, ac = _turn_vector("a b"), _turn_vector("a c")
    assert set(ab) & set(ac) == {_bucket("a")}
    # Features {a, b, "a b"} and {a, c, "a c"}: one shared, three each.
    assert _sim(ab, ac) == 1 / 3
    assert _sim(ab, ab) == 1.0
    # "no no no": tf(no) = 3, tf("no no") = 2, N = 5; against "no": √3 / √5.
    triple, single = _turn_vector("no no no"), _turn_vector("no")
    assert sum(triple.values()) == 5
    assert abs(_sim(triple, single) - math.sqrt(3) / math.sqrt(5)) < 2 / FIXED_POINT
    assert _sim(triple, single) == _sim(single, triple)
    assert _sim(_turn_vector("..."), ab) == 0.0
    assert _sim(_turn_vector(""), _turn_vector("")) == 0.0


# ---- properties from the definition -----------------------------------------------------


@pytest.mark.parametrize("turns", [[], ["a"], ["a", "b"], [None, None]])
def test_fewer_than_three_turns_is_cold_start(turns):
    assert trajectory_scalars(turns) == {"regime": "cold-start"}
    out = add_trajectory(frame([turns])).collect()
    assert out["regime"].to_list() == ["cold-start"]
    assert all(out[f"traj_{name}"].to_list() == [None] for name in SCALARS)
    assert trajectory_tag(out.row(0, named=True)) == "[trajectory: regime=cold-start]"


def test_null_context_is_cold_start():
    out = add_trajectory(frame([None])).collect()
    assert out["regime"].to_list() == ["cold-start"]


@pytest.mark.parametrize("count", [3, 4, 7, 10, 14])
@pytest.mark.parametrize("turn", ["sounds good", "are you sure?", "ok"])
def test_repeating_one_turn_is_committed(count, turn):
    result = trajectory_scalars([turn] * count)
    assert result["n"] == 0.0
    assert result["c"] == 1.0
    assert result["s"] == 1.0
    assert result["regime"] == "committed"
    assert result["p"] == 0.5 and result["k"] == 0.5
    assert result["u"] == (0.5 if turn.endswith("?") else 0.0)
    assert result["r"] == (1.0 if count > 3 else 0.0)


@pytest.mark.parametrize("count", [3, 4, 6, 10])
def test_turns_sharing_no_words_are_exploring(count):
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
             "india", "juliett"][:count]
    assert distinct_buckets(*words)
    result = trajectory_scalars(words)
    assert result["c"] == 0.0
    assert result["n"] == 1.0
    assert result["regime"] == "exploring"
    assert result["r"] == 0.0 and result["s"] == 1.0 and result["p"] == 0.5


def test_four_turns_by_hand():
    assert distinct_buckets("x", "y")
    result = trajectory_scalars(["x", "y", "x", "x"])
    # a = (0, 0, 1), v = (1, 1, 0), b = (1, 0, 1)
    assert result == {
        "c": 0.33,  # (0 + 0 + 1) / 3
        "u": 0.13,  # ½(1 − √(3 + 2·(0 + 1 + 0)) / 3)
        "p": 1.0,  # 0.5 + 0.5·(1 − 0)
        "r": 1.0,  # sim(last, first)
        "k": 0.42,  # d = (⅓, ⅓, −⅔): ρ = (−1/9) / (6/9), k = (1 − 1/6) / 2
        "n": 0.0,  # the last turn repeats an earlier one
        "s": 0.0,  # 1 − |0 − 2·1 + 1|
        "regime": "converging",
    }


def test_three_turn_fallbacks_by_hand():
    assert distinct_buckets("x", "y")
    result = trajectory_scalars(["x", "y", "y"])
    # c averages the 2 steps there are; s takes v_{t−2} = v_{t−1}; r has no earlier turns;
    # k has fewer than 3 velocities.
    assert result == {
        "c": 0.5,
        "u": 0.13,
        "p": 1.0,
        "r": 0.0,
        "k": 0.5,
        "n": 0.0,
        "s": 0.0,
        "regime": "converging",
    }


def test_uncertainty_counts_questions():
    assert distinct_buckets("x", "y", "z")
    # norm = √3 / 3, two questions out of three
    expected = round(0.5 * (1 - math.sqrt(3) / 3) + 0.5 * (2 / 3), 2)
    assert trajectory_scalars(["x?", "y?", "z"])["u"] == expected == 0.54


def test_stiffness_of_alternating_velocity():
    assert distinct_buckets("x", "y")
    # v = (0, 1, 0, 1, 0): ρ = −0.96 / 1.2 = −0.8, k = 0.1
    assert trajectory_scalars(["x", "x", "y", "y", "x", "x"])["k"] == 0.1


def test_turns_without_words():
    result = trajectory_scalars(["...", "!!", "..."])
    assert result["c"] == 0.0 and result["n"] == 1.0 and result["u"] == 0.5
    assert result["regime"] == "exploring"


def test_only_the_last_window_counts():
    turns = [f"turn number {i}" for i in range(15)]
    assert trajectory_scalars(turns) == trajectory_scalars(turns[-WINDOW:])
    assert trajectory_scalars(["anything"] * 5 + turns[-WINDOW:]) == trajectory_scalars(turns)


# ---- vectorised == reference -------------------------------------------------------------

VOCABULARY = ["yes", "no", "maybe", "ok", "why?", "don't", "dont", "lol", "😂", "Ça", "va",
              "?", "...", "", "the", "THE", "tests", "ship it", "İstanbul", "ΟΔΟΣ"]
turn_text = st.one_of(
    st.lists(st.sampled_from(VOCABULARY), max_size=8).map(" ".join),
    st.text(max_size=25),
    st.text(alphabet="ab ?'’\u2019\ufe0f\u00a0\n.,_xé😂？", max_size=15),
)
turn = st.one_of(turn_text, st.none()) | turn_text
context = st.one_of(
    st.none(),
    st.lists(turn, max_size=13),
    st.builds(lambda t, n: [t] * n, turn_text, st.integers(0, 12)),
)


@SLOW
@given(st.lists(context, min_size=1, max_size=40))
def test_vectorised_agrees_with_reference(contexts):
    out = add_trajectory(frame(contexts)).collect()
    assert out.columns == ["context", *COLUMNS]
    for ctx, row in zip(contexts, out.iter_rows(named=True)):
        assert as_scalars(row) == trajectory_scalars(ctx or [])


@SLOW
@given(st.lists(context, min_size=1, max_size=30))
def test_scalars_in_unit_interval_with_two_decimals(contexts):
    out = trajectory_frame(pl.Series("context", contexts, dtype=pl.List(pl.String)))
    for name in (f"traj_{s}" for s in SCALARS):
        for x in out[name].drop_nulls():
            assert 0.0 <= x <= 1.0
            assert x == round(x * 100) / 100


@SLOW
@given(st.lists(st.lists(turn_text, min_size=0, max_size=12), min_size=2, max_size=25),
       st.randoms(use_true_random=False))
def test_same_conversation_same_tag_whatever_the_other_rows(contexts, rnd):
    tags = add_trajectory(frame(contexts)).with_columns(tag=trajectory_tag_expr()).collect()
    expected = dict(zip(map(tuple, contexts), tags["tag"]))
    shuffled = contexts[:] + [[f"other {i}", "rows", "?"] for i in range(5)]
    rnd.shuffle(shuffled)
    again = add_trajectory(frame(shuffled)).with_columns(tag=trajectory_tag_expr()).collect()
    for ctx, tag in zip(shuffled, again["tag"]):
        if tuple(ctx) in expected:
            assert tag == expected[tuple(ctx)]


def test_agrees_on_conversation_windows():
    rng = random.Random(7)
    words = ["patch", "refactor", "ship", "tests", "flaky", "why", "ok", "later", "now", "?"]
    turns = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 9))) for _ in range(300)]
    contexts = [turns[max(0, i - WINDOW) : i] for i in range(1, len(turns), 2)]
    out = add_trajectory(frame(contexts)).collect()
    for ctx, row in zip(contexts, out.iter_rows(named=True)):
        assert as_scalars(row) == trajectory_scalars(ctx)
    assert len(set(out["regime"])) >= 3


def test_texts_sharing_a_hash_are_kept_apart(monkeypatch):
    # Distinct turns are grouped by a hash and then compared; force every hash to clash.
    def clashing(self, *args, **kwargs):
        return pl.Series([0] * len(self), dtype=pl.UInt64)

    monkeypatch.setattr(pl.Series, "hash", clashing)
    contexts = [["a b", "c", "a b", "d"], ["c", "c", "c"], ["x", "y", "x y z"]]
    out = add_trajectory(frame(contexts)).collect()
    for ctx, row in zip(contexts, out.iter_rows(named=True)):
        assert as_scalars(row) == trajectory_scalars(ctx)


# ---- frame handling and tags --------------------------------------------------------------


def test_add_trajectory_keeps_rows_and_columns():
    lf = pl.LazyFrame(
        {"id": [1, 2, 3], "turns": [["a", "b", "c"], None, ["x"]], "regime": ["old"] * 3}
    )
    out = add_trajectory(lf, column="turns").collect()
    assert out["id"].to_list() == [1, 2, 3]
    assert out.columns == ["id", "turns", "regime", *COLUMNS[:-1]]
    assert out["regime"].to_list()[1:] == ["cold-start", "cold-start"]
    assert out.schema["traj_c"] == pl.Float64 and out.schema["regime"] == pl.String


def test_add_trajectory_on_empty_frame():
    out = add_trajectory(frame([])).collect()
    assert out.height == 0 and out.columns == ["context", *COLUMNS]


def test_tag_formats():
    row = {"c": 0.82, "u": 0.15, "p": 0.61, "r": 0.4, "k": 0.55, "n": 0.23, "s": 0.91,
           "regime": "committed"}
    expected = "[trajectory: c=0.82 u=0.15 p=0.61 r=0.40 k=0.55 n=0.23 s=0.91 regime=committed]"
    assert trajectory_tag(row) == expected
    assert trajectory_tag({f"traj_{k}": v for k, v in row.items() if k != "regime"}
                          | {"regime": "committed"}) == expected
    assert trajectory_tag({"regime": "cold-start"}) == "[trajectory: regime=cold-start]"
    df = pl.DataFrame({**{f"traj_{k}": [row[k], None] for k in SCALARS},
                       "regime": ["committed", "cold-start"]})
    assert df.select(trajectory_tag_expr())["trajectory_tag"].to_list() == [
        expected, "[trajectory: regime=cold-start]"
    ]


@SLOW
@given(st.lists(context, min_size=1, max_size=20))
def test_tag_expression_matches_python_tag(contexts):
    out = add_trajectory(frame(contexts)).with_columns(trajectory_tag_expr()).collect()
    for row in out.iter_rows(named=True):
        assert row["trajectory_tag"] == trajectory_tag(row)
        if row["regime"] != "cold-start":
            assert row["trajectory_tag"] == trajectory_tag(trajectory_scalars(row["context"]))
