"""`etl demo`: the whole path on the bundled sample exports, in a fresh folder."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from etl.config import CONFIG_NAME, load_config
from etl.errors import EtlError

MARKER = ".etl-demo"

# The sample exports are a made-up person's history, written for this demo.
DEMO_CONFIG = """\
# corpus.toml of the demo: the sample exports belong to an imaginary "Sam Rivera".
[owner]
names = ["Sam Rivera", "Sam"]
emails = ["sam@example.com"]
phones = ["+15550100100"]

[build]
system_prompt = "You are {owner}. Be direct, casual and brief, as you always are."
"""


def samples() -> Path:
    return Path(str(resources.files("etl.samples")))


def _fresh(home: Path) -> None:
    if home.exists() and any(home.iterdir()):
        if not (home / MARKER).exists():
            raise EtlError(f"{home} exists and is not a demo folder; choose another with --home")
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).write_text("made by `etl demo`; safe to delete\n")


def run_demo(home: Path, echo: Callable[[str], None] = print) -> Path:
    from etl.build import build_version
    from etl.ingest import run_ingest
    from etl.inspect import status_report
    from etl.report import write_report
    from etl.sources import get_source

    _fresh(home)
    config_path = home / CONFIG_NAME
    config_path.write_text(DEMO_CONFIG, encoding="utf-8")
    config = load_config(config_path)
    warehouse = home / "warehouse.duckdb"
    datasets = home / "datasets"

    result = run_ingest(
        warehouse, get_source("imessage"), [], {"db": str(samples() / "chat.db")}, config.owner
    )
    echo(f"imessage: {result.seen:,} read, {result.new:,} new, {result.quarantined:,} quarantined")
    again = run_ingest(
        warehouse, get_source("imessage"), [], {"db": str(samples() / "chat.db")}, config.owner
    )
    echo(f"imessage again: {again.new:,} new (ingest is idempotent)")
    echo("")
    echo(status_report(warehouse))
    echo("")
    built = build_version(warehouse, datasets, "v1", config)
    echo(built.summary())
    echo("")
    echo("next steps:")
    prefix = f"etl --warehouse {warehouse} --datasets {datasets}"
    echo(f'  {prefix} sql "select kind, owner, count(*) from messages group by all order by 1"')
    echo(f'  {prefix} sql "select stage, reason, dropped from build_drop_reasons where version = \'v1\'"')
    echo(f"  {prefix} verify v1 --rebuild")
    echo(f"  (cd {datasets / 'v1'} && sha256sum -c SHA256SUMS)")
    echo(f"  head -n 2 {datasets / 'v1' / 'chatml' / 'train.jsonl'}")
    echo(f"  {prefix} report v1 --open")
    echo("")
    page = write_report(warehouse, datasets, "v1")
    echo(f"report of v1 (open it in a browser before training): {page}")
    return datasets / "v1"
