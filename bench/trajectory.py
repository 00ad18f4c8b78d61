"""Time ``add_trajectory`` on synthetic examples with 1–10 context turns each.

    python bench/trajectory.py                          # both shapes, 300,000 examples
    python bench/trajectory.py --shape conversations --examples 100000

Shapes:
- ``conversations``: examples cut from synthetic conversations, as the build makes them: one
  example per owner turn, its context the (at most 10) turns before it, so consecutive
  examples share most of their turns.
- ``independent``: every example has its own 1–10 freshly drawn turns (no shared text), the
  slowest case.

Turns have 1–20 words drawn from a Zipf-like vocabulary of 20,000 words, a quarter of them
end with "?". Prints one timing line per shape (best of ``--repeat`` runs).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import polars as pl

from etl.transforms.trajectory import TRAJECTORY_VERSION, WINDOW, add_trajectory

VOCABULARY = 20_000


def _turn_texts(count: int, rng: np.random.Generator) -> list[str]:
    vocabulary = np.array([f"w{i}" for i in range(VOCABULARY)], dtype=object)
    weights = 1.0 / np.arange(1, VOCABULARY + 1)
    weights /= weights.sum()
    lengths = rng.integers(1, 21, count)
    words = vocabulary[rng.choice(VOCABULARY, int(lengths.sum()), p=weights)]
    ends = np.cumsum(lengths)
    question = rng.random(count) < 0.25
    texts = []
    start = 0
    for end, asks in zip(ends.tolist(), question.tolist()):
        text = " ".join(words[start:end])
        texts.append(text + "?" if asks else text)
        start = end
    return texts


def independent(examples: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, WINDOW + 1, examples)
    texts = _turn_texts(int(counts.sum()), rng)
    ends = np.cumsum(counts).tolist()
    starts = [0, *ends[:-1]]
    context = [texts[a:b] for a, b in zip(starts, ends)]
    return pl.DataFrame({"context": context}, schema={"context": pl.List(pl.String)})


def conversations(examples: int, seed: int = 0) -> pl.DataFrame:
    """Owner turns are the odd positions; each yields an example whose context is the
    up-to-10 turns before it."""
    rng = np.random.default_rng(seed)
    context: list[list[str]] = []
    while len(context) < examples:
        lengths = rng.integers(2, 41, 2_000)
        texts = _turn_texts(int(lengths.sum()), rng)
        start = 0
        for length in lengths.tolist():
            turns = texts[start : start + length]
            start += length
            for owner in range(1, length, 2):
                context.append(turns[max(0, owner - WINDOW) : owner])
    return pl.DataFrame({"context": context[:examples]}, schema={"context": pl.List(pl.String)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300_000)
    parser.add_argument("--shape", choices=["conversations", "independent", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    shapes = ["conversations", "independent"] if args.shape == "both" else [args.shape]
    for shape in shapes:
        frame = (conversations if shape == "conversations" else independent)(args.examples)
        turns = int(frame["context"].list.len().sum())
        distinct = frame["context"].explode().n_unique()
        best, best_cpu = float("inf"), float("inf")
        for _ in range(args.repeat):
            started, started_cpu = time.perf_counter(), time.process_time()
            out = add_trajectory(frame.lazy()).collect()
            best = min(best, time.perf_counter() - started)
            best_cpu = min(best_cpu, time.process_time() - started_cpu)
        assert out.height == frame.height
        print(
            f"{TRAJECTORY_VERSION} {shape}: {frame.height:,} examples "
            f"({turns:,} context turns, {distinct:,} distinct) in {best:.2f} s wall, "
            f"{best_cpu:.2f} s CPU = {frame.height / best:,.0f} examples/s on "
            f"{os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f})"
        )


if __name__ == "__main__":
    main()
