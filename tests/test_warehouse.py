import stat
import subprocess
import sys
import textwrap
import time

import polars as pl
import pytest

from etl.errors import EtlError, WarehouseLocked
from etl.schemas import RAW_MESSAGES, TABLES, raw_frame
from etl.warehouse import MIGRATIONS, insert_frame, open_warehouse, transaction


def _row(source_id, text="hello there", **extra):
    return {
        "source": "test",
        "source_id": source_id,
        "conversation_id": "c1",
        "kind": "text",
        "text": text,
        "is_owner": True,
        **extra,
    }


def test_new_warehouse_is_private_migrated_and_utc(tmp_path):
    path = tmp_path / "nested" / "w.duckdb"
    with open_warehouse(path, create=True) as con:
        names = {n for (n,) in con.execute("select name from _migrations").fetchall()}
        tables = {t for (t,) in con.execute("select table_name from information_schema.tables").fetchall()}
        (tz,) = con.execute("select current_setting('TimeZone')").fetchall()[0]
    assert names == {m.__name__ for m in MIGRATIONS}
    assert {t.name for t in TABLES} <= tables
    assert {"messages", "source_counts", "build_drop_reasons"} <= tables
    assert tz == "UTC"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_migrations_run_once(tmp_path):
    path = tmp_path / "w.duckdb"
    for _ in range(2):
        with open_warehouse(path, create=True) as con:
            (count,) = con.execute("select count(*) from _migrations").fetchall()[0]
    assert count == len(MIGRATIONS)


def test_a_first_schema_warehouse_gains_the_duplicate_cluster_columns(tmp_path):
    import duckdb

    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)")
    con.execute("INSERT INTO _migrations VALUES ('m001_initial', now())")
    for table in TABLES:
        con.execute(table.ddl())
    con.execute("ALTER TABLE build_examples DROP COLUMN dup_cluster")
    for column in ("example_id", "text", "similarity"):
        con.execute(f"ALTER TABLE build_drops DROP COLUMN {column}")
    con.close()
    with open_warehouse(path) as con:
        drops = {c for (c,) in con.execute("select column_name from information_schema.columns where table_name = 'build_drops'").fetchall()}
        examples = {c for (c,) in con.execute("select column_name from information_schema.columns where table_name = 'build_examples'").fetchall()}
    assert {"example_id", "text", "similarity"} <= drops
    assert "dup_cluster" in examples


def test_insert_is_idempotent_on_source_and_id(tmp_path):
    frame = raw_frame([_row("a"), _row("b"), _row("a")]).with_columns(pl.lit("run1").alias("ingest_run_id"))
    with open_warehouse(tmp_path / "w.duckdb", create=True) as con:
        first = insert_frame(con, RAW_MESSAGES, frame, ignore_existing=True)
        second = insert_frame(con, RAW_MESSAGES, frame, ignore_existing=True)
        (rows,) = con.execute("select count(*) from raw_messages").fetchall()[0]
    assert (first, second, rows) == (2, 0, 2)


def test_transaction_rolls_back_on_interrupt(tmp_path):
    frame = raw_frame([_row("a")]).with_columns(pl.lit("run1").alias("ingest_run_id"))
    with open_warehouse(tmp_path / "w.duckdb", create=True) as con:
        with pytest.raises(KeyboardInterrupt):
            with transaction(con):
                insert_frame(con, RAW_MESSAGES, frame)
                raise KeyboardInterrupt
        (rows,) = con.execute("select count(*) from raw_messages").fetchall()[0]
    assert rows == 0


def test_read_only_without_a_warehouse_says_so(tmp_path):
    with pytest.raises(EtlError, match="no warehouse at .*etl ingest"):
        with open_warehouse(tmp_path / "missing.duckdb", read_only=True):
            pass


def test_not_a_duckdb_file(tmp_path):
    path = tmp_path / "w.duckdb"
    path.write_bytes(b"this is a text file, not a database\n" * 200)
    with pytest.raises(EtlError, match="not a DuckDB warehouse"):
        with open_warehouse(path):
            pass


def test_unwritable_location(tmp_path):
    # A folder that cannot be created (its parent is a file) fails the same way for root.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EtlError, match="cannot create the warehouse folder .*--warehouse"):
        with open_warehouse(blocker / "w.duckdb", create=True):
            pass


def test_unwritable_folder_for_a_normal_user(tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    if subprocess.run(["touch", str(locked / "probe")]).returncode == 0:
        pytest.skip("root can write into a read-only folder")
    with pytest.raises(EtlError, match="permission denied"):
        with open_warehouse(locked / "w.duckdb", create=True):
            pass


def test_second_writer_gets_one_line(tmp_path):
    path = tmp_path / "w.duckdb"
    with open_warehouse(path, create=True):
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(path)!r})
            print("ready", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(WarehouseLocked) as error:
            with open_warehouse(path):
                pass
        message = str(error.value)
        assert "in use by another etl process" in message and str(path) in message
        assert "\n" not in message
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


RELEASED_AT = textwrap.dedent("""
    import sys, time
    from etl.cli import main
    import etl.ingest, etl.sources.imessage
    start = float(sys.argv[1])
    sys.argv = ["etl", *sys.argv[2:]]
    time.sleep(max(0.0, start - time.time()))
    main()
""")


@pytest.mark.parametrize("second_input", ["good", "damaged"])
def test_two_first_ingests_at_once_never_lose_the_warehouse(tmp_path, second_input):
    # Two real processes released at the same instant into a path with no warehouse yet:
    # the one refused (or failing on its own input) must not remove what the other made.
    from etl.demo import samples

    good = samples() / "chat.db"
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(good.read_bytes()[:4096])
    inputs = [good, good if second_input == "good" else damaged]
    for trial in range(3):
        warehouse = tmp_path / f"t{trial}" / "warehouse.duckdb"
        start = time.time() + 1.5
        children = [
            subprocess.Popen([sys.executable, "-c", RELEASED_AT, str(start), "--warehouse", str(warehouse),
                              "ingest", "imessage", "--db", str(db)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for db in inputs
        ]
        outcomes = [(child.wait(timeout=120), child.stderr.read().strip()) for child in children]
        landed = 0
        for (code, error), db in zip(outcomes, inputs):
            if code == 0:
                landed += 1
                continue
            assert len(error.splitlines()) == 1 and error.startswith("etl: error: "), error
            assert (code == 3 and "in use by another etl process" in error) or (db == damaged and code == 1), error
        assert landed >= (1 if second_input == "good" else 0)
        if landed:
            with open_warehouse(warehouse, read_only=True) as con:
                assert con.execute("select count(*) from ingest_runs").fetchone() == (landed,)
                assert con.execute("select count(*) from raw_messages").fetchone()[0] > 0
        else:
            assert not warehouse.exists()  # the failed first run removed what it created, nothing else


def test_a_failed_first_run_removes_only_the_warehouse_it_created(tmp_path):
    path = tmp_path / "w.duckdb"
    with pytest.raises(RuntimeError):
        with open_warehouse(path, create=True):
            raise RuntimeError("the connector failed")
    assert list(tmp_path.iterdir()) == []
    with open_warehouse(path, create=True):
        pass
    with pytest.raises(RuntimeError):
        with open_warehouse(path, create=True):
            raise RuntimeError("a later run failed")
    assert path.exists()  # not created by that run: kept
