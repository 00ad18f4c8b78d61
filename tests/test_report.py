"""`etl report`: every number on the page against the manifest and the warehouse, the page
in a real headless browser, edge-case versions, the comparison, the CLI and the demo."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner

from etl.build import build_version
from etl.cli import cli
from etl.config import Config, Owner
from etl.demo import run_demo
from etl.errors import EtlError
from etl.report import write_comparison, write_report
from etl.warehouse import open_warehouse
from factories import dialogue, land, message

AWS_KEY = "AKIAZ7QW3ERT5YUI9OPL"
DAY = 24 * 60
SPLITS = ("train", "valid", "test")


def chat_rows() -> list[dict]:
    rows = dialogue("deploy", [
        (False, "The deploy failed with a 503 error on the staging server."),
        (True, "Show me the logs first, then roll back staging."),
        (False, "Logs attached </script><script>alert('x')</script> & <img src=http://leak.example/x.png>"),
        (True, f"Bump the timeout to 30s and redeploy. Key is {AWS_KEY} if you need it."),
        (False, "Done, it is green now."),
        (True, "ok"),
    ])
    # One reply under many prompts: three stay, the rest are capped (reply_repeats).
    rows += dialogue("habit", [
        (False, f"question number {i} about the build?") if i % 2 == 0 else (True, "Ship it if CI is green.")
        for i in range(12)
    ], start=40 * DAY)
    # The same prompt and reply in two threads: an exact duplicate.
    rows += dialogue("twin-a", [(False, "Are we still on for the climbing gym tonight?"),
                                (True, "Yes, meet you there at seven, bring chalk.")], start=70 * DAY)
    rows += dialogue("twin-b", [(False, "Are we still on for the climbing gym tonight?"),
                                (True, "Yes, meet you there at seven, bring chalk.")], start=71 * DAY)
    # A typo makes a near duplicate; case and punctuation make the same dedup key (kept).
    rows += dialogue("near-1", [(False, "How did the interview go?"),
                                (True, "It went really well, they want a second round next Tuesday afternoon")], start=72 * DAY)
    rows += dialogue("near-2", [(False, "Any news from the company?"),
                                (True, "It went realy well, they want a second round next Tuesday afternoon!!")], start=73 * DAY)
    rows += dialogue("near-3", [(False, "So, the interview?"),
                                (True, "it went really well, they want a second round next tuesday afternoon :)")], start=74 * DAY)
    rows.append(message("react-1", None, owner=True, conversation="deploy", minutes=3.5, kind="reaction"))
    return rows


def mail_rows() -> list[dict]:
    rows = dialogue("invoice", [
        (False, "Can you send the invoice by Friday?"),
        (True, (
            "Sent it this morning, check your inbox.\n\nOn Tue, May 7, 2024 at 9:00 AM Alex <alex@example.com> wrote:\n"
            "> Can you send the invoice by Friday?"
        )),
    ], start=100 * DAY)
    return [{**r, "source": "mail", "source_id": f"mail-{r['source_id']}"} for r in rows]


def build(warehouse: Path, datasets: Path, version: str, **overrides):
    return build_version(warehouse, datasets, version, Config(owner=Owner(names=("Sam",))).with_build(**overrides))


def land_and_build(folder: Path) -> tuple[Path, Path]:
    warehouse, datasets = folder / "w.duckdb", folder / "datasets"
    land(warehouse, chat_rows(), name="test")
    land(warehouse, mail_rows(), name="mail")
    build(warehouse, datasets, "v1")
    return warehouse, datasets


@pytest.fixture
def built(tmp_path):
    """A warehouse with version v1 built, for tests that build more or write elsewhere."""
    return land_and_build(tmp_path)


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """v1 and its report, written once for the tests that only read them."""
    warehouse, datasets = land_and_build(tmp_path_factory.mktemp("reported"))
    path = write_report(warehouse, datasets, "v1")
    soup, data = read_page(path)
    return warehouse, datasets, path, soup, data


def read_page(path: Path) -> tuple[BeautifulSoup, dict]:
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    return soup, json.loads(soup.find("script", id="report-data").string)


def table(soup: BeautifulSoup, name: str) -> list[dict[str, str]]:
    found = soup.find("table", attrs={"data-table": name})
    assert found is not None, f"no table {name}"
    headers = [th.get_text() for th in found.thead.find_all("th")]
    return [dict(zip(headers, (td.get_text() for td in tr.find_all("td")))) for tr in found.tbody.find_all("tr")]


def number(cell: str) -> float | None:
    if cell == "—":
        return None
    value = float(cell.replace(",", "").replace("+", ""))
    return int(value) if value.is_integer() else value


def sql(warehouse: Path, query: str, *params) -> list[tuple]:
    with open_warehouse(warehouse, read_only=True) as con:
        return con.execute(query, list(params)).fetchall()


# ----------------------------------------------------------------------------- numbers


def test_funnel_and_drops_are_the_manifests_and_the_warehouses(reported):
    warehouse, datasets, _, soup, data = reported
    manifest = json.loads((datasets / "v1" / "manifest.json").read_text())
    counts = manifest["counts"]
    assert data["funnel"]["mismatches"] == []

    rows = {r["step"]: r for r in table(soup, "funnel")}
    stages = {s["stage"]: s for s in counts["stages"]}
    expected_totals = {
        "messages loaded": counts["messages"],
        **{f"after {name}": s["out"] for name, s in stages.items() if name != "examples"},
        "turns": counts["turns"],
        "candidate examples": counts["examples"]["candidates"],
        "examples kept": counts["examples"]["kept"],
        **{f"{s} split": counts["splits"][s] for s in SPLITS},
    }
    assert {step: number(r["total"]) for step, r in rows.items()} == expected_totals
    assert rows["turns"]["mail"] == rows["turns"]["test"] == "—"

    loaded = dict(sql(warehouse, "SELECT source, count(*) FROM raw_messages GROUP BY 1"))
    assert {s: number(rows["messages loaded"][s]) for s in ("mail", "test")} == loaded
    kept = dict(sql(warehouse, "SELECT source, count(*) FROM build_examples WHERE version = 'v1' GROUP BY 1"))
    assert {s: number(rows["examples kept"][s]) for s in ("mail", "test")} == kept
    for split in SPLITS:
        per_source = dict(sql(warehouse, "SELECT source, count(*) FROM build_examples WHERE version = 'v1' AND split = ? GROUP BY 1", split))
        assert {s: number(rows[f"{split} split"][s]) for s in ("mail", "test")} == {s: per_source.get(s, 0) for s in ("mail", "test")}
    after_meta = dict(sql(warehouse, "SELECT source, count(*) FROM raw_messages WHERE kind = 'text' GROUP BY 1"))
    assert {s: number(rows["after meta"][s]) for s in ("mail", "test")} == after_meta

    drops = {(r["stage"], r["reason"]): r for r in table(soup, "drops")}
    in_manifest = {(s["stage"], reason): n for s in counts["stages"] for reason, n in s["dropped"].items()}
    in_view = {(stage, reason): n for stage, reason, n in
               sql(warehouse, "SELECT stage, reason, dropped FROM build_drop_reasons WHERE version = 'v1'")}
    assert {k: number(r["dropped"]) for k, r in drops.items()} == in_manifest == in_view
    assert in_manifest[("examples", "reply_repeats")] == 3
    by_source = {(stage, reason, source): n for stage, reason, source, n in
                 sql(warehouse, "SELECT stage, reason, source, count(*) FROM build_drops WHERE version = 'v1' GROUP BY ALL")}
    for (stage, reason), row in drops.items():
        for source in ("mail", "test"):
            assert number(row[source]) == by_source.get((stage, reason, source), 0)

    # The embedded data says the same as the tables.
    assert [s["total"] for s in data["funnel"]["steps"]] == list(expected_totals.values())[: len(data["funnel"]["steps"])]
    assert {(d["stage"], d["reason"]): d["count"] for d in data["funnel"]["drops"]} == in_manifest


def test_time_regimes_redactions_and_hashes_are_the_manifests_and_the_warehouses(reported):
    warehouse, datasets, _, soup, data = reported
    folder = datasets / "v1"
    manifest = json.loads((folder / "manifest.json").read_text())

    months = sql(warehouse, "SELECT strftime(sent_at, '%Y-%m'), source, count(*) FROM build_examples WHERE version = 'v1' GROUP BY ALL")
    shown = {(r["month"], source): number(r[source]) for r in table(soup, "over_time") for source in ("mail", "test")}
    assert {k: n for k, n in shown.items() if n} == {(m, s): n for m, s, n in months}
    assert sum(number(r["total"]) for r in table(soup, "over_time")) == manifest["counts"]["examples"]["kept"]

    assert {r["regime"]: number(r["examples"]) for r in table(soup, "regimes")} == manifest["counts"]["regimes"]
    assert {r["regime"]: number(r["in the manifest"]) for r in table(soup, "regimes")} == manifest["counts"]["regimes"]
    values: dict[tuple[str, str], list[float]] = {}
    for regime, trajectory in sql(warehouse, "SELECT regime, trajectory FROM build_examples WHERE version = 'v1'"):
        for name, value in json.loads(trajectory).items():
            if name != "regime" and value is not None:
                values.setdefault((name, regime), []).append(value)
    shown = {(r["scalar"].split(":")[0], r["regime"]): r for r in table(soup, "scalars")}
    assert set(shown) == set(values) and values
    for key, xs in values.items():
        row = shown[key]
        assert (number(row["examples"]), number(row["min"]), number(row["max"])) == (len(xs), min(xs), max(xs))
        assert number(row["median"]) == pytest.approx(statistics.median(xs))
        assert number(row["mean"]) == round(statistics.mean(xs), 3)

    cards = {c.find("span").get_text(): c.find("b").get_text() for c in soup.select(".card")}
    assert number(cards["messages"]) == manifest["counts"]["messages"]
    assert number(cards["examples"]) == manifest["counts"]["examples"]["kept"]
    assert {s: number(cards[s]) for s in SPLITS} == manifest["counts"]["splits"]

    redactions = {r["type"]: number(r["count"]) for r in table(soup, "redactions")}
    assert redactions == {**manifest["redactions"], "total": sum(manifest["redactions"].values())}
    assert redactions["aws_access_key"] == 1
    assert AWS_KEY not in soup.get_text() and AWS_KEY not in json.dumps(data)

    files = {r["file"]: r for r in table(soup, "files")}
    assert {f: (r["sha256"], number(r["records"]), number(r["bytes"])) for f, r in files.items()} == {
        f: (i["sha256"], i["records"], i["bytes"]) for f, i in manifest["files"].items()
    }
    assert soup.find("pre").get_text() == (folder / "SHA256SUMS").read_text()
    assert manifest["dataset_sha256"] in soup.find("header").get_text()
    assert data["hashes"]["verified"] == "every file matches SHA256SUMS and the manifest"


def test_lengths_are_those_of_the_texts_before_and_after_cleaning(reported):
    warehouse, _, _, soup, data = reported
    rows = {(r["unit"], r["text"], r["cleaning"]): r for r in table(soup, "lengths")}
    examples = sql(warehouse, "SELECT response, prompt, message_ids, context_ids, source FROM build_examples WHERE version = 'v1'")
    raw = {(s, i): t for s, i, t in sql(warehouse, "SELECT source, source_id, text FROM raw_messages")}
    texts = {
        ("replies", "after"): [e[0] for e in examples],
        ("prompts", "after"): [e[1] for e in examples],
        ("replies", "before"): ["\n".join(raw[(e[4], i)] for i in e[2]) for e in examples],
        ("prompts", "before"): ["\n".join(raw[(e[4], i)] for i in e[3]) for e in examples],
    }
    for (what, when), values in texts.items():
        lengths = sorted(len(t) for t in values)
        row = rows[("chars", what, when)]
        assert number(row["examples"]) == len(lengths)
        assert number(row["max"]) == max(lengths)
        assert number(row["median"]) == statistics.median(lengths)
        assert number(row["mean"]) == round(statistics.mean(lengths), 1)
        assert number(row["90th percentile"]) == lengths[int(0.9 * (len(lengths) - 1))]
        assert sum(data["lengths"]["chars"][what][when]["histogram"]["counts"]) == len(lengths)
    # The quoted email is cut by cleaning: the reply is shorter after.
    assert number(rows[("chars", "replies", "before")]["max"]) > number(rows[("chars", "replies", "after")]["max"])
    assert "tokens: no tokenizer given" in soup.get_text()
    assert data["lengths"]["tokens"] is None


def test_duplicate_clusters_show_kept_and_dropped_members(reported):
    warehouse, _, _, soup, data = reported
    dups = data["duplicates"]
    recorded = sql(warehouse, """SELECT detail, reason, example_id, round(similarity, 3) FROM build_drops
                                 WHERE version = 'v1' AND reason IN ('duplicate', 'near_duplicate', 'reply_repeats')""")
    assert dups["dropped_by_reason"] == {"duplicate": 1, "near_duplicate": 1, "reply_repeats": 3}
    shown = [
        (c["kept_example"], m["reason"], m["example_id"], m["similarity"]) for c in dups["clusters"] for m in c["dropped_members"]
    ]
    assert sorted(shown) == sorted(recorded)
    assert all(0.8 <= m[3] <= 1.0 for m in shown)
    kept_ids = {i for (i,) in sql(warehouse, "SELECT example_id FROM build_examples WHERE version = 'v1'")}
    sizes = {c["kept_example"]: (c["kept"], c["dropped"]) for c in dups["clusters"]}
    habit, near = (sql(warehouse, "SELECT example_id FROM build_examples WHERE version = 'v1' AND conversation_id = ? "
                                  "ORDER BY sent_at LIMIT 1", c)[0][0] for c in ("habit", "near-1"))
    assert sizes[habit] == (3, 3)  # "Ship it if CI is green." kept three times, capped three times
    assert sizes[near] == (2, 1)  # the same words in other case kept; the typo version dropped
    for cluster in dups["clusters"]:
        assert cluster["size"] == cluster["kept"] + cluster["dropped"]
        assert {m["example_id"] for m in cluster["kept_members"]} <= kept_ids
    assert [number(r["examples"]) for r in table(soup, "duplicates")] == [c["size"] for c in dups["clusters"]]
    assert "It went realy well" in soup.find(id="duplicates").get_text()


def test_samples_come_from_the_written_files_escaped(reported):
    _, datasets, path, soup, data = reported
    for split in SPLITS:
        lines = (datasets / "v1" / "chatml" / f"{split}.jsonl").read_text().splitlines()
        assert [s["id"] for s in data["samples"][split]["shown"]] == [json.loads(x)["id"] for x in lines[:20]]
    # Message text with markup stays text: the only elements are the page's own.
    page = path.read_text()
    assert "alert('x')" in soup.get_text()
    assert [s.get("id") for s in soup.find_all("script")] == ["report-data"]
    assert all(img["src"].startswith("data:image/png;base64,") for img in soup.find_all("img"))
    assert "<script>alert" not in page and "</script><script>" not in page


def test_the_page_loads_nothing_from_anywhere(reported):
    *_, soup, _ = reported
    assert soup.find("link") is None
    for tag in soup.find_all(True):
        for attribute in ("src", "href", "srcset", "poster", "data", "action"):
            value = tag.get(attribute)
            if value is not None:
                assert value.startswith(("data:", "#")), (tag.name, attribute, value[:60])


def test_report_files_are_private(reported):
    _, datasets, path, *_ = reported
    assert path == datasets.parent / "reports" / "v1" / "report.html"
    for p in (path.parent.parent, path.parent, path.parent / "charts"):
        assert p.stat().st_mode & 0o777 == 0o700, p
    for p in [path, *(path.parent / "charts").iterdir()]:
        assert p.stat().st_mode & 0o777 == 0o600, p
    assert {p.name for p in (path.parent / "charts").iterdir()} >= {"funnel.png", "drops.png", "lengths.png", "duplicates.png"}


# ----------------------------------------------------------------------------- edge cases


def test_a_build_with_no_examples_writes_no_version_to_report(tmp_path):
    # Such a build fails with its funnel instead (tests/test_build.py); the report names the gap.
    warehouse, datasets = tmp_path / "w.duckdb", tmp_path / "datasets"
    land(warehouse, dialogue("c", [(False, "hello there, anyone around?"), (False, "guess not, talk later then")]))
    with pytest.raises(EtlError, match="v1: no examples, nothing written: 2 messages"):
        build(warehouse, datasets, "v1")
    with pytest.raises(EtlError, match="v1"):
        write_report(warehouse, datasets, "v1")
    assert not datasets.exists() and not (tmp_path / "reports").exists()


def test_a_single_source_version_reports(tmp_path):
    warehouse, datasets = tmp_path / "w.duckdb", tmp_path / "datasets"
    land(warehouse, mail_rows(), name="mail")
    build(warehouse, datasets, "v1")
    soup, data = read_page(write_report(warehouse, datasets, "v1"))
    assert data["funnel"]["sources"] == ["mail"]
    rows = table(soup, "funnel")
    assert list(rows[0]) == ["step", "total", "mail"]
    assert number(rows[-4]["total"]) == number(rows[-4]["mail"]) == 1  # examples kept


# ----------------------------------------------------------------------------- comparison


def test_comparison_counts_and_changed_examples(built):
    warehouse, datasets = built
    later = dialogue("receipt", [(False, "Did the receipt come through?"), (True, "It did, filed it under March expenses.")],
                     start=120 * DAY)
    land(warehouse, [{**r, "source": "mail"} for r in later], name="mail")
    build(warehouse, datasets, "v2", max_reply_repeats=1, min_response_chars=2)
    soup, data = read_page(write_comparison(warehouse, datasets, "v1", "v2"))
    old, new = (json.loads((datasets / v / "manifest.json").read_text()) for v in ("v1", "v2"))

    totals = {r["count"]: r for r in table(soup, "totals")}
    assert number(totals["examples"]["v1"]) == old["counts"]["examples"]["kept"]
    assert number(totals["examples"]["v2"]) == new["counts"]["examples"]["kept"]
    assert number(totals["examples"]["difference"]) == new["counts"]["examples"]["kept"] - old["counts"]["examples"]["kept"]
    assert number(totals["messages"]["difference"]) == 2

    by_source = {r["source"]: r for r in table(soup, "examples_by_source")}
    for source in ("mail", "test"):
        a, b = old["counts"]["examples_by_source"].get(source, 0), new["counts"]["examples_by_source"].get(source, 0)
        assert (number(by_source[source]["v1"]), number(by_source[source]["v2"]), number(by_source[source]["difference"])) == (a, b, b - a)
    drops = {r["stage: reason"]: r for r in table(soup, "drops")}
    assert number(drops["examples: reply_repeats"]["v1"]) == 3
    assert number(drops["examples: reply_repeats"]["v2"]) == 6  # five "Ship it" and one "It went really well"
    assert number(drops["examples: short_response"]["v2"]) == 0

    ids = {v: {i for (i,) in sql(warehouse, "SELECT example_id FROM build_examples WHERE version = ?", v)} for v in ("v1", "v2")}
    changed = data["changed_examples"]
    assert changed["added"] == len(ids["v2"] - ids["v1"]) == 2  # "ok" now long enough, and the new email
    assert changed["removed"] == len(ids["v1"] - ids["v2"]) == 3  # capped at one copy now
    assert changed["in_both"] == len(ids["v1"] & ids["v2"])
    assert {x["example_id"] for x in changed["added_examples"]} == ids["v2"] - ids["v1"]
    assert {x["example_id"] for x in changed["removed_examples"]} == ids["v1"] - ids["v2"]
    listed = soup.find(id="examples").get_text()
    assert all(i in listed for i in ids["v2"] - ids["v1"])
    assert "examples: reply_repeats" in listed  # why v2 dropped what v1 had
    settings = {r["setting"]: (r["v1"], r["v2"]) for r in table(soup, "config")}
    assert settings == {"build.max_reply_repeats": ("3", "1"), "build.min_response_chars": ("10", "2")}


# ----------------------------------------------------------------------------- CLI and demo


def test_cli_writes_opens_and_compares(built, tmp_path, monkeypatch):
    warehouse, datasets = built
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url))
    run = CliRunner()
    base = ["--warehouse", str(warehouse), "--datasets", str(datasets), "report"]

    result = run.invoke(cli, [*base, "v1", "--open"])
    assert result.exit_code == 0, result.output
    path = datasets.parent / "reports" / "v1" / "report.html"
    assert result.output == f"report: {path}\n"
    assert opened == [path.as_uri()]

    build(warehouse, datasets, "v2", max_reply_repeats=2)
    result = run.invoke(cli, [*base, "v1", "v2"])
    assert result.exit_code == 0, result.output
    assert result.output == f"report: {datasets.parent / 'reports' / 'v1-vs-v2' / 'report.html'}\n"
    custom = tmp_path / "elsewhere"
    result = run.invoke(cli, [*base, "v2", "v1", "--output", str(custom)])
    assert result.exit_code == 0 and (custom / "report.html").is_file()
    assert read_page(custom / "report.html")[1]["old"] == "v2"

    for args, needle in (
        (["v9"], "no version v9 in the warehouse"),
        (["v1", "v9"], "versions built: v1, v2"),
        (["v1", "v1"], "two different versions"),
    ):
        result = run.invoke(cli, [*base, *args])
        assert result.exit_code != 0
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("etl: error: ") and needle in lines[0], result.output


def test_tokenizer_counts_tokens(built, tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    warehouse, datasets = built
    words = sorted({w for r in chat_rows() + mail_rows() for w in (r["text"] or "").split()})
    model = tokenizers.models.WordLevel({w: i for i, w in enumerate(["[UNK]", *words])}, unk_token="[UNK]")
    tokenizer = tokenizers.Tokenizer(model)
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tokenizer.save(str(tmp_path / "tokenizer.json"))

    soup, data = read_page(write_report(warehouse, datasets, "v1", tokenizer=tmp_path))
    responses = [r for (r,) in sql(warehouse, "SELECT response FROM build_examples WHERE version = 'v1'")]
    counts = sorted(len(r.split()) for r in responses)
    row = next(r for r in table(soup, "lengths") if (r["unit"], r["text"], r["cleaning"]) == ("tokens", "replies", "after"))
    assert (number(row["examples"]), number(row["max"]), number(row["median"])) == (len(counts), max(counts), statistics.median(counts))
    assert data["lengths"]["tokenizer"] == str(tmp_path)
    assert "no tokenizer given" not in soup.get_text()

    result = CliRunner().invoke(cli, ["--warehouse", str(warehouse), "--datasets", str(datasets),
                                      "report", "v1", "--tokenizer", str(datasets)])
    assert result.exit_code != 0 and "no tokenizer.json there" in result.output


def test_demo_ends_with_the_report_path(tmp_path):
    lines: list[str] = []
    run_demo(tmp_path / "demo", echo=lines.append)
    path = tmp_path / "demo" / "reports" / "v1" / "report.html"
    assert lines[-1].endswith(str(path)) and lines[-1].startswith("report of v1")
    _, data = read_page(path)
    assert data["version"] == "v1" and data["funnel"]["mismatches"] == []
    assert data["overview"]["examples"] == json.loads((tmp_path / "demo" / "datasets" / "v1" / "manifest.json").read_text())["counts"]["examples"]["kept"]


# ----------------------------------------------------------------------------- a real browser


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("ETL_REQUIRE_SHARED_FIXTURES") == "1" or os.environ.get("CI"):
            pytest.fail("chromium is not installed; CI installs it with `apt-get install -y chromium`")
        pytest.skip("chromium is not installed (apt-get install chromium) to render the report")
    return found


def screenshot(page: Path, out: Path) -> list[str]:
    """Render `page` headless; returns every URL the page itself asked the network for.

    Host names resolve to nothing and any connection goes to a closed local port, so even
    a bad page cannot reach anything; the net log tells what it tried. Requests the browser
    makes for itself (updates, accounts) have no page origin and are left out.
    """
    net_log = out.with_suffix(".netlog.json")
    subprocess.run(
        [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions", "--no-first-run",
            f"--user-data-dir={out.parent / 'chromium-profile'}",
            "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
            f"--log-net-log={net_log}", f"--screenshot={out}", "--window-size=1280,4000", page.resolve().as_uri(),
        ],
        check=True, capture_output=True, timeout=120,
    )
    text = net_log.read_text()
    try:
        log = json.loads(text)
    except ValueError:  # a log cut short at exit lacks its closing brackets
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    jobs = [e.get("params") or {} for e in log["events"] if e["type"] == start_job]
    return [p["url"] for p in jobs if "url" in p and p.get("initiator") != "not an origin"]


def test_the_page_renders_in_a_headless_browser_without_the_network(built, tmp_path):
    from PIL import Image

    warehouse, datasets = built
    path = write_report(warehouse, datasets, "v1")
    shot = tmp_path / "shot.png"
    requested = screenshot(path, shot)
    assert [u for u in requested if not u.startswith(("file:", "data:"))] == []

    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 4000)
    colours = image.getcolors(maxcolors=1 << 24)
    assert len(colours) > 500, "the page looks blank"
    # The charts were decoded and drawn: the funnel's bars are the first palette colour.
    funnel_blue = sum(n for n, (r, g, b) in colours if abs(r - 0x4E) < 8 and abs(g - 0x79) < 8 and abs(b - 0xA7) < 8)
    assert funnel_blue > 5000

    comparison = tmp_path / "comparison.png"
    build(warehouse, datasets, "v2", max_reply_repeats=1)
    assert [u for u in screenshot(write_comparison(warehouse, datasets, "v1", "v2"), comparison)
            if not u.startswith(("file:", "data:"))] == []
    assert len(Image.open(comparison).convert("RGB").getcolors(maxcolors=1 << 24)) > 100


def test_the_network_check_catches_a_page_that_loads_something(tmp_path):
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<html><body><img src="http://leak.example/x.png">hello</body></html>')
    requested = screenshot(leaky, tmp_path / "leaky.png")
    assert "http://leak.example/x.png" in requested
