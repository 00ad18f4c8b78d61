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
