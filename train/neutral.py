"""The neutral side of the prose pairs: a local base model's plain rewrite of each chunk.

`etl train neutral --version p1 --model PATH` rewrites every chunk of a prose version
that the same model, with the same parameters and prompt, has not rewritten yet, and
stores the rewrites in `neutral_rewrites` batch by batch: an interrupted run keeps
what it finished and the next run goes on from there. The next `etl build --corpus
prose` turns them into `neutral` pairs. A base model is prompted with plain text (no
chat template): the prompt is the version's `neutral_prompt`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from etl.schemas.errors import EtlError
from etl.schemas import NEUTRAL_REWRITES
from etl.schemas.records import canonical_json
from etl.train.mlx_config import model_ref
from etl.train.rejected import params_sha256
from etl.schemas.hashing import verify_version
from etl.warehouse import insert_frame, open_warehouse


@dataclass(frozen=True)
class RewriteParams:
    prompt: str  # with {text} where the chunk goes
    max_tokens: int = 512
    temperature: float = 0.0  # greedy: the same rewrite on every run

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def sha256(self) -> str:
        return params_sha256(self.as_dict())


@dataclass
class Outcome:
    chunks: int
    already: int
    stored: int


def version_chunks(warehouse: Path, version_dir: Path) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """(chunk id, text) of every chunk of a verified prose version, and its manifest."""
    manifest = verify_version(version_dir)
    if manifest.get("corpus") != "prose":
        raise EtlError(f"{version_dir.name} is not a prose version; build one with `etl build --corpus prose`")
    with open_warehouse(warehouse, read_only=True) as con:
        rows = con.execute(
            "SELECT chunk_id, text FROM prose_chunks WHERE version = ? ORDER BY chunk_id", [manifest["version"]]
        ).fetchall()
    if not rows:
        raise EtlError(f"the warehouse holds no chunks of {manifest['version']}; was it built with this warehouse?")
    return rows, manifest


def generate(
    warehouse: Path,
    version_dir: Path,
    model: str,
    *,
    max_tokens: int = 512,
    temperature: float = 0.0,
    limit: int | None = None,
    batch_size: int = 4,
    echo: Callable[[str], None] = print,
) -> Outcome:
    chunks, manifest = version_chunks(warehouse, version_dir)
    params = RewriteParams(manifest["config"]["prose"]["neutral_prompt"], max_tokens, temperature)
    model = model_ref(model)
    done = _stored(warehouse, model, params.sha256)
    pending = [(key, text) for key, text in chunks if key not in done]
    todo = pending if limit is None else pending[:limit]
    stored = 0
    if todo:
        echo(f"rewriting {len(todo)} chunks with {model} ({len(chunks) - len(pending)} already stored)")
    for batch, rewrites in _rewrite(model, todo, params, batch_size):
        stored += _insert(warehouse, [k for k, _ in batch], rewrites, model, params)
        echo(f"  {stored}/{len(todo)} stored")
    return Outcome(chunks=len(chunks), already=len(chunks) - len(pending), stored=stored)


def _rewrite(model_path: str, chunks: list[tuple[str, str]], params: RewriteParams, batch_size: int
             ) -> Iterator[tuple[list[tuple[str, str]], list[str]]]:
    if not chunks:
        return
    from mlx_lm import load
    from mlx_lm.generate import batch_generate
    from mlx_lm.sample_utils import make_sampler

    model, tokenizer = load(model_path)
    sampler = make_sampler(temp=params.temperature)
    for start in range(0, len(chunks), batch_size):
        batch = chunks[start : start + batch_size]
        tokens = [tokenizer.encode(params.prompt.replace("{text}", text)) for _, text in batch]
        response = batch_generate(model, tokenizer, tokens, max_tokens=params.max_tokens, sampler=sampler)
        yield batch, [clean_rewrite(text) for text in response.texts]


def clean_rewrite(text: str) -> str:
    """A base model goes on past the rewrite: keep what comes before it starts a new passage."""
    text = re.split(r"\n\s*(Passage|Plain rewrite|Text|Input)\s*:", text, maxsplit=1)[0]
    return text.strip()


def _stored(warehouse: Path, model: str, params_sha: str) -> set[str]:
    with open_warehouse(warehouse) as con:
        rows = con.execute(
            "SELECT chunk_sha256 FROM neutral_rewrites WHERE model = ? AND params_sha256 = ?", [model, params_sha]
        ).fetchall()
    return {key for (key,) in rows}


def _insert(warehouse: Path, keys: list[str], rewrites: list[str], model: str, params: RewriteParams) -> int:
    keep = [(k, r) for k, r in zip(keys, rewrites) if r]  # an empty rewrite is retried on the next run
    frame = pl.DataFrame(
        {
            "chunk_sha256": [k for k, _ in keep],
            "model": [model] * len(keep),
            "params_sha256": [params.sha256] * len(keep),
            "params": [canonical_json(params.as_dict())] * len(keep),
            "rewrite": [r for _, r in keep],
            "created_at": [datetime.now(UTC)] * len(keep),
        },
        schema=NEUTRAL_REWRITES.polars_schema(),
    )
    # Opened per batch, so an interrupted run keeps every batch it finished.
    with open_warehouse(warehouse) as con:
        return insert_frame(con, NEUTRAL_REWRITES, frame, ignore_existing=True)
