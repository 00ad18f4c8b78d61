"""Run a trainer as a child process, show its output as it comes, keep its last losses."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

# mlx-lm-lora gives these argparse defaults, so a value in the YAML would be ignored:
# they must travel on the command line.
_LORA_FLAGS_NOT_READ_FROM_CONFIG = ("gradient_accumulation_steps", "dpo_cpo_loss_type", "delta")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NUMBER = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))"
# mlx-lm >= 0.31 prints a table ("  20    1.234 ▼ ..." and "  20    val 1.234 ..."); older
# mlx-lm and mlx-lm-lora print "Iter 20: Train loss 1.234, ..." / "Iter 20: Val loss 1.234, ...".
_VAL = (re.compile(rf"^\s*\d+\s+val\s+{_NUMBER}"), re.compile(rf"Iter \d+: Val loss {_NUMBER}"))
_TRAIN = (re.compile(rf"^\s*\d+\s+{_NUMBER}\s+[▼▲]"), re.compile(rf"Iter \d+: (?:Train )?loss {_NUMBER}"))


def sft_command(config_path: Path) -> list[str]:
    # `python -m mlx_lm lora` is mlx-lm's current entry point (`-m mlx_lm.lora` is deprecated);
    # the running interpreter makes sure the child uses the same environment.
    return [sys.executable, "-m", "mlx_lm", "lora", "--config", str(config_path)]


def dpo_command(config_path: Path, config: dict[str, Any]) -> list[str]:
    command = [sys.executable, "-m", "mlx_lm_lora.train", "--config", str(config_path)]
    for key in _LORA_FLAGS_NOT_READ_FROM_CONFIG:
        if key in config:
            command += [f"--{key.replace('_', '-')}", str(config[key])]
    return command


@dataclass
class RunResult:
    exit_status: int
    train_loss: float | None = None
    val_loss: float | None = None


class LossTracker:
    """Remembers the last train and validation loss seen in a trainer's output."""

    def __init__(self) -> None:
        self.train_loss: float | None = None
        self.val_loss: float | None = None

    def feed(self, line: str) -> None:
        text = _ANSI.sub("", line)
        if (value := _first_match(_VAL, text)) is not None:
            self.val_loss = value
        elif (value := _first_match(_TRAIN, text)) is not None:
            self.train_loss = value


def _first_match(patterns, text: str) -> float | None:
    for pattern in patterns:
        if match := pattern.search(text):
            return float(match.group(1))
    return None


def run(
    command: list[str],
    *,
    log: Path | None = None,
    echo: Callable[[str], None] | None = None,
) -> RunResult:
    """Run `command`, passing each line of its output on as it arrives (and into `log`)."""
    echo = echo or _to_stdout
    tracker = LossTracker()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log_file: TextIO | None = open(log, "w", encoding="utf-8") if log else None
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        # newline="" keeps a progress bar's "\r" redraws as they are on the terminal.
        for line in io.TextIOWrapper(process.stdout, encoding="utf-8", errors="replace", newline=""):
            echo(line)
            tracker.feed(line)
            if log_file:
                log_file.write(_ANSI.sub("", line))
        status = process.wait()
    except KeyboardInterrupt:
        # The child got the same Ctrl-C; let it finish writing, then report how it ended.
        status = process.wait()
    finally:
        if log_file:
            log_file.close()
    return RunResult(status, tracker.train_loss, tracker.val_loss)


def _to_stdout(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()
