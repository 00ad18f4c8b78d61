"""The Supabase/PostgreSQL connector against a real PostgreSQL server started for the tests."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import psycopg
import pytest
from click.testing import CliRunner
from postgres import PASSWORD, Server, free_port, server_or_skip

from etl.cli import cli
from etl.schemas.tables import RAW_MESSAGES
from etl.sources import SourceContext, SourceError, get_source
from etl.sources.supabase import Dsn, address_of, connect, is_local

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
_databases = itertools.count()


@pytest.fixture(scope="session")
def server():
    with server_or_skip() as running:
        yield running


@pytest.fixture()
def db(server: Server):
    """A fresh database on the shared server; its DSN (with the password)."""
    name = f"turns_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(server.dsn(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield server.dsn(dbname=name)
    with psycopg.connect(server.dsn(), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def sql(dsn: str, *statements: str, params=None) -> None:
    with psycopg.connect(dsn, autocommit=True) as con:
        for statement in statements:
            con.execute(statement, params)


TURNS_DDL = (
    "CREATE TABLE memory_turns (id bigint PRIMARY KEY, session_id text, role text, content text, "
    "created_at timestamptz, metadata jsonb)"
)


def add_turns(dsn: str, first: int, last: int, minute_of=None) -> None:
    """Turns `first`..`last`: seven sessions, user and assistant alternating, ten turns per minute.

    Turn i is at minute (7 i mod 1000): every minute holds ten turns whose ids are far apart,
    so (created_at, id) order is not id order and each batch boundary splits a minute.
    """
    minute = minute_of or "(i * 7) % 1000"
    sql(
        dsn,
        "INSERT INTO memory_turns SELECT i, 'session-' || (i % 7), "
        "CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END, "
        "'turn number ' || i || ' of a long talk', "
        f"timestamptz '2024-05-01 08:00+00' + ({minute}) * interval '1 minute', "
        "jsonb_build_object('n', i) "
        f"FROM generate_series({first}, {last}) AS i",
    )


def read(dsn: str, *, watermark=None, **options):
    """Every batch the connector yields, and its context."""
    ctx = SourceContext(
        paths=[],
        options={"dsn": dsn, **options},
        owner=None,
        previous_watermark=lambda stream: watermark,
    )
    return list(get_source("supabase").read(ctx)), ctx


def rows_of(batches) -> pl.DataFrame:
    if not batches:
        return RAW_MESSAGES.empty_frame(exclude=("ingest_run_id",))
    return pl.concat([b.rows for b in batches])


def ingest(warehouse: Path, *args: str, env: dict | None = None):
    return CliRunner().invoke(cli, ["--warehouse", str(warehouse), "ingest", "supabase", *args], env=env)


def warehouse_text(warehouse: Path) -> str:
    """Every value of every table and view of the warehouse, as text."""
    parts = []
    with duckdb.connect(str(warehouse), read_only=True) as con:
        names = [n for (n,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        for name in names:
            for row in con.execute(f'SELECT * FROM "{name}"').fetchall():
                parts.append(repr(row))
    return "\n".join(parts)


# ----------------------------------------------------------------------------- incremental runs


def test_ten_thousand_turns_then_five_hundred_then_none(db, server, tmp_path):
    sql(db, TURNS_DDL)
    add_turns(db, 1, 10_000)
    warehouse = tmp_path / "w.duckdb"

    started = time.perf_counter()
    first = ingest(warehouse, "--dsn", db)
    seconds = time.perf_counter() - started
    assert first.exit_code == 0, first.output
    assert "10,000 read, 10,000 new, 0 already present, 0 quarantined" in first.output
    print(f"10,000 turns ingested in {seconds:.2f} s")

    # Fifty later turns share the newest minute already read (with larger ids, as a
    # sequence gives them); the rest come after it.
    add_turns(db, 10_001, 10_500, minute_of="CASE WHEN i <= 10050 THEN 999 ELSE 1000 + i - 10050 END")
    second = ingest(warehouse, "--dsn", db)
    assert second.exit_code == 0, second.output
    assert "500 read, 500 new, 0 already present" in second.output

    third = ingest(warehouse, "--dsn", db)
    assert third.exit_code == 0, third.output
    assert "0 read, 0 new" in third.output
    assert "nothing new since the last run" in third.output

    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT source_id) FROM raw_messages").fetchone() == (10_500, 10_500)
        assert con.execute("SELECT new FROM ingest_runs ORDER BY started_at").fetchall() == [(10_000,), (500,), (0,)]
        assert con.execute(
            "SELECT is_owner, count(*) FROM raw_messages GROUP BY 1 ORDER BY 1"
        ).fetchall() == [(False, 5250), (True, 5250)]
        assert con.execute("SELECT count(DISTINCT conversation_id) FROM raw_messages").fetchone() == (7,)
        turn = con.execute(
            "SELECT source_id, conversation_id, sender, kind, text, sent_at, metadata "
            "FROM raw_messages WHERE source_id = 'memory_turns:143'"
        ).fetchone()
        stream, value = con.execute("SELECT stream, value FROM watermarks WHERE source = 'supabase'").fetchone()
    assert turn[:5] == ("memory_turns:143", "session-3", "assistant", "text", "turn number 143 of a long talk")
    assert turn[5] == T0 + timedelta(minutes=(143 * 7) % 1000)
    assert json.loads(turn[6]) == {"metadata": {"n": 143}, "table": "memory_turns"}
    dbname = db.rsplit("/", 1)[1]
    assert stream == f"postgresql://etl_test@127.0.0.1:{server.port}/{dbname}?table=public.memory_turns"
    assert json.loads(value) == {
        "created_at": (T0 + timedelta(minutes=1450)).isoformat(),
        "id": "10500",
        "id_type": "bigint",
    }


def test_nothing_in_the_warehouse_the_version_or_the_output_carries_the_password(db, tmp_path):
    sql(db, TURNS_DDL)
    add_turns(db, 1, 300)
    sql(db, "INSERT INTO memory_turns VALUES (9999, 's', 'user', 'no time', NULL, NULL)")
    warehouse = tmp_path / "w.duckdb"
    outputs = [ingest(warehouse, "--dsn", db).output]
    add_turns(db, 301, 320, minute_of="2000 + i")
    outputs.append(ingest(warehouse, env={"SUPABASE_DB_URL": db}).output)
    # A run that fails leaves nothing, and says nothing of the password either.
    outputs.append(ingest(warehouse, "--dsn", db, "--table", "nope").output)
    assert "21 read, 20 new, 1 already present" in outputs[1]  # the untimed turn is read again
    datasets = tmp_path / "datasets"
    built = CliRunner().invoke(cli, ["--warehouse", str(warehouse), "--datasets", str(datasets), "build", "--version", "v1"])
    assert built.exit_code == 0, built.output
    outputs.append(built.output)
    written = [p for p in datasets.rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in written)
    for path in written:
        assert PASSWORD not in path.read_text(encoding="utf-8", errors="replace"), path
    text = warehouse_text(warehouse)
    assert "memory_turns:9999" in text and "<redacted>" in text  # the dump did read the tables
    assert PASSWORD not in text
    for output in outputs:
        assert PASSWORD not in output


def test_batches_split_minutes_and_resume_from_any_of_them(db):
    sql(db, TURNS_DDL)
    add_turns(db, 1, 10_000)
    batches, _ = read(db, batch_size=997)
    assert [b.rows.height for b in batches] == [997] * 10 + [30]
    everything = rows_of(batches)
    assert everything["source_id"].is_unique().all() and everything.height == 10_000
    # Read in (created_at, id) order, across every batch boundary.
    keys = list(zip(everything["sent_at"], (int(s.split(":")[1]) for s in everything["source_id"])))
    assert keys == sorted(keys)
    # A boundary falls inside a minute; resuming from it reads exactly the rest.
    third = batches[2].watermark
    boundary_minute = datetime.fromisoformat(third["created_at"])
    assert everything["sent_at"][997 * 3] == boundary_minute
    rest, _ = read(db, watermark=third, batch_size=997)
    assert rows_of(rest)["source_id"].to_list() == everything["source_id"].to_list()[997 * 3 :]


def test_uuid_ids_and_a_naive_timestamp_column(db):
    sql(
        db,
        "CREATE TABLE memory_turns (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), session_id uuid, "
        "role text, content text, created_at timestamp)",
        "INSERT INTO memory_turns (session_id, role, content, created_at) "
        "SELECT '00000000-0000-0000-0000-000000000001', 'user', 'hello ' || i, "
        "timestamp '2024-05-01 08:00' + (i / 4) * interval '1 second' FROM generate_series(1, 40) AS i",
    )
    batches, ctx = read(db, batch_size=7)
    frame = rows_of(batches)
    assert frame.height == 40
    assert frame["sent_at"].min() == T0  # a naive column is UTC
    assert any("has no time zone; read as UTC" in note for note in ctx.notes)
    rest, _ = read(db, watermark=batches[2].watermark)
    assert rows_of(rest)["source_id"].to_list() == frame["source_id"].to_list()[21:]
    assert batches[-1].watermark["id_type"] == "uuid"


def test_roles_owner_kinds_and_odd_rows(db):
    sql(
        db,
        "CREATE TABLE memory_turns (id int, conversation_id text, role text, content jsonb, "
        "created_at timestamptz)",
        """INSERT INTO memory_turns VALUES
        (1, 'c', 'system', '"You are helpful."', '2024-05-01 08:00+00'),
        (2, 'c', 'Human', '"hi there, how are you"', '2024-05-01 08:01+00'),
        (3, 'c', 'AI', '{"text": "fine, thanks"}', '2024-05-01 10:02+02'),
        (4, 'c', 'tool', '[{"type": "text", "text": "42"}, {"type": "image"}]', '2024-05-01 08:03+00'),
        (5, 'c', 'narrator', '"once upon a time"', '2024-05-01 08:04+00'),
        (6, NULL, 'user', '"a turn without a session"', '2024-05-01 08:05+00'),
        (7, 'c', 'assistant', '{"tool_calls": [1]}', '2024-05-01 08:06+00'),
        (NULL, 'c', 'user', '"no id"', '2024-05-01 08:07+00'),
        (8, 'c', 'user', '"no time"', NULL)""",
    )
    batches, ctx = read(db)
    frame = rows_of(batches).sort("source_id")
    assert frame.select("source_id", "is_owner", "kind", "text").rows() == [
        ("memory_turns:1", False, "system", "You are helpful."),
        ("memory_turns:2", True, "text", "hi there, how are you"),
        ("memory_turns:3", False, "text", "fine, thanks"),
        ("memory_turns:4", False, "tool", "42"),
        ("memory_turns:5", None, "text", "once upon a time"),
        ("memory_turns:6", True, "text", "a turn without a session"),
        ("memory_turns:7", False, "text", None),
        ("memory_turns:8", True, "text", "no time"),
    ]
    assert frame["sent_at"][2] == datetime(2024, 5, 1, 8, 2, tzinfo=UTC)  # +02 → UTC
    assert frame["sent_at"][7] is None
    assert frame["conversation_id"][5] == "memory_turns:no-session"
    assert json.loads(frame["metadata"][6])["content"] == {"tool_calls": [1]}
    (quarantined,) = [q for b in batches for q in b.quarantined]
    assert quarantined.reason == "no id: the turn has no id to key it on"
    assert json.loads(quarantined.payload)[0] is None
    notes = " | ".join(ctx.notes)
    assert "1 row(s) have no created_at" in notes
    assert "'narrator' (1)" in notes
    assert "1 row(s) have no conversation_id" in notes
    # The untimed turn is read again every run; the rest are not.
    again, _ = read(db, watermark=batches[0].watermark)
    assert rows_of(again)["source_id"].to_list() == ["memory_turns:8"]


def test_recent_turns_wait_for_the_next_run(db):
    sql(db, TURNS_DDL)
    add_turns(db, 1, 10)
    sql(db, "INSERT INTO memory_turns VALUES (11, 's', 'user', 'just now', now(), NULL)")
    batches, ctx = read(db)
    assert rows_of(batches).height == 10
    assert any("1 row(s) written in the last 60 s wait for the next run" in note for note in ctx.notes)
    now, _ = read(db, watermark=batches[-1].watermark, settle_seconds=0)
    assert rows_of(now)["text"].to_list() == ["just now"]


def test_schema_qualified_and_quoted_names(db):
    sql(
        db,
        'CREATE SCHEMA "Chat Logs"',
        'CREATE TABLE "Chat Logs"."Turns" (id int, session_id text, role text, content text, created_at timestamptz)',
        """INSERT INTO "Chat Logs"."Turns" VALUES (1, 's', 'user', 'hello', '2024-05-01 08:00+00')""",
    )
    batches, _ = read(db, table="Chat Logs.Turns")
    assert rows_of(batches)["source_id"].to_list() == ["Chat Logs.Turns:1"]
    assert batches[0].stream.endswith("?table=Chat Logs.Turns")
    with pytest.raises(SourceError, match="no table 'Chat Logs.turns'; tables there: Chat Logs.Turns;"):
        read(db, table="Chat Logs.turns")
    with pytest.raises(SourceError, match="expected a table name or schema.table"):
        read(db, table="a.b.c")


def test_a_user_with_select_only_reads_in_a_read_only_transaction(db, server):
    sql(db, TURNS_DDL)
    add_turns(db, 1, 20)
    sql(
        db,
        "DROP ROLE IF EXISTS turn_reader",
        "CREATE ROLE turn_reader LOGIN PASSWORD 'r3ader-Pw-1b9d'",
        "GRANT SELECT ON memory_turns TO turn_reader",
    )
    reader_dsn = db.replace(f"{server.user}:{server.password}@", "turn_reader:r3ader-Pw-1b9d@")
    try:
        assert rows_of(read(reader_dsn)[0]).height == 20
        with (
            connect(Dsn.parse(db)) as conn,
            pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
            conn.transaction(),
        ):
            conn.execute("CREATE TABLE written (x int)")
    finally:
        sql(db, "DROP OWNED BY turn_reader", "DROP ROLE turn_reader")


# ----------------------------------------------------------------------------- corpus.toml and environment


def test_columns_and_owner_roles_from_corpus_toml(db, tmp_path):
    sql(
        db,
        "CREATE TABLE chat_log (turn_id bigint PRIMARY KEY, thread text, speaker text, body text, "
        "said_at timestamptz, extra jsonb)",
        """INSERT INTO chat_log VALUES
        (1, 't1', 'me', 'what should I cook tonight', '2024-05-01 08:00+00', '{"mood": "hungry"}'),
        (2, 't1', 'assistant', 'pasta, obviously', '2024-05-01 08:01+00', NULL)""",
    )
    config = tmp_path / "corpus.toml"
    config.write_text(
        "[sources.supabase]\n"
        'table = "chat_log"\n'
        'owner_roles = ["me"]\n'
        'columns = { id = "turn_id", conversation = "thread", role = "speaker", content = "body", '
        'created_at = "said_at", metadata = "extra" }\n'
    )
    warehouse = tmp_path / "w.duckdb"
    result = CliRunner().invoke(cli, ["--warehouse", str(warehouse), "--config", str(config), "ingest", "supabase", "--dsn", db])
    assert result.exit_code == 0, result.output
    assert "2 read, 2 new" in result.output
    with duckdb.connect(str(warehouse), read_only=True) as con:
        landed = con.execute(
            "SELECT source_id, conversation_id, is_owner, text, metadata FROM raw_messages ORDER BY sent_at"
        ).fetchall()
        (options,) = con.execute("SELECT options FROM ingest_runs").fetchone()
    assert landed == [
        ("chat_log:1", "t1", True, "what should I cook tonight", '{"metadata":{"mood":"hungry"},"table":"chat_log"}'),
        ("chat_log:2", "t1", False, "pasta, obviously", '{"table":"chat_log"}'),
    ]
    assert json.loads(options)["dsn"] == "<redacted>"
    assert json.loads(options)["columns"]["conversation"] == "thread"

    # The same config through ETL_CONFIG, the address through SUPABASE_DB_URL.
    again = CliRunner().invoke(
        cli,
        ["--warehouse", str(warehouse), "ingest", "supabase"],
        env={"ETL_CONFIG": str(config), "SUPABASE_DB_URL": db},
    )
    assert again.exit_code == 0, again.output
    assert "0 read, 0 new" in again.output


def test_dsn_from_the_environment(db, tmp_path):
    sql(db, TURNS_DDL)
    add_turns(db, 1, 50)
    result = ingest(tmp_path / "w.duckdb", env={"SUPABASE_DB_URL": db})
    assert result.exit_code == 0, result.output
    assert "50 read, 50 new" in result.output


# ----------------------------------------------------------------------------- errors: one line, no password


def one_line_error(result, *needles: str) -> str:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("etl: error: ")
    assert PASSWORD not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_connection_refused(tmp_path, server):
    port = free_port()
    result = ingest(tmp_path / "w.duckdb", "--dsn", server.dsn(port=port))
    line = one_line_error(result, f"cannot connect to postgresql://etl_test@127.0.0.1:{port}/postgres: connection refused")
    assert "check the host and port" in line
    assert not (tmp_path / "w.duckdb").exists()


def test_connection_refused_through_the_installed_command(tmp_path, server):
    env = {**os.environ, "ETL_HOME": str(tmp_path / "home"), "SUPABASE_DB_URL": server.dsn(port=free_port())}
    env.pop("ETL_RAISE_ERRORS", None)
    done = subprocess.run(
        [sys.executable, "-m", "etl", "--warehouse", str(tmp_path / "w.duckdb"), "ingest", "supabase"],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "connection refused" in done.stderr
    assert PASSWORD not in done.stderr and "Traceback" not in done.stderr


def test_wrong_password(tmp_path, server):
    wrong = "Wr0ng p@ss/w%rd"
    dsn = server.dsn(password="Wr0ng%20p%40ss%2Fw%25rd")
    line = one_line_error(
        ingest(tmp_path / "w.duckdb", "--dsn", dsn),
        "cannot connect to postgresql://etl_test@127.0.0.1",
        'password authentication failed for user "etl_test"',
        "check the password in --dsn or SUPABASE_DB_URL",
    )
    assert wrong not in line and "Wr0ng%20p%40ss" not in line


def test_missing_table(db, tmp_path):
    sql(db, TURNS_DDL, "CREATE TABLE notes (id int)")
    one_line_error(
        ingest(tmp_path / "w.duckdb", "--dsn", db, "--table", "memory_turn"),
        "no table 'memory_turn'; tables there: memory_turns, notes; pass --table NAME",
    )


def test_missing_column_lists_the_columns(db, tmp_path):
    sql(db, "CREATE TABLE memory_turns (id int, chat text, who text, body text, ts timestamptz)")
    one_line_error(
        ingest(tmp_path / "w.duckdb", "--dsn", db),
        "table memory_turns has no column 'session_id' or 'conversation_id' (the conversation); "
        "its columns are: id, chat, who, body, ts; name it in corpus.toml: [sources.supabase] "
        'columns = { conversation = "..." }',
    )
    config = tmp_path / "corpus.toml"
    config.write_text('[sources.supabase]\ncolumns = { conversation = "chat", role = "speaker" }\n')
    one_line_error(
        ingest(tmp_path / "w.duckdb", "--dsn", db, env={"ETL_CONFIG": str(config)}),
        "table memory_turns has no column 'speaker' (columns.role in corpus.toml); "
        "its columns are: id, chat, who, body, ts",
    )


def test_created_at_must_be_a_timestamp(db, tmp_path):
    sql(db, "CREATE TABLE memory_turns (id int, session_id text, role text, content text, created_at text)")
    one_line_error(
        ingest(tmp_path / "w.duckdb", "--dsn", db),
        "column memory_turns.created_at is text; expected a timestamp with time zone",
    )


def test_no_address_at_all(tmp_path):
    one_line_error(ingest(tmp_path / "w.duckdb", env={"SUPABASE_DB_URL": ""}), "no database address: pass --dsn")


def test_an_address_that_is_not_one_is_not_echoed(tmp_path):
    line = one_line_error(
        ingest(tmp_path / "w.duckdb", "--dsn", f"postgresql//etl_test:{PASSWORD}@db.example.com/postgres"),
        "is not a PostgreSQL URL or key=value string",
    )
    assert "db.example.com" not in line


# ----------------------------------------------------------------------------- the address, without a network


@pytest.mark.parametrize(
    ("given", "sslmode"),
    [
        ("postgresql://postgres:pw@db.abcd.supabase.co:5432/postgres", "require"),
        ("postgresql://postgres.abcd:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres", "require"),
        ("postgresql://postgres:pw@db.abcd.supabase.co/postgres?sslmode=verify-full", "verify-full"),
        ("host=10.0.0.5 user=me password=pw dbname=chat", "require"),
        ("postgresql://me:pw@localhost/chat", None),
        ("postgresql://me:pw@127.0.0.1:5433/chat", None),
        ("postgresql://me:pw@[::1]/chat", None),
        ("host=/var/run/postgresql dbname=chat", None),
        ("dbname=chat", None),
        ("postgresql://me:pw@localhost,db.example.com/chat", "require"),
    ],
)
def test_sslmode_required_for_hosts_that_are_not_local(given, sslmode, monkeypatch):
    monkeypatch.delenv("PGSSLMODE", raising=False)
    params = psycopg.conninfo.conninfo_to_dict(Dsn.parse(given).conninfo)
    assert params.get("sslmode") == sslmode
    assert params["connect_timeout"] == "10"


def test_pgsslmode_in_the_environment_is_respected(monkeypatch):
    monkeypatch.setenv("PGSSLMODE", "verify-ca")
    assert "sslmode" not in psycopg.conninfo.conninfo_to_dict(Dsn.parse("postgresql://u:pw@db.example.com/x").conninfo)


def test_the_address_shown_never_has_the_password():
    dsn = Dsn.parse("postgresql://postgres:p%40ss%2Fw0rd@db.abcd.supabase.co:5432/postgres")
    assert dsn.address == "postgresql://postgres@db.abcd.supabase.co:5432/postgres"
    assert dsn.password == "p@ss/w0rd"
    said = dsn.explain(psycopg.OperationalError('server said "p@ss/w0rd" and p%40ss%2Fw0rd\n\tand more'))
    assert said == "postgresql://postgres@db.abcd.supabase.co:5432/postgres: server said \"***\" and *** and more"
    assert address_of({"host": "::1", "port": "5432", "dbname": "x"}) == "postgresql://[::1]:5432/x"
    assert is_local("/tmp,localhost") and not is_local("localhost,db.example.com")


@pytest.mark.parametrize(
    ("driver_says", "we_say"),
    [
        ("connection timeout expired", "no answer within 10 s; check the host and port"),
        (
            (
                'connection failed: could not translate host name "db.nope.supabase.co" to address: '
                "Name or service not known"
            ),
            "unknown host; check the host name in the address",
        ),
        (
            (
                'connection failed: connection to server at "10.0.0.5", port 5432 failed: server does not '
                "support SSL, but SSL was required"
            ),
            "add ?sslmode=disable to the address only on a network you trust",
        ),
        ("permission denied for table memory_turns", "the user in the address needs SELECT on the table"),
        ('FATAL:  database "chat" does not exist', 'database "chat" does not exist'),
    ],
)
def test_driver_errors_become_one_line_naming_the_fix(driver_says, we_say):
    dsn = Dsn.parse("postgresql://me:pw-9f3e@10.0.0.5:5432/chat")
    said = dsn.explain(psycopg.OperationalError(driver_says))
    assert said.startswith(("cannot connect to postgresql://me@10.0.0.5:5432/chat: ", "postgresql://me@10.0.0.5:5432/chat: "))
    assert we_say in said and "\n" not in said and "pw-9f3e" not in said
