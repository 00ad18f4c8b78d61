"""From cleaned messages to training examples.

Messages become turns (consecutive messages of one side merged, a thread split at
long silences); every owner turn with something before it becomes one example:
the preceding turns as alternating `user`/`assistant` context under a size budget,
the owner's turn last as `assistant`. Roles are the owner's point of view: whoever
else spoke (a friend, a colleague, an AI assistant) is `user`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import polars as pl

from etl.schemas.records import SPLITS

NO_CONTEXT = "no_context"  # an owner turn that opens a session answers nothing
SHORT_RESPONSE = "short_response"
REASONS = (NO_CONTEXT, SHORT_RESPONSE)  # every drop reason this module gives


def resolve_owner(messages: pl.DataFrame, identities: Sequence[str]) -> pl.DataFrame:
    """Settle `is_owner` where the export could not tell (NULL): the owner wrote a
    message whose sender or sender name is one of `identities` (compared trimmed and
    case-insensitively). A known True or False is left alone.

    Done at build time so that owner details added to the config after an ingest
    still count, without landing the export again.
    """
    wanted = sorted({i.strip().lower() for i in identities if i and i.strip()})
    if not wanted:
        return messages

    def listed(column: str) -> pl.Expr:
        return pl.col(column).str.strip_chars().str.to_lowercase().is_in(wanted).fill_null(False)

    return messages.with_columns(
        is_owner=pl.when(pl.col("is_owner").is_null() & (listed("sender") | listed("sender_name")))
        .then(True)
        .otherwise(pl.col("is_owner"))
    )


def assemble_turns(messages: pl.DataFrame, *, gap_hours: float) -> pl.DataFrame:
    """One row per turn: a run of messages by one side within one session.

    Needs `source`, `source_id`, `conversation_id`, `sent_at`, `sender`,
    `sender_name`, `is_owner`, `text`. Group chats keep who said what: when more
    than one other person speaks in a conversation, their lines carry the name.
    """
    gap = pl.duration(microseconds=int(gap_hours * 3600 * 1_000_000))
    # `author`, when given, is the label to show (labels.label_speakers); else the name or handle.
    given = pl.col("author") if "author" in messages.columns else pl.lit(None, pl.String)
    frame = (
        messages.lazy()
        .with_columns(
            conv_key=pl.col("source") + pl.lit(":") + pl.col("conversation_id"),
            role=pl.when(pl.col("is_owner").fill_null(False)).then(pl.lit("assistant")).otherwise(pl.lit("user")),
            author=pl.coalesce(given, "sender_name", "sender", pl.lit("someone")),
        )
        .sort(["conv_key", "sent_at", "source_id"], nulls_last=True)
        .with_columns(
            new_session=(
                pl.col("sent_at").diff().over("conv_key").fill_null(pl.duration(microseconds=0)) > gap
            ).cast(pl.UInt32),
            many_others=(
                pl.col("author").filter(pl.col("role") == "user").n_unique().over("conv_key") > 1
            ),
        )
        .with_columns(session=pl.col("new_session").cum_sum().over("conv_key"))
        .with_columns(session_id=pl.col("conv_key") + pl.lit("#") + pl.col("session").cast(pl.String))
        .with_columns(
            new_turn=(pl.col("role") != pl.col("role").shift(1).over("session_id")).fill_null(True).cast(pl.UInt32),
            line=pl.when(pl.col("many_others") & (pl.col("role") == "user"))
            .then(pl.col("author") + pl.lit(": ") + pl.col("text"))
            .otherwise(pl.col("text")),
        )
        .with_columns(turn=pl.col("new_turn").cum_sum().over("session_id") - 1)
    )
    return (
        frame.group_by(["session_id", "turn"], maintain_order=True)
        .agg(
            pl.col("source").first(),
            pl.col("conversation_id").first(),
            pl.col("conv_key").first(),
            pl.col("role").first(),
            pl.col("line").str.join("\n").alias("text"),
            pl.col("source_id").alias("message_ids"),
            pl.col("sent_at").last(),
        )
        .sort(["session_id", "turn"])
        .collect()
    )


def build_examples(turns: pl.DataFrame, *, context_turns: int, context_chars: int) -> pl.DataFrame:
    """One candidate example per owner turn, with its budgeted context.

    `turns` as `assemble_turns` returns them (sorted by session, then turn). Returns
    `example_id`, `source`, `conversation_id`, `conv_key`, `session_id`, `sent_at`,
    `response`, `message_ids`, `context` (texts, oldest first), `context_roles`,
    `context_ids` and `drop_reason` (`NO_CONTEXT` for an owner turn that opens a
    session: there is nothing it answers).
    """
    turns = turns.with_row_index("_row")
    owner = turns.filter(pl.col("role") == "assistant")
    # Stable across builds: the source and the id of the reply's first message.
    firsts = owner["message_ids"].list.first().to_list()
    ids = [_short_hash(f"{s}:{m}") for s, m in zip(owner["source"].to_list(), firsts)]
    owner = owner.with_columns(example_id=pl.Series(ids, dtype=pl.String))

    # Turns are consecutive rows within a session, so the k-th turn before an owner
    # turn is simply k rows up: the context is index arithmetic, no join.
    row = owner["_row"].to_numpy().astype(np.int64)
    available = np.minimum(owner["turn"].to_numpy().astype(np.int64), max(context_turns, 1))
    example = np.repeat(np.arange(owner.height), available)
    starts = np.cumsum(available) - available
    k = np.arange(len(example), dtype=np.int64) - np.repeat(starts, available) + 1
    at = row[example] - k
    # Nearest first: the nearest turn always stays (cut to the budget if alone it is too
    # long), older turns stay while they fit; then an odd number, so it opens with `user`.
    lengths = turns["text"].str.len_chars().to_numpy().astype(np.int64)[at]
    total = np.cumsum(lengths)
    used = total - np.repeat(np.concatenate(([0], total))[starts], available)
    fits = (k == 1) | (used <= context_chars)
    n_fit = np.bincount(example, weights=fits, minlength=owner.height).astype(np.int64)
    n_keep = n_fit - (1 - n_fit % 2)
    keep = k <= n_keep[example]
    example, k, at = example[keep], k[keep], at[keep]
    oldest_first = np.lexsort((-k, example))
    example, at = example[oldest_first], at[oldest_first]

    index = pl.Series(at, dtype=pl.UInt32)
    text = turns["text"].gather(index)
    context = (
        pl.DataFrame(
            {
                "_example": example,
                "ctx_text": text,
                "ctx_role": turns["role"].gather(index),
                "ctx_ids": turns["message_ids"].gather(index),
            }
        )
        .with_columns(
            ctx_text=pl.when(pl.col("ctx_text").str.len_chars() > context_chars)
            .then(pl.lit("…") + pl.col("ctx_text").str.slice(-(context_chars - 1)))
            .otherwise(pl.col("ctx_text"))
        )
        .group_by("_example", maintain_order=True)
        .agg(
            pl.col("ctx_text").alias("context"),
            pl.col("ctx_role").alias("context_roles"),
            pl.col("ctx_ids").list.explode(keep_nulls=False, empty_as_null=False).alias("context_ids"),
        )
    )
    examples = (
        owner.with_row_index("_example")
        .with_columns(pl.col("_example").cast(pl.Int64))
        .join(context, on="_example", how="left", maintain_order="left")
        .select(
            "example_id",
            "source",
            "conversation_id",
            "conv_key",
            "session_id",
            "sent_at",
            pl.col("text").alias("response"),
            "message_ids",
            pl.col("context").fill_null(pl.lit([], pl.List(pl.String))),
            pl.col("context_roles").fill_null(pl.lit([], pl.List(pl.String))),
            pl.col("context_ids").fill_null(pl.lit([], pl.List(pl.String))),
        )
    )
    return examples.with_columns(
        drop_reason=pl.when(pl.col("context").list.len() == 0).then(pl.lit(NO_CONTEXT)).otherwise(pl.lit(None, pl.String)),
        prompt=pl.col("context").list.join("\n\n"),
    )


def drop_short_responses(examples: pl.DataFrame, *, min_chars: int) -> pl.DataFrame:
    return examples.with_columns(
        drop_reason=pl.when(pl.col("drop_reason").is_null() & (pl.col("response").str.len_chars() < min_chars))
        .then(pl.lit(SHORT_RESPONSE))
        .otherwise(pl.col("drop_reason"))
    )


def _short_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:20]


def split_of(conv_keys: list[str], *, train: float, valid: float, test: float, seed: str) -> dict[str, str]:
    """Each conversation to one split, by a hash of its id: no conversation in two splits.

    With at least three conversations no split with a share is left empty: mlx-lm
    needs a validation set. The conversation whose hash lies nearest that split's
    range moves into it, so the rule stays deterministic.
    """
    total = train + valid + test
    bounds = [("train", train / total), ("valid", (train + valid) / total), ("test", 1.0)]
    position = {
        key: int.from_bytes(hashlib.sha256(f"{seed}\x1f{key}".encode()).digest()[:8], "big") / 2**64
        for key in sorted(set(conv_keys))
    }
    assigned = {key: next(name for name, upper in bounds if u < upper) for key, u in position.items()}
    if len(position) >= 3:
        lower = {"train": 0.0, "valid": train / total, "test": (train + valid) / total}
        share = {"train": train, "valid": valid, "test": test}
        for name in ("valid", "test"):
            if share[name] > 0 and name not in assigned.values():
                largest = max(SPLITS, key=lambda s: sum(v == s for v in assigned.values()))
                donors = [k for k, v in assigned.items() if v == largest]
                nearest = min(donors, key=lambda k: (abs(position[k] - lower[name]), k))
                assigned[nearest] = name
    return assigned
