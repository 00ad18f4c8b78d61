"""Time the per-message transforms on synthetic messages.

    python bench/transforms.py [--rows 1000000] [--seed 0]

Messages are mostly short chat lines: plain ASCII, about one in eight with an emoji
(one in a hundred a ZWJ sequence), a few percent with accents, 8% multi-line, and 2%
from a pool of quoted email replies, mojibake, HTML bodies, meta messages and
planted secrets (one in ~700 messages is an HTML body, so bs4 is in the numbers), so
every rule's slow path is exercised. Each transform is timed on its own, then the four
chained in build order.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from etl.transforms.redact import redact_secrets  # noqa: E402
from etl.transforms.text import (  # noqa: E402
    drop_meta_messages,
    normalise_text,
    strip_quotes_and_signatures,
)

WORDS = (
    "ok yeah sure lol thanks see you tomorrow at the office did you get it I think so maybe "
    "later sounds good can't wait haha nope what about dinner running late be there in 5 "
    "call me when you can the deploy failed again let's ship it on Friday"
).split()
ACCENTED = ["café", "naïve", "über", "São Paulo", "déjà vu", "Zürich", "mañana", "crème brûlée"]
EMOJI = ["😂", "👍", "❤️", "🎉", "🙏", "🤔", "😭", "🔥", "👀", "🥲", "💀", "✨"]
ZWJ_EMOJI = ["👨\u200d👩\u200d👧", "🏳️\u200d🌈", "🧑🏽\u200d💻"]
SPECIAL = [
    "Sounds good\n\nOn Tue, Apr 11, 2017 at 10:07 PM, John Smith <john@example.com> wrote:\n"
    "> are we still on?\n> let me know",
    "Thanks!\n\n-----Original Message-----\nFrom: a@b.com\nSent: Monday\nTo: me\nSubject: hi\n\nold text",
    "Will do.\n\nSent from my iPhone",
    "See below\n-- \nJane Doe\nACME Corp",
    "CafÃ© tonight? Itâ€™s on me",
    "<html><body><div>Hi there,</div><div><br></div><div>See you soon</div></body></html>",
    "Loved “see you tomorrow”",
    "image omitted",
    "[Request interrupted by user]",
    "my key is sk-proj-" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0" + " oops",
    "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
    "card 4111 1111 1111 1111 exp 12/29",
    "ping me at jane.doe@example.com or +1 415 555 0134",
    "postgres://admin:hunter2@db.internal:5432/prod",
]


def synthetic_messages(rows: int, seed: int) -> pl.DataFrame:
    rng = random.Random(seed)
    texts, kinds = [], []
    for _ in range(rows):
        roll = rng.random()
        if roll < 0.02:
            text = rng.choice(SPECIAL)
        else:
            words = rng.choices(WORDS, k=rng.randint(2, 14))
            if roll < 0.06:
                words.insert(rng.randrange(len(words)), rng.choice(ACCENTED))
            if roll < 0.135:
                words.append(rng.choice(ZWJ_EMOJI if roll < 0.03 else EMOJI))
            text = " ".join(words)
            if roll > 0.92:
                text += "\n" + " ".join(rng.choices(WORDS, k=rng.randint(2, 10)))
        texts.append(text)
        kinds.append("reaction" if rng.random() < 0.02 else "text")
    n = len(texts)
    return pl.DataFrame(
        {
            "source": ["bench"] * n,
            "source_id": [str(i) for i in range(n)],
            "kind": kinds,
            "text": texts,
            "is_owner": [i % 2 == 0 for i in range(n)],
            "metadata": ["{}"] * n,
            "drop_reason": pl.Series([None] * n, dtype=pl.String),
        }
    )


def timed(name: str, frame: pl.DataFrame, transform) -> pl.DataFrame:
    # CPU time (all threads) beside wall time: on a busy machine wall time mostly
    # measures the neighbours.
    cpu, wall = time.process_time(), time.perf_counter()
    out = transform(frame.lazy()).collect()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    dropped = out.filter(pl.col("drop_reason").is_not_null()).height
    rate = frame.height / wall / 1e6
    print(f"{name:<30} wall {wall:6.2f} s   cpu {cpu:6.2f} s   {rate:5.2f} M rows/s   dropped {dropped:,}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    frame = synthetic_messages(args.rows, args.seed)
    print(
        f"load average {os.getloadavg()[0]:.1f}; generated {frame.height:,} messages in "
        f"{time.perf_counter() - start:.1f} s ({frame['text'].str.len_bytes().sum() / 1e6:.1f} MB of text), "
        f"polars {pl.__version__}, {pl.thread_pool_size()} threads"
    )

    # Warm the regex caches so compile time is not billed to the first transform.
    warm = frame.head(1000)
    for transform in (normalise_text, strip_quotes_and_signatures, drop_meta_messages, redact_secrets):
        transform(warm.lazy()).collect()

    timed("normalise_text", frame, normalise_text)
    timed("strip_quotes_and_signatures", frame, strip_quotes_and_signatures)
    timed("drop_meta_messages", frame, drop_meta_messages)
    timed("redact_secrets", frame, redact_secrets)
    timed("redact_secrets(pii=True)", frame, lambda lf: redact_secrets(lf, pii=True))

    def chain(lf: pl.LazyFrame) -> pl.LazyFrame:
        lf = strip_quotes_and_signatures(normalise_text(lf))
        return redact_secrets(drop_meta_messages(lf))

    timed("all four, chained", frame, chain)


if __name__ == "__main__":
    main()
