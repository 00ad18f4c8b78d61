"""Exact and near-duplicate removal for training examples.

A personal message history repeats itself: the same canned reply ("ok", "on my
way") is sent hundreds of times, and many messages are small edits of earlier
ones (a typo fixed, a word swapped, an emoji added). Left in, they teach the
model to answer everything with the same few lines. This stage keeps one
example per cluster, by a stable rule (earliest first), and says why every
other one was dropped.

**Normalised key** (:func:`normalize_expr`): lowercase; every run of
characters that are not letters, digits, marks or ``_`` (punctuation, emoji,
symbols, whitespace, and the invisible emoji joiners and variation selectors)
becomes one space; ends stripped. Case, punctuation and emoji edits vanish
("ok", "Ok!", "ok 👍" are one text), and so do the hot LSH buckets they would
make. A reply with no letter or digit keeps its lowercased,
whitespace-collapsed form, so "👍" and "❤️" stay distinct. The key is used for
comparison only; the kept example's text is untouched.

**Stage 1, exact**: repeats of a (normalised prompt, normalised reply) pair are
dropped; the same reply text under different prompts is capped at
``max_reply_repeats`` copies.

**Stage 2, near** (:func:`near_duplicate_groups`), on the distinct normalised
reply texts:

- shingles are character n-grams (a text shorter than n is one shingle), each
  hashed to 32 bits by :func:`shingle_hash32` (a polynomial over code points,
  stable across library versions, so signatures can be stored);
- MinHash signatures are datasketch's ``affine32`` scheme with its own
  permutation parameters, bit-identical to ``datasketch.MinHash(num_perm,
  seed, hashfunc=shingle_hash32)`` fed the same shingles;
- LSH banding with datasketch's optimal (bands, rows) for the threshold,
  weighted toward recall; each bucket member is paired with the first few
  earlier members of its bucket (star edges), and every pair is verified
  before it can link: its Jaccard, estimated as the fraction of equal
  signature values, or computed exactly from the shingles when the estimate
  is within noise of the threshold, must reach the threshold;
- keepers are assigned greedily in priority order: a text is dropped when an
  earlier *kept* text in one of its buckets reaches the threshold with it, and
  is attributed to the smallest such text. Links never chain. Buckets larger
  than the star are then completed: every kept member is checked against the
  later members it could still change, until nothing changes, so the result
  is exactly the greedy rule over all bucket-sharing pairs. That costs about
  (kept members x members) checks per large bucket, not (members^2).

Everything is vectorised (Polars + numpy), memory stays linear in the input
(pairs are checked in chunks), and the result is deterministic: the same
input gives the same output whatever the number of threads.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
import polars as pl

from etl.transforms.timer import Timer

__all__ = [
    "DROP_DUPLICATE",
    "DROP_NEAR_DUPLICATE",
    "DROP_REPLY_REPEATS",
    "REASONS",
    "DedupConfig",
    "DedupStats",
    "deduplicate",
    "lsh_params",
    "minhash_signatures",
    "near_duplicate_groups",
    "normalize_expr",
    "permutations",
    "shingle_hash32",
    "shingles",
]

DROP_DUPLICATE = "duplicate"
DROP_NEAR_DUPLICATE = "near_duplicate"
DROP_REPLY_REPEATS = "reply_repeats"
REASONS = (DROP_DUPLICATE, DROP_NEAR_DUPLICATE, DROP_REPLY_REPEATS)  # every drop reason this module gives


@dataclass(frozen=True)
class DedupConfig:
    """Settings of the dedup stage.

    threshold: Jaccard similarity of character n-gram sets at or above which a
        text is a near duplicate of a kept one.
    num_perm: MinHash permutations (signature length).
    ngram: character n-gram length of the shingles. Short chat lines need
        character n-grams: one typo or swapped word breaks most word 3-grams.
    seed: seed of the MinHash permutations (datasketch's ``seed``).
    max_reply_repeats: the same normalised reply text may appear at most this
        many times (earliest kept), whatever the prompts.
    """

    threshold: float = 0.8
    num_perm: int = 128
    ngram: int = 5
    seed: int = 1
    max_reply_repeats: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.num_perm < 2:
            raise ValueError(f"num_perm must be at least 2, got {self.num_perm}")
        if self.ngram < 1:
            raise ValueError(f"ngram must be at least 1, got {self.ngram}")
        if self.max_reply_repeats < 1:
            raise ValueError(f"max_reply_repeats must be at least 1, got {self.max_reply_repeats}")


# --------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------


def normalize_expr(expr: pl.Expr) -> pl.Expr:
    """The dedup key of a text column (see the module docstring).

    Null becomes "". A text with no letter or digit falls back to its
    lowercased, whitespace-collapsed form instead of becoming empty.
    """
    return _normalize_lowered(expr.fill_null("").str.to_lowercase())


# Characters that separate words in the key: anything but a letter, digit,
# mark or "_", plus the invisible emoji joiners and variation selectors (marks
# by category, they would otherwise survive as the whole key of "❤️").
_NON_WORD = r"\W\x{FE00}-\x{FE0F}\x{200D}\x{20E3}"
# Every run of them becomes one space; a lone space (the common case between
# words) is not a match, which makes the replacement several times faster.
_NON_WORD_RUNS = rf"[{_NON_WORD}]{{2,}}|[{_NON_WORD}&&[^ ]]"


def _normalize_lowered(lower: pl.Expr) -> pl.Expr:
    words = lower.str.replace_all(_NON_WORD_RUNS, " ").str.strip_chars(" ")
    fallback = lower.str.replace_all(r"\s{2,}|[^\S ]", " ").str.strip_chars()
    return pl.when(words.str.len_bytes() > 0).then(words).otherwise(fallback)


# --------------------------------------------------------------------------
# Shingles and their 32-bit hashes
# --------------------------------------------------------------------------

_MASK64 = (1 << 64) - 1
# Odd 64-bit multiplier of the polynomial shingle hash.
_POLY = 0x9E3779B97F4A7C15
_POLY_NP = np.uint64(_POLY)
# Multiplier of the band-key fold.
_BAND_POLY = np.uint64(0xD6E8FEB86659FD93)


def shingles(text: str, ngram: int) -> list[str]:
    """Character n-grams of ``text`` in order (repeats included).

    A text shorter than ``ngram`` characters (the empty text too) is one
    shingle: itself. So "ok" and "ok!" are different shingle sets.
    """
    if len(text) < ngram:
        return [text]
    return [text[i : i + ngram] for i in range(len(text) - ngram + 1)]


def shingle_hash32(shingle: str) -> int:
    """The 32-bit hash of one shingle, as the vectorised path computes it.

    A polynomial over the code points, seeded with the shingle's length,
    modulo 2^64, folded to 32 bits. Pass it as ``hashfunc`` to
    ``datasketch.MinHash`` to get signatures identical to
    :func:`minhash_signatures`.
    """
    h = len(shingle)
    for ch in shingle:
        h = (h * _POLY + ord(ch) + 1) & _MASK64
    return ((h >> 32) ^ h) & 0xFFFFFFFF


def _fold32(h: np.ndarray) -> np.ndarray:
    return ((h >> np.uint64(32)) ^ h).astype(np.uint32)


def _code_points(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """All code points of ``texts`` concatenated, and each text's length."""
    texts = texts.cast(pl.String).fill_null("")
    lens = texts.str.len_chars().to_numpy().astype(np.int64, copy=False)
    joined = texts.str.join("").item() if len(texts) else ""
    cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    return cps, lens


# Characters per slab of the vectorised shingle hashing.
_SLAB = 1 << 17


def _hash_slab(
    cps: np.ndarray,
    char_off: np.ndarray,
    lens: np.ndarray,
    counts: np.ndarray,
    starts: np.ndarray,
    i0: int,
    i1: int,
    ngram: int,
    out: np.ndarray,
) -> None:
    """Shingle hashes of texts i0..i1-1 into their slots of ``out``."""
    c0, c1 = int(char_off[i0]), int(char_off[i1])
    s0, s1 = int(starts[i0]), int(starts[i1])
    seg = cps[c0:c1].astype(np.uint64)
    seg += np.uint64(1)
    n_pos = len(seg) - ngram + 1
    cnt = counts[i0:i1]
    ln = lens[i0:i1]
    text_at = char_off[i0:i1] - c0
    if n_pos > 0 and (ln >= ngram).any():
        # Window hash at every position of the slab; each slot then takes the
        # window starting at its text's start plus its rank in the text.
        h = np.full(n_pos, ngram, dtype=np.uint64)
        for k in range(ngram):
            h *= _POLY_NP
            h += seg[k : k + n_pos]
        slot_start = starts[i0:i1] - s0
        pos = np.arange(s1 - s0, dtype=np.int64)
        pos += np.repeat(text_at - slot_start, cnt)
        np.minimum(pos, n_pos - 1, out=pos)
        out[s0:s1] = _fold32(h[pos])
    short = np.flatnonzero(ln < ngram)
    if len(short):
        sl = ln[short]
        h = sl.astype(np.uint64)
        at = text_at[short]
        for k in range(int(sl.max())):
            live = sl > k
            hk = h[live] * _POLY_NP
            hk += seg[at[live] + k]
            h[live] = hk
        out[s0 + (starts[i0:i1][short] - starts[i0])] = _fold32(h)


def _shingle_hashes(
    cps: np.ndarray, lens: np.ndarray, ngram: int, threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """32-bit shingle hashes of every text, text after text, and their counts.

    Equal to :func:`shingle_hash32` over :func:`shingles` of each text. Texts
    are hashed in slabs of about ``_SLAB`` characters, spread over threads;
    slabs write disjoint slots.
    """
    m = len(lens)
    counts = np.where(lens >= ngram, lens - ngram + 1, 1).astype(np.int64)
    starts = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    char_off = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(lens, out=char_off[1:])
    out = np.empty(int(starts[-1]), dtype=np.uint32)
    # Slab boundaries on text boundaries.
    cuts = np.searchsorted(char_off, np.arange(0, int(char_off[-1]) + _SLAB, _SLAB), side="left")
    cuts = np.unique(np.concatenate([[0], cuts, [m]]).clip(0, m))
    ranges = [(int(a), int(b)) for a, b in itertools.pairwise(cuts) if b > a]

    def work(share: list[tuple[int, int]]) -> None:
        for i0, i1 in share:
            _hash_slab(cps, char_off, lens, counts, starts, i0, i1, ngram, out)

    _run_shared(work, ranges, threads)
    return out, counts


def _run_shared(work, items: list, threads: int) -> None:
    """Run ``work`` over round-robin shares of ``items`` on up to ``threads`` threads."""
    threads = max(1, min(threads, len(items)))
    if threads == 1:
        work(items)
        return
    shares = [items[t::threads] for t in range(threads)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for f in [pool.submit(work, share) for share in shares]:
            f.result()


# --------------------------------------------------------------------------
# MinHash signatures (datasketch affine32) and band keys
# --------------------------------------------------------------------------


@lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters ``(a, b)`` for (num_perm, seed)."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    a = np.array(a, dtype=np.uint32)
    b = np.array(b, dtype=np.uint32)
    a.setflags(write=False)
    b.setflags(write=False)
    return a, b


@lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising datasketch's weighted false positive/negative sum,
    false negatives weighing four times as much."""
    from datasketch.lsh import _optimal_param

    # Weighted toward recall: with datasketch's even weights (9 bands of 13 rows at
    # 0.8) a pair at the threshold shares a bucket only 40% of the time; 12 bands of
    # 10 rows find it 74% of the time, 93% at 0.85. Every extra candidate is verified.
    # (bench/dedup.py: recall on pairs with exact Jaccard >= 0.8 from 0.92 to 0.95 at
    # 100k, 0.89 to 0.91 at 1M.)
    return _optimal_param(threshold, num_perm, 0.2, 0.8)


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, datasketch's pre-mix for affine32."""
    h = h ^ (h >> np.uint32(16))
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


# Shingle slots (texts x padded shingle count) per signature block.
_BLOCK_SLOTS = 1 << 16


def _default_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, pl.thread_pool_size()))


def _signature_blocks(counts_sorted: np.ndarray) -> list[tuple[int, int]]:
    """Runs of texts (sorted by shingle count) of about ``_BLOCK_SLOTS`` slots."""
    blocks = []
    m = len(counts_sorted)
    i = 0
    while i < m:
        j = min(m, i + max(1, _BLOCK_SLOTS // int(counts_sorted[i])))
        w = max(1, _BLOCK_SLOTS // int(counts_sorted[j - 1]))
        j = min(j, i + w)
        blocks.append((i, j))
        i = j
    return blocks


def _signatures_from_hashes(
    hv: np.ndarray,
    counts: np.ndarray,
    num_perm: int,
    seed: int,
    bands: int,
    rows: int,
    threads: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Row-major (texts, num_perm) signatures and (bands, texts) band keys.

    datasketch's affine32 scheme: each 32-bit shingle hash is pre-mixed with
    fmix32, then permutation k maps it to ``a_k * h + b_k mod 2^32``, and a
    signature value is the minimum over the text's shingles. Texts go in
    blocks of similar shingle count; a block's (shingle, text) matrix is padded
    by repeating a text's last shingle, which cannot change a minimum. Blocks
    write disjoint rows, so the result does not depend on the threads.
    """
    m = len(counts)
    sig = np.empty((m, num_perm), dtype=np.uint32)
    keys = np.empty((bands, m), dtype=np.uint64)
    if m == 0:
        return sig, keys
    a, b = permutations(num_perm, seed)
    a_s = [np.uint32(x) for x in a]
    b_s = [np.uint32(x) for x in b]
    g = _fmix32(hv)
    starts = np.zeros(m, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    by_count = np.argsort(counts, kind="stable")
    counts_sorted = counts[by_count]
    blocks = _signature_blocks(counts_sorted)
    used = bands * rows
    steps_all = np.arange(int(counts_sorted[-1]), dtype=np.int64)[:, None]

    def work(share: list[tuple[int, int]]) -> None:
        buf = np.empty(max(_BLOCK_SLOTS, int(counts_sorted[-1])), dtype=np.uint32)
        acc = np.empty(num_perm * _BLOCK_SLOTS, dtype=np.uint32)
        for i0, i1 in share:
            cols = by_count[i0:i1]
            w = i1 - i0
            c = counts_sorted[i0:i1]
            width = int(c[-1])
            idx = np.minimum(steps_all[:width], c[None, :] - 1)
            idx += starts[cols][None, :]
            mat = g[idx]  # (width, w)
            t = buf[: width * w].reshape(width, w)
            out = acc[: num_perm * w].reshape(num_perm, w)
            for k in range(num_perm):
                np.multiply(mat, a_s[k], out=t)
                np.add(t, b_s[k], out=t)
                np.minimum.reduce(t, axis=0, out=out[k])
            sig[cols] = out.T
            band_rows = out[:used].reshape(bands, rows, w)
            key = band_rows[:, 0, :].astype(np.uint64)
            for r in range(1, rows):
                key *= _BAND_POLY
                key += band_rows[:, r, :]
            keys[:, cols] = key

    _run_shared(work, blocks, threads)
    return sig, keys


def minhash_signatures(
    texts: pl.Series | Sequence[str],
    *,
    num_perm: int = 128,
    seed: int = 1,
    ngram: int = 5,
    threads: int | None = None,
) -> np.ndarray:
    """(len(texts), num_perm) uint32 MinHash signatures of the texts as given.

    Row i equals ``datasketch.MinHash(num_perm, seed, hashfunc=shingle_hash32)``
    updated with ``shingles(texts[i], ngram)``.
    """
    if not isinstance(texts, pl.Series):
        texts = pl.Series(list(texts), dtype=pl.String)
    threads = threads or _default_threads()
    cps, lens = _code_points(texts)
    hv, counts = _shingle_hashes(cps, lens, ngram, threads)
    sig, _ = _signatures_from_hashes(hv, counts, num_perm, seed, 1, 1, threads)
    return sig


# --------------------------------------------------------------------------
# LSH candidates, verification, greedy keeper assignment
# --------------------------------------------------------------------------

# A bucket member is checked directly against this many earlier members of
# its bucket; larger buckets are then completed against their kept members.
_STAR = 4
_VERIFY_CHUNK = 1 << 16


def _agreement(sig: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Number of equal signature values of each (src, dst) pair, in chunks."""
    out = np.empty(len(src), dtype=np.int32)
    for i in range(0, len(src), _VERIFY_CHUNK):
        s = src[i : i + _VERIFY_CHUNK]
        d = dst[i : i + _VERIFY_CHUNK]
        out[i : i + len(s)] = np.count_nonzero(sig[s] == sig[d], axis=1)
    return out


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """Distinct values of an ascending array."""
    if len(x) < 2:
        return x
    keep = np.empty(len(x), dtype=bool)
    keep[0] = True
    np.not_equal(x[1:], x[:-1], out=keep[1:])
    return x[keep]


def _in_sorted(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Whether each value of ``x`` occurs in the ascending array ``table``.

    (numpy's own ``isin``/``unique`` hash integers by value, which degrades
    badly on the structured pair codes used here.)
    """
    if not len(table):
        return np.zeros(len(x), dtype=bool)
    at = np.searchsorted(table, x)
    at[at == len(table)] = len(table) - 1
    return table[at] == x


def _first_of_runs(x: np.ndarray) -> np.ndarray:
    """Positions where a run of equal values starts in an ascending array."""
    keep = np.empty(len(x), dtype=bool)
    if len(x):
        keep[0] = True
        np.not_equal(x[1:], x[:-1], out=keep[1:])
    return np.flatnonzero(keep)


def _bucket_edges(
    keys: np.ndarray, star: int
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Star edges of every band's buckets, and the members of large buckets.

    Each member of a bucket (members in ascending index) is paired with the
    first ``star`` members before it; buckets of at most ``star + 1`` members
    are thereby complete. For larger ones the sorted members and the start of
    their bucket are returned for completion against kept members.
    """
    srcs: list[np.ndarray] = []
    dsts: list[np.ndarray] = []
    large: list[tuple[np.ndarray, np.ndarray]] = []
    m = keys.shape[1]
    for band in keys if m > 1 else ():
        order = np.argsort(band)
        sk = band[order]
        new = np.empty(m, dtype=bool)
        new[0] = True
        np.not_equal(sk[1:], sk[:-1], out=new[1:])
        bstarts = np.flatnonzero(new)
        sizes = np.diff(np.append(bstarts, m))
        multi = np.repeat(sizes > 1, sizes)
        if not multi.any():
            continue
        # Members of shared buckets, ascending within each bucket.
        members = order[multi]
        bucket = np.cumsum(new)[multi]
        members = np.sort(bucket * m + members) % m
        new_b = np.empty(len(members), dtype=bool)
        new_b[0] = True
        np.not_equal(bucket[1:], bucket[:-1], out=new_b[1:])
        n_b = len(members)
        at = np.arange(n_b, dtype=np.int64)
        start = np.maximum.accumulate(np.where(new_b, at, 0))
        pos = at - start
        for o in range(star):
            sel = np.flatnonzero(pos > o)
            if not len(sel):
                break
            srcs.append(members[start[sel] + o])
            dsts.append(members[sel])
        bsizes = np.diff(np.append(np.flatnonzero(new_b), n_b))
        big = np.repeat(bsizes > star + 1, bsizes)
        if big.any():
            sel = np.flatnonzero(big)
            # Start of each member's bucket, re-based on the selection.
            large.append((members[sel], np.searchsorted(sel, start[sel])))
    if srcs:
        src = np.concatenate(srcs)
        dst = np.concatenate(dsts)
    else:
        src = dst = np.empty(0, dtype=np.int64)
    return src, dst, large


def _unique_pairs(
    src: np.ndarray, dst: np.ndarray, m: int, *extra: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Distinct (src, dst) pairs, sorted by dst then src (with ``extra`` columns)."""
    if not len(src):
        return (src, dst, *extra)
    code = dst.astype(np.int64) * m + src
    if extra:
        order = np.argsort(code)
        code = code[order]
        first = _first_of_runs(code)
        code = code[first]
        extra = tuple(e[order][first] for e in extra)
    else:
        code = _sorted_unique(np.sort(code))
    return (code % m, code // m, *extra)


def _greedy(m: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Keep/drop in index order over verified edges (src < dst, sorted by dst).

    A text is dropped when some earlier *kept* text is linked to it; otherwise
    it is kept. Returns the status per text: 1 kept, 2 dropped.
    Resolved in vectorised rounds; long dependency chains finish sequentially.
    """
    status = np.ones(m, dtype=np.int8)
    if not len(src):
        return status
    status[dst] = 0
    s, d = src, dst
    rounds = 0
    while len(d):
        rounds += 1
        # Linked to a kept text: dropped.
        status[d[status[s] == 1]] = 2
        live = status[d] == 0
        s, d = s[live], d[live]
        if not len(d):
            break
        # Every earlier linked text dropped: kept.
        blocked = _sorted_unique(d[status[s] != 2])
        cand = _sorted_unique(d)
        free = cand[~_in_sorted(cand, blocked)]
        status[free] = 1
        live = status[d] == 0
        s, d = s[live], d[live]
        if rounds >= 32 and len(d):
            # Sequential finish in index order over what is left.
            firsts = _first_of_runs(d)
            bounds = np.append(firsts, len(d)).tolist()
            nodes = d[firsts].tolist()
            s_list = s.tolist()
            for k, node in enumerate(nodes):
                dropped = False
                for i in s_list[bounds[k] : bounds[k + 1]]:
                    if status[i] == 1:
                        dropped = True
                        break
                status[node] = 2 if dropped else 1
            break
    return status


def _keepers(
    m: int, src: np.ndarray, dst: np.ndarray, sim: np.ndarray, status: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest kept linked text of each dropped text, and the Jaccard with it.

    Edges are sorted by dst then src, so the first kept src of a dst is the
    smallest.
    """
    keeper = np.arange(m, dtype=np.int64)
    jac = np.ones(m, dtype=np.float64)
    sel = (status[src] == 1) & (status[dst] == 2)
    s, d, j = src[sel], dst[sel], sim[sel]
    if len(d):
        first = _first_of_runs(d)
        keeper[d[first]] = s[first]
        jac[d[first]] = j[first]
    return keeper, jac


def _completion_pairs(
    large: list[tuple[np.ndarray, np.ndarray]],
    status: np.ndarray,
    keeper: np.ndarray,
    star: int,
    limit: int = 1 << 22,
):
    """Unchecked pairs of large buckets that could change the greedy result.

    A pair (i, j), i < j in one bucket, matters only when i is kept and j is
    kept too or attributed to a keeper after i. Pairs with i among the first
    ``star`` members were checked as star edges. Yields (src, dst) in chunks.
    """
    for members, bstart in large:
        n = len(members)
        pos = np.arange(n) - bstart
        # End of each member's bucket.
        new = np.ones(n, dtype=bool)
        new[1:] = bstart[1:] != bstart[:-1]
        bends = np.append(np.flatnonzero(new)[1:], n)
        sizes = np.diff(np.append(np.flatnonzero(new), n))
        end = np.repeat(bends, sizes)
        q = np.flatnonzero((pos >= star) & (status[members] == 1))
        if not len(q):
            continue
        span = end[q] - q - 1
        q, span = q[span > 0], span[span > 0]
        cum = np.cumsum(span)
        done = 0
        while done < len(q):
            base = int(cum[done - 1]) if done else 0
            stop = int(np.searchsorted(cum, base + limit, side="right"))
            stop = max(stop, done + 1)
            qq, sp = q[done:stop], span[done:stop]
            done = stop
            rep = np.repeat(qq, sp)
            within = np.arange(len(rep)) - np.repeat(np.cumsum(sp) - sp, sp)
            src = members[rep]
            dst = members[rep + 1 + within]
            need = (status[dst] == 1) | (keeper[dst] > src)
            if need.any():
                yield src[need], dst[need]


def _near_duplicates(
    texts: pl.Series, cfg: DedupConfig, threads: int | None, clock: Timer
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """keeper index and Jaccard with it, per text, and what the search found."""
    m = len(texts)
    threads = threads or _default_threads()
    cps, lens = _code_points(texts)
    hv, counts = _shingle_hashes(cps, lens, cfg.ngram, threads)
    del cps
    clock.lap("shingle")
    bands, rows = lsh_params(cfg.threshold, cfg.num_perm)
    sig, keys = _signatures_from_hashes(hv, counts, cfg.num_perm, cfg.seed, bands, rows, threads)
    clock.lap("signature")
    src, dst, large = _bucket_edges(keys, _STAR)
    del keys
    src, dst = _unique_pairs(src, dst, m)
    clock.lap("banding")
    shingles = _Shingles(hv, counts)
    exact_checked = 0
    ok, sim, n_exact = _verify(sig, shingles, src, dst, cfg)
    exact_checked += n_exact
    n_candidates = len(src)
    src, dst, sim = src[ok], dst[ok], sim[ok]
    clock.lap("verify")
    status = _greedy(m, src, dst)
    keeper, jac = _keepers(m, src, dst, sim, status)
    completion_rounds = 0
    completion_checked = 0
    rejected = np.empty(0, dtype=np.int64)  # codes of pairs found below the threshold
    while large:
        add_s, add_d, add_j, no = [], [], [], [rejected]
        for s, d in _completion_pairs(large, status, keeper, _STAR):
            code = d * m + s
            fresh = ~_in_sorted(code, rejected)
            s, d, code = s[fresh], d[fresh], code[fresh]
            good, j, n_exact = _verify(sig, shingles, s, d, cfg)
            exact_checked += n_exact
            completion_checked += len(s)
            no.append(code[~good])
            if good.any():
                add_s.append(s[good])
                add_d.append(d[good])
                add_j.append(j[good])
        if not add_s:
            break
        rejected = np.sort(np.concatenate(no))
        completion_rounds += 1
        src, dst, sim = _unique_pairs(
            np.concatenate([src, *add_s]),
            np.concatenate([dst, *add_d]),
            m,
            np.concatenate([sim, *add_j]),
        )
        status = _greedy(m, src, dst)
        keeper, jac = _keepers(m, src, dst, sim, status)
    clock.lap("greedy")
    found = {
        "texts": m,
        "shingles": int(counts.sum()),
        "lsh_bands": bands,
        "lsh_rows": rows,
        "candidate_pairs": n_candidates,
        "exact_checked": exact_checked,
        "verified_pairs": len(src),
        "large_bucket_members": int(sum(len(x[0]) for x in large)),
        "completion_checked": completion_checked,
        "completion_rounds": completion_rounds,
        "near_dropped": int((keeper != np.arange(m)).sum()),
    }
    return keeper, jac, found


# A MinHash estimate of Jaccard J has a standard deviation of sqrt(J(1-J)/num_perm),
# 0.035 at J = 0.8 with 128 permutations. Pairs estimated within this margin of the
# threshold are settled by their exact shingle Jaccard, so noise neither drops a
# text below the threshold nor keeps one above it. (bench/dedup.py: near-duplicate
# precision 0.87 -> 0.98 at 100k and at 1M; the exact checks are the costly part of
# verification, about 10 µs a pair.)
_EXACT_MARGIN = 0.05
_EXACT_CHUNK = 1 << 22  # shingles per chunk of exact checks


class _Shingles:
    """Every text's shingle hashes, for exact Jaccard of chosen pairs."""

    def __init__(self, hv: np.ndarray, counts: np.ndarray):
        self.hv = hv
        self.counts = counts
        self.starts = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=self.starts[1:])

    def _pair_sets(self, texts: np.ndarray) -> np.ndarray:
        """Sorted distinct (pair << 32 | shingle) codes of the i-th pair's text."""
        cnt = self.counts[texts]
        total = int(cnt.sum())
        first = np.repeat(self.starts[texts] - (np.cumsum(cnt) - cnt), cnt)
        h = self.hv[first + np.arange(total)].astype(np.uint64)
        h |= np.repeat(np.arange(len(texts), dtype=np.uint64), cnt) << np.uint64(32)
        return _sorted_unique(np.sort(h))

    def jaccard(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        out = np.empty(len(src), dtype=np.float64)
        size = np.cumsum(self.counts[src] + self.counts[dst])
        done = 0
        while done < len(src):
            base = int(size[done - 1]) if done else 0
            stop = max(int(np.searchsorted(size, base + _EXACT_CHUNK, side="right")), done + 1)
            a = self._pair_sets(src[done:stop])
            b = self._pair_sets(dst[done:stop])
            n = stop - done
            na = np.bincount((a >> np.uint64(32)).astype(np.int64), minlength=n)
            nb = np.bincount((b >> np.uint64(32)).astype(np.int64), minlength=n)
            inter = np.bincount((a[_in_sorted(a, b)] >> np.uint64(32)).astype(np.int64), minlength=n)
            out[done:stop] = inter / (na + nb - inter)
            done = stop
        return out


def _verify(
    sig: np.ndarray, shingles: _Shingles, src: np.ndarray, dst: np.ndarray, cfg: DedupConfig
) -> tuple[np.ndarray, np.ndarray, int]:
    """Which pairs reach the threshold, their Jaccard (estimated, or exact near the
    threshold), and how many were checked exactly."""
    sim = _agreement(sig, src, dst) / cfg.num_perm
    near = np.flatnonzero(np.abs(sim - cfg.threshold) < _EXACT_MARGIN)
    if len(near):
        sim[near] = shingles.jaccard(src[near], dst[near])
    return sim >= cfg.threshold, sim, len(near)


def near_duplicate_groups(texts: pl.Series, cfg: DedupConfig, *, threads: int | None = None) -> pl.DataFrame:
    """Near-duplicate keepers of distinct texts given in priority order.

    ``texts`` are distinct normalised texts, index 0 first (the preferred
    keeper). Returns one row per text: ``idx``, ``keeper`` (the index of the
    kept text it duplicates; itself when kept) and ``jaccard`` (Jaccard with
    the keeper, estimated or exact as verified; 1.0 for kept texts).

    Guarantees: a dropped text's verified Jaccard with its keeper is at
    least ``cfg.threshold``, and its keeper is kept (no chains); a text that
    shares an LSH bucket with an earlier kept text and reaches the threshold
    with it is dropped, attributed to the smallest such kept text (greedy in
    index order); the result does not depend on ``threads``.
    """
    if not isinstance(texts, pl.Series):
        texts = pl.Series(list(texts), dtype=pl.String)
    m = len(texts)
    keeper, jac, _ = _near_duplicates(texts, cfg, threads, Timer())
    return pl.DataFrame(
        {
            "idx": np.arange(m, dtype=np.uint32),
            "keeper": keeper.astype(np.uint32),
            "jaccard": jac,
        },
        schema={"idx": pl.UInt32, "keeper": pl.UInt32, "jaccard": pl.Float64},
    )


# --------------------------------------------------------------------------
# Example-level dedup
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DedupStats:
    """What :func:`deduplicate` found and how long each step took (never in an output file)."""

    input_rows: int
    active_rows: int  # rows without a drop reason on entry: the ones judged
    distinct_texts: int
    duplicate: int
    near_duplicate: int
    reply_repeats: int
    near: dict[str, int]  # the near-duplicate search: candidate pairs, verified pairs, …
    seconds: dict[str, float]  # wall and CPU seconds per step (``<step>_s``, ``<step>_cpu_s``, ``total_s``)

    def as_dict(self) -> dict[str, float]:
        """One flat mapping, as ``bench/dedup.py`` prints it."""
        counts = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("near", "seconds")}
        return {**self.near, **counts, **self.seconds}


def deduplicate(
    frame: pl.DataFrame,
    cfg: DedupConfig,
    *,
    key: str = "response",
    order: Sequence[str] = ("sent_at", "example_id"),
    threads: int | None = None,
) -> tuple[pl.DataFrame, DedupStats]:
    """Mark duplicate examples in ``drop_reason`` and add their clusters.

    Rows whose ``drop_reason`` is already set are passed through untouched.
    Among the others, taken in ``order`` (then ``example_id``), ``drop_reason``
    becomes:

    - ``"duplicate"``: the same (normalised prompt, normalised ``key``) pair as
      an earlier row;
    - ``"near_duplicate"``: its normalised ``key`` text is a near duplicate
      (:func:`near_duplicate_groups`) of an earlier kept text;
    - ``"reply_repeats"``: its normalised ``key`` text already appears
      ``cfg.max_reply_repeats`` times among the kept rows.

    Adds ``dup_cluster``: the ``example_id`` of the cluster's kept example (the
    earliest row with the kept text), on every row of a cluster of two or more
    rows, the kept one included; null for a row that stands alone. A cluster
    is one kept text, every row with that text and every row whose text is a
    near duplicate of it. ``dup_jaccard`` is the verified Jaccard of the
    row's text with the kept text (1.0 for the same text), null when alone.
    The row order and the other columns are unchanged. Returns the marked frame
    and the counts of what was found.
    """
    clock = Timer()
    threads = threads or _default_threads()
    df = frame
    n = df.height
    sort_cols = list(order) + ([] if "example_id" in order else ["example_id"])
    active_rows = np.flatnonzero(df.get_column("drop_reason").is_null().to_numpy())
    n_active = len(active_rows)
    act_idx = pl.Series(active_rows, dtype=pl.Int64)
    # Priority rank of each active row (0 = earliest), without moving the
    # frame's (possibly long) text columns around.
    by_priority = (
        df.select(sort_cols)[act_idx]
        .select(pl.arg_sort_by(sort_cols, nulls_last=True, maintain_order=True))
        .to_series()
        .to_numpy()
    )
    rank = np.empty(n_active, dtype=np.int64)
    rank[by_priority] = np.arange(n_active)
    responses = _normalize_series(df.get_column(key)[act_idx], threads)
    clock.lap("normalise")

    # Stage 1: distinct normalised responses, numbered in priority order.
    tfirst = (
        pl.DataFrame({"t": responses, "r": rank})
        .select(pl.col("r").min().over("t"))
        .to_series()
        .to_numpy()
    )
    text_first = np.sort(tfirst[rank == tfirst])  # ranks of each text's first row
    text_of_rank = np.full(n_active, -1, dtype=np.int64)
    text_of_rank[text_first] = np.arange(len(text_first))
    tid = text_of_rank[tfirst]
    n_texts = len(text_first)
    rows_per_text = np.bincount(tid, minlength=n_texts)
    # Exact (prompt, response) repeats: only rows whose response repeats can be.
    dup = np.zeros(n_active, dtype=bool)
    shared = np.flatnonzero(rows_per_text[tid] > 1)
    if len(shared):
        prompts = _normalize_series(df.get_column("prompt")[act_idx[shared]], threads)
        pair_first = (
            pl.DataFrame({"t": tid[shared], "p": prompts, "r": rank[shared]})
            .select(pl.col("r").min().over("t", "p"))
            .to_series()
            .to_numpy()
        )
        dup[shared] = pair_first != rank[shared]
    first_row = by_priority[text_first]  # active row of each text's first example
    texts = responses[first_row]
    clock.lap("exact")

    # Stage 2: near duplicates among the distinct texts.
    keeper, jac, near_found = _near_duplicates(texts, cfg, threads, clock)  # laps shingle … greedy

    keeper_text = keeper[tid]
    near = keeper_text != tid
    # Reply-repeat cap, in priority order within each text, among rows that
    # are neither exact repeats nor near duplicates.
    eligible = np.flatnonzero(~dup & ~near)
    order_e = eligible[np.lexsort((rank[eligible], tid[eligible]))]
    t_e = tid[order_e]
    new_group = np.ones(len(order_e), dtype=bool)
    new_group[1:] = t_e[1:] != t_e[:-1]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(order_e)), 0))
    seen = np.arange(len(order_e)) - group_start + 1
    repeats = np.zeros(n_active, dtype=bool)
    repeats[order_e[seen > cfg.max_reply_repeats]] = True

    code = np.zeros(n, dtype=np.int8)
    code[active_rows[repeats]] = 3
    code[active_rows[near]] = 2
    code[active_rows[dup]] = 1
    cluster_size = np.bincount(keeper_text, minlength=n_texts)
    in_cluster = np.zeros(n, dtype=bool)
    in_cluster[active_rows] = cluster_size[keeper_text] > 1
    cluster_row = np.zeros(n, dtype=np.int64)
    cluster_row[active_rows] = active_rows[first_row[keeper_text]]
    row_jac = np.full(n, np.nan)
    row_jac[active_rows] = jac[tid]
    marks = pl.DataFrame(
        {
            "__code": code,
            "__cluster": df.get_column("example_id").gather(cluster_row),
            "__jac": row_jac,
            "__in": in_cluster,
        }
    )
    reason = (
        pl.when(pl.col("__code") == 1)
        .then(pl.lit(DROP_DUPLICATE))
        .when(pl.col("__code") == 2)
        .then(pl.lit(DROP_NEAR_DUPLICATE))
        .when(pl.col("__code") == 3)
        .then(pl.lit(DROP_REPLY_REPEATS))
    )
    out = pl.concat([df, marks], how="horizontal").with_columns(
        pl.coalesce(pl.col("drop_reason").cast(pl.String), reason).alias("drop_reason"),
        pl.when(pl.col("__in")).then(pl.col("__cluster")).alias("dup_cluster"),
        pl.when(pl.col("__in")).then(pl.col("__jac")).alias("dup_jaccard"),
    ).drop("__code", "__cluster", "__jac", "__in")
    clock.lap("assign")
    stats = DedupStats(
        input_rows=n,
        active_rows=n_active,
        distinct_texts=n_texts,
        duplicate=int(dup.sum()),
        near_duplicate=int((near & ~dup).sum()),
        reply_repeats=int(repeats.sum()),
        near=near_found,
        seconds={**clock.laps(), "total_s": clock.total, "total_cpu_s": clock.total_cpu},
    )
    return out, stats


def _normalize_series(texts: pl.Series, threads: int) -> pl.Series:
    """:func:`normalize_expr` over a Series, in parallel slices."""
    n = len(texts)
    parts = max(1, min(threads, n // 50_000))

    def one(part: pl.Series) -> pl.Series:
        lower = part.fill_null("").str.to_lowercase()
        words = lower.str.replace_all(_NON_WORD_RUNS, " ").str.strip_chars(" ")
        empty = words.str.len_bytes() == 0
        if empty.any():
            fallback = lower.filter(empty).str.replace_all(r"\s{2,}|[^\S ]", " ").str.strip_chars()
            words = words.scatter(empty.arg_true(), fallback)
        return words

    if parts == 1:
        return one(texts).alias(texts.name)
    step = -(-n // parts)
    with ThreadPoolExecutor(max_workers=parts) as pool:
        done = list(pool.map(one, [texts.slice(i, step) for i in range(0, n, step)]))
    return pl.concat(done, rechunk=True).alias(texts.name)
