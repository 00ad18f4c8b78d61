"""Benchmark: `etl ingest imessage` on a large synthetic chat.db, end to end.

    python bench/imessage_ingest.py                 # 1,000,000 messages
    python bench/imessage_ingest.py --messages 200000 --repeat-check

Generates the database in a temporary folder (most text only in attributedBody, as
on a current Mac), runs the `etl` CLI in a child process against a fresh warehouse,
and reports messages per second and the child's peak RSS. Target: >= 100,000
messages/s on 2 cores, with memory flat in the number of messages.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from etl.samples.make_chatdb import make_chatdb


def etl_command() -> list[str]:
    """The `etl` entry point of this interpreter's environment."""
    script = Path(sys.executable).parent / "etl"
    if script.exists():
        return [str(script)]
    found = shutil.which("etl")
    if found:
        return [found]
    return [sys.executable, "-c", "from etl.cli import main; main()"]


def peak_rss_mib(usage: resource.struct_rusage) -> float:
    # ru_maxrss is KiB on Linux and bytes on macOS.
    scale = 1 if platform.system() == "Darwin" else 1024
    return usage.ru_maxrss * scale / (1 << 20)


def run_ingest(db: Path, warehouse: Path, home: Path) -> tuple[float, str]:
    env = {**os.environ, "ETL_WAREHOUSE": str(warehouse), "ETL_HOME": str(home)}
    started = time.perf_counter()
    done = subprocess.run(
        [*etl_command(), "ingest", "imessage", "--db", str(db)],
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"etl ingest failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed, done.stdout.strip()


def count_rows(warehouse: Path) -> int:
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("SELECT count(*) FROM raw_messages WHERE source = 'imessage'").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="generate into this folder and keep it")
    parser.add_argument(
        "--repeat-check", action="store_true", help="run the ingest a second time: it must read nothing new"
    )
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="etl-bench-imessage-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        db = folder / "chat.db"
        if not db.exists():
            started = time.perf_counter()
            make_chatdb(db, n_messages=args.messages, seed=args.seed)
            print(f"generated {args.messages:,} messages in {time.perf_counter() - started:.1f} s "
                  f"({db.stat().st_size / (1 << 20):.0f} MiB)")
        warehouse = folder / "warehouse.duckdb"
        warehouse.unlink(missing_ok=True)
        elapsed, output = run_ingest(db, warehouse, folder / "home")
        peak = peak_rss_mib(resource.getrusage(resource.RUSAGE_CHILDREN))
        landed = count_rows(warehouse)
        print(output)
        print(f"etl ingest imessage: {landed:,} messages in {elapsed:.2f} s = {landed / elapsed:,.0f} messages/s, "
              f"peak RSS of the child {peak:.0f} MiB ({os.cpu_count()} CPUs)")
        if args.repeat_check:
            again, output = run_ingest(db, warehouse, folder / "home")
            print(f"second run: {again:.2f} s; {output.splitlines()[0]}")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
