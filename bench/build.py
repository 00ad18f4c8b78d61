"""Benchmark `etl build` end to end on a synthetic warehouse.

    python bench/build.py --n 1000000

Generates N messages with a realistic mix (many short chat lines, some paragraphs,
quoted email replies, ~10% paraphrased near-duplicates, ~3% exact duplicates,
meta-messages, planted secrets, mojibake), lands them through the real ingest path,
then times `etl build` in a child process and reports wall seconds, peak RSS and the
seconds of each stage. Targets for 1M on 2 cores: ≤ 30 s and ≤ 3 GB; dedup ≤ 6 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from etl.config import Owner
from etl.ingest import run_ingest
from etl.schemas import raw_frame
from etl.sources import Batch, Source

SHORT = [
    "ok", "sounds good", "merge it", "on my way", "yes", "lol", "ship it", "thanks!", "can you call me",
    "running late, 10 min", "did you see the game last night", "I'll take a look after lunch",
    "push it to staging first", "where are we meeting?", "that's hilarious", "let's do friday instead",
    "can you send me the doc", "the build is red again", "how was the trip?", "need anything from the store?",
]
WORDS = (
    "the deploy staging server logs error retry cache auth module patch refactor pipeline review "
    "dinner tonight weekend movie coffee tomorrow morning meeting client invoice budget design "
    "schema query index migration release branch commit test flaky timeout memory latency"
).split()
EDITS = ("case", "punct", "emoji", "typo", "filler", "swap")


def _paragraph(rng: np.random.Generator) -> str:
    sentences = []
    for _ in range(rng.integers(2, 6)):
        words = rng.choice(WORDS, size=rng.integers(6, 16))
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


def _paraphrase(text: str, rng: np.random.Generator) -> str:
    edit = EDITS[rng.integers(len(EDITS))]
    words = text.split()
    if edit == "case":
        return text.upper() if rng.random() < 0.5 else text.lower()
    if edit == "punct":
        return text.rstrip(".!?") + rng.choice(["!", "!!", "?", "..."])
    if edit == "emoji":
        return text + " " + rng.choice(["😂", "👍", "🙏", "🔥"])
    if edit == "typo" and len(text) > 3:
        i = int(rng.integers(1, len(text) - 1))
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if edit == "filler":
        return "honestly " + text
    if len(words) > 2:
        i = int(rng.integers(len(words) - 1))
        words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)
    return text + " really"


def synthetic_messages(n: int, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    texts, kinds, owners, convs, times = [], [], [], [], []
    conv, clock, owner = 0, 0.0, False
    history: list[str] = []
    for i in range(n):
        if rng.random() < 0.04:  # a new conversation
            conv += 1
            clock += float(rng.integers(3600, 86400 * 3))
        clock += float(rng.exponential(90))
        if rng.random() < 0.6:
            owner = not owner
        roll = rng.random()
        kind = "text"
        if roll < 0.10 and history:
            text = _paraphrase(history[int(rng.integers(len(history)))], rng)
        elif roll < 0.13 and history:
            text = history[int(rng.integers(len(history)))]
        elif roll < 0.16:
            kind, text = "reaction", None
        elif roll < 0.17:
            text = "[Request interrupted by user]"
        elif roll < 0.175:
            text = f"the key is AKIA{''.join(rng.choice(list('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'), 16))} don't share"
        elif roll < 0.18:
            text = "Iâ€™ll be there in 5, donâ€™t wait"
        elif roll < 0.23:
            text = (
                f"{_paragraph(rng)}\n\nOn Mon, Jan 6, 2020 at 9:{i % 60:02d} AM Alex <alex@example.com> wrote:\n"
                f"> {_paragraph(rng)}\n> {_paragraph(rng)}"
            )
        elif roll < 0.40:
            text = _paragraph(rng)
        else:
            text = SHORT[int(rng.zipf(1.6)) % len(SHORT)]
            if rng.random() < 0.5:
                text = f"{text} {' '.join(rng.choice(WORDS, size=rng.integers(1, 6)))}"
        if text and kind == "text" and len(history) < 50_000:
            history.append(text)
        texts.append(text)
        kinds.append(kind)
        owners.append(owner)
        convs.append(f"conv{conv}")
        times.append(start + timedelta(seconds=clock))
    return raw_frame({
        "source": ["bench"] * n,
        "source_id": [f"m{i:09d}" for i in range(n)],
        "conversation_id": convs,
        "sent_at": times,
        "sender": ["me" if o else "friend" for o in owners],
        "is_owner": owners,
        "kind": kinds,
        "text": texts,
    })


def land(warehouse: Path, frame: pl.DataFrame, batch: int = 100_000) -> float:
    def read(ctx):
        for offset in range(0, frame.height, batch):
            yield Batch(rows=frame.slice(offset, batch), stream="bench", watermark={"offset": offset})

    started = time.perf_counter()
    run_ingest(warehouse, Source("bench", 1, "synthetic", read, paths="none"), [], {}, Owner())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="Keep the warehouse and datasets in this folder.")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="etl-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    warehouse = folder / "warehouse.duckdb"

    started = time.perf_counter()
    frame = synthetic_messages(args.n)
    print(f"generated {args.n:,} messages in {time.perf_counter() - started:.1f} s")
    if not warehouse.exists():
        seconds = land(warehouse, frame)
        print(f"landed in {seconds:.1f} s ({args.n / seconds:,.0f} messages/s)")
    del frame

    version = f"bench-{int(time.time())}"
    env = {**os.environ, "ETL_WAREHOUSE": str(warehouse), "ETL_DATASETS": str(folder / "datasets")}
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-m", "etl", "build", "--version", version, "--timings"],
        env=env, capture_output=True, text=True,
    )
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if child.returncode:
        sys.exit(f"build failed:\n{child.stderr}")
    print(child.stdout)
    print("stage seconds:\n" + child.stderr)
    print(f"etl build of {args.n:,} messages: {wall:.1f} s wall, peak RSS {peak:,.0f} MiB "
          f"(targets: ≤ 30 s, ≤ 3,072 MiB)")


if __name__ == "__main__":
    main()
