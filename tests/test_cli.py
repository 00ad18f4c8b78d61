import json
import sqlite3
import subprocess
import sys

import pytest
from click.testing import CliRunner

from etl.cli import cli
from factories import dialogue, land


@pytest.fixture
def run(tmp_path):
    warehouse = tmp_path / "w.duckdb"

    def invoke(*args, input=None):
        return CliRunner().invoke(cli, ["--warehouse", str(warehouse), *args], input=input)

    invoke.warehouse = warehouse
    return invoke


def _one_line_error(result, *needles):
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("etl: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_sources_lists_the_connectors(run):
    result = run("sources")
    assert result.exit_code == 0
    assert "imessage" in result.output


def test_unknown_source_names_the_available_ones(run):
    _one_line_error(run("ingest", "myspace"), "unknown source 'myspace'", "imessage")


def test_sql_formats(run):
    land(run.warehouse, dialogue("c", [(False, "hello there friend"), (True, "hey, long time no see")]))
    table = run("sql", "select kind, count(*) as n from messages group by 1")
    assert table.exit_code == 0 and "text" in table.output and "2" in table.output
    as_csv = run("sql", "select kind, count(*) as n from messages group by 1", "--format", "csv")
    assert as_csv.output == "kind,n\ntext,2\n"
    as_json = run("sql", "select owner, count(*) as n from messages group by 1 order by 1", "--format", "json")
    assert [json.loads(line) for line in as_json.output.splitlines()] == [{"owner": "other", "n": 1}, {"owner": "owner", "n": 1}]


def test_sql_is_read_only(run):
    land(run.warehouse, dialogue("c", [(False, "hello there friend")]))
    _one_line_error(run("sql", "delete from raw_messages"), "SQL error")
    assert run("sql", "select count(*) as n from raw_messages", "--format", "csv").output == "n\n1\n"


def test_sql_error_is_one_line(run):
    land(run.warehouse, dialogue("c", [(False, "hello there friend")]))
    _one_line_error(run("sql", "select nope from messages"), "SQL error")


def test_sql_without_a_warehouse(run):
    _one_line_error(run("sql", "select 1"), "no warehouse at", "etl ingest")


def test_status_shows_counts_runs_and_quarantine(run):
    land(run.warehouse, dialogue("c", [(False, "hello there friend"), (True, "hey, long time no see")]))
    result = run("status")
    assert result.exit_code == 0, result.output
    assert "messages by source" in result.output and "quarantined rows: 0" in result.output
    assert "test" in result.output


def test_init_writes_a_config_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(cli, ["init"]).exit_code == 0
    assert (tmp_path / "corpus.toml").read_text().startswith("# corpus.toml")
    _one_line_error(CliRunner().invoke(cli, ["init"]), "already exists", "--force")


def test_ingest_missing_database(run, tmp_path):
    _one_line_error(run("ingest", "imessage", "--db", str(tmp_path / "nope.db")), str(tmp_path / "nope.db"))
    assert not run.warehouse.exists()


def test_ingest_file_that_is_not_sqlite(run, tmp_path):
    bogus = tmp_path / "chat.db"
    bogus.write_text("not a database at all\n" * 100)
    _one_line_error(run("ingest", "imessage", "--db", str(bogus)), str(bogus))
    assert not run.warehouse.exists()


def test_ingest_sqlite_without_messages_schema(run, tmp_path):
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        con.execute("create table notes (id integer primary key, body text)")
    _one_line_error(run("ingest", "imessage", "--db", str(other)), str(other))


def test_ingest_truncated_database(run, tmp_path):
    from etl.demo import samples

    broken = tmp_path / "truncated.db"
    data = (samples() / "chat.db").read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    result = run("ingest", "imessage", "--db", str(broken))
    _one_line_error(result, str(broken))


def test_failed_ingest_leaves_an_existing_warehouse_unchanged(run, tmp_path):
    land(run.warehouse, dialogue("c", [(False, "hello there friend")]))
    before = run("sql", "select count(*) as n from ingest_runs", "--format", "csv").output
    bogus = tmp_path / "chat.db"
    bogus.write_text("garbage\n" * 100)
    _one_line_error(run("ingest", "imessage", "--db", str(bogus)), str(bogus))
    assert run("sql", "select count(*) as n from ingest_runs", "--format", "csv").output == before


def test_locked_warehouse_from_the_cli(run):
    land(run.warehouse, dialogue("c", [(False, "hello there friend")]))
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb,sys; c=duckdb.connect({str(run.warehouse)!r}); print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        from etl.demo import samples

        result = run("ingest", "imessage", "--db", str(samples() / "chat.db"))
        _one_line_error(result, "in use by another etl process", str(run.warehouse))
        assert result.exit_code == 3
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_demo_end_to_end(tmp_path):
    home = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "0 new (ingest is idempotent)" in result.output
    version = home / "datasets" / "v1"
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=version, check=True)
    args = ["--warehouse", str(home / "warehouse.duckdb"), "--datasets", str(home / "datasets")]
    verified = CliRunner().invoke(cli, [*args, "verify", "v1", "--rebuild"])
    assert verified.exit_code == 0, verified.output
    again = CliRunner().invoke(cli, ["demo", "--home", str(home)])
    assert again.exit_code == 0, again.output


def test_demo_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("mine")
    _one_line_error(CliRunner().invoke(cli, ["demo", "--home", str(tmp_path)]), "not a demo folder")
    assert (tmp_path / "precious.txt").exists()


def test_shell_answers_queries_until_quit(run):
    land(run.warehouse, dialogue("c", [(False, "hello there friend")]))
    result = run("shell", input="select count(*) as n\nfrom messages;\nselect nope;\n.quit\n")
    assert result.exit_code == 0, result.output
    assert "│ 1   │" in result.output or "│ 1 │" in result.output
    assert "SQL error" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["build", "--version", "v1"],
        ["build", "--version", "v1", "--dry-run"],
        ["status"],
        ["sql", "select 1"],
        ["shell", "--write"],
        ["verify", "v1"],
        ["diff", "v1", "v2"],
        ["report", "v1"],
        ["train", "sft", "--version", "v1", "--dry-run"],
        ["train", "dpo", "--version", "v1"],
        ["train", "rejected", "--version", "v1", "--model", "m"],
        ["train", "rejected", "--from-jsonl", "answers.jsonl", "--model", "m"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_a_mistyped_warehouse_is_refused_and_never_created(tmp_path, args):
    # Only `etl ingest` creates a warehouse: a typo elsewhere must not leave an empty one behind.
    typo = tmp_path / "wharehouse.duckdb"
    datasets = tmp_path / "datasets"
    (datasets / "v1").mkdir(parents=True)  # a version folder exists: the warehouse is still needed
    result = CliRunner().invoke(cli, ["--warehouse", str(typo), "--datasets", str(datasets), *args], input=".quit\n")
    _one_line_error(result, f"no warehouse at {typo}", "etl ingest")
    assert not typo.exists() and not typo.with_name(typo.name + ".wal").exists()


def test_an_empty_file_left_by_a_killed_first_run_is_no_warehouse(run):
    run.warehouse.write_bytes(b"")
    _one_line_error(run("status"), "no warehouse at")
    from etl.demo import samples

    assert run("ingest", "imessage", "--db", str(samples() / "chat.db")).exit_code == 0
    assert run("status").exit_code == 0


def test_a_sql_error_keeps_its_first_line_and_where(run):
    land(run.warehouse, dialogue("c", [(False, "hello there friend")]))
    result = run("sql", "selec nope from messages")
    _one_line_error(result, "SQL error", "LINE 1:")


def test_an_error_quoting_a_huge_line_stays_short(run, tmp_path):
    transcript = tmp_path / "talk.srt"
    transcript.write_text("1\n" + "00:00:0x --> " + "9" * 1_000_000 + "\nhello\n", encoding="utf-8")
    result = run("ingest", "transcript", str(transcript))
    _one_line_error(result, str(transcript))
    assert len(result.output.strip()) <= 300
    assert "9" * 121 not in result.output


def test_unexpected_errors_are_one_short_line(run, monkeypatch):
    import etl.inspect

    def explode(*args, **kwargs):
        raise ValueError("first line " + "x" * 5000 + "\nsecond line\nthird")

    monkeypatch.setattr(etl.inspect, "status_report", explode)
    monkeypatch.setattr(sys, "_called_from_test", False)
    result = run("status")
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith("etl: unexpected error: ValueError: first line xxx") and len(line) <= 300
    assert "second line" not in line and "ETL_RAISE_ERRORS" in line
