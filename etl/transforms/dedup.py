"""Exact and near-duplicate removal for training examples.

A personal message history repeats itself: the same canned reply ("ok", "on my
way") is sent hundreds of times, and many messages are small edits of earlier
ones (a typo fixed, a word swapped, an emoji added). Left in, they teach the
model to answer everything with the same few lines. This stage keeps one
example per cluster, by a stable rule (earliest first), and says why every
other one was dropped.

Two stages:

1. **Exact**, on a normalised key (:func:`normalize_expr`): lowercase, every
   run of characters that are not letters, digits or ``_`` (punctuation,
   emoji, symbols, whitespace) becomes one space, ends stripped. Case,
   punctuation and emoji edits vanish here, and so do the hot buckets ("ok",
   "Ok!", "ok 👍" are one text). A reply that is only emoji or punctuation keeps
   its lowercased, whitespace-collapsed form, so "👍" and "❤️" stay distinct.
   The key is used for comparison only; the kept example's text is untouched.
2. **Near**, on the distinct normalised texts: character n-gram shingles,
   MinHash signatures (bit-compatible with ``datasketch.MinHash``, scheme
   ``affine32``, fed the same 32-bit shingle hashes from
   :func:`shingle_hash32`), LSH banding with datasketch's optimal (bands, rows),
   and a check of every candidate pair's estimated Jaccard against the
   threshold before it links anything. Links never chain: a dropped text is
   directly similar to the kept text it is attributed to.

Everything is vectorised (Polars + numpy) and deterministic: the same input
gives the same output whatever the number of threads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import polars as pl

__all__ = [
    "DROP_DUPLICATE",
    "DROP_NEAR_DUPLICATE",
    "DROP_REPLY_REPEATS",
    "DedupConfig",
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


@dataclass(frozen=True)
class DedupConfig:
    """Settings of the dedup stage.

    threshold: estimated Jaccard similarity at or above which a text is a near
        duplicate of a kept one.
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
    joined = "".join(texts.to_list()) if len(texts) else ""
    cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    return cps, lens


def _shingle_hashes(cps: np.ndarray, lens: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit shingle hashes of every text, text after text, and their counts."""
    m = len(lens)
    counts = np.where(lens >= ngram, lens - ngram + 1, 1).astype(np.int64)
    starts = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    total = int(starts[-1])
    out = np.empty(total, dtype=np.uint32)
    char_off = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(lens, out=char_off[1:])

    short = lens < ngram
    long_idx = np.flatnonzero(~short)
    if len(long_idx):
        # Window hashes at every position of the concatenation, computed in
        # slabs; then the windows that stay inside one text are kept.
        n_pos = len(cps) - ngram + 1
        valid = np.ones(n_pos, dtype=bool)
        ends = char_off[1:][~short]
        for k in range(1, ngram):
            pos = ends - ngram + k
            valid[pos[pos < n_pos]] = False
        # Short texts contribute no window starts.
        short_idx = np.flatnonzero(short & (lens > 0))
        for ln in range(1, ngram):
            sel = short_idx[lens[short_idx] == ln]
            for k in range(ln):
                pos = char_off[sel] + k
                valid[pos[pos < n_pos]] = False
        slot_mask = np.ones(total, dtype=bool)
        slot_mask[starts[:-1][short]] = False
        dest = np.flatnonzero(slot_mask)
        written = 0
        slab = 1 << 18
        seed = np.uint64(ngram)
        for p0 in range(0, n_pos, slab):
            p1 = min(p0 + slab, n_pos)
            h = np.full(p1 - p0, seed, dtype=np.uint64)
            for k in range(ngram):
                h *= _POLY_NP
                h += cps[p0 + k : p1 + k]
                h += np.uint64(1)
            hv = _fold32(h[valid[p0:p1]])
            out[dest[written : written + len(hv)]] = hv
            written += len(hv)
    if short.any():
        sidx = np.flatnonzero(short)
        sl = lens[sidx]
        h = sl.astype(np.uint64)
        for k in range(max(int(sl.max()), 0)):
            live = sl > k
            hk = h[live] * _POLY_NP
            hk += cps[char_off[sidx[live]] + k].astype(np.uint64) + np.uint64(1)
            h[live] = hk
        out[starts[:-1][sidx]] = _fold32(h)
    return out, counts


# --------------------------------------------------------------------------
# MinHash signatures (datasketch affine32) and band keys
# --------------------------------------------------------------------------


@lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters ``(a, b)`` for (num_perm, seed)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    a.setflags(write=False)
    b.setflags(write=False)
    return a, b


@lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising datasketch's weighted false positive/negative sum."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, 0.5, 0.5)


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, datasketch's pre-mix for affine32."""
    h = h ^ (h >> np.uint32(16))
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


_BLOCK = 1024


def _default_threads() -> int:
    try:
        return max(1, min(len(os.sched_getaffinity(0)), pl.thread_pool_size()))
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        return max(1, min(os.cpu_count() or 1, pl.thread_pool_size()))


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

    Texts are processed in blocks of similar shingle count; a block's shingle
    matrix is padded by repeating a text's last shingle, which cannot change
    a minimum. Blocks write disjoint rows, so the result does not depend on
    how blocks are spread over threads.
    """
    m = len(counts)
    sig = np.empty((m, num_perm), dtype=np.uint32)
    keys = np.empty((bands, m), dtype=np.uint64)
    if m == 0:
        return sig, keys
    a, b = permutations(num_perm, seed)
    g = _fmix32(hv)
    starts = np.zeros(m, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    by_count = np.argsort(counts, kind="stable")
    blocks = [by_count[i : i + _BLOCK] for i in range(0, m, _BLOCK)]
    a_full = np.ascontiguousarray(np.broadcast_to(a[:, None], (num_perm, _BLOCK)))
    b_full = np.ascontiguousarray(np.broadcast_to(b[:, None], (num_perm, _BLOCK)))
    used = bands * rows

    def work(block_ids: list[int]) -> None:
        tmp = np.empty((num_perm, _BLOCK), dtype=np.uint32)
        acc = np.empty((num_perm, _BLOCK), dtype=np.uint32)
        for bi in block_ids:
            cols = blocks[bi]
            w = len(cols)
            c = counts[cols]
            width = int(c.max())
            st = starts[cols]
            steps = np.minimum(np.arange(width)[:, None], c[None, :] - 1)
            mat = g[st[None, :] + steps]  # (width, w)
            out = acc[:, :w]
            t = tmp[:, :w]
            af = a_full[:, :w]
            bf = b_full[:, :w]
            out.fill(0xFFFFFFFF)
            for l in range(width):
                np.multiply(af, mat[l], out=t)
                np.add(t, bf, out=t)
                np.minimum(out, t, out=out)
            sig[cols] = out.T
            band_rows = out[:used].reshape(bands, rows, w)
            k = band_rows[:, 0, :].astype(np.uint64)
            for r in range(1, rows):
                k *= _BAND_POLY
                k += band_rows[:, r, :]
            keys[:, cols] = k

    threads = max(1, min(threads, len(blocks)))
    if threads == 1:
        work(list(range(len(blocks))))
    else:
        shares = [list(range(t, len(blocks), threads)) for t in range(threads)]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for f in [pool.submit(work, s) for s in shares]:
                f.result()
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
    cps, lens = _code_points(texts)
    hv, counts = _shingle_hashes(cps, lens, ngram)
    bands, rows = 1, 1
    sig, _ = _signatures_from_hashes(
        hv, counts, num_perm, seed, bands, rows, threads or _default_threads()
    )
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
    idx = np.arange(m, dtype=np.int64)
    for band in keys if m > 1 else ():
        order = np.argsort(band, kind="stable")
        sk = band[order]
        new = np.empty(m, dtype=bool)
        new[0] = True
        np.not_equal(sk[1:], sk[:-1], out=new[1:])
        start = np.maximum.accumulate(np.where(new, idx, 0))
        pos = idx - start
        bstarts = np.flatnonzero(new)
        sizes = np.diff(np.append(bstarts, m))
        size = np.repeat(sizes, sizes)
        multi = size > 1
        if not multi.any():
            continue
        for o in range(star):
            sel = np.flatnonzero(multi & (pos > o))
            if not len(sel):
                break
            srcs.append(order[start[sel] + o])
            dsts.append(order[sel])
        big = size > star + 1
        if big.any():
            sel = np.flatnonzero(big)
            members = order[sel]
            # Start of each member's bucket, re-based on the selection.
            bstart = np.searchsorted(sel, start[sel])
            large.append((members, bstart))
    if srcs:
        src = np.concatenate(srcs)
        dst = np.concatenate(dsts)
    else:
        src = dst = np.empty(0, dtype=np.int64)
    return src, dst, large


def _unique_pairs(src: np.ndarray, dst: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (src, dst) pairs, sorted by dst then src."""
    if not len(src):
        return src, dst
    code = np.unique(dst.astype(np.int64) * m + src)
    return code % m, code // m


def _greedy(m: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Keep/drop in index order over verified edges (src < dst).

    A text is dropped when some earlier *kept* text is linked to it; otherwise
    it is kept. Returns the status per text: 1 kept, 2 dropped.
    Resolved in vectorised rounds; long dependency chains finish sequentially.
    """
    status = np.ones(m, dtype=np.int8)
    if not len(src):
        return status
    has_in = np.zeros(m, dtype=bool)
    has_in[dst] = True
    status[has_in] = 0
    s, d = src, dst
    rounds = 0
    while len(d):
        rounds += 1
        hit = status[s] == 1
        status[d[hit]] = 2
        live = status[d] == 0
        s, d = s[live], d[live]
        if not len(d):
            break
        blocked = np.unique(d[status[s] != 2])
        cand = np.unique(d)
        free = cand[~np.isin(cand, blocked, assume_unique=True)]
        status[free] = 1
        live = status[d] == 0
        s, d = s[live], d[live]
        if rounds >= 32 and len(d):
            # Sequential finish in index order over what is left.
            order = np.lexsort((s, d))
            s, d = s[order], d[order]
            nodes, first = np.unique(d, return_index=True)
            bounds = np.append(first, len(d))
            st = status  # view, updated in place
            s_list = s.tolist()
            for k, node in enumerate(nodes.tolist()):
                dropped = False
                for i in s_list[bounds[k] : bounds[k + 1]]:
                    if st[i] == 1:
                        dropped = True
                        break
                st[node] = 2 if dropped else 1
            break
    return status


def _keepers(
    m: int, src: np.ndarray, dst: np.ndarray, agree: np.ndarray, status: np.ndarray, num_perm: int
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest kept linked text of each dropped text, and the estimate with it."""
    keeper = np.arange(m, dtype=np.int64)
    jac = np.ones(m, dtype=np.float64)
    sel = (status[src] == 1) & (status[dst] == 2)
    s, d, a = src[sel], dst[sel], agree[sel]
    if len(d):
        order = np.lexsort((s, d))
        s, d, a = s[order], d[order], a[order]
        nodes, first = np.unique(d, return_index=True)
        keeper[nodes] = s[first]
        jac[nodes] = a[first] / num_perm
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
    texts: pl.Series, cfg: DedupConfig, threads: int | None, stats: dict | None
) -> tuple[np.ndarray, np.ndarray]:
    """keeper index and estimated Jaccard with it, per text."""
    m = len(texts)
    t0 = time.perf_counter()
    cps, lens = _code_points(texts)
    hv, counts = _shingle_hashes(cps, lens, cfg.ngram)
    del cps
    t1 = time.perf_counter()
    bands, rows = lsh_params(cfg.threshold, cfg.num_perm)
    sig, keys = _signatures_from_hashes(
        hv, counts, cfg.num_perm, cfg.seed, bands, rows, threads or _default_threads()
    )
    del hv
    t2 = time.perf_counter()
    src, dst, large = _bucket_edges(keys, _STAR)
    del keys
    src, dst = _unique_pairs(src, dst, m)
    t3 = time.perf_counter()
    agree = _agreement(sig, src, dst)
    ok = agree / cfg.num_perm >= cfg.threshold
    n_candidates = len(src)
    src, dst, agree = src[ok], dst[ok], agree[ok]
    t4 = time.perf_counter()
    status = _greedy(m, src, dst)
    keeper, jac = _keepers(m, src, dst, agree, status, cfg.num_perm)
    completion_rounds = 0
    completion_checked = 0
    while large:
        add_s, add_d, add_a = [], [], []
        for s, d in _completion_pairs(large, status, keeper, _STAR):
            a = _agreement(sig, s, d)
            completion_checked += len(s)
            good = a / cfg.num_perm >= cfg.threshold
            if good.any():
                add_s.append(s[good])
                add_d.append(d[good])
                add_a.append(a[good])
        if not add_s:
            break
        completion_rounds += 1
        src = np.concatenate([src, *add_s])
        dst = np.concatenate([dst, *add_d])
        agree = np.concatenate([agree, *add_a])
        code = dst * m + src
        code, first = np.unique(code, return_index=True)
        src, dst, agree = src[first], dst[first], agree[first]
        status = _greedy(m, src, dst)
        keeper, jac = _keepers(m, src, dst, agree, status, cfg.num_perm)
    t5 = time.perf_counter()
    if stats is not None:
        stats.update(
            texts=m,
            shingles=int(counts.sum()),
            lsh_bands=bands,
            lsh_rows=rows,
            candidate_pairs=n_candidates,
            verified_pairs=int(len(src)),
            large_bucket_members=int(sum(len(x[0]) for x in large)),
            completion_checked=completion_checked,
            completion_rounds=completion_rounds,
            near_dropped=int((keeper != np.arange(m)).sum()),
            shingle_s=t1 - t0,
            signature_s=t2 - t1,
            banding_s=t3 - t2,
            verify_s=t4 - t3,
            greedy_s=t5 - t4,
        )
    return keeper, jac


def near_duplicate_groups(
    texts: pl.Series, cfg: DedupConfig, *, threads: int | None = None, stats: dict | None = None
) -> pl.DataFrame:
    """Near-duplicate keepers of distinct texts given in priority order.

    ``texts`` are distinct normalised texts, index 0 first (the preferred
    keeper). Returns one row per text: ``idx``, ``keeper`` (the index of the
    kept text it duplicates; itself when kept) and ``jaccard`` (estimated
    Jaccard with the keeper; 1.0 for kept texts).

    Guarantees: a dropped text's estimated Jaccard with its keeper is at
    least ``cfg.threshold``, and its keeper is kept (no chains); a text that
    shares an LSH bucket with an earlier kept text and reaches the threshold
    with it is dropped, attributed to the smallest such kept text (greedy in
    index order); the result does not depend on ``threads``.
    """
    if not isinstance(texts, pl.Series):
        texts = pl.Series(list(texts), dtype=pl.String)
    m = len(texts)
    keeper, jac = _near_duplicates(texts, cfg, threads, stats)
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


def deduplicate(
    lf: pl.LazyFrame,
    cfg: DedupConfig,
    *,
    key: str = "response",
    order: Sequence[str] = ("sent_at", "example_id"),
    threads: int | None = None,
    stats: dict | None = None,
) -> pl.LazyFrame:
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
    near duplicate of it. ``dup_jaccard`` is the estimated Jaccard of the
    row's text with the kept text (1.0 for the same text), null when alone.
    The row order and the other columns are unchanged. The input is collected
    once; the result is returned as a LazyFrame.
    """
    t0 = time.perf_counter()
    df = lf.collect()
    sort_cols = list(order) + ([] if "example_id" in order else ["example_id"])
    base = df.with_row_index("__row")
    active = (
        base.filter(pl.col("drop_reason").is_null())
        .select("__row", "example_id", "prompt", key, *[c for c in sort_cols if c not in ("example_id", key, "prompt")])
        .sort(sort_cols, nulls_last=True, maintain_order=True)
        .with_columns(
            pl.col("prompt").fill_null("").str.to_lowercase().alias("__np"),
            pl.col(key).fill_null("").str.to_lowercase().alias("__nr"),
        )
        .with_columns(
            _normalize_lowered(pl.col("__np")).alias("__np"),
            _normalize_lowered(pl.col("__nr")).alias("__nr"),
        )
        .with_row_index("__rank")
        .select("__row", "__rank", "example_id", "__np", "__nr")
    )
    t1 = time.perf_counter()
    active = active.with_columns(
        (pl.col("__rank").min().over("__np", "__nr") != pl.col("__rank")).alias("__dup"),
        pl.col("__rank").min().over("__nr").alias("__tfirst"),
    )
    firsts = active.filter(pl.col("__rank") == pl.col("__tfirst"))
    # Distinct texts in priority order: the first rows are already in rank order.
    texts = firsts.get_column("__nr")
    text_first = firsts.get_column("__rank").to_numpy()
    first_ids = firsts.get_column("example_id")
    t2 = time.perf_counter()
    near_stats: dict = {}
    keeper, jac = _near_duplicates(texts, cfg, threads, near_stats)
    t3 = time.perf_counter()

    n_active = active.height
    # Text index of every active row, via its first row's rank.
    text_of_rank = np.full(n_active, -1, dtype=np.int64)
    text_of_rank[text_first] = np.arange(len(text_first))
    tid = text_of_rank[active.get_column("__tfirst").to_numpy()]
    row_keeper_text = keeper[tid]
    near = row_keeper_text != tid
    dup = active.get_column("__dup").to_numpy()
    # Reply-repeat cap among rows that are neither duplicates nor near ones.
    eligible = ~dup & ~near
    active = active.with_columns(
        pl.Series("__elig", eligible),
        pl.Series("__ktext", row_keeper_text),
        pl.Series("__jac", jac[tid]),
    ).with_columns(pl.col("__elig").cast(pl.UInt32).cum_sum().over("__nr").alias("__seen"))
    seen = active.get_column("__seen").to_numpy()
    repeats = eligible & (seen > cfg.max_reply_repeats)
    cluster_size = np.bincount(row_keeper_text, minlength=len(text_first))
    in_cluster = cluster_size[row_keeper_text] > 1
    marks = pl.DataFrame(
        {
            "__row": active.get_column("__row"),
            "__reason": pl.select(
                pl.when(pl.Series(dup))
                .then(pl.lit(DROP_DUPLICATE))
                .when(pl.Series(near))
                .then(pl.lit(DROP_NEAR_DUPLICATE))
                .when(pl.Series(repeats))
                .then(pl.lit(DROP_REPLY_REPEATS))
                .otherwise(pl.lit(None, dtype=pl.String))
            ).to_series(),
            "__cluster": first_ids.gather(row_keeper_text),
            "__cjac": active.get_column("__jac"),
            "__in": pl.Series(in_cluster, dtype=pl.Boolean),
        }
    )
    out = (
        base.join(marks, on="__row", how="left", maintain_order="left")
        .with_columns(
            pl.coalesce(pl.col("drop_reason").cast(pl.String), pl.col("__reason")).alias("drop_reason"),
            pl.when(pl.col("__in")).then(pl.col("__cluster")).alias("dup_cluster"),
            pl.when(pl.col("__in")).then(pl.col("__cjac")).alias("dup_jaccard"),
        )
        .drop("__row", "__reason", "__cluster", "__cjac", "__in")
    )
    t4 = time.perf_counter()
    if stats is not None:
        stats.update(near_stats)
        stats.update(
            input_rows=df.height,
            active_rows=n_active,
            distinct_texts=len(text_first),
            duplicate=int(dup.sum()),
            near_duplicate=int((near & ~dup).sum()),
            reply_repeats=int(repeats.sum()),
            normalise_s=t1 - t0,
            exact_s=t2 - t1,
            near_s=t3 - t2,
            assign_s=t4 - t3,
            total_s=t4 - t0,
        )
    return out.lazy()
