"""What the connector benchmarks share: run `etl ingest` in a child process against a
fresh warehouse, and report messages per second and the child's peak RSS."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def etl_command() -> list[str]:
    """The `etl` entry point of this interpreter's environment."""
    script = Path(sys.executable).parent / "etl"
    if script.exists():
        return [str(script)]
    found = shutil.which("etl")
    return [found] if found else [sys.executable, "-c", "from etl.cli import main; main()"]


def peak_rss_mib() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    # ru_maxrss is KiB on Linux and bytes on macOS.
    return usage.ru_maxrss * (1 if platform.system() == "Darwin" else 1024) / (1 << 20)


def ingest(source: str, args: list[str], folder: Path) -> tuple[float, str]:
    """Seconds and output of `etl ingest SOURCE ARGS` into folder/warehouse.duckdb."""
    env = {**os.environ, "ETL_WAREHOUSE": str(folder / "warehouse.duckdb"), "ETL_HOME": str(folder / "home")}
    started = time.perf_counter()
    done = subprocess.run([*etl_command(), "ingest", source, *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"etl ingest {source} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed, done.stdout.strip()


def landed(folder: Path, source: str) -> int:
    import duckdb

    with duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("SELECT count(*) FROM raw_messages WHERE source = ?", [source]).fetchone()[0]


def report(source: str, folder: Path, args: list[str], repeat: bool = True) -> None:
    """Ingest once from scratch (timed), print the figures, then again: it must add nothing."""
    (folder / "warehouse.duckdb").unlink(missing_ok=True)
    elapsed, output = ingest(source, args, folder)
    peak = peak_rss_mib()
    n = landed(folder, source)
    print(output)
    print(f"etl ingest {source}: {n:,} messages in {elapsed:.2f} s = {n / elapsed:,.0f} messages/s, "
          f"peak RSS of the child {peak:.0f} MiB ({os.cpu_count()} CPUs)")
    if repeat:
        again, output = ingest(source, args, folder)
        print(f"second run: {again:.2f} s; {output.splitlines()[0] if output else ''}")
