"""Trials of what two etl processes, or a kill, can do to a new warehouse and a build.

    python bench/races.py first-ingest --trials 30
    python bench/races.py commit-window --trials 30

first-ingest: two real `etl ingest imessage` processes, released at the same instant,
land the bundled sample into a warehouse path that does not exist yet (half the pairs:
one of the two reads a damaged chat.db, so it fails after creating the warehouse).
Bar: no pair loses the warehouse: every run either landed, or was refused with the
one-line "in use" message, or failed on its own bad input; whatever landed is there.

commit-window: `etl build` killed (SIGKILL, from inside, by ETL_FAULT) at each step of
the window between recording a version and marking it complete. Bar: afterwards no
command shows the version unless its folder is complete, and the next build of that
name succeeds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

CHILD = textwrap.dedent("""
    import sys, time
    from etl.cli import main
    import etl.ingest, etl.sources.imessage  # imported before the start line, not after
    start = float(sys.argv[1])
    sys.argv = ["etl", *sys.argv[2:]]
    time.sleep(max(0.0, start - time.time()))
    main()
""")


def _etl(warehouse: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "etl", "--warehouse", str(warehouse), *args],
                          capture_output=True, text=True, env=env)


def first_ingest(trials: int) -> int:
    from etl.demo import samples

    chat_db = samples() / "chat.db"
    lost = 0
    outcomes: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="etl-race-") as scratch:
        damaged = Path(scratch) / "damaged.db"
        damaged.write_bytes(chat_db.read_bytes()[:4096])
        for trial in range(trials):
            warehouse = Path(scratch) / f"t{trial}" / "warehouse.duckdb"
            inputs = [chat_db, damaged if trial % 2 else chat_db]
            start = time.time() + 2.0  # both children are imported and waiting by then
            children = [
                subprocess.Popen([sys.executable, "-c", CHILD, str(start), "--warehouse", str(warehouse),
                                  "ingest", "imessage", "--db", str(db)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for db in inputs
            ]
            results = [(c.wait(), c.stderr.read()) for c in children]
            kinds = []
            for (code, err), db in zip(results, inputs):
                if code == 0:
                    kinds.append("landed")
                elif code == 3 and "in use by another etl process" in err and len(err.strip().splitlines()) == 1:
                    kinds.append("refused")
                elif db == damaged and code == 1 and len(err.strip().splitlines()) == 1:
                    kinds.append("bad input")
                else:
                    kinds.append(f"other exit {code}: {err.strip()[:200]}")
            landed = kinds.count("landed")
            status = _etl(warehouse, "sql", "select count(*) from ingest_runs", "--format", "csv")
            runs = int(status.stdout.split()[1]) if status.returncode == 0 else 0
            ok = runs == landed and all(k in ("landed", "refused", "bad input") for k in kinds)
            outcomes[" + ".join(sorted(kinds))] += 1
            if not ok:
                lost += 1
                print(f"trial {trial}: {kinds}, {runs} runs in the warehouse: {status.stderr.strip()}")
    for outcome, n in sorted(outcomes.items()):
        print(f"{n:4} × {outcome}")
    print(f"first-ingest: {lost} of {trials} pairs lost the warehouse or a landed run")
    return lost


def commit_window(trials: int) -> int:
    from etl.demo import samples
    from etl.warehouse.builds import COMMIT_STEPS

    bad = 0
    with tempfile.TemporaryDirectory(prefix="etl-window-") as scratch:
        warehouse, datasets = Path(scratch) / "w.duckdb", Path(scratch) / "datasets"
        config = Path(scratch) / "corpus.toml"
        config.write_text('[owner]\nnames = ["Sam Rivera", "Sam"]\n', encoding="utf-8")
        base = ["--datasets", str(datasets), "--config", str(config)]
        assert _etl(warehouse, *base, "ingest", "imessage", "--db", str(samples() / "chat.db")).returncode == 0
        for trial in range(trials):
            step = COMMIT_STEPS[trial % len(COMMIT_STEPS)]
            version = f"k{trial}"
            env = {**os.environ, "ETL_FAULT": f"kill-after:{step}"}
            killed = _etl(warehouse, *base, "build", "--version", version, env=env)
            problems = [] if killed.returncode == -9 else [f"the fault did not kill the build ({killed.returncode})"]
            problems += _shown_without_folder(warehouse, base, datasets, version)
            again = _in_process(warehouse, *base, "build", "--version", version)
            expected = 4 if step == "completed" else 0  # a complete version is never built over
            if again.exit_code != expected:
                problems.append(f"the next build exited {again.exit_code}: {again.output.strip()[:200]}")
            if problems:
                bad += 1
                print(f"trial {trial} ({step}): " + "; ".join(problems))
    print(f"commit-window: {bad} of {trials} kills left a version shown without a complete folder "
          f"or a next build that fails (kills after: {', '.join(COMMIT_STEPS)}, in turn)")
    return bad


def _in_process(warehouse: Path, *args: str):
    from click.testing import CliRunner

    from etl.cli import cli

    return CliRunner().invoke(cli, ["--warehouse", str(warehouse), *args])


def _shown_without_folder(warehouse: Path, base: list[str], datasets: Path, version: str) -> list[str]:
    folder = datasets / version
    if (folder / "SHA256SUMS").is_file() and (folder / "manifest.json").is_file():
        return []
    shown = []
    if f" {version} " in _in_process(warehouse, *base, "status").output:
        shown.append("status lists it")
    for view in ("builds where status = 'complete' and", "build_split_counts where", "build_drop_reasons where"):
        counted = _in_process(warehouse, *base, "sql", f"select count(*) from {view} version = '{version}'",
                              "--format", "csv")
        if counted.output.split()[1:] != ["0"]:
            shown.append(f"{view.split()[0]} has it")
    for args in (["diff", version, version], ["report", version], ["verify", version],
                 ["train", "sft", "--version", version, "--dry-run"]):
        if _in_process(warehouse, *base, *args).exit_code == 0:
            shown.append(f"`etl {args[0]}` uses it")
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trial", choices=["first-ingest", "commit-window"])
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    failures = (first_ingest if args.trial == "first-ingest" else commit_window)(args.trials)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
