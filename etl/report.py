"""`etl report`: one HTML page to read before training on a dataset version.

The page is built from the version's manifest and folder and from the warehouse rows
of the build (`builds`, `build_examples`, `build_drops`, `raw_messages`). Each section
has one function computing its data; `render_version` and `render_comparison` turn
the data into HTML, and every number on the page is also in the page's
`<script type="application/json" id="report-data">` block.

The page is self-contained: styles are inline and charts are PNGs drawn by matplotlib
(Agg, no display), embedded as data: URIs and also written beside the page. It loads
nothing from anywhere. It contains samples of the owner's messages, so the folder is
created owner-only (0700) and every file written 0600, like the warehouse.

Default place: `reports/<version>/report.html` beside the datasets folder (so
`$ETL_HOME/reports/v1/`), never inside the version folder, which is immutable and hashed;
a comparison goes to `reports/<old>-vs-<new>/`.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import webbrowser
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import polars as pl

from etl import __version__
from etl.errors import EtlError
from etl.transforms.dedup import REASONS as DEDUP_REASONS
from etl.transforms.trajectory import REGIMES, SCALARS
from etl.schemas.records import SPLITS
from etl.versions import SUMS, read_manifest, verify_version
from etl.warehouse import open_warehouse, query_frame
from etl.warehouse.builds import COMPLETE

SAMPLES_PER_SPLIT = 20
TOP_CLUSTERS = 20
MEMBERS_SHOWN = 10  # per cluster and kind (kept, dropped); the counts are complete
TEXT_SHOWN = 400  # characters of a duplicate's text on the page
EXAMPLES_LISTED = 20  # added and removed examples listed by a comparison
LENGTH_BINS = 40
SCALAR_NAMES = {
    "c": "commitment",
    "u": "uncertainty",
    "p": "transition pressure",
    "r": "recovery margin",
    "k": "phase stiffness",
    "n": "novelty",
    "s": "stability",
}
COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
# One colour per source: Tableau 10 without its grey (kept for "all sources"), then the
# lighter Tableau 20 shades, so a dozen sources still tell apart.
SOURCE_COLOURS = (
    *COLOURS[:9],
    "#a0cbe8", "#ffbe7d", "#8cd17d", "#ff9d9a", "#86bcb6", "#f1ce63", "#d4a6c8", "#fabfd2", "#d7b5a6",
)


def default_output(datasets: Path, name: str) -> Path:
    return datasets.parent / "reports" / name


# ----------------------------------------------------------------------------- entry points


def write_report(
    warehouse: Path,
    datasets: Path,
    version: str,
    output: Path | None = None,
    *,
    tokenizer: Path | None = None,
) -> Path:
    """Write the report of `version`; returns the path of its report.html."""
    folder = datasets / version
    count_tokens = load_tokenizer(tokenizer) if tokenizer else None
    with open_warehouse(warehouse, read_only=True) as con:
        build = _build_row(con, warehouse, version)
        if not folder.is_dir():
            raise EtlError(
                f"version {version} is in the warehouse but its folder {folder} is missing; "
                "point --datasets at the folder that holds it"
            )
        manifest = read_manifest(folder)
        data = {
            "kind": "version",
            "version": version,
            "etl_version": __version__,
            "overview": overview(build, manifest, folder),
            "funnel": funnel(con, version, manifest),
            "over_time": over_time(con, version),
            "lengths": lengths(con, version, count_tokens, tokenizer),
            "duplicates": duplicates(con, version, manifest),
            "trajectory": trajectory(con, version, manifest),
            "redactions": redactions(manifest),
            "samples": samples(folder, manifest),
            "hashes": hashes(folder, manifest),
        }
    charts = {
        "funnel": funnel_chart(data["funnel"]),
        "drops": drops_chart(data["funnel"]),
        "over_time": over_time_chart(data["over_time"]),
        "lengths": lengths_chart(data["lengths"]),
        "duplicates": duplicates_chart(data["duplicates"]),
        "trajectory": trajectory_chart(data["trajectory"]),
        "redactions": redactions_chart(data["redactions"]),
    }
    return _write(output or default_output(datasets, version), render_version(data, charts), charts)


def write_comparison(warehouse: Path, datasets: Path, old: str, new: str, output: Path | None = None) -> Path:
    """Write the side-by-side report of two versions; returns the path of its report.html."""
    if old == new:
        raise EtlError(f"compare two different versions, not {old} with itself")
    with open_warehouse(warehouse, read_only=True) as con:
        builds = {v: _build_row(con, warehouse, v) for v in (old, new)}
        data = {
            "kind": "comparison",
            "old": old,
            "new": new,
            "etl_version": __version__,
            **compare(con, old, new, {v: json.loads(b["manifest"]) for v, b in builds.items()}),
        }
        data["versions"] = {v: {"dataset_sha256": b["dataset_sha256"], "built_at": b["built_at"]} for v, b in builds.items()}
    charts = {"comparison": comparison_chart(data)}
    return _write(output or default_output(datasets, f"{old}-vs-{new}"), render_comparison(data, charts), charts)


def open_report(path: Path) -> None:
    """Show the page in the default web browser; it is a local file, opened as file://."""
    webbrowser.open(path.resolve().as_uri())


def load_tokenizer(path: Path) -> Callable[[list[str]], list[int]]:
    """Token counts with a local `tokenizer.json` (or a model folder holding one); never downloads."""
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise EtlError(f"{path}: no tokenizer.json there; give a tokenizer.json or a model folder holding one")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise EtlError("--tokenizer needs the `tokenizers` package: pip install tokenizers") from None
    try:
        tokenizer = Tokenizer.from_file(str(file))
    except Exception as error:  # noqa: BLE001 (the library raises bare Exceptions for bad files)
        raise EtlError(f"{file}: not a tokenizer.json the `tokenizers` package can read: {error}") from None

    def count(texts: list[str]) -> list[int]:
        return [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]

    return count


def _build_row(con, warehouse: Path, version: str) -> dict[str, Any]:
    rows = query_frame(
        con,
        "SELECT version, strftime(built_at, '%Y-%m-%d %H:%M:%S UTC') AS built_at, dataset_sha256, "
        f"config_sha256, examples, dropped, manifest FROM builds WHERE {COMPLETE} ORDER BY built_at, version",
    )
    found = rows.filter(pl.col("version") == version)
    if found.height == 0:
        known = ", ".join(rows["version"].to_list()) or "none yet (run `etl build --version v1`)"
        raise EtlError(f"no version {version} in the warehouse {warehouse}; versions built: {known}")
    return found.row(0, named=True)


# ----------------------------------------------------------------------------- sections


def overview(build: dict[str, Any], manifest: dict[str, Any], folder: Path) -> dict[str, Any]:
    counts = manifest["counts"]
    same = build["dataset_sha256"] == manifest.get("dataset_sha256")
    return {
        "folder": str(folder),
        "built_at": build["built_at"],
        "messages": counts["messages"],
        "examples": counts["examples"]["kept"],
        "splits": {s: counts["splits"].get(s, 0) for s in SPLITS},
        "sources": sorted(counts["messages_by_source"]),
        "dataset_sha256": manifest.get("dataset_sha256"),
        "config_sha256": manifest.get("config_sha256"),
        "schema_version": manifest.get("schema_version"),
        "trajectory_version": manifest.get("trajectory_version"),
        "warning": None if same else (
            f"the warehouse recorded dataset sha256 {build['dataset_sha256']} for this version, "
            f"but {folder} has {manifest.get('dataset_sha256')}: the folder is not the one this warehouse built"
        ),
    }


def funnel(con, version: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """Messages per source through each stage, then examples per split, and every drop reason.

    Totals are the manifest's; the split by source comes from the warehouse rows, and any
    place where the two disagree is listed under `mismatches`.
    """
    counts = manifest["counts"]
    drops = query_frame(
        con,
        "SELECT stage, reason, coalesce(source, 'unknown') AS source, count(*) AS n "
        "FROM build_drops WHERE version = ? GROUP BY ALL",
        [version],
    )
    kept = query_frame(
        con,
        "SELECT split, coalesce(source, 'unknown') AS source, count(*) AS n "
        "FROM build_examples WHERE version = ? GROUP BY ALL",
        [version],
    )
    loaded = counts["messages_by_source"]
    sources = sorted(set(loaded) | set(drops["source"]) | set(kept["source"]))

    def by_source(frame: pl.DataFrame) -> dict[str, int]:
        got = dict(zip(frame["source"], frame["n"])) if frame.height else {}
        return {s: int(got.get(s, 0)) for s in sources}

    def dropped_in(stage: str) -> dict[str, int]:
        return by_source(drops.filter(pl.col("stage") == stage).group_by("source").agg(pl.col("n").sum()))

    kept_by_source = by_source(kept.group_by("source").agg(pl.col("n").sum()))
    current = {s: int(loaded.get(s, 0)) for s in sources}
    steps = [{"step": "messages loaded", "total": counts["messages"], "by_source": dict(current)}]
    for stage in counts["stages"]:
        name = stage["stage"]
        if name == "examples":
            steps.append({"step": "turns", "total": counts["turns"], "by_source": None})
            lost = dropped_in(name)
            candidates = {s: kept_by_source[s] + lost[s] for s in sources}
            steps.append({"step": "candidate examples", "total": stage["in"], "by_source": candidates})
            steps.append({"step": "examples kept", "total": stage["out"], "by_source": kept_by_source})
        else:
            lost = dropped_in(name)
            current = {s: current[s] - lost[s] for s in sources}
            steps.append({"step": f"after {name}", "total": stage["out"], "by_source": dict(current)})
    splits = []
    for split in SPLITS:
        here = by_source(kept.filter(pl.col("split") == split))
        splits.append({"split": split, "total": counts["splits"].get(split, 0), "by_source": here})
    reasons = []
    for stage in counts["stages"]:
        for reason, n in stage["dropped"].items():
            here = drops.filter((pl.col("stage") == stage["stage"]) & (pl.col("reason") == reason))
            reasons.append({"stage": stage["stage"], "reason": reason, "count": n, "by_source": by_source(here)})
    listed = {(r["stage"], r["reason"]) for r in reasons}
    mismatches = [
        f"{row['step'] if 'step' in row else row['split']}: manifest {row['total']:,}, "
        f"warehouse {sum(row['by_source'].values()):,}"
        for row in [*steps, *splits]
        if row["by_source"] is not None and sum(row["by_source"].values()) != row["total"]
    ]
    mismatches += [
        f"{r['stage']} {r['reason']}: manifest {r['count']:,}, warehouse {sum(r['by_source'].values()):,}"
        for r in reasons
        if sum(r["by_source"].values()) != r["count"]
    ]
    mismatches += [
        f"{stage} {reason}: in the warehouse but not in the manifest"
        for stage, reason in sorted(set(zip(drops["stage"], drops["reason"])) - listed)
    ]
    return {"sources": sources, "steps": steps, "splits": splits, "drops": reasons, "mismatches": mismatches}


def over_time(con, version: str) -> dict[str, Any]:
    frame = query_frame(
        con,
        "SELECT coalesce(strftime(sent_at, '%Y-%m'), 'unknown') AS month, coalesce(source, 'unknown') AS source, "
        "count(*) AS n FROM build_examples WHERE version = ? GROUP BY ALL ORDER BY month, source",
        [version],
    )
    sources = sorted(set(frame["source"]))
    months = []
    for month in sorted(set(frame["month"]), key=lambda m: (m == "unknown", m)):
        rows = frame.filter(pl.col("month") == month)
        got = dict(zip(rows["source"], rows["n"]))
        by_source = {s: int(got.get(s, 0)) for s in sources}
        months.append({"month": month, "by_source": by_source, "total": sum(by_source.values())})
    return {"sources": sources, "months": months}


def lengths(con, version: str, count_tokens: Callable[[list[str]], list[int]] | None, tokenizer: Path | None) -> dict[str, Any]:
    """Lengths of the owner's replies and of the prompts, as landed and as written.

    Before cleaning is the raw text of the example's own messages (reply: its messages
    joined by newlines, as turns join them; prompt: its context messages joined by
    newlines); after is `build_examples.response` and `.prompt`.
    """
    examples = query_frame(
        con, "SELECT example_id, response, prompt FROM build_examples WHERE version = ? ORDER BY example_id", [version]
    )
    texts = {
        ("replies", "before"): _raw_texts(con, version, "message_ids", examples["example_id"]),
        ("replies", "after"): examples["response"].fill_null(""),
        ("prompts", "before"): _raw_texts(con, version, "context_ids", examples["example_id"]),
        ("prompts", "after"): examples["prompt"].fill_null(""),
    }
    out: dict[str, Any] = {
        "tokenizer": str(tokenizer) if count_tokens else None,
        "tokens_note": None if count_tokens else "tokens: no tokenizer given (use --tokenizer PATH to a local tokenizer.json)",
        "chars": {},
        "tokens": {} if count_tokens else None,
    }
    for (what, when), series in texts.items():
        out["chars"].setdefault(what, {})[when] = _distribution(series.str.len_chars().to_list())
        if count_tokens:
            out["tokens"].setdefault(what, {})[when] = _distribution(count_tokens(series.to_list()))
    return out


def _raw_texts(con, version: str, ids_column: str, example_ids: pl.Series) -> pl.Series:
    """Per example (in `example_ids` order), the raw text of the messages listed in `ids_column`."""
    parts = query_frame(
        con,
        f"""SELECT e.example_id, e.position, r.text
            FROM (SELECT example_id, source, unnest({ids_column}) AS message_id,
                         generate_subscripts({ids_column}, 1) AS position
                  FROM build_examples WHERE version = ?) e
            JOIN raw_messages r ON r.source = e.source AND r.source_id = e.message_id""",
        [version],
    )
    joined = (
        parts.sort("example_id", "position")
        .group_by("example_id", maintain_order=True)
        .agg(pl.col("text").fill_null("").str.join("\n"))
    )
    frame = pl.DataFrame({"example_id": example_ids}).join(joined, on="example_id", how="left", maintain_order="left")
    return frame["text"].fill_null("")


def _distribution(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None, "median": None, "p90": None, "max": None, "histogram": None}
    series = pl.Series(values, dtype=pl.Int64)
    top = int(series.max())
    # Integer edges, about evenly spaced on a log scale: bin i holds edges[i] ≤ length < edges[i + 1].
    edges = sorted({0, *(round(x) for x in _geometric(1, top + 1, LENGTH_BINS))} | {top + 1})
    counts, _ = np.histogram(series.to_numpy(), bins=edges)
    return {
        "n": len(values),
        "mean": round(float(series.mean()), 1),
        "median": float(series.median()),
        "p90": int(series.quantile(0.9, interpolation="lower")),
        "max": top,
        "histogram": {"edges": edges, "counts": [int(n) for n in counts]},
    }


def _geometric(start: float, stop: float, n: int) -> list[float]:
    ratio = (stop / start) ** (1 / n)
    return [start * ratio**i for i in range(n + 1)]


def duplicates(con, version: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The largest duplicate clusters: their kept examples and the replies dropped as
    their repeats, as the build recorded them (`build_examples.dup_cluster`,
    `build_drops.detail`, `text` and `similarity`)."""
    dropped = query_frame(
        con,
        """SELECT detail AS cluster, reason, source, example_id, text, similarity
           FROM build_drops
           WHERE version = ? AND stage = 'examples' AND reason IN (SELECT unnest(?::VARCHAR[]))
           ORDER BY detail, example_id""",
        [version, list(DEDUP_REASONS)],
    )
    kept = query_frame(
        con,
        """SELECT dup_cluster AS cluster, example_id, sent_at, response
           FROM build_examples WHERE version = ? AND dup_cluster IS NOT NULL
           ORDER BY dup_cluster, sent_at, example_id""",
        [version],
    )
    by_reason = {r: int((dropped["reason"] == r).sum()) for r in DEDUP_REASONS}
    sizes = (
        pl.concat([kept.select("cluster"), dropped.select("cluster")])
        .group_by("cluster")
        .len()
        .filter(pl.col("len") > 1)
        .sort(["len", "cluster"], descending=[True, False])
    )
    top = sizes.head(TOP_CLUSTERS)
    clusters = []
    for cluster, size in zip(top["cluster"], top["len"]):
        members = kept.filter(pl.col("cluster") == cluster)
        gone = dropped.filter(pl.col("cluster") == cluster)
        clusters.append({
            "kept_example": cluster,
            "size": int(size),
            "kept": members.height,
            "dropped": gone.height,
            "dropped_by_reason": {r: int((gone["reason"] == r).sum()) for r in DEDUP_REASONS if (gone["reason"] == r).any()},
            "kept_members": [
                {"example_id": i, "sent_at": _iso(t), "text": _cut(x)}
                for i, t, x in members.head(MEMBERS_SHOWN).select("example_id", "sent_at", "response").iter_rows()
            ],
            "dropped_members": [
                {"example_id": i, "reason": r, "similarity": None if j is None else round(j, 3), "text": _cut(x)}
                for i, r, j, x in gone.head(MEMBERS_SHOWN).select("example_id", "reason", "similarity", "text").iter_rows()
            ],
        })
    return {
        "clusters_total": sizes.height,
        "dropped_by_reason": by_reason,
        "clusters": clusters,
    }


def trajectory(con, version: str, manifest: dict[str, Any]) -> dict[str, Any]:
    scalars = ", ".join(f"TRY_CAST(json_extract_string(trajectory, '$.{s}') AS DOUBLE) AS {s}" for s in SCALARS)
    frame = query_frame(con, f"SELECT regime, {scalars} FROM build_examples WHERE version = ?", [version])
    regimes = [r for r in REGIMES if r in set(frame["regime"])] + sorted(set(frame["regime"].drop_nulls()) - set(REGIMES))
    counts = {r: int((frame["regime"] == r).sum()) for r in regimes}
    stats: dict[str, dict[str, Any]] = {}
    values: dict[str, dict[str, list[float]]] = {}
    for s in SCALARS:
        stats[s], values[s] = {}, {}
        for regime in regimes:
            column = frame.filter(pl.col("regime") == regime)[s].drop_nulls()
            if column.len() == 0:
                continue
            values[s][regime] = column.to_list()
            stats[s][regime] = {
                "n": column.len(),
                "mean": round(float(column.mean()), 3),
                "min": float(column.min()),
                "median": float(column.median()),
                "max": float(column.max()),
            }
    return {
        "trajectory_version": manifest.get("trajectory_version"),
        "regimes": counts,
        "manifest_regimes": manifest["counts"].get("regimes", {}),
        "scalars": stats,
        "_values": values,  # for the chart only; not embedded
    }


def redactions(manifest: dict[str, Any]) -> dict[str, Any]:
    by_type = dict(manifest.get("redactions", {}))
    return {
        "by_type": by_type,
        "total": sum(by_type.values()),
        "pii": bool(manifest["config"]["build"].get("redact_pii", False)),
    }


def samples(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The first examples of each split's chat file, as written (already redacted).

    Files are sorted by example id, a hash, so the first ones are an unbiased pick.
    """
    out = {}
    for split in SPLITS:
        relpath = f"chatml/{split}.jsonl"
        records = manifest.get("files", {}).get(relpath, {}).get("records", 0)
        shown = []
        path = folder / relpath
        if path.is_file():
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    if len(shown) == SAMPLES_PER_SPLIT:
                        break
                    record = json.loads(line)
                    shown.append({"id": record.get("id"), "messages": record["messages"]})
        out[split] = {"file": relpath, "records": records, "shown": shown}
    return out


def hashes(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    sums_path = folder / SUMS
    sums = []
    if sums_path.is_file():
        for line in sums_path.read_text(encoding="utf-8").splitlines():
            digest, _, relpath = line.partition("  ")
            sums.append({"file": relpath, "sha256": digest})
    try:
        verify_version(folder)
        verified = "every file matches SHA256SUMS and the manifest"
    except EtlError as error:
        verified = f"verification failed: {error}"
    return {
        "dataset_sha256": manifest.get("dataset_sha256"),
        "config_sha256": manifest.get("config_sha256"),
        "files": [{"file": p, **info} for p, info in sorted(manifest.get("files", {}).items())],
        "sha256sums": sums,
        "verified": verified,
    }


def compare(con, old: str, new: str, manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Counts of two versions side by side, and the examples one has that the other lacks."""

    def side_by_side(key: Callable[[dict[str, Any]], dict[str, int]], label: str) -> list[dict[str, Any]]:
        a, b = key(manifests[old]), key(manifests[new])
        return [
            {label: k, "old": a.get(k, 0), "new": b.get(k, 0), "difference": b.get(k, 0) - a.get(k, 0)}
            for k in sorted(set(a) | set(b))
        ]

    def drop_counts(m: dict[str, Any]) -> dict[str, int]:
        return {f"{s['stage']}: {r}": n for s in m["counts"]["stages"] for r, n in s["dropped"].items()}

    totals = {
        "messages": lambda m: m["counts"]["messages"],
        "messages kept": lambda m: m["counts"]["messages_kept"],
        "turns": lambda m: m["counts"]["turns"],
        "candidate examples": lambda m: m["counts"]["examples"]["candidates"],
        "examples": lambda m: m["counts"]["examples"]["kept"],
        **{f"{s} examples": (lambda m, s=s: m["counts"]["splits"].get(s, 0)) for s in SPLITS},
    }
    params = {"old": old, "new": new}
    by_source = query_frame(
        con,
        """SELECT coalesce(source, 'unknown') AS source,
                  count(*) FILTER (WHERE in_old AND NOT in_new) AS removed,
                  count(*) FILTER (WHERE in_new AND NOT in_old) AS added,
                  count(*) FILTER (WHERE in_old AND in_new) AS in_both
           FROM (SELECT example_id, any_value(source) AS source,
                        bool_or(version = $old) AS in_old, bool_or(version = $new) AS in_new
                 FROM build_examples WHERE version IN ($old, $new) GROUP BY example_id)
           GROUP BY 1 ORDER BY 1""",
        params,
    )
    listed = []
    for change, here, there in (("added", new, old), ("removed", old, new)):
        rows = query_frame(
            con,
            f"""SELECT e.example_id, e.source, strftime(e.sent_at, '%Y-%m-%d %H:%M') AS sent_at, e.response,
                       {"NULL" if change == "added" else "d.reason"} AS why
                FROM build_examples e
                {'' if change == 'added' else '''LEFT JOIN (SELECT DISTINCT ON (message_id, source) message_id, source,
                        stage || ': ' || reason AS reason FROM build_drops WHERE version = $there
                        ORDER BY message_id, source, stage, reason) d
                      ON d.message_id = e.message_ids[1] AND d.source = e.source'''}
                WHERE e.version = $here AND NOT EXISTS
                      (SELECT 1 FROM build_examples o WHERE o.version = $there AND o.example_id = e.example_id)
                ORDER BY e.example_id LIMIT {EXAMPLES_LISTED}""",
            {"here": here, "there": there},
        )
        listed.append((change, [
            {"example_id": i, "source": s, "sent_at": t, "response": _cut(r), "reason": w}
            for i, s, t, r, w in rows.iter_rows()
        ]))
    config_old, config_new = (_flatten(manifests[v]["config"]) for v in (old, new))
    return {
        "totals": [
            {"count": k, "old": f(manifests[old]), "new": f(manifests[new]),
             "difference": f(manifests[new]) - f(manifests[old])} for k, f in totals.items()
        ],
        "messages_by_source": side_by_side(lambda m: m["counts"]["messages_by_source"], "source"),
        "examples_by_source": side_by_side(lambda m: m["counts"]["examples_by_source"], "source"),
        "drops": side_by_side(drop_counts, "reason"),
        "redactions": side_by_side(lambda m: m.get("redactions", {}), "type"),
        "changed_examples": {
            "by_source": by_source.to_dicts(),
            "added": int(by_source["added"].sum()),
            "removed": int(by_source["removed"].sum()),
            "in_both": int(by_source["in_both"].sum()),
            **{f"{change}_examples": items for change, items in listed},
        },
        "config": [
            {"setting": k, "old": config_old.get(k), "new": config_new.get(k)}
            for k in sorted(set(config_old) | set(config_new))
            if config_old.get(k) != config_new.get(k)
        ],
    }


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in value.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v, ensure_ascii=False) if isinstance(v, list) else v
    return out


def _cut(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= TEXT_SHOWN else text[: TEXT_SHOWN - 1] + "…"


def _iso(value: Any) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else None


# ----------------------------------------------------------------------------- charts


def _figure(width: float, height: float):
    # A bare Figure draws with Agg and touches no global pyplot state or display.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _style(axes, counts: str) -> None:
    """Plain axes; `counts` ("x" or "y") is the axis of whole numbers, with a light grid."""
    from matplotlib.ticker import MaxNLocator

    axes.spines[["top", "right"]].set_visible(False)
    getattr(axes, f"{counts}axis").set_major_locator(MaxNLocator(integer=True))
    axes.grid(axis=counts, alpha=0.25)


def funnel_chart(data: dict[str, Any]) -> bytes | None:
    steps = [*data["steps"], *({"step": f"{s['split']} split", **s} for s in data["splits"])]
    if not steps[0]["total"]:
        return None
    figure = _figure(9.5, 0.42 * len(steps) + 1.2)
    axes = figure.add_subplot()
    labels = [s["step"] for s in steps]
    left = [0] * len(steps)
    for colour, source in zip(_cycle(), data["sources"]):
        widths = [s["by_source"][source] if s["by_source"] is not None else 0 for s in steps]
        axes.barh(labels, widths, left=left, color=colour, label=source)
        left = [a + b for a, b in zip(left, widths)]
    unsplit = [s["total"] if s["by_source"] is None else 0 for s in steps]
    if any(unsplit):
        axes.barh(labels, unsplit, color="#bab0ac", label="all sources (turns are not counted per source)")
    for y, step in enumerate(steps):
        axes.annotate(f"{step['total']:,}", (step["total"], y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("rows")
    axes.set_title("From messages to examples")
    axes.legend(loc="lower right", fontsize=8, frameon=False)
    _style(axes, "x")
    return _png(figure)


def drops_chart(data: dict[str, Any]) -> bytes | None:
    rows = [r for r in data["drops"] if r["count"]]
    if not rows:
        return None
    rows.sort(key=lambda r: -r["count"])
    figure = _figure(9.5, 0.32 * len(rows) + 1.2)
    axes = figure.add_subplot()
    labels = [f"{r['stage']}: {r['reason']}" for r in rows]
    axes.barh(labels, [r["count"] for r in rows], color=COLOURS[3])
    for y, r in enumerate(rows):
        axes.annotate(f"{r['count']:,}", (r["count"], y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("rows dropped")
    axes.set_title("Why rows were left out")
    _style(axes, "x")
    return _png(figure)


def over_time_chart(data: dict[str, Any]) -> bytes | None:
    months = data["months"]
    if not months:
        return None
    figure = _figure(9.5, 3.6)
    axes = figure.add_subplot()
    x = list(range(len(months)))
    bottom = [0] * len(months)
    for colour, source in zip(_cycle(), data["sources"]):
        heights = [m["by_source"][source] for m in months]
        axes.bar(x, heights, bottom=bottom, color=colour, label=source, width=0.85)
        bottom = [a + b for a, b in zip(bottom, heights)]
    every = max(1, -(-len(months) // 24))
    axes.set_xticks(x[::every], [m["month"] for m in months][::every], rotation=60, ha="right", fontsize=8)
    # A few months would otherwise each fill a third of the width.
    axes.set_xlim(-0.75, max(len(months), 12) - 0.25)
    axes.set_ylabel("examples")
    axes.set_title("Examples per month, by source")
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    _style(axes, "y")
    return _png(figure)


def lengths_chart(data: dict[str, Any]) -> bytes | None:
    units = [u for u in ("chars", "tokens") if data[u]]
    if not data["chars"]["replies"]["after"]["n"]:
        return None
    figure = _figure(9.5, 3.2 * len(units))
    grid = figure.subplots(len(units), 2, squeeze=False)
    for row, unit in enumerate(units):
        for col, what in enumerate(("replies", "prompts")):
            axes = grid[row][col]
            for colour, when in zip((COLOURS[7], COLOURS[0]), ("before", "after")):
                hist = data[unit][what][when]["histogram"]
                if hist:
                    edges = [max(e, 0.5) for e in hist["edges"]]
                    axes.stairs(hist["counts"], edges, color=colour, fill=when == "after", alpha=0.55 if when == "after" else 1,
                                linewidth=1.5, label=f"{when} cleaning")
            axes.set_xscale("log")
            used = [e for when in ("before", "after") if (h := data[unit][what][when]["histogram"])
                    for e, n in zip(h["edges"], h["counts"]) if n]
            if used:
                axes.set_xlim(max(min(used), 1) / 1.5, max(used) * 2)
            axes.set_xlabel(f"{'characters' if unit == 'chars' else 'tokens'} (log scale)")
            axes.set_ylabel("examples")
            axes.set_title(f"{'Your replies' if what == 'replies' else 'Prompts (context)'}: length in {unit}", fontsize=10)
            axes.legend(fontsize=8, frameon=False)
            _style(axes, "y")
    return _png(figure)


def duplicates_chart(data: dict[str, Any]) -> bytes | None:
    clusters = data["clusters"]
    if not clusters:
        return None
    figure = _figure(9.5, 0.3 * len(clusters) + 1.2)
    axes = figure.add_subplot()
    labels = [f"#{i}" for i in range(1, len(clusters) + 1)]
    kept = [c["kept"] for c in clusters]
    axes.barh(labels, kept, color=COLOURS[2], label="kept")
    axes.barh(labels, [c["dropped"] for c in clusters], left=kept, color=COLOURS[3], label="dropped")
    axes.invert_yaxis()
    axes.set_xlabel("examples in the cluster")
    axes.set_title("Largest duplicate clusters")
    axes.legend(loc="lower right", fontsize=8, frameon=False)
    _style(axes, "x")
    return _png(figure)


def trajectory_chart(data: dict[str, Any]) -> bytes | None:
    if not data["regimes"]:
        return None
    figure = _figure(9.5, 5.2)
    grid = figure.subplots(2, 4)
    axes = grid[0][0]
    names = list(data["regimes"])
    axes.bar(names, list(data["regimes"].values()), color=[COLOURS[i % len(COLOURS)] for i in range(len(names))])
    axes.set_title("examples per regime", fontsize=9)
    axes.tick_params(axis="x", labelrotation=45, labelsize=7)
    _style(axes, "y")
    for axes, s in zip([a for row in grid for a in row][1:], SCALARS):
        per_regime = data["_values"][s]
        if per_regime:
            axes.boxplot(list(per_regime.values()), tick_labels=list(per_regime), widths=0.6, showfliers=False)
        axes.set_ylim(-0.05, 1.05)
        axes.set_title(f"{s}: {SCALAR_NAMES[s]}", fontsize=9)
        axes.tick_params(axis="x", labelrotation=45, labelsize=7)
        axes.spines[["top", "right"]].set_visible(False)
    return _png(figure)


def redactions_chart(data: dict[str, Any]) -> bytes | None:
    if not data["total"]:
        return None
    by_type = data["by_type"]
    figure = _figure(9.5, 0.32 * len(by_type) + 1.2)
    axes = figure.add_subplot()
    axes.barh(list(by_type), list(by_type.values()), color=COLOURS[6])
    axes.invert_yaxis()
    axes.set_xlabel("replacements")
    axes.set_title("Secrets redacted, by type")
    _style(axes, "x")
    return _png(figure)


def comparison_chart(data: dict[str, Any]) -> bytes | None:
    panels = [("examples by source", data["examples_by_source"]), ("dropped, by stage and reason", data["drops"])]
    panels = [(t, rows) for t, rows in panels if rows]
    if not panels:
        return None
    figure = _figure(9.5, 0.3 * sum(len(rows) for _, rows in panels) + 1.4 * len(panels))
    grid = figure.subplots(len(panels), 1, squeeze=False,
                           gridspec_kw={"height_ratios": [len(rows) + 1 for _, rows in panels]})
    for (title, rows), (axes,) in zip(panels, grid):
        label = next(k for k in rows[0] if k not in ("old", "new", "difference"))
        y = list(range(len(rows)))
        axes.barh([i - 0.2 for i in y], [r["old"] for r in rows], height=0.4, color=COLOURS[9], label=data["old"])
        axes.barh([i + 0.2 for i in y], [r["new"] for r in rows], height=0.4, color=COLOURS[0], label=data["new"])
        axes.set_yticks(y, [r[label] for r in rows], fontsize=8)
        axes.invert_yaxis()
        axes.set_title(title, fontsize=10)
        axes.legend(fontsize=8, frameon=False)
        _style(axes, "x")
    return _png(figure)


def _cycle():
    while True:
        yield from SOURCE_COLOURS


# ----------------------------------------------------------------------------- HTML


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"
    return _e(value)


def _signed(value: int) -> str:
    return f"+{value:,}" if value > 0 else f"{value:,}"


def _table(name: str, headers: list[str], rows: list[list[Any]], numeric_from: int = 1, signed: set[int] = frozenset()) -> str:
    """A table whose cells tests can read back: data-table names it, numbers sit in td.n."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            if i in signed and isinstance(value, int):
                cells.append(f'<td class="n">{_signed(value)}</td>')
            elif i >= numeric_from and (isinstance(value, (int, float)) or value is None):
                cells.append(f'<td class="n">{_num(value)}</td>')
            else:
                cells.append(f"<td>{_e(value)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    # Wide tables (a column per source) scroll inside the page instead of widening it.
    return (
        f'<div class="wide"><table data-table="{_e(name)}"><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table></div>'
    )


def _chart(charts: dict[str, bytes | None], name: str, alt: str, empty: str) -> str:
    png = charts.get(name)
    if png is None:
        return f'<p class="empty">{_e(empty)}</p>'
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img class="chart" alt="{_e(alt)}" src="data:image/png;base64,{encoded}">'


def _section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{_e(anchor)}"><h2>{_e(title)}</h2>{"".join(parts)}</section>'


def _p(text: str, cls: str = "") -> str:
    attribute = f' class="{cls}"' if cls else ""
    return f"<p{attribute}>{_e(text)}</p>"


def _conversation(messages: list[dict[str, str]]) -> str:
    lines = [
        f'<div class="msg {_e(m.get("role"))}"><span class="role">{_e(m.get("role"))}</span>'
        f'<span class="text">{_e(m.get("content"))}</span></div>'
        for m in messages
    ]
    return f'<div class="conversation">{"".join(lines)}</div>'


def _page(title: str, nav: list[tuple[str, str]], body: str, data: dict[str, Any]) -> str:
    template = Template(resources.files("etl").joinpath("report_template.html").read_text(encoding="utf-8"))
    links = "".join(f'<a href="#{_e(a)}">{_e(t)}</a>' for a, t in nav)
    embedded = dict(data)
    if "trajectory" in embedded:
        embedded["trajectory"] = {k: v for k, v in embedded["trajectory"].items() if not k.startswith("_")}
    # Inside <script>, "<" is written as \u003c so no text can close the element early.
    payload = json.dumps(embedded, ensure_ascii=False, indent=1, default=str)
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return template.substitute(title=_e(title), nav=links, body=body, data=payload)


def render_version(data: dict[str, Any], charts: dict[str, bytes | None]) -> str:
    v = data["version"]
    o, f, ln, d, t, r, s, h = (data[k] for k in ("overview", "funnel", "lengths", "duplicates", "trajectory", "redactions", "samples", "hashes"))
    warnings = [w for w in (o["warning"], *(f"manifest and warehouse disagree on {m}" for m in f["mismatches"])) if w]
    if not h["verified"].startswith("every file"):
        warnings.append(h["verified"])
    cards = [
        ("messages", _num(o["messages"])),
        ("examples", _num(o["examples"])),
        *((split, _num(n)) for split, n in o["splits"].items()),
        ("sources", _e(", ".join(o["sources"]) or "none")),
    ]
    header = (
        f'<header><h1>Dataset {_e(v)}</h1>'
        f'<p class="meta">built {_e(o["built_at"])} · {_e(o["folder"])} · etl {_e(data["etl_version"])}</p>'
        + '<div class="cards">'
        + "".join(f'<div class="card"><b>{value}</b><span>{_e(label)}</span></div>' for label, value in cards)
        + "</div>"
        + f'<p class="hash">dataset sha256 <code>{_e(o["dataset_sha256"])}</code></p>'
        + "".join(f'<p class="warning">{_e(w)}</p>' for w in warnings)
        + "</header>"
    )
    sources = f["sources"]
    step_rows = [[s["step"], s["total"], *(s["by_source"][x] if s["by_source"] is not None else None for x in sources)] for s in f["steps"]]
    step_rows += [[f"{s['split']} split", s["total"], *(s["by_source"][x] for x in sources)] for s in f["splits"]]
    drop_rows = [[x["stage"], x["reason"], x["count"], *(x["by_source"][y] for y in sources)] for x in f["drops"]]
    funnel_html = _section(
        "funnel", "Funnel",
        _p("Every message of the version's ingest runs, through each stage of the build, to the examples of each split. "
           "Totals are the manifest's; the columns per source come from the warehouse."),
        _chart(charts, "funnel", "bar chart of rows after each build stage, by source", "no messages in this version"),
        _table("funnel", ["step", "total", *sources], step_rows),
        "<h3>Drop reasons</h3>",
        _chart(charts, "drops", "bar chart of rows dropped per stage and reason", "nothing was dropped"),
        _table("drops", ["stage", "reason", "dropped", *sources], drop_rows, numeric_from=2) if drop_rows else _p("Nothing was dropped.", "empty"),
    )
    months = data["over_time"]
    time_html = _section(
        "time", "Examples over time",
        _chart(charts, "over_time", "stacked bar chart of examples per month and source", "no examples in this version"),
        # Years of history make hundreds of rows: the table is there to check the chart, folded.
        f'<details><summary>{len(months["months"]):,} months as a table</summary>'
        + _table("over_time", ["month", "total", *months["sources"]],
                 [[m["month"], m["total"], *(m["by_source"][x] for x in months["sources"])] for m in months["months"]])
        + "</details>"
        if months["months"] else "",
    )
    length_rows = []
    for unit in ("chars", "tokens"):
        for what in ("replies", "prompts"):
            for when in ("before", "after"):
                if ln[unit]:
                    x = ln[unit][what][when]
                    length_rows.append([unit, what, when, x["n"], x["mean"], x["median"], x["p90"], x["max"]])
    lengths_html = _section(
        "lengths", "Lengths",
        _p("Before cleaning: the raw text of the messages an example was made from (the reply's messages; the "
           "context's messages), joined by newlines. After: the reply and the prompt as written."),
        _chart(charts, "lengths", "histograms of reply and prompt lengths before and after cleaning", "no examples in this version"),
        _table("lengths", ["unit", "text", "cleaning", "examples", "mean", "median", "90th percentile", "max"], length_rows, numeric_from=3),
        _p(ln["tokens_note"], "note") if ln["tokens_note"] else _p(f"tokens counted with {ln['tokenizer']}", "note"),
    )
    cluster_html = []
    for rank, c in enumerate(d["clusters"], 1):
        kept = "".join(
            f'<li class="kept"><code>{_e(m["example_id"])}</code> {_e(m["sent_at"])}<div class="text">{_e(m["text"])}</div></li>'
            for m in c["kept_members"]
        )
        gone = "".join(
            f'<li class="dropped"><code>{_e(m["example_id"])}</code> {_e(m["reason"])}'
            + (f' (similarity {m["similarity"]:.2f})' if m["similarity"] is not None else "")
            + f'<div class="text">{_e(m["text"])}</div></li>'
            for m in c["dropped_members"]
        )
        more = c["dropped"] - len(c["dropped_members"])
        cluster_html.append(
            f'<details{" open" if rank <= 3 else ""}><summary>#{rank}: {c["size"]:,} examples, {c["kept"]:,} kept, '
            f'{c["dropped"]:,} dropped ({_e(", ".join(f"{k} {n:,}" for k, n in c["dropped_by_reason"].items()) or "none")})</summary>'
            f'<ul class="members">{kept}{gone}</ul>'
            + (f'<p class="note">and {more:,} more dropped</p>' if more > 0 else "")
            + "</details>"
        )
    dup_html = _section(
        "duplicates", "Duplicate clusters",
        _p(f"{d['clusters_total']:,} clusters of two or more examples with the same or nearly the same reply; dropped: "
           + ", ".join(f"{k} {n:,}" for k, n in d["dropped_by_reason"].items())
           + (f". The {min(TOP_CLUSTERS, d['clusters_total'])} largest:" if d["clusters"] else ".")),
        _chart(charts, "duplicates", "bar chart of the largest duplicate clusters, kept and dropped", "no duplicates in this version"),
        _table("duplicates", ["cluster", "kept example", "examples", "kept", "dropped"],
               [[f"#{i}", c["kept_example"], c["size"], c["kept"], c["dropped"]] for i, c in enumerate(d["clusters"], 1)], numeric_from=2)
        if d["clusters"] else "",
        "".join(cluster_html),
    )
    scalar_rows = [
        [f"{x}: {SCALAR_NAMES[x]}", regime, st["n"], st["mean"], st["min"], st["median"], st["max"]]
        for x in SCALARS for regime, st in t["scalars"][x].items()
    ]
    traj_html = _section(
        "trajectory", "Trajectory",
        _p(f"Regimes and scalars ({t['trajectory_version']}); cold-start examples (fewer than 3 context turns) have no scalars."),
        _chart(charts, "trajectory", "regime counts and box plots of each scalar per regime", "no examples in this version"),
        _table("regimes", ["regime", "examples", "in the manifest"],
               [[k, n, t["manifest_regimes"].get(k, 0)] for k, n in t["regimes"].items()]) if t["regimes"] else "",
        _table("scalars", ["scalar", "regime", "examples", "mean", "min", "median", "max"], scalar_rows, numeric_from=2) if scalar_rows else "",
    )
    redact_html = _section(
        "redactions", "Redactions",
        _p("How many secrets were replaced by a placeholder, by type (counts only)."
           + (" Personal data (emails, phone numbers) was redacted too." if r["pii"] else " Personal data redaction was off.")),
        _chart(charts, "redactions", "bar chart of redactions by type", "no secrets were found"),
        _table("redactions", ["type", "count"], [[k, n] for k, n in r["by_type"].items()] + [["total", r["total"]]]),
    )
    sample_html = []
    for split, x in s.items():
        conversations = "".join(
            f'<div class="example"><code>{_e(e["id"])}</code>{_conversation(e["messages"])}</div>' for e in x["shown"]
        )
        sample_html.append(
            f'<details{" open" if split == "train" else ""}><summary>{_e(split)}: {len(x["shown"]):,} of {x["records"]:,} '
            f'examples ({_e(x["file"])})</summary>{conversations or _p("no examples in this split", "empty")}</details>'
        )
    samples_html = _section(
        "samples", "Samples",
        _p(f"The first {SAMPLES_PER_SPLIT} examples of each split, as written to the files (secrets already redacted)."),
        "".join(sample_html),
    )
    hashes_html = _section(
        "hashes", "Hashes",
        _p(h["verified"], "ok" if h["verified"].startswith("every file") else "warning"),
        f'<p class="hash">dataset sha256 <code>{_e(h["dataset_sha256"])}</code><br>config sha256 <code>{_e(h["config_sha256"])}</code></p>',
        _table("files", ["file", "records", "bytes", "sha256"],
               [[x["file"], x["records"], x["bytes"], x["sha256"]] for x in h["files"]]),
        "<h3>SHA256SUMS</h3>",
        "<pre>" + "".join(f"{_e(x['sha256'])}  {_e(x['file'])}\n" for x in h["sha256sums"]) + "</pre>",
    )
    nav = [("funnel", "Funnel"), ("time", "Over time"), ("lengths", "Lengths"), ("duplicates", "Duplicates"),
           ("trajectory", "Trajectory"), ("redactions", "Redactions"), ("samples", "Samples"), ("hashes", "Hashes")]
    body = header + funnel_html + time_html + lengths_html + dup_html + traj_html + redact_html + samples_html + hashes_html
    return _page(f"Dataset {v}: report", nav, body, data)


def render_comparison(data: dict[str, Any], charts: dict[str, bytes | None]) -> str:
    old, new = data["old"], data["new"]
    headers = [old, new, "difference"]

    def rows_of(rows: list[dict[str, Any]], label: str) -> list[list[Any]]:
        return [[r[label], r["old"], r["new"], r["difference"]] for r in rows]

    changed = data["changed_examples"]
    header = (
        f"<header><h1>{_e(old)} → {_e(new)}</h1>"
        f'<p class="meta">etl {_e(data["etl_version"])}</p>'
        + "".join(
            f'<p class="hash">{_e(v)} built {_e(x["built_at"])}, dataset sha256 <code>{_e(x["dataset_sha256"])}</code></p>'
            for v, x in data["versions"].items()
        )
        + "</header>"
    )

    def listing(change: str) -> str:
        items = changed[f"{change}_examples"]
        if not items:
            return _p(f"no examples {change}", "empty")
        return "".join(
            f'<li><code>{_e(x["example_id"])}</code> {_e(x["source"])} {_e(x["sent_at"])}'
            + (f' <span class="reason">{_e(x["reason"] or "not in the newer input")}</span>' if change == "removed" else "")
            + f'<div class="text">{_e(x["response"])}</div></li>'
            for x in items
        ).join(('<ul class="members">', "</ul>"))

    body = header + "".join([
        _section("totals", "Counts",
                 _chart(charts, "comparison", f"bar charts comparing {old} and {new}", "nothing to compare"),
                 _table("totals", ["count", *headers], rows_of(data["totals"], "count"), signed={3})),
        _section("sources", "Per source",
                 "<h3>Messages</h3>", _table("messages_by_source", ["source", *headers], rows_of(data["messages_by_source"], "source"), signed={3}),
                 "<h3>Examples</h3>", _table("examples_by_source", ["source", *headers], rows_of(data["examples_by_source"], "source"), signed={3})),
        _section("drops", "Drop reasons",
                 _table("drops", ["stage: reason", *headers], rows_of(data["drops"], "reason"), signed={3})
                 if data["drops"] else _p("nothing was dropped in either version", "empty")),
        _section("redactions", "Redactions",
                 _table("redactions", ["type", *headers], rows_of(data["redactions"], "type"), signed={3})
                 if data["redactions"] else _p("no secrets in either version", "empty")),
        _section("examples", "Examples added and removed",
                 _p(f"By example id: {changed['added']:,} added, {changed['removed']:,} removed, {changed['in_both']:,} in both."),
                 _table("changed_examples", ["source", "added", "removed", "in both"],
                        [[x["source"], x["added"], x["removed"], x["in_both"]] for x in changed["by_source"]]),
                 f"<h3>Added (first {EXAMPLES_LISTED} by id)</h3>", listing("added"),
                 f"<h3>Removed (first {EXAMPLES_LISTED} by id, with why {new} dropped the reply)</h3>", listing("removed")),
        _section("config", "Settings that differ",
                 _table("config", ["setting", old, new], [[x["setting"], x["old"], x["new"]] for x in data["config"]], numeric_from=99)
                 if data["config"] else _p("same build settings", "empty")),
    ])
    nav = [("totals", "Counts"), ("sources", "Per source"), ("drops", "Drop reasons"), ("redactions", "Redactions"),
           ("examples", "Added and removed"), ("config", "Settings")]
    return _page(f"{old} → {new}: comparison", nav, body, data)


# ----------------------------------------------------------------------------- files


def _write(folder: Path, page: str, charts: dict[str, bytes | None]) -> Path:
    """report.html and charts/*.png under `folder`: folders 0700, files 0600."""
    _private_folder(folder)
    _private_folder(folder / "charts")
    for name, png in charts.items():
        stale = folder / "charts" / f"{name}.png"
        if png is None:
            stale.unlink(missing_ok=True)
        else:
            _private_file(stale, png)
    target = folder / "report.html"
    _private_file(target, page.encode("utf-8"))
    return target


def _private_folder(folder: Path) -> None:
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EtlError(f"cannot create the report folder {folder}: {error.strerror}; choose another with --output") from None
    for created in missing:
        os.chmod(created, 0o700)


def _private_file(path: Path, content: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(content)
    os.replace(partial, path)
