"""Chunking (the seed's curate_corpus.py): whole paragraphs, a token target per chunk, a total budget.

A paragraph of fewer than `min_para_words` words carries too little style to learn
from and is dropped (`short_paragraph`). The rest are grouped, in reading order and
within one section of one document, into chunks of at most `chunk_tokens`; a
paragraph is never cut, so one longer than the target is a chunk of its own. The
budget `target_tokens` is then shared evenly across documents (a document shorter
than its share gives the rest to the others) and the chunks that do not fit are
dropped (`over_budget`). Tokens are counted with the target model's tokenizer when
one is given, else as words; the same input always gives the same chunks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from etl.schemas.errors import EtlError

REASONS = {
    "short_paragraph": "a paragraph shorter than min_para_words",
    "duplicate": "a paragraph already in an earlier document (the same post on two platforms, a book and its excerpt)",
    "over_budget": "a chunk beyond the document's even share of target_tokens",
}
SEPARATOR = "\n\n"

Counter = Callable[[Sequence[str]], list[int]]


def word_counter(texts: Sequence[str]) -> list[int]:
    return [len(t.split()) for t in texts]


@dataclass(frozen=True)
class Tokenizer:
    """A local tokenizer.json (the `tokenizers` package), or a model folder that holds one."""

    path: Path
    sha256: str

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        path = Path(path).expanduser()
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise EtlError(f"no tokenizer.json at {path}; give a local tokenizer.json or a model folder with one")
        return cls(path, hashlib.sha256(path.read_bytes()).hexdigest())

    def counter(self) -> Counter:
        from tokenizers import Tokenizer as HfTokenizer

        try:
            tokenizer = HfTokenizer.from_file(str(self.path))
        except Exception as error:  # noqa: BLE001 (a damaged file is the user's to fix)
            raise EtlError(f"{self.path} is not a tokenizer.json the tokenizers package can read: {error}") from None

        def count(texts: Sequence[str]) -> list[int]:
            return [len(e.ids) for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]

        return count


def drop_short(paragraphs: pl.LazyFrame, min_words: int) -> pl.LazyFrame:
    words = pl.col("text").str.count_matches(r"\S+")
    short = pl.when(words < min_words).then(pl.lit("short_paragraph")).otherwise(None)
    return paragraphs.with_columns(drop_reason=pl.coalesce(pl.col("drop_reason"), short))


def drop_duplicates(paragraphs: pl.LazyFrame) -> pl.LazyFrame:
    """The first occurrence of a paragraph (by document id, then position) is kept; the same
    text again, spacing and case aside, is a `duplicate`."""
    key = pl.col("text").str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()
    first = pl.struct("document_id", "position").rank("ordinal").over(key) == 1
    again = pl.when(pl.col("drop_reason").is_null() & ~first).then(pl.lit("duplicate")).otherwise(None)
    return paragraphs.with_columns(drop_reason=pl.coalesce(pl.col("drop_reason"), again))


def chunk_paragraphs(
    kept: pl.DataFrame, *, chunk_tokens: int, target_tokens: int, count: Counter = word_counter
) -> pl.DataFrame:
    """Chunks of the kept paragraphs (document_id, position, section, text), with `drop_reason`
    set on those beyond the budget. One row per chunk, sorted by document and position."""
    kept = kept.sort("document_id", "position")
    texts = kept["text"].to_list()
    tokens = count(texts) if texts else []
    separator = count([SEPARATOR])[0] if count is not word_counter else 0
    rows = []
    current: list[int] = []
    current_tokens = 0

    def close():
        nonlocal current, current_tokens
        if current:
            rows.append(_chunk(kept, current, current_tokens, texts, tokens))
        current, current_tokens = [], 0

    docs = kept["document_id"].to_list()
    sections = kept["section"].to_list() if "section" in kept.columns else [None] * len(texts)
    for i in range(len(texts)):
        if current and (docs[i] != docs[current[-1]] or sections[i] != sections[current[-1]]):
            close()
        added = tokens[i] + (separator if current else 0)
        if current and current_tokens + added > chunk_tokens:
            close()
            added = tokens[i]
        current.append(i)
        current_tokens += added
    close()
    chunks = pl.DataFrame(rows, schema=CHUNK_SCHEMA, orient="row")
    return _apply_budget(chunks, target_tokens)


CHUNK_SCHEMA = {
    "chunk_id": pl.String,
    "document_id": pl.String,
    "first_position": pl.Int64,
    "last_position": pl.Int64,
    "paragraphs": pl.Int64,
    "words": pl.Int64,
    "tokens": pl.Int64,
    "text": pl.String,
}


def _chunk(kept: pl.DataFrame, members: list[int], total: int, texts: list[str], tokens: list[int]) -> tuple:
    text = SEPARATOR.join(texts[i] for i in members)
    positions = kept["position"]
    return (
        hashlib.sha256(f"{kept['document_id'][members[0]]}\x1f{text}".encode()).hexdigest(),
        kept["document_id"][members[0]],
        int(positions[members[0]]),
        int(positions[members[-1]]),
        len(members),
        len(text.split()),
        total,
        text,
    )


def even_shares(totals: dict[str, int], budget: int) -> dict[str, int]:
    """Water-filling: the largest cap c with sum(min(total, c)) <= budget; each document gets min(total, c)."""
    if sum(totals.values()) <= budget:
        return dict(totals)
    remaining, left = budget, sorted(totals.items(), key=lambda kv: (kv[1], kv[0]))
    shares = {}
    while left:
        cap = remaining // len(left)
        doc, total = left[0]
        if total <= cap:
            shares[doc] = total
            remaining -= total
            left.pop(0)
            continue
        for doc, _ in left:
            shares[doc] = cap
        break
    return shares


def _apply_budget(chunks: pl.DataFrame, budget: int) -> pl.DataFrame:
    """Per document, chunks in an order spread over the whole document (by their hash) are
    taken while they fit its share; what a document could not use goes, in the same
    order, to chunks of any document that still fit the whole budget."""
    if chunks.height == 0:
        return chunks.with_columns(drop_reason=pl.lit(None, pl.String))
    totals = dict(chunks.group_by("document_id").agg(pl.col("tokens").sum()).iter_rows())
    shares = even_shares(totals, budget)
    order = chunks.with_row_index("_row").sort("document_id", "chunk_id")
    taken: set[int] = set()
    used: dict[str, int] = {}
    leftovers = []
    for row, doc, tokens in order.select("_row", "document_id", "tokens").iter_rows():
        if used.get(doc, 0) + tokens <= shares[doc]:
            used[doc] = used.get(doc, 0) + tokens
            taken.add(row)
        else:
            leftovers.append((row, tokens))
    spare = budget - sum(used.values())
    for row, tokens in leftovers:
        if tokens <= spare:
            taken.add(row)
            spare -= tokens
    kept = pl.Series([i in taken for i in range(chunks.height)])
    return chunks.with_columns(drop_reason=pl.when(kept).then(None).otherwise(pl.lit("over_budget")))
