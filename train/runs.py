"""One training run: plan it (verify, resolve, check the splits), then run and record it.

A run lives in `$ETL_HOME/runs/<run_id>/`:

    config.yaml   the resolved trainer config (what the trainer actually read)
    train.log     the trainer's output
    adapters/     the trainer's adapters and adapter_config.json, plus our run.json
                  (or wherever --adapter-path says)
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import polars as pl

from etl.schemas.errors import EtlError
from etl.schemas.paths import etl_home, owner_only
from etl.schemas import TRAIN_RUNS
from etl.schemas.records import SPLITS, canonical_json
from etl.train import mlx_config, presets, runner
from etl.schemas.hashing import verify_version
from etl.warehouse import insert_frame, open_warehouse

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
    run_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{mode}-{version_dir.name}-{secrets.token_hex(2)}"
    run_dir = runs_root() / run_id
    adapters = (adapter_path or run_dir / "adapters").expanduser().resolve()
    # A prose version names its own SFT folder (completions/, for a base model).
    folder = manifest.get("sft_data", DATA_FOLDER[mode]) if mode == "sft" else DATA_FOLDER[mode]
    split_dir = version_dir.resolve() / folder
    config = mlx_config.resolve(presets.load(preset), overrides, data=split_dir, adapter_path=adapters)
    counts = _check_splits(mode, split_dir, version_dir.name, int(config.get("batch_size", 1)))
    config_path = run_dir / CONFIG_FILE
    command = runner.sft_command(config_path) if mode == "sft" else runner.dpo_command(config_path, config)
    notes = [] if counts["valid"] else [f"{split_dir} has no valid.jsonl: training runs without a validation loss"]
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
        notes=notes + _step_notes(config),
    )


def _check_splits(mode: str, split_dir: Path, version: str, batch_size: int) -> dict[str, int]:
    """Records per split, once the trainer is sure to accept them; what it would stop on, named now."""
    counts = {}
    for split in SPLITS:
        path = split_dir / f"{split}.jsonl"
        counts[split] = _records(path) if path.is_file() else 0
        # A missing split is allowed, but both trainers fail on the first record of an empty file.
        if path.is_file() and counts[split] == 0:
            raise EtlError(f"{path} is empty and the trainer cannot read an empty split; rebuild the version")
        # Batches are never padded out, so a split smaller than one batch stops the trainer.
        if split != "test" and 0 < counts[split] < batch_size:
            raise EtlError(
                f"{path} has {counts[split]} records, fewer than batch_size {batch_size}; lower it with --batch-size"
            )
    if counts["train"] == 0 and mode == "dpo":
        raise EtlError(
            f"{split_dir} has no DPO pairs yet: store the base model's answers with "
            f"`etl train rejected --version {version} --model BASE`, then build a new version"
        )
    if counts["train"] == 0:
        raise EtlError(f"{split_dir} has no train.jsonl: nothing to train on; build a version with examples")
    return counts


def _records(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


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
    with owner_only():  # the run folder, and the adapters the trainer writes into it
        return _execute(plan, warehouse, echo)


def _execute(plan: Plan, warehouse: Path, echo: Callable[[str], None] | None) -> runner.RunResult:
    started = _now()
    # First, so a warehouse in use by another process stops the run before anything is written.
    _record_start(warehouse, plan, started)
    plan.run_dir.mkdir(parents=True)
    mlx_config.write(plan.config, plan.config_path)
    _write_run_json(plan, started)
    # The warehouse is closed while the trainer runs: DuckDB lets one process write at a time.
    result = runner.run(plan.command, log=plan.run_dir / "train.log", echo=echo)
    finished = _now()
    _record_end(warehouse, plan, finished, result)
    _write_run_json(plan, started, finished, result)
    return result


def _record_start(warehouse: Path, plan: Plan, started: datetime) -> None:
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
    return datetime.now(UTC)
