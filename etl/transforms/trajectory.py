"""Trajectory tags: seven scalars that describe where a conversation is heading.

Definition ``trajectory_v1``. Changing anything below changes every tagged dataset, so a
change must come with a new ``TRAJECTORY_VERSION``.

Inputs
------
For one example: its context turns ``T_1 … T_t`` in order, most recent last, the owner's
response NOT included (a turn is a run of consecutive messages by one speaker, already
merged). Only the last ``W = 10`` turns are used. With fewer than 3 context turns the
example is ``cold-start`` and has no scalars. A missing (null) turn counts as an empty turn.

Embedding of a turn
-------------------
1. Lowercase with Unicode full case mapping (Polars ``str.to_lowercase``).
2. Delete U+0027 ``'``, U+00AD soft hyphen, U+2019 ``’``, U+FE0E and U+FE0F (variation
   selectors), so "don't", "don’t" and "dont" are one word, and "❤️" is "❤".
3. Split into words: a word is a maximal run of code points that are not separators. The
   separators are the ASCII characters other than ``0-9 A-Z a-z``, U+0080–U+00BF (Latin-1
   controls, spaces and punctuation), U+1680, U+2000–U+206F (general punctuation, Unicode
   spaces, zero-width and direction marks), U+2E00–U+2E7F, U+3000–U+303F (CJK spaces and
   punctuation), U+FEFF and the full-width punctuation U+FF01–U+FF0F, U+FF1A–U+FF20,
   U+FF3B–U+FF40, U+FF5B–U+FF65. Every other code point (letters, digits, marks, emoji)
   is part of a word.
4. Features: every word (unigram) and every two adjacent words (bigram), the bigram's text
   being the two words joined by one space (U+0020).
5. Hashing: ``H`` is the polynomial hash over the feature's code points ``c_1 … c_L``,
   ``H = Σ c_j · P^(L−j) mod 2^32`` (Horner: ``h ← (h·P + c) mod 2^32`` from ``h = 0``)
   with ``P = 0x01000193``; the bucket is the top 12 bits of the MurmurHash3 32-bit
   finaliser: ``x ^= x >> 16; x *= 0x85EBCA6B; x ^= x >> 13; x *= 0xC2B2AE35;
   x ^= x >> 16`` (all mod 2^32), ``bucket = x >> 20``, one of 2^12 = 4096 buckets.
   The hash is ours, so it is the same on every platform and library version.
6. Weights: ``tf_b`` is the number of features of the turn that fall into bucket ``b``;
   the turn's vector has ``√tf_b`` in bucket ``b`` (sub-linear tf), L2-normalised. The
   squared norm before normalising is ``N = Σ tf_b``, the turn's feature count, an
   integer. A turn with no words has the zero vector.
7. Similarity: ``sim(a, b) = (S · 2^−32) / √(N_a · N_b)`` with
   ``S = Σ_b rint(2^32 · √(tf_a,b · tf_b,b))`` summed as integers over the buckets both
   turns use (``rint`` rounds half to even). Each term is rounded to 2^−32 so the sum is
   exact and does not depend on the order of summation. ``sim = 0`` when either turn has
   no words. Since every weight is positive, ``0 ≤ sim ≤ 1``.

Scalars
-------
Positions ``1 … t`` are the turns of the window (``3 ≤ t ≤ 10``). ``a_i = sim(i, i−1)`` for
``i ≥ 2``; velocity ``v_i = 1 − a_i``; ``b_i = sim(t, i)`` for ``i < t``. Sums are taken
left to right in turn order, so the reference and the vectorised code give the same bits.

- ``c`` commitment: mean of the last 3 ``a_i`` (``a_{t−2}, a_{t−1}, a_t``).
  Fallback with ``t = 3``: mean of ``a_2, a_3``.
- ``u`` uncertainty: ``½·(1 − ‖mean(e_{t−2}, e_{t−1}, e_t)‖) + ½·q``, ``q`` the share of the
  last 3 turns that are questions. The norm is computed from the similarities as
  ``√(max(0, (z_{t−2} + z_{t−1} + z_t) + 2·((a_{t−1} + a_t) + b_{t−2}))) / 3`` with
  ``z_i = 1`` when turn ``i`` has words, else 0. A turn is a question when it contains
  ``?`` or ``？`` (U+FF1F) that is not immediately followed by an ASCII letter or digit
  (so "why?", "ok?!" and "really??" are questions, "site.com/?id=1" is not).
- ``p`` transition pressure: ``0.5 + 0.5·(v_{t−1} − v_t)``.
- ``r`` recovery margin: ``max b_i`` over the turns before the last 3 (``i ≤ t − 3``);
  ``0`` when there are none (``t = 3``).
- ``k`` phase stiffness: ``(ρ + 1)/2`` with ``ρ`` the lag-1 autocorrelation of the
  velocities ``v_2 … v_t`` of the window: ``d_i = v_i − mean(v)``,
  ``ρ = Σ d_i·d_{i+1} / Σ d_i²``. Undefined, hence ``k = 0.5``, with fewer than 3
  velocities (``t < 4``) or when ``Σ d_i² < 1e−9`` (constant velocity).
- ``n`` novelty: ``1 − max b_i`` over all ``i < t``.
- ``s`` stability: ``1 − min(1, |(v_t − 2·v_{t−1}) + v_{t−2}|)``.
  Fallback with ``t = 3``: ``v_{t−2}`` is taken equal to ``v_{t−1}`` (no jerk before the
  window), i.e. ``s = 1 − min(1, |v_t − v_{t−1}|)``.

Each scalar is clipped to [0, 1] and rounded to 2 decimals as ``rint(100·x) / 100``
(half to even).

Regime, first rule that matches, on the rounded scalars: ``cold-start`` (fewer than 3
context turns), ``exploring`` (n ≥ 0.60), ``committed`` (c ≥ 0.50 and s ≥ 0.60),
``converging`` (p ≥ 0.60), else ``drifting``.

Output columns (``add_trajectory``): ``traj_c traj_u traj_p traj_r traj_k traj_n traj_s``
(Float64, null for cold-start) and ``regime`` (String). The tag reads
``[trajectory: c=0.82 u=0.15 p=0.61 r=0.40 k=0.55 n=0.23 s=0.91 regime=committed]``, or
``[trajectory: regime=cold-start]``.

Case mapping follows the Unicode tables of the installed Polars; text whose characters
have had the same lowercase since Unicode 14 gives the same tags everywhere.

Implementations
---------------
``trajectory_scalars`` is the reference: one example, plain Python (it only borrows the
Polars lowercasing so both paths share case tables). ``add_trajectory`` computes the same
columns for a whole frame with numpy: each distinct turn text is embedded once, and the
similarities inside every window are read from a small dense (window, bucket) table. The
two agree bit for bit (tests/test_trajectory.py checks it on random input).
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

TRAJECTORY_VERSION = "trajectory_v1"
REASONS: tuple[str, ...] = ()  # it tags examples and drops nothing

WINDOW = 10
MIN_TURNS = 3
BUCKET_BITS = 12
N_BUCKETS = 1 << BUCKET_BITS
HASH_BASE = 0x01000193
FIXED_POINT = 1 << 32
STIFFNESS_MIN_VARIANCE = 1e-9

SCALARS = ("c", "u", "p", "r", "k", "n", "s")
SCALAR_COLUMNS = tuple(f"traj_{name}" for name in SCALARS)
COLUMNS = (*SCALAR_COLUMNS, "regime")
COLD_START = "cold-start"
REGIMES = (COLD_START, "exploring", "committed", "converging", "drifting")

# Inclusive code point ranges that separate words (step 3 of the definition).
SEPARATOR_RANGES: tuple[tuple[int, int], ...] = (
    (0x00, 0x2F),
    (0x3A, 0x40),
    (0x5B, 0x60),
    (0x7B, 0xBF),
    (0x1680, 0x1680),
    (0x2000, 0x206F),
    (0x2E00, 0x2E7F),
    (0x3000, 0x303F),
    (0xFEFF, 0xFEFF),
    (0xFF01, 0xFF0F),
    (0xFF1A, 0xFF20),
    (0xFF3B, 0xFF40),
    (0xFF5B, 0xFF65),
)
# Code points removed before splitting (step 2).
DELETED = (0x27, 0xAD, 0x2019, 0xFE0E, 0xFE0F)

_MASK32 = 0xFFFFFFFF
_HASH_BASE_INVERSE = pow(HASH_BASE, -1, 1 << 32)
_FMIX_1 = 0x85EBCA6B
_FMIX_2 = 0xC2B2AE35

_QUESTION_PATTERN = "[?\uff1f](?:[^0-9A-Za-z]|$)"
_QUESTION_RE = re.compile("[?\uff1f](?:[^0-9A-Za-z]|\\Z)")
_DELETED_PATTERN = "[" + "".join(f"\\x{{{cp:x}}}" for cp in DELETED) + "]"
_DELETE_TABLE = dict.fromkeys(DELETED)
_WORD_RE = re.compile(
    "[^" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in SEPARATOR_RANGES) + "]+"
)

# The vectorised path looks separators up in a table over the Basic Multilingual Plane;
# no separator lies above it, so index 0x10000 stands for every higher code point.
_WORD_TABLE = np.ones(0x10001, dtype=bool)
for _lo, _hi in SEPARATOR_RANGES:
    _WORD_TABLE[_lo : _hi + 1] = False
del _lo, _hi


def _lowercase(texts: pl.Series) -> pl.Series:
    """Step 1, shared by both implementations so they use the same case tables."""
    return texts.cast(pl.String).fill_null("").str.to_lowercase()


# --------------------------------------------------------------------------------------
# Reference implementation: one example at a time, plain Python.
# --------------------------------------------------------------------------------------


def _horner(text: str) -> int:
    h = 0
    for ch in text:
        h = (h * HASH_BASE + ord(ch)) & _MASK32
    return h


def _fmix32(x: int) -> int:
    x ^= x >> 16
    x = (x * _FMIX_1) & _MASK32
    x ^= x >> 13
    x = (x * _FMIX_2) & _MASK32
    x ^= x >> 16
    return x


def _bucket(feature: str) -> int:
    return _fmix32(_horner(feature)) >> (32 - BUCKET_BITS)


def _words(lowered: str) -> list[str]:
    return _WORD_RE.findall(lowered.translate(_DELETE_TABLE))


def _turn_vector(lowered: str) -> Counter:
    """Bucket -> tf for one lowercased turn."""
    words = _words(lowered)
    features = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    return Counter(_bucket(f) for f in features)


def _sim(a: Counter, b: Counter) -> float:
    na, nb = sum(a.values()), sum(b.values())
    if na * nb == 0:
        return 0.0
    if len(b) < len(a):
        a, b = b, a
    total = 0
    for bucket, tf in a.items():
        other = b.get(bucket)
        if other:
            total += round(math.sqrt(tf * other) * FIXED_POINT)
    return (total * (1.0 / FIXED_POINT)) / math.sqrt(na * nb)


def _is_question(text: str) -> bool:
    return _QUESTION_RE.search(text) is not None


def _hundredths(x: float) -> int:
    return round(min(max(x, 0.0), 1.0) * 100.0)


def _regime(h: Mapping[str, int]) -> str:
    if h["n"] >= 60:
        return "exploring"
    if h["c"] >= 50 and h["s"] >= 60:
        return "committed"
    if h["p"] >= 60:
        return "converging"
    return "drifting"


def trajectory_scalars(context_turns: Sequence[str | None]) -> dict:
    """The trajectory of one example, as defined in the module docstring.

    ``context_turns`` are the turns before the response, most recent last. Returns
    ``{"c": …, "u": …, "p": …, "r": …, "k": …, "n": …, "s": …, "regime": …}`` with each
    scalar rounded to 2 decimals, or ``{"regime": "cold-start"}`` with fewer than 3 turns.
    """
    turns = ["" if turn is None else turn for turn in context_turns]
    if len(turns) < MIN_TURNS:
        return {"regime": COLD_START}
    turns = turns[-WINDOW:]
    t = len(turns)
    lowered = _lowercase(pl.Series(turns, dtype=pl.String)).to_list()
    vectors = [_turn_vector(text) for text in lowered]
    z = [1 if vector else 0 for vector in vectors]
    q = [1.0 if _is_question(text) else 0.0 for text in turns]

    # Index 0 is the oldest turn of the window, t - 1 the most recent.
    a = [_sim(vectors[i], vectors[i - 1]) for i in range(1, t)]  # a[i-1] = sim(i, i-1)
    v = [1.0 - x for x in a]
    b = [_sim(vectors[-1], vectors[i]) for i in range(t - 1)]  # b[i] = sim(last, i)

    last_steps = a[-3:]
    c = sum(last_steps) / len(last_steps)

    m2 = (z[-3] + z[-2] + z[-1]) + 2.0 * ((a[-2] + a[-1]) + b[-2])
    norm = math.sqrt(max(m2, 0.0)) / 3.0
    share = ((q[-3] + q[-2]) + q[-1]) / 3.0
    u = 0.5 * (1.0 - norm) + 0.5 * share

    p = 0.5 + 0.5 * (v[-2] - v[-1])
    r = max(b[: t - 3]) if t > 3 else 0.0

    k = 0.5
    if len(v) >= 3:
        mean = sum(v) / len(v)
        d = [x - mean for x in v]
        den = sum(x * x for x in d)
        num = sum(d[i - 1] * d[i] for i in range(1, len(d)))
        if den >= STIFFNESS_MIN_VARIANCE:
            k = (num / den + 1.0) / 2.0

    n = 1.0 - max(b)
    v_before = v[-3] if t > 3 else v[-2]
    s = 1.0 - min(1.0, abs((v[-1] - 2.0 * v[-2]) + v_before))

    h = {name: _hundredths(x) for name, x in zip(SCALARS, (c, u, p, r, k, n, s))}
    out: dict = {name: h[name] / 100 for name in SCALARS}
    out["regime"] = _regime(h)
    return out


# --------------------------------------------------------------------------------------
# Vectorised implementation: a whole column of examples at once.
# --------------------------------------------------------------------------------------

# Chunk sizes: code points per tokenising chunk, examples per similarity chunk.
_CHARS_PER_CHUNK = 1 << 20
_TEXTS_PER_CHUNK = 1 << 18
_TABLE_ROWS = 32
_ROWS_PER_BATCH = 1 << 14
_THREADS = max(1, min(4, os.cpu_count() or 1))

_powers: list[tuple[np.ndarray, np.ndarray]] = []
_powers_lock = threading.Lock()


def _power_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P^i and P^-i mod 2^32 for i < n (at least)."""
    with _powers_lock:
        if not _powers or len(_powers[0][0]) < n:
            size = max(n, _CHARS_PER_CHUNK + 2)
            tables = []
            for base in (HASH_BASE, _HASH_BASE_INVERSE):
                table = np.full(size, base, dtype=np.uint32)
                table[0] = 1
                tables.append(np.multiply.accumulate(table, dtype=np.uint32))
            _powers[:] = [(tables[0], tables[1])]
        return _powers[0]


def _fmix32_np(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint32(16))
    x *= np.uint32(_FMIX_1)
    x ^= x >> np.uint32(13)
    x *= np.uint32(_FMIX_2)
    x ^= x >> np.uint32(16)
    return x


def _chunk_vectors(lowered: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sparse tf vectors of a chunk of lowercased, deleted-stripped texts.

    Returns (nnz per text, buckets, tf, N per text); buckets/tf are grouped by text in
    order, buckets ascending within a text.
    """
    count = len(lowered)
    lengths = lowered.str.len_chars().to_numpy().astype(np.int64)
    # "\n" (a separator) before, between and after the texts: no word spans two texts.
    starts_of_text = np.ones(count, dtype=np.int64)
    np.cumsum(lengths[:-1] + 1, out=starts_of_text[1:])
    starts_of_text[1:] += 1
    joined = "\n" + lowered.str.join("\n").item() + "\n"
    cp = np.frombuffer(joined.encode("utf-32-le"), dtype="<u4")
    size = len(cp)
    is_word = _WORD_TABLE[np.minimum(cp, 0x10000)]
    word_start = np.flatnonzero(is_word[1:] > is_word[:-1]) + 1
    word_end = np.flatnonzero(is_word[:-1] > is_word[1:]) + 1  # exclusive
    empty = np.zeros(count, dtype=np.int64)
    if len(word_start) == 0:
        return empty, np.zeros(0, np.int32), np.zeros(0, np.int32), empty

    powers, inverse = _power_tables(size + 1)
    prefix = np.zeros(size + 1, dtype=np.uint32)
    np.cumsum(cp * inverse[:size], dtype=np.uint32, out=prefix[1:])
    unigram = powers[word_end - 1] * (prefix[word_end] - prefix[word_start])
    word_text = (np.searchsorted(starts_of_text, word_start, side="right") - 1).astype(np.int32)

    same_text = word_text[1:] == word_text[:-1]
    second_len = (word_end - word_start)[1:][same_text]
    first = unigram[:-1][same_text]
    bigram = (first * np.uint32(HASH_BASE) + np.uint32(0x20)) * powers[second_len]
    bigram += unigram[1:][same_text]

    keys = np.concatenate([unigram, bigram])
    feature_text = np.concatenate([word_text, word_text[1:][same_text]])
    buckets = (_fmix32_np(keys) >> np.uint32(32 - BUCKET_BITS)).astype(np.int32)
    combined = np.sort(feature_text * np.int32(N_BUCKETS) + buckets)
    boundary = np.empty(len(combined), dtype=bool)
    boundary[0] = True
    np.not_equal(combined[1:], combined[:-1], out=boundary[1:])
    first_of_run = np.flatnonzero(boundary)
    distinct = combined[first_of_run]
    tf = np.diff(np.append(first_of_run, len(combined))).astype(np.int32)
    nnz = np.bincount(distinct >> BUCKET_BITS, minlength=count)
    total = np.bincount(feature_text, minlength=count)
    return nnz, distinct & np.int32(N_BUCKETS - 1), tf, total


def _text_vectors(texts: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CSR (indptr, buckets, tf) and feature count N of every text."""
    lowered = _lowercase(texts).str.replace_all(_DELETED_PATTERN, "")
    cum = np.cumsum(lowered.str.len_chars().to_numpy().astype(np.int64) + 1)
    spans = []
    start = 0
    while start < len(lowered):
        base = cum[start - 1] if start else 0
        stop = int(np.searchsorted(cum, base + _CHARS_PER_CHUNK, side="right"))
        stop = min(max(stop, start + 1), start + _TEXTS_PER_CHUNK, len(lowered))
        spans.append((start, stop))
        start = stop

    def run(span: tuple[int, int]):
        return _chunk_vectors(lowered.slice(span[0], span[1] - span[0]))

    if len(spans) > 1 and _THREADS > 1:
        with ThreadPoolExecutor(_THREADS) as pool:
            parts = list(pool.map(run, spans))
    else:
        parts = [run(span) for span in spans]
    if not parts:
        empty = np.zeros(0, np.int32)
        return np.zeros(1, np.int64), empty, empty, np.zeros(0, np.int64)
    nnz = np.concatenate([part[0] for part in parts])
    indptr = np.zeros(len(nnz) + 1, dtype=np.int64)
    np.cumsum(nnz, out=indptr[1:])
    buckets = np.concatenate([part[1] for part in parts])
    tf = np.concatenate([part[2] for part in parts])
    total = np.concatenate([part[3] for part in parts])
    return indptr, buckets, tf, total


class _Scratch:
    """Per-thread buffers reused from batch to batch (fresh large arrays cost page faults)."""

    def __init__(self) -> None:
        self.table = np.zeros(_TABLE_ROWS * N_BUCKETS, dtype=np.int32)
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, size: int) -> np.ndarray:
        buffer = self._buffers.get(name)
        if buffer is None or len(buffer) < size:
            buffer = np.empty(max(size, 1 << 16) * 5 // 4, dtype=np.int32)
            self._buffers[name] = buffer
        return buffer[:size]


def _expand(
    texts: np.ndarray, indptr: np.ndarray, scratch: _Scratch, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR positions of the entries of ``texts`` (concatenated in order), with the entry
    count of each text and the running total of those counts."""
    start = indptr[texts].astype(np.int32)
    nnz = (indptr[texts + 1] - indptr[texts]).astype(np.int32)
    ends = np.cumsum(nnz, dtype=np.int64)
    count = int(ends[-1]) if len(ends) else 0
    positions = scratch.get(name, count)
    np.add(
        np.repeat(start - (ends - nnz).astype(np.int32), nnz),
        np.arange(count, dtype=np.int32),
        out=positions,
    )
    return positions, nnz, ends


def _anchor_similarities(
    anchor: np.ndarray,
    others: np.ndarray,
    vectors: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """``sim(anchor[r], others[r, j])`` for every row r and column j; 0 where
    ``others[r, j] < 0``."""
    rows = len(anchor)
    out = np.zeros(others.shape)
    spans = [(lo, min(lo + _ROWS_PER_BATCH, rows)) for lo in range(0, rows, _ROWS_PER_BATCH)]
    if not spans:
        return out
    threads = min(_THREADS, len(spans))

    def run(worker: int) -> None:
        scratch = _Scratch()
        for lo, hi in spans[worker::threads]:
            out[lo:hi] = _anchor_batch(anchor[lo:hi], others[lo:hi], vectors, scratch)

    if threads == 1:
        run(0)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, range(threads)))
    return out


def _anchor_batch(
    anchor: np.ndarray,
    others: np.ndarray,
    vectors: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    scratch: _Scratch,
) -> np.ndarray:
    """One batch of ``_anchor_similarities``. The anchors' tf go into a dense
    (row, bucket) table ``_TABLE_ROWS`` rows at a time (small enough to stay in cache), and
    every entry of the other texts reads its bucket back from its row."""
    indptr, buckets, tf, total = vectors
    rows, width = others.shape
    flat = others.reshape(-1)
    slots = np.flatnonzero(flat >= 0)
    text = flat[slots]
    sim = np.zeros(rows * width)
    if len(slots) == 0:
        return sim.reshape(rows, width)
    positions, nnz, entry_ends = _expand(text, indptr, scratch, "positions")
    key = scratch.get("key", len(positions))
    np.take(buckets, positions, out=key)
    key += np.repeat(((slots // width) % _TABLE_ROWS * N_BUCKETS).astype(np.int32), nnz)

    anchor_positions, anchor_nnz, anchor_ends = _expand(anchor, indptr, scratch, "anchor")
    anchor_key = np.take(buckets, anchor_positions)
    anchor_row = (np.arange(rows) % _TABLE_ROWS * N_BUCKETS).astype(np.int32)
    anchor_key += np.repeat(anchor_row, anchor_nnz)
    anchor_tf = np.take(tf, anchor_positions)

    groups = np.arange(0, rows + _TABLE_ROWS, _TABLE_ROWS).clip(max=rows)
    entry_bounds = np.concatenate([[0], entry_ends])[np.searchsorted(slots, groups * width)]
    anchor_bounds = np.concatenate([[0], anchor_ends])[groups]
    found = scratch.get("found", len(key))
    table = scratch.table
    for g in range(len(groups) - 1):
        a0, a1 = anchor_bounds[g], anchor_bounds[g + 1]
        e0, e1 = entry_bounds[g], entry_bounds[g + 1]
        cells = anchor_key[a0:a1]
        table[cells] = anchor_tf[a0:a1]
        np.take(table, key[e0:e1], out=found[e0:e1])
        table[cells] = 0

    hits = np.flatnonzero(found != 0)
    hit_slot = np.searchsorted(entry_ends, hits, side="right")
    products = tf[positions[hits]].astype(np.int64) * found[hits]
    terms = np.rint(np.sqrt(products.astype(np.float64)) * FIXED_POINT).astype(np.int64)
    counts = np.bincount(hit_slot, minlength=len(slots))
    running = np.zeros(len(terms) + 1, dtype=np.int64)
    np.cumsum(terms, out=running[1:])
    ends = np.cumsum(counts)
    sums = running[ends] - running[ends - counts]
    ok = np.flatnonzero(sums > 0)
    denom = total[text[ok]] * total[anchor[slots[ok] // width]]
    sim[slots[ok]] = (sums[ok].astype(np.float64) * (1.0 / FIXED_POINT)) / np.sqrt(
        denom.astype(np.float64)
    )
    return sim.reshape(rows, width)


def _window_similarities(
    ids: np.ndarray, vectors: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Similarities inside windows of text ids (rows right-aligned, -1 where no turn).

    Returns ``prev[r, j] = sim(j, j−1)`` and ``last[r, j] = sim(W−1, j)`` (both 0 where
    undefined).
    """
    rows = len(ids)
    last = np.zeros((rows, WINDOW))
    last[:, : WINDOW - 1] = _anchor_similarities(ids[:, -1], ids[:, : WINDOW - 1], vectors)
    # Consecutive pairs recur in the windows of later examples: compute each pair once,
    # and reuse the (last, last-but-one) pairs just computed.
    span = int(ids.max()) + 1
    left, right = ids[:, :-1].reshape(-1), ids[:, 1:].reshape(-1)
    present = np.flatnonzero(left >= 0)
    pair, inverse = np.unique(
        np.minimum(left[present], right[present]) * span
        + np.maximum(left[present], right[present]),
        return_inverse=True,
    )
    known = np.minimum(ids[:, -2], ids[:, -1]) * span + np.maximum(ids[:, -2], ids[:, -1])
    order = np.argsort(known)
    where = np.searchsorted(known[order], pair).clip(max=rows - 1)
    reuse = known[order][where] == pair
    pair_sims = np.zeros(len(pair))
    pair_sims[reuse] = last[order[where[reuse]], WINDOW - 2]
    todo = np.flatnonzero(~reuse)
    pair_sims[todo] = _anchor_similarities(
        pair[todo] // span, (pair[todo] % span)[:, None], vectors
    )[:, 0]
    prev = np.zeros((rows, WINDOW))
    flat_prev = np.zeros(rows * (WINDOW - 1))
    flat_prev[present] = pair_sims[inverse]
    prev[:, 1:] = flat_prev.reshape(rows, WINDOW - 1)
    return prev, last


def _window_scalars(
    t: np.ndarray, prev: np.ndarray, last: np.ndarray, words: np.ndarray, question: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Hundredths (7 × rows, int64) and regime codes for right-aligned windows of t turns.

    Mirrors ``trajectory_scalars`` operation for operation, so the floats are identical.
    """
    col = np.arange(WINDOW)
    has_step = col[None, :] >= (WINDOW + 1 - t)[:, None]  # prev[:, j] is defined
    has_turn = col[None, :] >= (WINDOW - t)[:, None]
    long = t > 3
    a = prev
    v = 1.0 - a

    c = np.where(long, ((a[:, 7] + a[:, 8]) + a[:, 9]) / 3, (a[:, 8] + a[:, 9]) / 2)

    z = words[:, 7] + words[:, 8] + words[:, 9]
    m2 = z.astype(np.float64) + 2.0 * ((a[:, 8] + a[:, 9]) + last[:, 7])
    norm = np.sqrt(np.maximum(m2, 0.0)) / 3.0
    share = ((question[:, 7] + question[:, 8]) + question[:, 9]) / 3.0
    u = 0.5 * (1.0 - norm) + 0.5 * share

    p = 0.5 + 0.5 * (v[:, 8] - v[:, 9])

    earlier = np.where(has_turn, last, 0.0)
    r = earlier[:, : WINDOW - 3].max(axis=1)
    n = 1.0 - earlier[:, : WINDOW - 1].max(axis=1)

    steps = (t - 1).astype(np.float64)
    vm = np.where(has_step, v, 0.0)
    acc = np.zeros(len(t))
    for j in range(1, WINDOW):
        acc = acc + vm[:, j]
    mean = acc / steps
    d = np.where(has_step, v - mean[:, None], 0.0)
    den = np.zeros(len(t))
    num = np.zeros(len(t))
    for j in range(1, WINDOW):
        den = den + d[:, j] * d[:, j]
        if j >= 2:
            num = num + d[:, j - 1] * d[:, j]
    defined = (t >= 4) & (den >= STIFFNESS_MIN_VARIANCE)
    safe = np.where(defined, den, 1.0)
    k = np.where(defined, (num / safe + 1.0) / 2.0, 0.5)

    before = np.where(long, v[:, 7], v[:, 8])
    s = 1.0 - np.minimum(1.0, np.abs((v[:, 9] - 2.0 * v[:, 8]) + before))

    h = np.rint(np.clip(np.stack([c, u, p, r, k, n, s]), 0.0, 1.0) * 100.0).astype(np.int64)
    hc, hp, hn, hs = h[0], h[2], h[5], h[6]
    regime = np.select(
        [hn >= 60, (hc >= 50) & (hs >= 60), hp >= 60],
        [1, 2, 3],
        default=4,
    )
    return h, regime


_STRUCT = pl.Struct(
    [pl.Field(name, pl.Float64) for name in SCALAR_COLUMNS] + [pl.Field("regime", pl.String)]
)


def _distinct(texts: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """The distinct texts in order of first appearance, and each text's index among them.

    The same turn recurs in the windows of the later examples of its conversation, so
    its embedding is computed once. The hash only groups; equality is checked after, and
    a text that merely shares a hash keeps an entry of its own.
    """
    digest = texts.hash(seed=0).to_numpy()
    order = np.argsort(digest)
    ordered = digest[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    first = np.minimum.reduceat(order, starts)
    group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(order))))
    rank = np.empty(len(first), dtype=np.int64)
    by_position = np.argsort(first)
    rank[by_position] = np.arange(len(first))
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = rank[group]
    distinct = texts.gather(first[by_position])
    clash = np.flatnonzero(~(distinct.gather(inverse) == texts).to_numpy())
    if len(clash):
        inverse[clash] = len(distinct) + np.arange(len(clash))
        distinct = pl.concat([distinct, texts.gather(clash)])
    return distinct, inverse


def trajectory_frame(context: pl.Series) -> pl.DataFrame:
    """The trajectory columns (``COLUMNS``) for a Series of context-turn lists."""
    if context.dtype != pl.List(pl.String):
        context = context.cast(pl.List(pl.String))
    rows = len(context)
    turns = context.list.len().fill_null(0).to_numpy().astype(np.int64)
    warm = np.flatnonzero(turns >= MIN_TURNS)
    hundredths = np.zeros((len(SCALARS), rows), dtype=np.int64)
    regime = np.zeros(rows, dtype=np.int64)

    if len(warm):
        t = np.minimum(turns[warm], WINDOW)
        texts = context.gather(warm).list.tail(WINDOW).explode().fill_null("")
        # One entry per distinct text: the same turn recurs in the windows of later
        # examples of its conversation. The hash only groups; equality is then checked.
        distinct, inverse = _distinct(texts)
        indptr, buckets, tf, total = _text_vectors(distinct)
        questions = distinct.str.contains(_QUESTION_PATTERN).to_numpy().astype(np.float64)

        ids = np.full((len(warm), WINDOW), -1, dtype=np.int64)
        row = np.repeat(np.arange(len(warm)), t)
        offsets = np.cumsum(t) - t
        column = (WINDOW - np.repeat(t, t)) + (np.arange(len(row)) - np.repeat(offsets, t))
        ids[row, column] = inverse
        present = ids >= 0
        safe_ids = np.where(present, ids, 0)
        words = np.where(present, total[safe_ids] > 0, False).astype(np.int64)
        question = np.where(present, questions[safe_ids], 0.0)

        prev, last = _window_similarities(ids, (indptr, buckets, tf, total))
        h, code = _window_scalars(t, prev, last, words, question)
        hundredths[:, warm] = h
        regime[warm] = code

    cold = regime == 0
    columns = {}
    for i, name in enumerate(SCALAR_COLUMNS):
        values = pl.Series(name, hundredths[i] / 100, dtype=pl.Float64)
        columns[name] = values.scatter(np.flatnonzero(cold), None) if cold.any() else values
    labels = pl.Series("regime", np.array(REGIMES, dtype=object)[regime], dtype=pl.String)
    return pl.DataFrame({**columns, "regime": labels})


def _trajectory_struct(context: pl.Series) -> pl.Series:
    return trajectory_frame(context).to_struct(context.name)


def add_trajectory(lf: pl.LazyFrame, *, column: str = "context") -> pl.LazyFrame:
    """Add ``traj_c … traj_s`` (Float64, null for cold-start) and ``regime`` (String).

    ``column`` holds each example's context turns (List(String), oldest first, the
    response not included). Existing columns with those names are replaced.
    """
    packed = "__trajectory"
    return (
        lf.with_columns(
            pl.col(column)
            .map_batches(_trajectory_struct, return_dtype=_STRUCT, is_elementwise=True)
            .alias(packed)
        )
        .with_columns(pl.col(packed).struct.field(name) for name in COLUMNS)
        .drop(packed)
    )


# --------------------------------------------------------------------------------------
# The tag.
# --------------------------------------------------------------------------------------


def _value(row: Mapping, name: str):
    if f"traj_{name}" in row:
        return row[f"traj_{name}"]
    return row.get(name)


def trajectory_tag(row: Mapping) -> str:
    """``[trajectory: c=0.82 … regime=committed]`` for a row of ``add_trajectory`` output
    (``traj_*`` keys) or a ``trajectory_scalars`` result; ``[trajectory: regime=cold-start]``
    when there are no scalars."""
    regime = row.get("regime") or COLD_START
    values = [_value(row, name) for name in SCALARS]
    if regime == COLD_START or any(x is None for x in values):
        return f"[trajectory: regime={regime}]"
    parts = " ".join(f"{name}={x:.2f}" for name, x in zip(SCALARS, values))
    return f"[trajectory: {parts} regime={regime}]"


def trajectory_tag_expr() -> pl.Expr:
    """``trajectory_tag`` as a Polars expression over the ``add_trajectory`` columns."""
    pieces: list[pl.Expr] = []
    template = []
    for name in SCALARS:
        cents = (pl.col(f"traj_{name}") * 100).round().cast(pl.Int64)
        pieces += [cents // 100, (cents % 100).cast(pl.String).str.zfill(2)]
        template.append(f"{name}={{}}.{{}}")
    body = "[trajectory: " + " ".join(template) + " regime={}]"
    full = pl.format(body, *pieces, pl.col("regime"))
    short = pl.format("[trajectory: regime={}]", pl.col("regime"))
    cold = (pl.col("regime") == COLD_START) | pl.col("traj_c").is_null()
    return pl.when(cold).then(short).otherwise(full).alias("trajectory_tag")
