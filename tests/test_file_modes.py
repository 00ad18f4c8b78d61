"""Everything etl writes is readable by its owner only, whatever the umask it is started with."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from etl.cli import cli
from etl.demo import samples
from factories import dialogue

CONFIG = '[owner]\nnames = ["Sam Rivera", "Sam"]\nemails = ["sam@example.com"]\nphones = ["+15550100100"]\n'


@pytest.fixture
def umask_022():
    """The usual umask: what etl writes must not depend on it."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def exposed(*roots: Path) -> list[str]:
    """Files and folders under `roots` that anyone but their owner can read, write or enter."""
    found = []
    for root in roots:
        for path in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            if not path.is_symlink() and mode & 0o077:
                found.append(f"{path} {oct(mode)}")
    return found


class Home:
    def __init__(self, tmp_path: Path):
        self.home = tmp_path / "etl-home"  # ETL_HOME of every test (conftest)
        self.warehouse = self.home / "warehouse.duckdb"
        # --datasets outside ETL_HOME: its folders are made by etl and must be private too.
        self.elsewhere = tmp_path / "elsewhere"
        self.elsewhere.mkdir(mode=0o755)  # the user's own folder, not etl's
        self.datasets = self.elsewhere / "sets" / "datasets"
        self.config = tmp_path / "corpus.toml"
        self.config.write_text(CONFIG, encoding="utf-8")

    def etl(self, *args):
        options = ["--warehouse", self.warehouse, "--datasets", self.datasets, "--config", self.config]
        result = CliRunner().invoke(cli, [str(a) for a in (*options, *args)])
        assert result.exit_code == 0, result.output
        return result


def test_ingest_build_report_and_queries_write_owner_only_files(umask_022, tmp_path):
    home = Home(tmp_path)
    home.etl("ingest", "imessage", "--db", samples() / "chat.db")
    home.etl("build", "--version", "v1")
    home.etl("report", "v1")
    home.etl("verify", "v1", "--rebuild")
    home.etl("sql", "select * from messages", "--format", "csv", "--output", home.elsewhere / "messages.csv")
    assert (home.datasets / "v1" / "chatml" / "train.jsonl").is_file()
    assert (home.elsewhere / "sets" / "reports" / "v1" / "report.html").is_file()
    assert exposed(home.home, *home.elsewhere.iterdir()) == []
    # A folder etl did not make keeps its own mode.
    assert stat.S_IMODE(home.elsewhere.stat().st_mode) == 0o755


def test_the_python_api_writes_owner_only_files_too(umask_022, tmp_path):
    from etl.build import build_version
    from etl.config import Config, Owner
    from etl.report import write_report
    from factories import land

    warehouse, datasets = tmp_path / "api" / "w.duckdb", tmp_path / "api" / "out" / "datasets"
    land(warehouse, dialogue("c", [(False, "are we still on for saturday?"), (True, "yes, ten at the trailhead")]))
    build_version(warehouse, datasets, "v1", Config(owner=Owner(names=("Sam",))))
    write_report(warehouse, datasets, "v1")
    assert exposed(tmp_path / "api") == []


def test_the_wal_of_an_open_run_is_owner_only_and_stays_so_after_a_kill(umask_022, tmp_path):
    # The WAL holds the message text of a run until it is checkpointed; a kill leaves it behind.
    warehouse = tmp_path / "w.duckdb"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import os, sys
            os.umask(0o022)
            import polars as pl
            from etl.schemas import RAW_MESSAGES, raw_frame
            from etl.warehouse import insert_frame, open_warehouse
            row = dict(source="t", source_id="1", conversation_id="c", kind="text", text="private words")
            rows = raw_frame([row]).with_columns(ingest_run_id=pl.lit("r"))
            with open_warehouse({str(warehouse)!r}, create=True) as con:
                insert_frame(con, RAW_MESSAGES, rows)
                print("ready", flush=True)
                sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        wal = warehouse.with_name(warehouse.name + ".wal")
        assert wal.exists()
        child.kill()
        child.wait(timeout=30)
        assert exposed(warehouse, wal) == []
    finally:
        child.kill()
        child.wait(timeout=30)


@pytest.mark.slow
def test_a_training_run_writes_owner_only_files(umask_022, tmp_path, monkeypatch):
    pytest.importorskip("mlx_lm", reason="the [train] extra is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    home = Home(tmp_path)
    home.etl("ingest", "imessage", "--db", samples() / "chat.db")
    home.etl("build", "--version", "v1")
    tiny = home.elsewhere / "tiny"
    home.etl("train", "tiny-model", tiny)
    home.etl("train", "sft", "--version", "v1", "--model", tiny, "--iters", 1, "--batch-size", 2,
             "--set", "grad_accumulation_steps=1", "--set", "val_batches=1")
    runs = home.home / "runs"
    assert any(runs.rglob("adapters.safetensors"))
    assert exposed(home.home, *home.elsewhere.iterdir()) == []
