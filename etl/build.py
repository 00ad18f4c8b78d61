"""`etl build`: the one path from landed messages to a hashed dataset version.

    raw_messages ─► normalise ─► strip quotes ─► drop meta ─► redact      (per message)
                ─► turns ─► examples ─► short replies ─► dedup ─► trajectory ─► splits
                ─► chatml/ dpo/ [sharegpt/] + manifest.json + SHA256SUMS + README.md

Every transform is a pure function on a Polars frame that marks what it drops with
a `drop_reason`; this module runs them in order, counts, and records the drops.
Same warehouse + same config ⇒ byte-identical files: nothing here reads the clock
or depends on row order it did not set.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from etl import __version__
from etl.config import Config
from etl.errors import EtlError, VersionExists
from etl.paths import private_dir
from etl.schemas import BUILD_CUTS, BUILD_DROPS, BUILD_EXAMPLES, BUILDS, SCHEMA_VERSION
from etl.schemas.records import canonical_json, chat_record, dpo_record, flatten_prompt, prompt_key
from etl.transforms import conversations, labels
from etl.transforms.dedup import DedupConfig, deduplicate
from etl.transforms.redact import redact_secrets, redact_str
from etl.transforms.replies import cut_records, strip_replies
from etl.transforms.text import drop_meta_messages, normalise_text
from etl.transforms.trajectory import TRAJECTORY_VERSION, add_trajectory, trajectory_tag
from etl.versions import dataset_sha256, sha256_file, write_manifest_and_sums
from etl.warehouse import insert_frame, open_warehouse, query_frame, transaction

SPLITS = ("train", "valid", "test")
# What turn assembly reads of a cleaned message.
TURN_COLUMNS = (
    "source", "source_id", "conversation_id", "sent_at", "sender", "sender_name", "is_owner", "author", "text",
)
TRAJECTORY_COLUMNS = ("traj_c", "traj_u", "traj_p", "traj_r", "traj_k", "traj_n", "traj_s")


@dataclass
class BuildResult:
    version: str
    path: Path | None
    manifest: dict[str, Any]
    dry_run: bool = False
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage; not in the manifest

    def summary(self) -> str:
        m = self.manifest
        lines = [
            f"{self.version}: {m['counts']['messages']:,} messages → "
            f"{m['counts']['examples']['kept']:,} examples "
            f"({', '.join(f'{s} {n:,}' for s, n in m['counts']['splits'].items())})",
        ]
        lines.append("dropped, by stage and reason:")
        for stage in m["counts"]["stages"]:
            for reason, n in stage["dropped"].items():
                lines.append(f"  {stage['stage']:<12} {reason:<28} {n:>10,}")
        if m["redactions"]:
            lines.append("redacted: " + ", ".join(f"{k} {v:,}" for k, v in m["redactions"].items()))
        if self.dry_run:
            lines.append("dry run: nothing written")
        else:
            lines.append(f"written to {self.path} (dataset sha256 {m['dataset_sha256']})")
            lines.append(f'inspect: etl sql "select * from build_drop_reasons where version = \'{self.version}\'"')
        return "\n".join(lines)


# ----------------------------------------------------------------------------- message stages

MessageStage = tuple[str, Callable[[pl.LazyFrame], pl.LazyFrame]]


def message_stages(config: Config) -> list[MessageStage]:
    """The per-message transforms, in order.

    Text is repaired first so every later rule sees clean text; quotes go before
    meta detection so a reply that was only a quote is caught as empty; secrets are
    redacted last, on exactly the text that can reach a dataset (prompts included).
    """
    pii = config.build.redact_pii
    return [
        ("normalise", normalise_text),
        ("strip", strip_replies),
        ("meta", drop_meta_messages),
        ("redact", lambda lf: redact_secrets(lf, pii=pii)),
    ]


def _load_messages(con, config: Config, run_ids: list[str] | None) -> pl.DataFrame:
    where, params = [], []
    if config.build.sources:
        where.append(f"source IN ({', '.join('?' for _ in config.build.sources)})")
        params += list(config.build.sources)
    if run_ids is not None:
        where.append("ingest_run_id IN (SELECT unnest(?::VARCHAR[]))")
        params.append(run_ids)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return query_frame(
        con,
        "SELECT source, source_id, conversation_id, sent_at, sender, sender_name, is_owner, kind, text, metadata "
        f"FROM raw_messages {clause} ORDER BY source, source_id",
        params,
    )


def _run_message_stages(messages: pl.DataFrame, config: Config, clock: _Clock):
    kept = messages.with_columns(drop_reason=pl.lit(None, pl.String))
    stages, drops, cuts = [], [], None
    for name, transform in message_stages(config):
        with clock(name):
            out = transform(kept.lazy()).collect()
        if name == "strip":
            cuts = cut_records(out)
        newly = out.filter(pl.col("drop_reason").is_not_null())
        stages.append(_stage_counts(name, kept.height, newly["drop_reason"]))
        drops.append(
            newly.select(
                "source",
                pl.col("source_id").alias("message_id"),
                pl.lit(name).alias("stage"),
                pl.col("drop_reason").alias("reason"),
                pl.lit(None, pl.String).alias("detail"),
                pl.lit(None, pl.String).alias("example_id"),
                pl.lit(None, pl.String).alias("text"),
                pl.lit(None, pl.Float64).alias("similarity"),
            )
        )
        kept = out.filter(pl.col("drop_reason").is_null())
    return kept, stages, pl.concat(drops), _redaction_counts(kept), cuts


def _stage_counts(name: str, before: int, reasons: pl.Series) -> dict[str, Any]:
    return {"stage": name, "in": before, "out": before - len(reasons), "dropped": _tally(reasons, most_first=True)}


def _redaction_counts(kept: pl.DataFrame) -> dict[str, int]:
    if "redactions" not in kept.columns:
        return {}
    return _tally(kept["redactions"].explode().drop_nulls(), most_first=True)


def _tally(values: pl.Series, *, most_first: bool = False) -> dict[str, int]:
    """How often each value occurs, in a stable order: by name, or most frequent first."""
    counted = values.fill_null("none").value_counts()
    pairs = [(str(k), int(n)) for k, n in zip(counted[values.name], counted["count"])]
    return dict(sorted(pairs, key=(lambda p: (-p[1], p[0])) if most_first else None))


# ----------------------------------------------------------------------------- example stages


def _run_example_stages(kept: pl.DataFrame, config: Config, clock: _Clock):
    b = config.build
    with clock("turns"):
        turns = conversations.assemble_turns(kept, gap_hours=b.conversation_gap_hours)
    with clock("examples"):
        examples = conversations.build_examples(turns, context_turns=b.context_turns, context_chars=b.context_chars)
        examples = conversations.drop_short_responses(examples, min_chars=b.min_response_chars)
    n_turns = turns.height
    del turns
    dedup = DedupConfig(
        threshold=b.dedup_threshold,
        num_perm=b.dedup_num_perm,
        ngram=b.dedup_ngram,
        seed=b.dedup_seed,
        max_reply_repeats=b.max_reply_repeats,
    )
    with clock("dedup"):
        examples = deduplicate(examples.lazy(), dedup).collect()
    reasons = examples.filter(pl.col("drop_reason").is_not_null())
    stage = _stage_counts("examples", examples.height, reasons["drop_reason"])
    drops = reasons.select(
        "source",
        pl.col("message_ids").list.first().alias("message_id"),
        pl.lit("examples").alias("stage"),
        pl.col("drop_reason").alias("reason"),
        pl.col("dup_cluster").alias("detail"),  # the example a duplicate repeats
        "example_id",
        pl.col("response").alias("text"),
        pl.col("dup_jaccard").alias("similarity"),
    )
    kept_examples = examples.filter(pl.col("drop_reason").is_null())
    n_candidates = examples.height
    del examples, reasons
    with clock("trajectory"):
        kept_examples = add_trajectory(kept_examples.lazy(), column="context").collect()
    split = conversations.split_of(
        kept_examples["conv_key"].to_list(),
        train=b.split_train,
        valid=b.split_valid,
        test=b.split_test,
        seed=b.split_seed,
    )
    kept_examples = kept_examples.with_columns(
        split=pl.col("conv_key").replace_strict(split, default=None, return_dtype=pl.String)
    ).sort("example_id")
    return n_turns, n_candidates, stage, drops, kept_examples


def _label_speakers(kept: pl.DataFrame, config: Config, redactions: dict[str, int]):
    """Each message's speaker label (a name or a pseudonym, never a handle), redacted
    like the texts; and what the manifest says about it."""
    b = config.build
    kept, pseudonyms = labels.label_speakers(kept, mode=b.speaker_labels, region=config.owner.phone_region)
    if b.redact_pii:
        authors = kept.select(pl.col("author").unique().drop_nulls().sort())
        clean = redact_secrets(authors.lazy(), pii=True, columns=("author",)).collect()
        cleaned = dict(zip(authors["author"], clean["author"]))
        if any(k != v for k, v in cleaned.items()):
            kept = kept.with_columns(pl.col("author").replace(cleaned))
            for kind in clean["redactions"].explode().drop_nulls():
                redactions[kind] = redactions.get(kind, 0) + 1
    privacy = {
        "speaker_labels": b.speaker_labels,
        "redact_pii": b.redact_pii,
        "pseudonyms": len(pseudonyms),
        "contacts": len(config.contacts),
    }
    return kept, privacy


def _messages_of(row: dict[str, Any], system: str) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": r, "content": t} for r, t in zip(row["context_roles"], row["context"])]
    messages.append({"role": "assistant", "content": row["response"]})
    return messages


# ----------------------------------------------------------------------------- the build


class _Clock(dict):
    """Seconds per stage, for `etl build --timings` and the benchmark."""

    @contextlib.contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self[stage] = self.get(stage, 0.0) + time.perf_counter() - start


def build_version(
    warehouse: Path,
    datasets: Path,
    version: str,
    config: Config,
    *,
    dry_run: bool = False,
    run_ids: list[str] | None = None,
    rejected_through: str | None = None,
    record: bool = True,
) -> BuildResult:
    """Build `version` under `datasets`. With `run_ids`, only rows of those ingest runs
    are read (what `etl verify --rebuild` uses to reproduce an older version)."""
    _check_version_name(version)
    target = datasets / version
    if not dry_run and target.exists():
        raise VersionExists(_exists_message(target, version))
    with open_warehouse(warehouse, read_only=dry_run or not record) as con:
        if not dry_run and record:
            _forget_unfinished(con, version, target)
        if run_ids is None:
            run_ids = [r for (r,) in con.execute(
                "SELECT run_id FROM ingest_runs WHERE status = 'ok' ORDER BY run_id").fetchall()]
        runs = con.execute(
            "SELECT run_id, source, source_version, watermarks FROM ingest_runs "
            "WHERE run_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY run_id",
            [run_ids],
        ).fetchall()
        clock = _Clock()
        with clock("load"):
            messages = conversations.resolve_owner(_load_messages(con, config, run_ids), config.owner.identities)
            messages = labels.apply_contacts(messages, config.contacts, config.owner.phone_region)
        rejected, rejected_through = _load_rejected(con, config, rejected_through)

        loaded = {"messages": messages.height, "messages_by_source": _count_by(messages, "source")}
        owned = int(messages["is_owner"].fill_null(False).sum())
        kept, stages, message_drops, redactions, cuts = _run_message_stages(messages, config, clock)
        with clock("labels"):
            kept, privacy = _label_speakers(kept, config, redactions)
        n_kept = kept.height
        del messages  # the raw frame is not needed again; a million rows of text are worth freeing
        n_turns, n_candidates, example_stage, example_drops, examples = _run_example_stages(
            kept.select(TURN_COLUMNS), config, clock
        )
        del kept
        stages.append(example_stage)
        with clock("render"):
            files = _render_files(examples, rejected, config)
        split_counts = {s: examples.filter(pl.col("split") == s).height for s in SPLITS}
        dpo_records = sum(len(lines) for path, lines in files.items() if path.startswith("dpo/"))
        manifest: dict[str, Any] = {
            "version": version,
            "schema_version": SCHEMA_VERSION,
            "etl_version": __version__,
            "trajectory_version": TRAJECTORY_VERSION,
            "config": config.as_dict(),
            "config_sha256": config.sha256(),
            "inputs": {
                "ingest_runs": [
                    {"run_id": r, "source": s, "source_version": v, "watermarks": json.loads(w or "{}")}
                    for r, s, v, w in runs
                ],
                "rejected_answers_through": rejected_through,
            },
            "counts": {
                **loaded,
                "messages_kept": n_kept,
                "turns": n_turns,
                "stages": stages,
                "examples": {"candidates": n_candidates, "kept": examples.height},
                "examples_by_source": _count_by(examples, "source"),
                "regimes": _count_by(examples, "regime"),
                "splits": split_counts,
            },
            "redactions": redactions,
            "privacy": privacy,
            "dpo": {
                "records": dpo_records,
                "note": None if dpo_records else
                "no base-model answers stored for these prompts yet: run `etl train rejected`, then build again",
            },
        }
        if dry_run:
            return BuildResult(version, None, manifest, dry_run=True, timings=dict(clock))
        if not examples.height:
            raise nothing_to_write(manifest, owned)

        private_dir(datasets)
        _remove_stale_partials(datasets)
        partial = datasets / f".partial-{version}-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            partial.mkdir(parents=True)
            with clock("write"):
                manifest["files"] = _write_files(partial, files)
                manifest["dataset_sha256"] = dataset_sha256(manifest["files"])
                (partial / "README.md").write_text(data_card(manifest), encoding="utf-8")
                write_manifest_and_sums(partial, manifest)
            if record:
                # Rows first, then the folder appears: a build killed between the two leaves
                # rows without a folder, which the next build of this version removes.
                with clock("record"), transaction(con):
                    _record(con, version, target, manifest, examples, message_drops, example_drops, cuts)
                try:
                    os.rename(partial, target)
                except OSError:
                    _forget_unfinished(con, version, target)
                    raise
            else:
                os.rename(partial, target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return BuildResult(version, target, manifest, timings=dict(clock))


def nothing_to_write(manifest: dict[str, Any], owned: int) -> EtlError:
    """Why a build came out empty, as the funnel from messages to examples, in one line."""
    c = manifest["counts"]
    version = manifest["version"]
    if not c["messages"]:
        chosen = manifest["config"]["build"].get("sources") or []
        only = f" from {', '.join(chosen)}" if chosen else ""
        return EtlError(f"{version}: no examples, nothing written: the warehouse holds no messages{only}; "
                        "land some with `etl ingest`")
    dropped: dict[str, int] = {}
    for stage in c["stages"]:
        for reason, n in stage["dropped"].items():
            dropped[f"{stage['stage']}:{reason}"] = n
    top = ", ".join(f"{r} {n:,}" for r, n in sorted(dropped.items(), key=lambda p: -p[1])[:3])
    funnel = (
        f"{c['messages']:,} messages ({owned:,} yours) → {c['messages_kept']:,} kept → {c['turns']:,} turns → "
        f"{c['examples']['candidates']:,} candidate replies → 0 examples"
    )
    hint = (
        "none is marked as yours: put your names, addresses or handles under [owner] in corpus.toml"
        if not owned else f"most dropped: {top}" if top else "no reply of yours follows a message from someone else"
    )
    return EtlError(f"{version}: no examples, nothing written: {funnel}; {hint}")


def _check_version_name(version: str) -> None:
    if not version or version.startswith(".") or "/" in version or "\\" in version or version.strip() != version:
        raise EtlError(f"bad version name {version!r}: use a plain name such as v3")


def _exists_message(target: Path, version: str) -> str:
    try:
        existing = json.loads((target / "manifest.json").read_text())["dataset_sha256"]
    except (OSError, ValueError, KeyError):
        existing = "unknown"
    return (
        f"version {version} already exists at {target} (dataset sha256 {existing}); "
        "versions are immutable: choose a new name"
    )


def _forget_unfinished(con, version: str, target: Path) -> None:
    """Rows of a version whose folder never appeared (the build was killed) are dropped."""
    if not target.exists():
        with transaction(con):
            for table in ("builds", "build_examples", "build_drops", "build_cuts"):
                con.execute(f"DELETE FROM {table} WHERE version = ?", [version])


def _remove_stale_partials(datasets: Path) -> None:
    for partial in datasets.glob(".partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and _alive(int(pid)) and int(pid) != os.getpid():
            continue
        shutil.rmtree(partial, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _count_by(frame: pl.DataFrame, column: str) -> dict[str, int]:
    if frame.height == 0 or column not in frame.columns:
        return {}
    return _tally(frame[column])


def _load_rejected(con, config: Config, through: str | None) -> tuple[dict[str, str], str | None]:
    """Stored base-model answers by prompt key: the newest per prompt, up to `through`."""
    where, params = [], []
    if config.build.rejected_model:
        where.append("model = ?")
        params.append(config.build.rejected_model)
    if through is not None:
        where.append("created_at <= ?::TIMESTAMPTZ")
        params.append(through)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = con.execute(
        f"SELECT prompt_sha256, answer, strftime(created_at, '%Y-%m-%dT%H:%M:%S.%f+00:00') FROM rejected_answers {clause} "
        "ORDER BY prompt_sha256, created_at DESC, model, params_sha256",
        params,
    ).fetchall()
    answers: dict[str, str] = {}
    latest = None
    for key, answer, created in rows:
        answers.setdefault(key, answer)
        latest = max(latest or created, created)
    return answers, through if through is not None else latest


RENDER_CHUNK = 50_000  # examples turned into Python objects at a time, to bound memory


def _render_files(examples: pl.DataFrame, rejected: dict[str, str], config: Config) -> dict[str, list[str]]:
    """The lines of every output file, in `examples` order (sorted by example id)."""
    formats = set(config.build.formats)
    system = config.build.system_text(config.owner)
    if config.build.redact_pii:
        system = redact_str(system, pii=True)[0]
    names = {"system": "system", "user": "human", "assistant": "gpt"}
    files: dict[str, list[str]] = {}
    needed = ["example_id", "split", "context", "context_roles", "response", "regime", *TRAJECTORY_COLUMNS]
    for chunk in examples.select(needed).iter_slices(RENDER_CHUNK):
        # Column lists, not iter_rows: an order of magnitude faster on list columns.
        columns = chunk.to_dict(as_series=False)
        for values in zip(*columns.values()):
            row = dict(zip(columns, values))
            split = row["split"]
            row_system = f"{system} {trajectory_tag(row)}".strip() if config.build.trajectory_tags else system
            messages = _messages_of(row, row_system)
            files.setdefault(f"chatml/{split}.jsonl", []).append(
                canonical_json(chat_record(row["example_id"], messages))
            )
            if "dpo" in formats and rejected:
                answer = rejected.get(prompt_key(messages[:-1]))
                if answer is not None:
                    prompt = flatten_prompt(messages[:-1])
                    files.setdefault(f"dpo/{split}.jsonl", []).append(
                        canonical_json(dpo_record(row_system, prompt, row["response"], answer))
                    )
            if "sharegpt" in formats:
                turns = [{"from": names[m["role"]], "value": m["content"]} for m in messages]
                files.setdefault(f"sharegpt/{split}.jsonl", []).append(
                    canonical_json({"id": row["example_id"], "conversations": turns})
                )
    return files


def _write_files(folder: Path, files: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    written = {}
    # A split with no examples gets no file: mlx-lm fails on an empty one.
    for relpath in sorted(p for p, lines in files.items() if lines):
        path = folder / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = files[relpath]
        with open(path, "w", encoding="utf-8", newline="\n") as handle:
            for line in lines:
                handle.write(line)
                handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        written[relpath] = {"sha256": sha256_file(path), "bytes": path.stat().st_size, "records": len(lines)}
    return written


def _record(con, version, target, manifest, examples, message_drops, example_drops, cuts=None) -> None:
    built = {
        "version": version,
        "built_at": datetime.now(UTC),
        "config_sha256": manifest["config_sha256"],
        "dataset_sha256": manifest["dataset_sha256"],
        "path": str(target),
        "examples": examples.height,
        "dropped": message_drops.height + example_drops.height,
        "manifest": canonical_json(manifest),
    }
    insert_frame(con, BUILDS, pl.DataFrame([built], schema=BUILDS.polars_schema()))
    # The examples' texts (prompts above all) are most of what a build records. zstd
    # stores them smaller than DuckDB's default choice (fsst or dictionary) and skips
    # its per-segment analysis: 1M-message bench, 4.1 s and 85 MB -> 2.5 s and 77 MB.
    con.execute("SET force_compression = 'zstd'")
    try:
        _record_rows(con, version, examples, message_drops, example_drops)
        if cuts is not None:
            insert_frame(con, BUILD_CUTS, cuts.with_columns(version=pl.lit(version)).select(BUILD_CUTS.column_names))
    finally:
        con.execute("RESET force_compression")


def _record_rows(con, version, examples, message_drops, example_drops) -> None:
    # The ChatML line itself lives in the version's files; SQL gets prompt and response.
    scalars = [pl.col(c).alias(c.removeprefix("traj_")) for c in TRAJECTORY_COLUMNS]
    recorded = examples.with_columns(
        version=pl.lit(version),
        trajectory=pl.struct(pl.col("regime"), *scalars).struct.json_encode(),
    )
    insert_frame(con, BUILD_EXAMPLES, recorded.select(BUILD_EXAMPLES.column_names).cast(BUILD_EXAMPLES.polars_schema()))  # type: ignore[arg-type]
    drops = pl.concat([message_drops, example_drops]).with_columns(pl.lit(version).alias("version"))
    insert_frame(con, BUILD_DROPS, drops.cast(BUILD_DROPS.polars_schema()))  # type: ignore[arg-type]


def data_card(manifest: dict[str, Any]) -> str:
    c = manifest["counts"]
    lines = [
        f"# Dataset {manifest['version']}",
        "",
        "A personal voice dataset built by `etl` from the owner's own messages.",
        "It is private: it contains their conversations. Do not publish it.",
        "",
        f"- examples: {c['examples']['kept']:,} "
        f"({', '.join(f'{s} {n:,}' for s, n in c['splits'].items())})",
        f"- from {c['messages']:,} messages: " + ", ".join(f"{s} {n:,}" for s, n in c["messages_by_source"].items()),
        f"- dataset sha256: `{manifest['dataset_sha256']}`",
        f"- config sha256: `{manifest['config_sha256']}`",
        f"- schema version {manifest['schema_version']}, {manifest['trajectory_version']}, etl {manifest['etl_version']}",
        "",
        "## Files",
        "",
        "- `chatml/{train,valid,test}.jsonl`: mlx-lm chat format, one `{\"messages\": [...]}` per line;",
        "  the owner's reply is the final `assistant` turn (train with `--mask-prompt`).",
        "- `dpo/{train,valid,test}.jsonl`: `{system, prompt, chosen, rejected}` for `mlx_lm_lora.train --train-mode dpo`.",
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
    if manifest["redactions"]:
        lines += ["", "## Redacted", "", "| type | count |", "|---|---:|"]
        lines += [f"| {k} | {v:,} |" for k, v in manifest["redactions"].items()]
    if manifest["dpo"]["note"]:
        lines += ["", f"DPO: {manifest['dpo']['note']}."]
    return "\n".join(lines) + "\n"
