"""`etl train` against the real mlx-lm, with a tiny model built on the spot (nothing downloaded)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from etl.cli import cli
from etl.schemas.records import canonical_json, chat_record, dpo_record, flatten_prompt, prompt_key
from etl.train import mlx_config, presets
from etl.train.evaluate import PROMPTS, slop_count
from etl.train.runner import LossTracker
from etl.versions import dataset_sha256, write_manifest_and_sums
from etl.warehouse import open_warehouse

mlx_lm = pytest.importorskip("mlx_lm", reason="the [train] extra is not installed")

SYSTEM = "You are Sam. Be direct, casual and brief, as you always are."
EXCHANGES = [
    ("The deploy failed again.", "Show me the logs, then roll back staging."),
    ("PR is up.", "Merge it once CI is green."),
    ("Kafka or Rabbit?", "Rabbit. We are too small for Kafka."),
    ("CI takes 45 min", "Cache the deps and split the suite."),
    ("Tests or ship?", "Ship it, add a test for the bug after."),
    ("Client wants an update", "Draft it tonight, I'll edit in the morning."),
    ("Low on credits", "Kill the idle boxes first."),
    ("Refactor auth?", "Patch it now, refactor next sprint."),
    ("Lunch?", "Yes, the usual place at one."),
    ("Did you push?", "Pushed, check main."),
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    # A test that reached for the hub would hang or fail here instead of downloading.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from etl.train.tinymodel import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


def write_version(datasets: Path, name: str = "v1", *, splits=(14, 4, 2), dpo: bool = True) -> Path:
    """A version folder as `etl build` writes it: chatml/, dpo/, manifest.json, SHA256SUMS."""
    folder = datasets / name
    records = []
    for i in range(sum(splits)):
        question, reply = EXCHANGES[i % len(EXCHANGES)]
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"{question} (#{i})"},
            {"role": "assistant", "content": reply},
        ]
        records.append(chat_record(f"ex{i:03d}", messages))
    files = {}
    start = 0
    for split, size in zip(("train", "valid", "test"), splits):
        chosen = records[start : start + size]
        start += size
        pairs = [
            dpo_record(SYSTEM, flatten_prompt(r["messages"][:-1]), r["messages"][-1]["content"],
                       "Great question! I'd be happy to help you with that.")
            for r in chosen
        ] if dpo else []
        for rel, lines in ((f"chatml/{split}.jsonl", chosen), (f"dpo/{split}.jsonl", pairs)):
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(canonical_json(line) + "\n" for line in lines), encoding="utf-8")
            files[rel] = {"sha256": _sha256(path), "bytes": path.stat().st_size, "records": len(lines)}
    (folder / "README.md").write_text(f"# {name}\n", encoding="utf-8")
    write_manifest_and_sums(folder, {"version": name, "dataset_sha256": dataset_sha256(files), "files": files, "config": {}})
    return folder


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def home(tmp_path) -> SimpleNamespace:
    """A warehouse, a datasets folder with version v1, and a way to run `etl … train …`."""
    warehouse = tmp_path / "w.duckdb"
    datasets = tmp_path / "datasets"
    version = write_version(datasets)

    def etl(*args):
        return CliRunner().invoke(cli, ["--warehouse", str(warehouse), "--datasets", str(datasets), "train", *map(str, args)])

    return SimpleNamespace(warehouse=warehouse, datasets=datasets, version=version, etl=etl,
                           runs=tmp_path / "etl-home" / "runs")


def _rows(warehouse: Path, sql: str) -> list[tuple]:
    with open_warehouse(warehouse, read_only=True) as con:
        return con.execute(sql).fetchall()


# ----------------------------------------------------------------------------- presets and config


def test_presets_use_the_trainers_own_keys():
    from mlx_lm.lora import CONFIG_DEFAULTS as MLX_LM_KEYS
    from mlx_lm.tuner.utils import build_schedule
    from mlx_lm_lora.train import CONFIG_DEFAULTS as MLX_LM_LORA_KEYS

    assert set(presets.names()) == {"7b-lora", "7b-dora-r8", "3b-dora-r32", "dpo"}
    for name in ("7b-lora", "7b-dora-r8", "3b-dora-r32"):
        config = presets.load(name)
        assert set(config) <= set(MLX_LM_KEYS), name
        assert config["learning_rate"] == 5e-5 and config["num_layers"] == -1 and config["mask_prompt"]
        assert config["optimizer_config"]["adamw"]["weight_decay"] == 0.01
        assert config["lora_parameters"]["keys"] == [
            "self_attn.q_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.down_proj"
        ]
        build_schedule(config["lr_schedule"])  # mlx-lm accepts the schedule as written
    assert presets.load("7b-dora-r8")["lora_parameters"]["rank"] == 8
    assert (presets.load("3b-dora-r32")["batch_size"], presets.load("3b-dora-r32")["grad_accumulation_steps"]) == (2, 4)
    dpo = presets.load("dpo")
    assert set(dpo) <= set(MLX_LM_LORA_KEYS)
    assert (dpo["train_mode"], dpo["beta"], dpo["learning_rate"], dpo["iters"]) == ("dpo", 0.1, 5e-6, 500)


def test_overrides_win_and_the_schedule_follows_them(tmp_path):
    overrides = presets.parse_set(["lora_parameters.rank=16", "learning_rate=1e-4"]) | {"iters": 100, "model": None}
    config = mlx_config.resolve(presets.load("7b-lora"), overrides, data=tmp_path, adapter_path=tmp_path / "a")
    assert config["lora_parameters"]["rank"] == 16 and config["lora_parameters"]["scale"] == 2.0
    assert config["model"] == "mlx-community/Qwen2.5-7B-Instruct-4bit"
    # 5% warmup of the new iteration count, cosine from the new learning rate over the rest.
    assert config["lr_schedule"]["warmup"] == 5
    assert config["lr_schedule"]["arguments"] == [1e-4, 95, 0.0]
    assert presets.read_yaml(mlx_config.dump(config)) == config


def test_loss_lines_of_each_trainer_are_understood():
    tracker = LossTracker()
    for line in (
        "  \x1b[38;5;244m   1\x1b[0m    \x1b[1;35mval\x1b[0m \x1b[1m7.010\x1b[0m    0.13s\n",  # mlx-lm 0.32
        "  \x1b[38;5;244m   5\x1b[0m    \x1b[1;33m6.741 ▲\x1b[0m    \x1b[1m  107\x1b[0m    0.1k\n",
    ):
        tracker.feed(line)
    assert (tracker.train_loss, tracker.val_loss) == (6.741, 7.010)
    tracker.feed("Iter 10: Train loss 2.500, Learning Rate 1.000e-05, It/sec 1.0\n")  # older mlx-lm
    tracker.feed("Iter 10: Val loss 2.750, Val took 1.0s\n")
    assert (tracker.train_loss, tracker.val_loss) == (2.5, 2.75)
    tracker.feed("\nIter 20: loss 0.693, chosen_r 0.000, rejected_r 0.000, acc 0.500\n")  # mlx-lm-lora DPO
    assert tracker.train_loss == 0.693


# ----------------------------------------------------------------------------- sft


def test_dry_run_prints_command_and_config_and_runs_nothing(home, tiny_model):
    result = home.etl("sft", "--version", "v1", "--preset", "7b-lora", "--model", tiny_model, "--iters", 5, "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"{sys.executable} -m mlx_lm lora --config {home.runs}" in result.output
    assert "fine_tune_type: lora" in result.output and "iters: 5" in result.output
    assert f"data: {home.version.resolve()}/chatml" in result.output
    assert not home.runs.exists()
    assert not home.warehouse.exists()


def test_tampered_version_is_refused_before_mlx_starts(home, tiny_model):
    train = home.version / "chatml" / "train.jsonl"
    data = bytearray(train.read_bytes())
    data[10] ^= 1
    train.write_bytes(bytes(data))
    result = home.etl("sft", "--version", "v1", "--model", tiny_model, "--iters", 5)
    assert result.exit_code != 0
    assert "chatml/train.jsonl" in result.output and "mlx_lm" not in result.output
    assert not home.runs.exists()
    assert not home.warehouse.exists()


def test_empty_splits_are_named_before_mlx_starts(home, tiny_model):
    write_version(home.datasets, "v2", splits=(6, 0, 2))
    result = home.etl("sft", "--version", "v2", "--model", tiny_model, "--batch-size", 2, "--dry-run")
    assert result.exit_code == 0, result.output
    # mlx-lm fails on an existing empty split file, so it gets a folder without it.
    assert "valid.jsonl is empty" in result.output and "without a validation loss" in result.output
    assert f"data: {home.runs}" in result.output
    write_version(home.datasets, "v3", splits=(1, 1, 0))
    result = home.etl("sft", "--version", "v3", "--model", tiny_model, "--batch-size", 2, "--dry-run")
    assert result.exit_code != 0 and "fewer than batch_size 2" in result.output


@pytest.mark.slow
def test_sft_run_is_recorded_and_its_adapters_evaluate(home, tiny_model):
    result = home.etl(
        "sft", "--version", "v1", "--preset", "7b-lora", "--model", tiny_model, "--iters", 5, "--batch-size", 2,
        "--set", "grad_accumulation_steps=1", "--set", "steps_per_report=2",
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((home.version / "manifest.json").read_text())
    [(run_id, adapter_path, sha, exit_status, train_loss, val_loss, config)] = _rows(
        home.warehouse,
        "select run_id, adapter_path, dataset_sha256, exit_status, train_loss, val_loss, config from train_runs",
    )
    adapters = Path(adapter_path)
    assert adapters == home.runs / run_id / "adapters"
    assert (adapters / "adapters.safetensors").is_file() and (adapters / "adapter_config.json").is_file()
    assert sha == manifest["dataset_sha256"] and exit_status == 0
    assert train_loss > 0 and val_loss > 0
    assert json.loads(config)["iters"] == 5
    run = json.loads((adapters / "run.json").read_text())
    assert run["dataset_sha256"] == manifest["dataset_sha256"] and run["exit_status"] == 0
    assert run["versions"]["mlx-lm"] == mlx_lm.__version__ and run["versions"]["mlx"]
    assert (home.runs / run_id / "config.yaml").is_file()
    assert "val" in (home.runs / run_id / "train.log").read_text()

    # The adapters are a real mlx-lm result: the persona evaluation loads them beside the base model.
    result = home.etl("eval", "--adapter", adapters, "--max-tokens", 8)
    assert result.exit_code == 0, result.output
    markdown = (adapters / "eval.md").read_text()
    assert all(prompt in markdown for prompt in PROMPTS)
    assert markdown.count("| slop markers |") == 10 and SYSTEM in markdown
    assert "<table>" in (adapters / "eval.html").read_text()


@pytest.mark.slow
def test_sft_runs_without_a_validation_split(home, tiny_model):
    write_version(home.datasets, "v2", splits=(6, 0, 2))
    result = home.etl("sft", "--version", "v2", "--model", tiny_model, "--iters", 2, "--batch-size", 2)
    assert result.exit_code == 0, result.output
    [(run_id, train_loss, val_loss)] = _rows(home.warehouse, "select run_id, train_loss, val_loss from train_runs")
    assert train_loss > 0 and val_loss is None
    assert sorted(p.name for p in (home.runs / run_id / "data").iterdir()) == ["test.jsonl", "train.jsonl"]


def test_slop_markers_are_counted():
    assert slop_count("Great question! I’d be happy to help. Let me help you.") == 3
    assert slop_count("Patch it. Ship the fix, then refactor next sprint.") == 0


# ----------------------------------------------------------------------------- rejected answers and DPO


@pytest.mark.slow
def test_rejected_stores_one_answer_per_prompt_and_resumes(home, tiny_model):
    args = ("rejected", "--version", "v1", "--model", tiny_model, "--max-tokens", 8)
    first = home.etl(*args, "--limit", 5)
    assert first.exit_code == 0, first.output
    assert _rows(home.warehouse, "select count(*) from rejected_answers") == [(5,)]
    rest = home.etl(*args)
    assert rest.exit_code == 0, rest.output
    assert "15 answers stored, 5 already there" in rest.output
    again = home.etl(*args)
    assert "0 answers stored, 20 already there" in again.output

    records = [json.loads(line) for s in ("train", "valid", "test")
               for line in (home.version / "chatml" / f"{s}.jsonl").read_text().splitlines()]
    expected = {prompt_key(r["messages"][:-1]) for r in records}
    stored = _rows(home.warehouse, "select prompt_sha256, model, params from rejected_answers")
    assert {key for key, _, _ in stored} == expected
    assert {(model, params) for _, model, params in stored} == {
        (str(tiny_model.resolve()), '{"max_tokens":8,"temperature":0.0}')
    }


def test_answers_made_elsewhere_are_imported(home, tmp_path):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "PR is up. (#1)"}]
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        json.dumps({"messages": messages, "answer": "Certainly! I'd be happy to review it."}) + "\n"
        + json.dumps({"prompt_sha256": "ab" * 32, "answer": "As an AI, I cannot merge.", "model": "other"}) + "\n"
    )
    first = home.etl("rejected", "--from-jsonl", answers, "--model", "gpt-4o")
    assert first.exit_code == 0, first.output
    assert "imported 2 answers" in first.output
    assert sorted(_rows(home.warehouse, "select prompt_sha256, model from rejected_answers")) == sorted(
        [(prompt_key(messages), "gpt-4o"), ("ab" * 32, "other")]
    )
    again = home.etl("rejected", "--from-jsonl", answers, "--model", "gpt-4o")
    assert "imported 0 answers" in again.output and "2 were already stored" in again.output


def test_dpo_files_load_with_mlx_lm_lora_dataset(home, tiny_model):
    """The DPO split files load with mlx-lm-lora's own DPO dataset and the tiny tokenizer.

    The test stops at loading: mlx-lm-lora's DPO trainer asks mx.device_info() for
    Metal's "max_recommended_working_set_size", so it only trains on Apple silicon.
    """
    from mlx_lm_lora.trainer.datasets import DPODataset, load_local_dataset

    tokenizer = mlx_lm.load(str(tiny_model))[1]
    train, valid, test = load_local_dataset(home.version / "dpo", tokenizer, SimpleNamespace(train_mode="dpo"))
    assert isinstance(train, DPODataset) and (len(train), len(valid), len(test)) == (14, 4, 2)
    pair = train[0]
    prompt = pair["chosen"][: pair["chosen_prompt_length"]]
    assert pair["rejected"][: pair["rejected_prompt_length"]] == prompt
    assert pair["chosen"] != pair["rejected"]
    text = tokenizer.decode(pair["chosen"])
    assert text.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>") and text.endswith("<|im_end|>\n")


def test_dpo_dry_run_passes_what_mlx_lm_lora_does_not_read_from_yaml(home, tiny_model):
    result = home.etl("dpo", "--version", "v1", "--model", tiny_model, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "-m mlx_lm_lora.train --config" in result.output
    assert "--gradient-accumulation-steps 4" in result.output
    assert "train_mode: dpo" in result.output and f"data: {home.version.resolve()}/dpo" in result.output


def test_dpo_refuses_without_pairs_or_model(home, tiny_model):
    write_version(home.datasets, "v2", dpo=False)
    result = home.etl("dpo", "--version", "v2", "--model", tiny_model)
    assert result.exit_code != 0 and "etl train rejected --version v2" in result.output
    result = home.etl("dpo", "--version", "v1")
    assert result.exit_code != 0 and "--model" in result.output


# ----------------------------------------------------------------------------- without the [train] extra


def test_other_commands_never_import_mlx():
    code = "import sys, etl.cli, etl.cli_train, etl.train.runs; assert not any(m.startswith('mlx') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_train_without_mlx_says_what_to_install(home, tiny_model, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlx_lm" else real(name, *a))
    result = home.etl("sft", "--version", "v1", "--model", tiny_model)
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == (
        "etl: error: mlx-lm is not installed; run: pip install 'etl-voice[train]'"
    )
