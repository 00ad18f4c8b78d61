"""The report of a prose version: documents, chunks, words per chunk, drops by reason, pairs by kind.

One self-contained page like the chat report (inline styles, charts as embedded PNGs,
every number also in `<script type="application/json" id="report-data">`), written
owner-only beside the datasets folder; it loads nothing from anywhere.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from etl import __version__
from etl.report import _figure, _png, _write, default_output
from etl.versions import read_manifest
from etl.warehouse import open_warehouse, query_frame

SAMPLES = 6
TEXT_SHOWN = 600


def prose_report_data(con, folder: Path, version: str) -> dict[str, Any]:
    manifest = read_manifest(folder)
    c = manifest["counts"]
    documents = query_frame(
        con,
        """SELECT d.title, d.format, strftime(d.published_at, '%Y-%m-%d') AS published, d.paragraphs,
                  count(c.chunk_id) AS chunks, coalesce(sum(c.tokens), 0)::BIGINT AS tokens, any_value(c.split) AS split
           FROM documents d JOIN (SELECT DISTINCT document_id FROM prose_chunks WHERE version = $v
                                  UNION SELECT DISTINCT split_part(message_id, ':', 1) FROM build_drops
                                  WHERE version = $v AND source = 'prose') used USING (document_id)
           LEFT JOIN prose_chunks c ON c.document_id = d.document_id AND c.version = $v
           GROUP BY ALL ORDER BY tokens DESC, d.title""",
        {"v": version},
    )
    words = [int(w) for (w,) in con.execute(
        "SELECT words FROM prose_chunks WHERE version = ? ORDER BY chunk_id", [version]).fetchall()]
    drops = [{"stage": s["stage"], "reason": r, "rows": n} for s in c["stages"] for r, n in s["dropped"].items()]
    return {
        "kind": "prose",
        "version": version,
        "etl_version": __version__,
        "overview": {
            "documents": c["documents"], "paragraphs": c["paragraphs"], "paragraphs_kept": c["paragraphs_kept"],
            "chunks": c["chunks"]["kept"], "tokens": c["chunks"]["tokens"],
            "counted_in": manifest["inputs"]["tokenizer"]["counted_in"], "pairs": c["examples"],
            "splits": c["splits"], "chunks_without_neutral": c["chunks_without_neutral"],
            "dataset_sha256": manifest["dataset_sha256"],
        },
        "documents": documents.to_dicts(),
        "words_per_chunk": {
            "count": len(words), "min": min(words, default=0), "median": int(np.median(words)) if words else 0,
            "max": max(words, default=0), "values": words,
        },
        "drops": drops,
        "pairs_by_kind": c["pairs_by_kind"],
        "samples": _samples(folder, manifest),
    }


def _samples(folder: Path, manifest: dict[str, Any]) -> list[dict[str, str]]:
    data = manifest.get("sft_data", "completions")
    path = folder / data / "train.jsonl"
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()[:SAMPLES]
    out = []
    for line in lines:
        record = json.loads(line)
        if "prompt" in record:
            out.append({"input": record["prompt"].rpartition("[INPUT]:\n")[2], "target": record["completion"]})
        else:
            messages = record["messages"]
            out.append({"input": messages[-2]["content"], "target": messages[-1]["content"]})
    return out


def words_chart(data: dict[str, Any]) -> bytes | None:
    values = data["words_per_chunk"]["values"]
    if not values:
        return None
    figure = _figure(6.5, 2.6)
    axes = figure.subplots()
    axes.hist(values, bins=min(30, max(5, len(set(values)))), color="#4e79a7")
    axes.set_xlabel("words per chunk")
    axes.set_ylabel("chunks")
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return _png(figure)


def write_prose_report(warehouse: Path, datasets: Path, version: str, output: Path | None = None) -> Path:
    with open_warehouse(warehouse, read_only=True) as con:
        data = prose_report_data(con, datasets / version, version)
    charts = {"words_per_chunk": words_chart(data)}
    return _write(output or default_output(datasets, version), render(data, charts), charts)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(f'{v:,}' if isinstance(v, int) else str(v if v is not None else ''))}</td>"
                         for v in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def render(data: dict[str, Any], charts: dict[str, bytes | None]) -> str:
    o = data["overview"]
    w = data["words_per_chunk"]
    chart = charts.get("words_per_chunk")
    image = (f'<img alt="words per chunk" src="data:image/png;base64,{base64.b64encode(chart).decode()}">'
             if chart else "<p>No chunks.</p>")
    splits = ", ".join(f"{s} {n:,}" for s, n in o["splits"].items())
    neutral = (f"<p class=note>{o['chunks_without_neutral']:,} chunks have no neutral rewrite yet: run "
               f"<code>etl train neutral --version {html.escape(data['version'])} --model BASE</code>, then build "
               "a new version.</p>" if o["chunks_without_neutral"] else "")
    samples = "".join(
        f"<details><summary>pair {i + 1}</summary><h4>input</h4><pre>{html.escape(s['input'][:TEXT_SHOWN])}</pre>"
        f"<h4>target</h4><pre>{html.escape(s['target'][:TEXT_SHOWN])}</pre></details>"
        for i, s in enumerate(data["samples"]))
    payload = json.dumps({k: v for k, v in data.items()}, ensure_ascii=False, sort_keys=True).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>etl report: {html.escape(data['version'])} (prose)</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 62rem; padding: 0 1rem; color: #222; }}
table {{ border-collapse: collapse; font-size: 14px; }} td, th {{ border-bottom: 1px solid #ddd; padding: .25rem .6rem;
text-align: left; }} .scroll {{ overflow-x: auto; }} pre {{ white-space: pre-wrap; background: #f6f6f6; padding: .5rem; }}
.note {{ background: #fff6dd; padding: .5rem; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>Version {html.escape(data['version'])}: long-form writing</h1>
<section id="overview"><h2>Overview</h2>
<p>{o['documents']:,} documents, {o['paragraphs']:,} paragraphs ({o['paragraphs_kept']:,} kept) →
{o['chunks']:,} chunks, {o['tokens']:,} {html.escape(o['counted_in'])} → {o['pairs']:,} pairs ({splits}).</p>
<p>dataset sha256 <code>{o['dataset_sha256']}</code></p>{neutral}</section>
<section id="documents"><h2>Documents</h2>
{_table(["title", "format", "published", "paragraphs", "chunks", "tokens", "split"],
        [[d["title"], d["format"], d["published"], d["paragraphs"], d["chunks"], d["tokens"], d["split"]]
         for d in data["documents"]])}</section>
<section id="chunks"><h2>Words per chunk</h2>
<p>{w['count']:,} chunks; min {w['min']:,}, median {w['median']:,}, max {w['max']:,} words.</p>{image}</section>
<section id="drops"><h2>Dropped, by stage and reason</h2>
{_table(["stage", "reason", "rows"], [[d["stage"], d["reason"], d["rows"]] for d in data["drops"]])}</section>
<section id="pairs"><h2>Pairs by kind</h2>
{_table(["kind", "pairs"], [[k, n] for k, n in data["pairs_by_kind"].items()])}{samples}</section>
<script type="application/json" id="report-data">{payload}</script>
</body></html>
"""
