"""`etl build`: the one path from landed messages to a hashed dataset version.

    raw_messages ─► normalise ─► strip quotes ─► drop meta ─► redact      (message_stages)
                ─► turns ─► examples ─► short replies ─► dedup ─► trajectory ─► splits  (example_stages)
                ─► chatml/ dpo/ [sharegpt/] + manifest.json + SHA256SUMS + README.md

A build has four phases: `load` reads the warehouse (read-only, then closes it),
`transform` is pure (frames in, frames and file lines out: no connection, no files),
`write` fills a partial folder, and `record` stores the rows and makes the folder
appear. The warehouse is free for other `etl` commands while the transform runs.

Every stage is a pure function on a Polars frame that marks what it drops with a
`drop_reason`; one runner runs both stage lists, counts in/out/dropped by reason,
and keeps the dropped rows for `build_drops`. Same warehouse + same config ⇒
byte-identical files: nothing here reads the clock or depends on row order it did not set.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from etl import __version__
from etl.config import Config
from etl.errors import EtlError, VersionExists
from etl.paths import owner_only, private_dir
from etl.schemas import BUILD_CUTS, BUILD_DROPS, BUILD_EXAMPLES, BUILDS, SCHEMA_VERSION
from etl.schemas.records import SPLITS, canonical_json, chat_record, dpo_record, flatten_prompt, prompt_key
from etl.transforms import conversations, dedup, labels, redact, replies, text, trajectory
from etl.transforms.timer import Timer
from etl.versions import dataset_sha256, sha256_file, write_manifest_and_sums
from etl.warehouse import insert_frame, open_warehouse, query_frame, transaction
from etl.warehouse.builds import PENDING, forget_unfinished, kill_point, mark_complete

DROP_REASON = "drop_reason"
# What turn assembly reads of a cleaned message.
TURN_COLUMNS = (
    "source", "source_id", "conversation_id", "sent_at", "sender", "sender_name", "is_owner", "author", "text",
)
TRAJECTORY_COLUMNS = trajectory.SCALAR_COLUMNS


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


# ----------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class Stage:
    """One step of a build: a frame in, a frame out whose `drop_reason` marks what it drops.

    `reasons` are the drop reasons it may give (`*` stands for any text: "kind:*");
    `records`, what else its output says that the build keeps (the strip stage's cuts).
    `counted_as` names its entry in the manifest's `counts.stages` and the `stage`
    of its `build_drops` rows; stages that share a name are counted as one (the
    example stages are one `examples` entry, as in every manifest so far); None: a
    stage that drops nothing and is not listed.
    """

    name: str
    run: Callable[[pl.DataFrame], pl.DataFrame]
    reasons: tuple[str, ...] = ()
    counted_as: str | None = ""
    records: Callable[[pl.DataFrame], pl.DataFrame] | None = None  # rows it keeps besides drops (build_cuts)

    @property
    def counted(self) -> str | None:
        return self.name if self.counted_as == "" else self.counted_as


def _lazy(transform: Callable[[pl.LazyFrame], pl.LazyFrame]) -> Callable[[pl.DataFrame], pl.DataFrame]:
    return lambda frame: transform(frame.lazy()).collect()


def message_stages(config: Config) -> list[Stage]:
    """The per-message transforms, in order.

    Text is repaired first so every later rule sees clean text; quotes go before
    meta detection so a reply that was only a quote is caught as empty; secrets are
    redacted last, on exactly the text that can reach a dataset (prompts included).
    """
    pii, region = config.build.redact_pii, config.owner.phone_region
    return [
        Stage("normalise", _lazy(text.normalise_text), text.REASONS),
        # replies.REASONS name what a cut removed; the one drop is a reply left empty.
        Stage("strip", _lazy(replies.strip_replies), (replies.EMPTY_AFTER_STRIP,), records=replies.cut_records),
        Stage("meta", _lazy(text.drop_meta_messages), text.REASONS),
        Stage("redact", _lazy(lambda lf: redact.redact_secrets(lf, pii=pii, region=region)), redact.REASONS),
    ]


def _owner_and_contacts(messages: pl.DataFrame, config: Config) -> pl.DataFrame:
    messages = conversations.resolve_owner(messages, config.owner.identities)
    return labels.apply_contacts(messages, config.contacts, config.owner.phone_region)


def _label_speakers(kept: pl.DataFrame, config: Config, redactions: dict[str, int]):
    """Each message's speaker label (a name or a pseudonym, never a handle), redacted
    like the texts; and what the manifest says about it."""
    b, region = config.build, config.owner.phone_region
    kept, pseudonyms = labels.label_speakers(kept, mode=b.label_mode, region=region)
    names_replaced = 0
    if b.redact_pii and b.label_mode == labels.PSEUDONYMS:
        # Names inside texts become the same pseudonym the speaker label shows.
        named = labels.name_pseudonyms(kept, pseudonyms, config.contacts.values(), config.owner.names, region)
        kept, names_replaced = labels.replace_names(kept, named, config.owner.names)
        if names_replaced:
            redactions["name"] = redactions.get("name", 0) + names_replaced
    if b.redact_pii:
        authors = kept.select(pl.col("author").unique().drop_nulls().sort())
        clean = redact.redact_secrets(authors.lazy(), pii=True, columns=("author",), region=region).collect()
        cleaned = dict(zip(authors["author"], clean["author"]))
        if any(k != v for k, v in cleaned.items()):
            kept = kept.with_columns(pl.col("author").replace(cleaned))
            for kind in clean["redactions"].explode().drop_nulls():
                redactions[kind] = redactions.get(kind, 0) + 1
    privacy = {
        "speaker_labels": b.label_mode,
        "redact_pii": b.redact_pii,
        "pseudonyms": len(pseudonyms),
        "names_replaced": names_replaced,
        "contacts": len(config.contacts),
    }
    return kept, privacy


def example_stages(config: Config) -> list[Stage]:
    """From cleaned messages to the examples of a version, in order."""
    b = config.build
    settings = dedup.DedupConfig(
        threshold=b.dedup_threshold,
        num_perm=b.dedup_num_perm,
        ngram=b.dedup_ngram,
        seed=b.dedup_seed,
        max_reply_repeats=b.max_reply_repeats,
    )

    def turns(messages: pl.DataFrame) -> pl.DataFrame:
        return conversations.assemble_turns(messages.select(TURN_COLUMNS), gap_hours=b.conversation_gap_hours)

    def examples(turned: pl.DataFrame) -> pl.DataFrame:
        return conversations.build_examples(turned, context_turns=b.context_turns, context_chars=b.context_chars)

    def short(candidates: pl.DataFrame) -> pl.DataFrame:
        return conversations.drop_short_responses(candidates, min_chars=b.min_response_chars)

    def split(kept: pl.DataFrame) -> pl.DataFrame:
        of = conversations.split_of(
            kept["conv_key"].to_list(), train=b.split_train, valid=b.split_valid, test=b.split_test, seed=b.split_seed
        )
        return kept.with_columns(
            split=pl.col("conv_key").replace_strict(of, default=None, return_dtype=pl.String)
        ).sort("example_id")

    return [
        Stage("turns", turns, counted_as=None),
        Stage("examples", examples, conversations.REASONS, counted_as="examples"),
        Stage("short", short, conversations.REASONS, counted_as="examples"),
        Stage("dedup", lambda f: dedup.deduplicate(f, settings)[0], dedup.REASONS, counted_as="examples"),
        Stage("trajectory", _lazy(lambda lf: trajectory.add_trajectory(lf, column="context")), counted_as=None),
        Stage("split", split, counted_as=None),
    ]


def declared_reasons(config: Config) -> dict[str, tuple[str, ...]]:
    """The drop reasons each counted stage may give, by its name in the manifest."""
    declared: dict[str, tuple[str, ...]] = {}
    for stage in [*message_stages(config), *example_stages(config)]:
        if stage.counted is not None:
            declared[stage.counted] = (*declared.get(stage.counted, ()), *stage.reasons)
    return declared


def is_declared(reason: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(reason, pattern) for pattern in patterns)


@dataclass
class StageRun:
    """What the runner returns: the rows kept, the counts per stage, the dropped rows."""

    kept: pl.DataFrame
    stages: list[dict[str, Any]]  # the manifest's `counts.stages` entries
    drops: pl.DataFrame  # `build_drops` rows, without `version`
    rows: dict[str, int]  # rows each stage returned, by stage name (dropped ones included)
    records: dict[str, pl.DataFrame]  # by stage name, from the stages that have `records`


def run_stages(frame: pl.DataFrame, stages: list[Stage], timer: Timer) -> StageRun:
    """Run `stages` in order; after each, rows with a `drop_reason` leave the frame."""
    counts: list[dict[str, Any]] = []
    drops = []
    rows, records = {}, {}
    for stage in stages:
        with timer(stage.name):
            out = stage.run(frame)
        rows[stage.name] = out.height
        if stage.records is not None:
            records[stage.name] = stage.records(out)
        if DROP_REASON in out.columns:
            dropped = out.filter(pl.col(DROP_REASON).is_not_null())
            frame = out.filter(pl.col(DROP_REASON).is_null())
        else:
            dropped, frame = out.clear(), out
        if stage.counted is None:
            if dropped.height:
                raise AssertionError(f"stage {stage.name} dropped rows but is not counted")
            continue
        entry = {"stage": stage.counted, "in": out.height, "out": frame.height,
                 "dropped": _tally(dropped[DROP_REASON], most_first=True) if dropped.height else {}}
        if counts and counts[-1]["stage"] == stage.counted:
            entry = _merged(counts.pop(), entry)
        counts.append(entry)
        drops.append(_drop_rows(dropped, stage.counted))
    return StageRun(frame, counts, pl.concat(drops) if drops else _drop_rows(pl.DataFrame(), ""), rows, records)


def _merged(first: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    dropped = dict(first["dropped"])
    for reason, n in then["dropped"].items():
        dropped[reason] = dropped.get(reason, 0) + n
    return {"stage": first["stage"], "in": first["in"], "out": then["out"],
            "dropped": dict(sorted(dropped.items(), key=lambda p: (-p[1], p[0])))}


# Where a `build_drops` column comes from, when the dropped frame has it; else NULL.
_DROP_SOURCES: dict[str, Callable[[list[str]], pl.Expr | None]] = {
    "source": lambda cols: pl.col("source"),
    "message_id": lambda cols: pl.col("source_id") if "source_id" in cols else pl.col("message_ids").list.first(),
    "reason": lambda cols: pl.col(DROP_REASON),
    "detail": lambda cols: pl.col("dup_cluster") if "dup_cluster" in cols else None,  # the example it repeats
    "example_id": lambda cols: pl.col("example_id") if "example_id" in cols else None,
    "text": lambda cols: pl.col("response") if "response" in cols else None,
    "similarity": lambda cols: pl.col("dup_jaccard") if "dup_jaccard" in cols else None,
}


def _drop_rows(dropped: pl.DataFrame, stage: str) -> pl.DataFrame:
    """The `build_drops` rows (all columns but `version`) for the rows a stage dropped."""
    schema = BUILD_DROPS.polars_schema()
    columns = [c for c in BUILD_DROPS.column_names if c != "version"]
    if dropped.height == 0:
        return pl.DataFrame(schema={c: schema[c] for c in columns})
    exprs = []
    for name in columns:
        expr = pl.lit(stage) if name == "stage" else _DROP_SOURCES[name](dropped.columns)
        exprs.append((pl.lit(None) if expr is None else expr).cast(schema[name]).alias(name))
    return dropped.select(exprs)


def _redaction_counts(kept: pl.DataFrame) -> dict[str, int]:
    if redact.REDACTIONS not in kept.columns:
        return {}
    return _tally(kept[redact.REDACTIONS].explode().drop_nulls(), most_first=True)


def _tally(values: pl.Series, *, most_first: bool = False) -> dict[str, int]:
    """How often each value occurs, in a stable order: by name, or most frequent first."""
    counted = values.fill_null("none").value_counts()
    pairs = [(str(k), int(n)) for k, n in zip(counted[values.name], counted["count"])]
    return dict(sorted(pairs, key=(lambda p: (-p[1], p[0])) if most_first else None))


# ----------------------------------------------------------------------------- load


@dataclass
class Inputs:
    """What a build reads besides the messages: recorded in the manifest."""

    runs: list[dict[str, Any]]
    rejected: dict[str, str]  # stored base-model answers by prompt key
    rejected_through: str | None


def load(con, config: Config, run_ids: list[str] | None, rejected_through: str | None) -> tuple[pl.DataFrame, Inputs]:
    """The messages to build from and the other inputs, read in one go."""
    if run_ids is None:
        run_ids = [r for (r,) in con.execute(
            "SELECT run_id FROM ingest_runs WHERE status = 'ok' ORDER BY run_id").fetchall()]
    runs = con.execute(
        "SELECT run_id, source, source_version, watermarks FROM ingest_runs "
        "WHERE run_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY run_id",
        [run_ids],
    ).fetchall()
    rejected, through = _load_rejected(con, config, rejected_through)
    inputs = Inputs(
        [{"run_id": r, "source": s, "source_version": v, "watermarks": _watermarks(w, config)} for r, s, v, w in runs],
        rejected,
        through,
    )
    return _load_messages(con, config, run_ids), inputs


def _load_messages(con, config: Config, run_ids: list[str]) -> pl.DataFrame:
    where, params = ["ingest_run_id IN (SELECT unnest(?::VARCHAR[]))"], [run_ids]
    if config.build.sources:
        where.append(f"source IN ({', '.join('?' for _ in config.build.sources)})")
        params += list(config.build.sources)
    return query_frame(
        con,
        "SELECT source, source_id, conversation_id, sent_at, sender, sender_name, is_owner, kind, text, metadata "
        f"FROM raw_messages WHERE {' AND '.join(where)} ORDER BY source, source_id",
        params,
    )


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


# ----------------------------------------------------------------------------- transform


@dataclass
class BuildOutput:
    """Everything a build makes before anything is written."""

    counts: dict[str, Any]  # the manifest's `counts`
    owned: int  # messages known to be the owner's, for the message of an empty build
    redactions: dict[str, int]
    privacy: dict[str, Any]  # how speakers are labelled and what was redacted, for the manifest
    examples: pl.DataFrame  # kept, with split and trajectory, sorted by example id
    drops: pl.DataFrame  # `build_drops` rows without `version`
    cuts: pl.DataFrame | None  # `build_cuts` rows without `version`
    files: dict[str, list[str]]  # relative path → lines

    @property
    def dpo_records(self) -> int:
        return sum(len(lines) for path, lines in self.files.items() if path.startswith("dpo/"))


def transform(messages: pl.DataFrame, rejected: dict[str, str], config: Config, timer: Timer | None = None) -> BuildOutput:
    """Messages + config → examples, drops, counts and file lines. Pure: no warehouse, no files."""
    timer = timer or Timer()
    loaded = {"messages": messages.height, "messages_by_source": _count_by(messages, "source")}
    with timer("owner"):
        messages = _owner_and_contacts(messages, config)
    owned = int(messages["is_owner"].fill_null(False).sum())
    cleaned = run_stages(messages.with_columns(pl.lit(None, pl.String).alias(DROP_REASON)), message_stages(config), timer)
    redactions = _redaction_counts(cleaned.kept)
    with timer("labels"):
        labelled, privacy = _label_speakers(cleaned.kept, config, redactions)
    made = run_stages(labelled, example_stages(config), timer)
    examples = made.kept
    with timer("render"):
        files = _render_files(examples, rejected, config)
    counts = {
        **loaded,
        "messages_kept": cleaned.kept.height,
        "turns": made.rows["turns"],
        "stages": cleaned.stages + made.stages,
        "examples": {"candidates": made.rows["examples"], "kept": examples.height},
        "examples_by_source": _count_by(examples, "source"),
        "regimes": _count_by(examples, "regime"),
        "splits": {s: examples.filter(pl.col("split") == s).height for s in SPLITS},
    }
    return BuildOutput(counts, owned, redactions, privacy, examples, pl.concat([cleaned.drops, made.drops]), cleaned.records.get("strip"), files)


def _messages_of(row: dict[str, Any], system: str) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": r, "content": t} for r, t in zip(row["context_roles"], row["context"])]
    messages.append({"role": "assistant", "content": row["response"]})
    return messages


# ----------------------------------------------------------------------------- the build


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
    """Build `version` under `datasets`: load → transform → write → record.

    With `run_ids`, only rows of those ingest runs are read (what `etl verify
    --rebuild` uses to reproduce an older version); with `record=False` nothing is
    stored in the warehouse.
    """
    _check_version_name(version)
    target = datasets / version
    if not dry_run and record and target.exists():
        with open_warehouse(warehouse) as con:
            forget_unfinished(con, version, target)  # the folder of a build killed before it completed
    if not dry_run and target.exists():
        raise VersionExists(_exists_message(target, version))
    timer = Timer()
    with timer("load"), open_warehouse(warehouse, read_only=True) as con:
        messages, inputs = load(con, config, run_ids, rejected_through)
    output = transform(messages, inputs.rejected, config, timer)
    manifest = _manifest(version, config, inputs, output)
    if dry_run:
        return BuildResult(version, None, manifest, dry_run=True, timings=dict(timer.seconds))
    if not output.examples.height:
        raise nothing_to_write(manifest, output.owned)
    private_dir(datasets)
    _remove_stale_partials(datasets)
    partial = datasets / f".partial-{version}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with owner_only():  # a dataset is the owner's conversations: nobody else may read it
            with timer("write"):
                write(partial, manifest, output)
            with timer("record"):
                if record:
                    record_version(warehouse, version, partial, target, manifest, output)
                else:
                    os.rename(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return BuildResult(version, target, manifest, timings=dict(timer.seconds))


def _manifest(version: str, config: Config, inputs: Inputs, output: BuildOutput) -> dict[str, Any]:
    return {
        "version": version,
        "schema_version": SCHEMA_VERSION,
        "etl_version": __version__,
        "trajectory_version": trajectory.TRAJECTORY_VERSION,
        "config": config.as_dict(),
        "config_sha256": config.sha256(),
        "inputs": {"ingest_runs": inputs.runs, "rejected_answers_through": inputs.rejected_through},
        "counts": output.counts,
        "redactions": output.redactions,
        "privacy": output.privacy,
        "dpo": {
            "records": output.dpo_records,
            "note": None if output.dpo_records else
            "no base-model answers stored for these prompts yet: run `etl train rejected`, then build again",
        },
    }


def write(partial: Path, manifest: dict[str, Any], output: BuildOutput) -> None:
    """The version's files in `partial`; completes the manifest with their hashes."""
    partial.mkdir(parents=True)
    manifest["files"] = _write_files(partial, output.files)
    manifest["dataset_sha256"] = dataset_sha256(manifest["files"])
    (partial / "README.md").write_text(data_card(manifest), encoding="utf-8")
    write_manifest_and_sums(partial, manifest)


def record_version(
    warehouse: Path, version: str, partial: Path, target: Path, manifest: dict[str, Any], output: BuildOutput
) -> None:
    """Store the version's rows, then let its folder appear, under one hold of the warehouse.

    Recorded as pending, then the folder appears, then complete: a build killed in
    between leaves a pending version no command shows (warehouse/builds.py), which the
    next build of this version clears.
    """
    with open_warehouse(warehouse) as con:
        forget_unfinished(con, version, target)
        if target.exists():  # another build of this name finished while this one ran
            raise VersionExists(_exists_message(target, version))
        with transaction(con):
            _record_rows(con, version, target, manifest, output)
        kill_point("recorded")
        try:
            os.rename(partial, target)
        except OSError:
            forget_unfinished(con, version, target)
            raise
        kill_point("renamed")
        mark_complete(con, version)
        kill_point("completed")


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


def _watermarks(recorded: str | None, config: Config) -> dict[str, Any]:
    """The ingest runs' watermarks. Streams are named by file path, and an export's
    file name often names a person ("WhatsApp Chat with Lena.txt"): with PII redaction
    a stream is recorded by the sha256 of its path."""
    marks = json.loads(recorded or "{}")
    if not config.build.redact_pii:
        return marks
    return {"sha256:" + hashlib.sha256(k.encode()).hexdigest()[:16]: v for k, v in marks.items()}


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


RENDER_CHUNK = 50_000  # examples turned into Python objects at a time, to bound memory


def _render_files(examples: pl.DataFrame, rejected: dict[str, str], config: Config) -> dict[str, list[str]]:
    """The lines of every output file, in `examples` order (sorted by example id)."""
    formats = set(config.build.formats)
    system = config.build.system_text(config.owner)
    if config.build.redact_pii:
        system = redact.redact_str(system, pii=True, region=config.owner.phone_region)[0]
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


def _record_rows(con, version: str, target: Path, manifest: dict[str, Any], output: BuildOutput) -> None:
    built = {
        "version": version,
        "built_at": datetime.now(UTC),
        "config_sha256": manifest["config_sha256"],
        "dataset_sha256": manifest["dataset_sha256"],
        "path": str(target),
        "examples": output.examples.height,
        "dropped": output.drops.height,
        "manifest": canonical_json(manifest),
        "status": PENDING,
    }
    insert_frame(con, BUILDS, pl.DataFrame([built], schema=BUILDS.polars_schema()))
    # The examples' texts (prompts above all) are most of what a build records. zstd
    # stores them smaller than DuckDB's default choice (fsst or dictionary) and skips
    # its per-segment analysis: 1M-message bench, 4.1 s and 85 MB -> 2.5 s and 77 MB.
    con.execute("SET force_compression = 'zstd'")
    try:
        _insert_examples_and_drops(con, version, output)
        if output.cuts is not None:
            cuts = output.cuts.with_columns(version=pl.lit(version)).select(BUILD_CUTS.column_names)
            insert_frame(con, BUILD_CUTS, cuts)
    finally:
        con.execute("RESET force_compression")


def _insert_examples_and_drops(con, version: str, output: BuildOutput) -> None:
    # The ChatML line itself lives in the version's files; SQL gets prompt and response.
    scalars = [pl.col(c).alias(c.removeprefix("traj_")) for c in TRAJECTORY_COLUMNS]
    recorded = output.examples.with_columns(
        version=pl.lit(version),
        trajectory=pl.struct(pl.col("regime"), *scalars).struct.json_encode(),
    )
    insert_frame(con, BUILD_EXAMPLES, recorded.select(BUILD_EXAMPLES.column_names).cast(BUILD_EXAMPLES.polars_schema()))  # type: ignore[arg-type]
    drops = output.drops.with_columns(pl.lit(version).alias("version"))
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
