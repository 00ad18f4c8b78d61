"""The config a trainer reads: preset ⊕ overrides ⊕ the run's data and adapter paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from etl.schemas.errors import EtlError
from etl.train import presets


def resolve(
    preset: dict[str, Any],
    overrides: dict[str, Any],
    *,
    data: Path,
    adapter_path: Path,
) -> dict[str, Any]:
    """The complete config for one run. Command-line overrides win over the preset."""
    config = presets.apply_overrides(preset, overrides)
    config["data"] = str(data)
    config["adapter_path"] = str(adapter_path)
    if not any(key.split(".")[0] == "lr_schedule" for key in overrides):
        _follow_schedule(config, preset)
    if not config.get("model"):
        raise EtlError("the preset names no model: pass --model PATH_OR_REPO")
    config["model"] = model_ref(config["model"])
    return config


def model_ref(model: str) -> str:
    """A local model by its absolute path, a hub repo by its id.

    mlx-lm looks for a local folder first, as here; the absolute path keeps the
    record meaningful whatever folder the command was run from.
    """
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def _follow_schedule(config: dict[str, Any], preset: dict[str, Any]) -> None:
    """Keep a cosine schedule in step with --iters and --learning-rate.

    mlx-lm takes the starting rate from the schedule and ignores `learning_rate`
    once a schedule is set, and a 200-step warmup would swallow a 5-step run.
    So the warmup keeps its share of the preset's iterations, the decay covers the
    rest, and the schedule starts at the resolved learning rate.
    """
    schedule = config.get("lr_schedule")
    if not schedule or schedule.get("name") != "cosine_decay" or not preset.get("iters"):
        return
    iters = int(config["iters"])
    share = schedule.get("warmup", 0) / preset["iters"]
    warmup = round(iters * share)
    end = schedule["arguments"][2] if len(schedule["arguments"]) > 2 else 0.0
    schedule["warmup"] = warmup
    start = config.get("learning_rate", schedule["arguments"][0])
    schedule["arguments"] = [start, max(iters - warmup, 1), end]


def write(config: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump(config), encoding="utf-8")
    return path


def dump(config: dict[str, Any]) -> str:
    # Preset order kept, so the file reads like the preset it came from.
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None, allow_unicode=True)
