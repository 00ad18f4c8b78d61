from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from etl.transforms.conversations import assemble_turns, build_examples, drop_short_responses, resolve_owner, split_of

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def _messages(rows):
    """rows: (conversation, minutes after T0, is_owner, text[, sender])"""
    data = []
    for i, row in enumerate(rows):
        conv, minutes, owner, text, *sender = row
        data.append({
            "source": "test",
            "source_id": f"m{i:04d}",
            "conversation_id": conv,
            "sent_at": T0 + timedelta(minutes=minutes),
            "sender": "me" if owner else (sender[0] if sender else "alex"),
            "sender_name": None,
            "is_owner": owner,
            "text": text,
        })
    return pl.DataFrame(data, schema={
        "source": pl.String, "source_id": pl.String, "conversation_id": pl.String,
        "sent_at": pl.Datetime("us", "UTC"), "sender": pl.String, "sender_name": pl.String,
        "is_owner": pl.Boolean, "text": pl.String,
    })


def test_consecutive_messages_merge_into_one_turn():
    turns = assemble_turns(_messages([
        ("c", 0, False, "are you coming tonight?"),
        ("c", 1, False, "bring the charger"),
        ("c", 2, True, "yes"),
        ("c", 3, True, "leaving in ten"),
    ]), gap_hours=6)
    assert turns["role"].to_list() == ["user", "assistant"]
    assert turns["text"].to_list() == ["are you coming tonight?\nbring the charger", "yes\nleaving in ten"]
    assert turns["message_ids"].to_list() == [["m0000", "m0001"], ["m0002", "m0003"]]


def test_long_silence_starts_a_new_session():
    turns = assemble_turns(_messages([
        ("c", 0, False, "lunch?"),
        ("c", 5, True, "sure, noon works"),
        ("c", 60 * 24, False, "did you see the game?"),
        ("c", 60 * 24 + 2, True, "missed it, who won"),
    ]), gap_hours=6)
    assert turns["session_id"].n_unique() == 2
    examples = build_examples(turns, context_turns=9, context_chars=1000)
    assert examples.sort("sent_at")["context"].to_list() == [["lunch?"], ["did you see the game?"]]


def test_group_chat_lines_carry_the_speaker():
    turns = assemble_turns(_messages([
        ("g", 0, False, "who has the keys", "alex"),
        ("g", 1, False, "not me", "jordan"),
        ("g", 2, True, "I do, on my way"),
    ]), gap_hours=6)
    assert turns["text"][0] == "alex: who has the keys\njordan: not me"


def test_owner_turn_without_context_is_dropped_with_reason():
    examples = build_examples(assemble_turns(_messages([
        ("c", 0, True, "happy birthday!!"),
        ("c", 1, False, "thank you"),
    ]), gap_hours=6), context_turns=9, context_chars=1000)
    assert examples["drop_reason"].to_list() == ["no_context"]


def test_short_responses_are_dropped_after_context():
    examples = build_examples(assemble_turns(_messages([
        ("c", 0, False, "ready to merge?"),
        ("c", 1, True, "ok"),
    ]), gap_hours=6), context_turns=9, context_chars=1000)
    assert drop_short_responses(examples, min_chars=10)["drop_reason"].to_list() == ["short_response"]


conversation = st.lists(
    st.tuples(st.booleans(), st.text(min_size=1, max_size=300)), min_size=1, max_size=25
)


@settings(max_examples=60, deadline=None)
@given(convs=st.lists(conversation, min_size=1, max_size=4), budget=st.integers(5, 400), turns_max=st.integers(1, 9))
def test_budget_never_cuts_the_reply_and_context_alternates(convs, budget, turns_max):
    rows, minute = [], 0
    for c, conv in enumerate(convs):
        for owner, text in conv:
            minute += 1
            rows.append((f"c{c}", minute, owner, text))
    turns = assemble_turns(_messages(rows), gap_hours=6)
    examples = build_examples(turns, context_turns=turns_max, context_chars=budget)
    owner_turns = turns.filter(pl.col("role") == "assistant")
    assert examples.height == owner_turns.height
    assert sorted(examples["response"].to_list()) == sorted(owner_turns["text"].to_list())
    for row in examples.filter(pl.col("drop_reason").is_null()).iter_rows(named=True):
        roles = row["context_roles"]
        assert len(roles) % 2 == 1 and len(roles) <= max(turns_max, 1)
        assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"]
        if len(row["context"]) > 1:
            assert sum(len(t) for t in row["context"]) <= budget
        assert len(row["context"][-1]) <= max(budget, 1) or row["context"][-1].startswith("…")


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=60, unique=True), seed=st.text(max_size=5))
def test_each_conversation_lands_in_exactly_one_split(keys, seed):
    split = split_of(keys + keys[:3], train=0.8, valid=0.1, test=0.1, seed=seed)
    assert set(split) == set(keys)
    assert set(split.values()) <= {"train", "valid", "test"}
    if len(keys) >= 3:
        assert {"valid", "test"} <= set(split.values())
    assert split == split_of(list(reversed(keys)), train=0.8, valid=0.1, test=0.1, seed=seed)


def test_unknown_owner_is_settled_by_the_configured_identities_only():
    messages = pl.DataFrame(
        {
            "sender": ["U012AB", "alex", None, "sam@example.com", "Sam Rivera"],
            "sender_name": [None, "Alex", " sam rivera ", None, "Sam Rivera"],
            "is_owner": [None, None, None, False, None],
        },
        schema_overrides={"is_owner": pl.Boolean},
    )
    out = resolve_owner(messages, ["Sam Rivera", "sam@example.com", "u012ab"])
    # a known False stays False: the export said so
    assert out["is_owner"].to_list() == [True, None, True, False, True]
    assert resolve_owner(messages, []).equals(messages)
