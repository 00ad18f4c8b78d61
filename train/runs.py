"""One training run: plan it (verify, resolve, check the splits), then run and record it.

A run lives in `$ETL_HOME/runs/<run_id>/`:

    config.yaml   the resolved trainer config (what the trainer actually read)
    train.log     the trainer's output
    data/         only when a split is empty: links to the non-empty split files
    adapters/     the trainer's adapters and adapter_config.json, plus our run.json
                  (or wherever --adapter-path says)
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import polars as pl

from etl.errors import EtlError
from etl.paths import etl_home
from etl.schemas import TRAIN_RUNS
from etl.schemas.records import canonical_json
from etl.train import mlx_config, presets, runner
from etl.versions import verify_version

SPLITS = ("train", "valid", "test")
# The data folder each mode hands to its trainer, inside a version.
DATA_FOLDER = {"sft": "chatml", "dpo": "dpo"}
# The trainer of each mode: (module, package).
TRAINERS = {"sft": ("mlx_lm", "mlx-lm"), "dpo": ("mlx_lm_lora", "mlx-lm-lora")}
CONFIG_FILE = "config.yaml"


def runs_root() -> Path:
    return etl_home() / "runs"


@dataclass
class Plan:
    run_id: str
    mode: str
    version: str
    dataset_sha256: str
    preset: str
    config: dict[str, Any]
    run_dir: Path
    adapter_path: Path
    command: list[str]
    # Split files to link into run_dir/data when the trainer must not see an empty one.
    linked: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.run_dir / CONFIG_FILE


def plan_run(
    mode: str,
    version_dir: Path,
    preset: str,
    overrides: dict[str, Any],
    adapter_path: Path | None = None,
) -> Plan:
    """Everything about a run, decided before anything is written or started."""
    manifest = verify_version(version_dir)
    run_id = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{mode}-{version_dir.name}-{secrets.token_hex(2)}"
    run_dir = runs_root() / run_id
    adapters = (adapter_path or run_dir / "adapters").expanduser().resolve()
    split_dir = version_dir.resolve() / DATA_FOLDER[mode]
    config = mlx_config.resolve(presets.load(preset), overrides, data=split_dir, adapter_path=adapters)
    counts = {s: _records(split_dir / f"{s}.jsonl") for s in SPLITS}
    _check_splits(mode, version_dir, counts, int(config.get("batch_size", 1)))
    empty = [s for s in SPLITS if counts[s] == 0]
    if empty:
        config["data"] = str(run_dir / "data")
    config_path = run_dir / CONFIG_FILE
    command = runner.sft_command(config_path) if mode == "sft" else runner.dpo_command(config_path, config)
    return Plan(
        run_id=run_id,
        mode=mode,
        version=version_dir.name,
        dataset_sha256=manifest.get("dataset_sha256", ""),
        preset=preset,
        config=config,
        run_dir=run_dir,
        adapter_path=adapters,
        command=command,
        linked=[split_dir / f"{s}.jsonl" for s in SPLITS if counts[s]] if empty else [],
        notes=_empty_notes(split_dir, empty) + _step_notes(config),
    )


def _records(path: Path) -> int:
    if not path.is_file():
        return 0
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _check_splits(mode: str, version_dir: Path, counts: dict[str, int], batch_size: int) -> None:
    folder = version_dir / DATA_FOLDER[mode]
    if counts["train"] == 0 and mode == "dpo":
        raise EtlError(
            f"{folder}/train.jsonl has no DPO pairs: store the base model's answers with "
            f"`etl train rejected --version {version_dir.name} --model BASE`, then build a new version"
        )
    if counts["train"] == 0:
        raise EtlError(f"{folder}/train.jsonl is empty: nothing to train on; build a version with examples")
    for split in ("train", "valid"):
        # mlx-lm batches without padding out short splits, and stops on one smaller than a batch.
        if 0 < counts[split] < batch_size:
            raise EtlError(
                f"{folder}/{split}.jsonl has {counts[split]} records, fewer than batch_size "
                f"{batch_size}; lower it with --batch-size"
            )


def _empty_notes(split_dir: Path, empty: list[str]) -> list[str]:
    # mlx-lm reads an existing but empty split file as a dataset and fails on its first record,
    # so empty splits are left out of the folder it gets (a missing split is allowed).
    notes = [f"{split_dir / f'{s}.jsonl'} is empty; the trainer will not see it" for s in empty]
    if "valid" in empty:
        notes.append("no validation split: training runs without a validation loss")
    return notes


def _step_notes(config: dict[str, Any]) -> list[str]:
    key = "grad_accumulation_steps" if "grad_accumulation_steps" in config else "gradient_accumulation_steps"
    steps = int(config.get(key) or 1)
    if int(config.get("iters") or steps) >= steps:
        return []
    return [
        f"iters {config['iters']} is below {key} {steps}: the optimizer never steps and the adapters "
        f"stay as initialised; for a quick check add --set {key}=1"
    ]


def execute(plan: Plan, warehouse: Path, echo: Callable[[str], None] | None = None) -> runner.RunResult:
    """Write the config, record the start, run the trainer, record how it ended."""
    started = _now()
    # First, so a warehouse in use by another process stops the run before anything is written.
    _record_start(warehouse, plan, started)
    plan.run_dir.mkdir(parents=True)
    _link_data(plan)
    mlx_config.write(plan.config, plan.config_path)
    _write_run_json(plan, started)
    # The warehouse is closed while the trainer runs: DuckDB lets one process write at a time.
    result = runner.run(plan.command, log=plan.run_dir / "train.log", echo=echo)
    finished = _now()
    _record_end(warehouse, plan, finished, result)
    _write_run_json(plan, started, finished, result)
    return result


def _link_data(plan: Plan) -> None:
    if not plan.linked:
        return
    data = plan.run_dir / "data"
    data.mkdir()
    for source in plan.linked:
        os.symlink(source, data / source.name)


def _record_start(warehouse: Path, plan: Plan, started: datetime) -> None:
    from etl.warehouse import insert_frame, open_warehouse

    row = {
        "run_id": plan.run_id,
        "mode": plan.mode,
        "version": plan.version,
        "dataset_sha256": plan.dataset_sha256,
        "preset": plan.preset,
        "config": canonical_json(plan.config),
        "adapter_path": str(plan.adapter_path),
        "started_at": started,
        "finished_at": None,
        "exit_status": None,
        "train_loss": None,
        "val_loss": None,
    }
    with open_warehouse(warehouse) as con:
        insert_frame(con, TRAIN_RUNS, pl.DataFrame([row], schema=TRAIN_RUNS.polars_schema()))


def _record_end(warehouse: Path, plan: Plan, finished: datetime, result: runner.RunResult) -> None:
    from etl.warehouse import open_warehouse

    with open_warehouse(warehouse) as con:
        con.execute(
            "UPDATE train_runs SET finished_at = ?, exit_status = ?, train_loss = ?, val_loss = ? "
            "WHERE run_id = ?",
            [finished, result.exit_status, result.train_loss, result.val_loss, plan.run_id],
        )


def _write_run_json(
    plan: Plan,
    started: datetime,
    finished: datetime | None = None,
    result: runner.RunResult | None = None,
) -> None:
    """The run's own manifest beside the adapters, so they never travel without their origin."""
    manifest = {
        "run_id": plan.run_id,
        "mode": plan.mode,
        "version": plan.version,
        "dataset_sha256": plan.dataset_sha256,
        "preset": plan.preset,
        "command": plan.command,
        "config": plan.config,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat() if finished else None,
        "exit_status": result.exit_status if result else None,
        "train_loss": result.train_loss if result else None,
        "val_loss": result.val_loss if result else None,
        "versions": package_versions(),
    }
    plan.adapter_path.mkdir(parents=True, exist_ok=True)
    (plan.adapter_path / "run.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in ("etl-voice", "mlx", "mlx-lm", "mlx-lm-lora"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _now() -> datetime:
    return datetime.now(timezone.utc)
