"""`etl train` against the real mlx-lm, with a tiny model built on the spot (nothing downloaded)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from etl.cli import cli
from etl.schemas.records import prompt_key
from etl.train import mlx_config, presets
from etl.train.evaluate import PROMPTS, slop_count
from etl.train.runner import LossTracker
from etl.versions import dataset_sha256, sha256_file, write_manifest_and_sums
from etl.warehouse import open_warehouse

mlx_lm = pytest.importorskip("mlx_lm", reason="the [train] extra is not installed")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    # A test that reached for the hub would fail here instead of downloading.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from etl.train.tinymodel import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    """The demo's warehouse and version v1: the bundled sample exports through the real build."""
    from etl.demo import run_demo

    home = tmp_path_factory.mktemp("demo") / "home"
    run_demo(home, echo=lambda line: None)
    return home


@pytest.fixture
def home(demo, tmp_path) -> SimpleNamespace:
    """A copy of the demo's warehouse and datasets, and a way to run `etl … train …` on them."""
    for name in ("warehouse.duckdb", "corpus.toml"):
        shutil.copy(demo / name, tmp_path / name)
    shutil.copytree(demo / "datasets", tmp_path / "datasets")
    warehouse, datasets = tmp_path / "warehouse.duckdb", tmp_path / "datasets"

    def etl(*args):
        options = ["--warehouse", warehouse, "--datasets", datasets, "--config", tmp_path / "corpus.toml"]
        return CliRunner().invoke(cli, [str(a) for a in (*options, *args)])

    return SimpleNamespace(warehouse=warehouse, datasets=datasets, version=datasets / "v1", etl=etl,
                           runs=tmp_path / "etl-home" / "runs", config=tmp_path / "corpus.toml")


def _rows(warehouse: Path, sql: str) -> list[tuple]:
    with open_warehouse(warehouse, read_only=True) as con:
        return con.execute(sql).fetchall()


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for split in ("train", "valid", "test") if (folder / f"{split}.jsonl").exists()
            for line in (folder / f"{split}.jsonl").read_text().splitlines()]


def _edited_copy(version: Path, name: str, edit) -> Path:
    """A copy of `version` changed by `edit(folder)` and hashed again, as if a build had written it."""
    folder = version.parent / name
    shutil.copytree(version, folder)
    edit(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    files = {}
    for path in sorted((folder / "chatml").glob("*.jsonl")):
        records = len(path.read_text().splitlines())
        files[f"chatml/{path.name}"] = {"sha256": sha256_file(path), "bytes": path.stat().st_size, "records": records}
    manifest.update(version=name, files=files, dataset_sha256=dataset_sha256(files))
    write_manifest_and_sums(folder, manifest)
    return folder


def _answers_for_every_prompt(home, answer="Great question! I'd be happy to help you with that.") -> Path:
    lines = [json.dumps({"messages": r["messages"], "answer": answer}) for r in _records(home.version / "chatml")]
    path = home.version.parent.parent / "answers.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- presets and config


def test_presets_use_the_trainers_own_keys():
    from mlx_lm.lora import CONFIG_DEFAULTS as MLX_LM_KEYS
    from mlx_lm.tuner.utils import build_schedule
    from mlx_lm_lora.train import CONFIG_DEFAULTS as MLX_LM_LORA_KEYS

    assert set(presets.names()) == {"7b-lora", "7b-dora-r8", "3b-dora-r32", "dpo", "14b-base-persona"}
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
    result = home.etl("train", "sft", "--version", "v1", "--preset", "7b-lora", "--model", tiny_model, "--iters", 5,
                      "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"{sys.executable} -m mlx_lm lora --config {home.runs}" in result.output
    assert "fine_tune_type: lora" in result.output and "iters: 5" in result.output
    assert f"data: {home.version.resolve()}/chatml" in result.output
    assert "the optimizer never steps" in result.output  # 5 iterations, 8 accumulation steps
    assert not home.runs.exists()
    assert _rows(home.warehouse, "select count(*) from train_runs") == [(0,)]


def test_tampered_version_is_refused_before_mlx_starts(home, tiny_model):
    train = home.version / "chatml" / "train.jsonl"
    data = bytearray(train.read_bytes())
    data[10] ^= 1
    train.write_bytes(bytes(data))
    result = home.etl("train", "sft", "--version", "v1", "--model", tiny_model, "--iters", 5)
    assert result.exit_code != 0
    assert f"{train} does not match" in result.output and "mlx_lm" not in result.output
    assert not home.runs.exists()
    assert _rows(home.warehouse, "select count(*) from train_runs") == [(0,)]


def test_splits_the_trainer_would_stop_on_are_named_before_it_starts(home, tiny_model):
    _edited_copy(home.version, "v2", lambda folder: (folder / "chatml" / "valid.jsonl").write_text(""))
    result = home.etl("train", "sft", "--version", "v2", "--model", tiny_model, "--dry-run")
    assert result.exit_code != 0 and "v2/chatml/valid.jsonl is empty" in result.output

    def one_valid_record(folder):
        valid = folder / "chatml" / "valid.jsonl"
        valid.write_text(valid.read_text().splitlines()[0] + "\n")

    _edited_copy(home.version, "v3", one_valid_record)
    result = home.etl("train", "sft", "--version", "v3", "--model", tiny_model, "--batch-size", 2, "--dry-run")
    assert result.exit_code != 0 and "has 1 records, fewer than batch_size 2" in result.output


@pytest.mark.slow
def test_sft_run_is_recorded_and_its_adapters_evaluate(home, tiny_model):
    result = home.etl(
        "train", "sft", "--version", "v1", "--preset", "7b-lora", "--model", tiny_model, "--iters", 5,
        "--batch-size", 2, "--set", "grad_accumulation_steps=1", "--set", "steps_per_report=2",
        "--set", "val_batches=2",
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
    result = home.etl("train", "eval", "--adapter", adapters, "--max-tokens", 8)
    assert result.exit_code == 0, result.output
    markdown = (adapters / "eval.md").read_text()
    assert all(prompt in markdown for prompt in PROMPTS)
    assert markdown.count("| slop markers |") == 10
    assert "You are Sam Rivera." in markdown  # the persona line of the training data
    assert "<table>" in (adapters / "eval.html").read_text()


@pytest.mark.slow
def test_sft_runs_without_a_validation_split(home, tiny_model):
    from etl.build import build_version
    from etl.config import load_config

    config = load_config(home.config).with_build(split_train=0.9, split_valid=0.0, split_test=0.1)
    build_version(home.warehouse, home.datasets, "v2", config)
    assert not (home.datasets / "v2" / "chatml" / "valid.jsonl").exists()
    result = home.etl("train", "sft", "--version", "v2", "--model", tiny_model, "--iters", 2, "--batch-size", 2,
                      "--set", "grad_accumulation_steps=1")
    assert result.exit_code == 0, result.output
    assert "no valid.jsonl: training runs without a validation loss" in result.output
    [(train_loss, val_loss)] = _rows(home.warehouse, "select train_loss, val_loss from train_runs")
    assert train_loss > 0 and val_loss is None


def test_slop_markers_are_counted():
    assert slop_count("Great question! I’d be happy to help. Let me help you.") == 3
    assert slop_count("Patch it. Ship the fix, then refactor next sprint.") == 0


# ----------------------------------------------------------------------------- rejected answers and DPO


@pytest.mark.slow
def test_rejected_answers_one_per_prompt_resumably_and_the_next_build_pairs_them(home, tiny_model):
    args = ("train", "rejected", "--version", "v1", "--model", tiny_model, "--max-tokens", 4)
    prompts = {prompt_key(r["messages"][:-1]) for r in _records(home.version / "chatml")}
    first = home.etl(*args, "--limit", 5)
    assert first.exit_code == 0, first.output
    assert _rows(home.warehouse, "select count(*) from rejected_answers") == [(5,)]
    rest = home.etl(*args)
    assert rest.exit_code == 0, rest.output
    assert f"{len(prompts) - 5} answers stored, 5 already there" in rest.output
    again = home.etl(*args)
    assert f"0 answers stored, {len(prompts)} already there" in again.output

    stored = _rows(home.warehouse, "select prompt_sha256, model, params, answer from rejected_answers")
    assert {key for key, *_ in stored} == prompts
    assert {(model, params) for _, model, params, _ in stored} == {
        (str(tiny_model.resolve()), '{"max_tokens":4,"temperature":0.0}')
    }

    built = home.etl("build", "--version", "v2")
    assert built.exit_code == 0, built.output
    answers = {key: answer for key, _, _, answer in stored}
    v2 = home.datasets / "v2"
    for split in ("train", "valid", "test"):
        chat = (v2 / "chatml" / f"{split}.jsonl").read_text().splitlines()
        pairs = [json.loads(line) for line in (v2 / "dpo" / f"{split}.jsonl").read_text().splitlines()]
        assert len(pairs) == len(chat)
        for record, pair in zip(map(json.loads, chat), pairs):
            assert pair["chosen"] == record["messages"][-1]["content"]
            assert pair["rejected"] == answers[prompt_key(record["messages"][:-1])]


def test_answers_made_elsewhere_are_imported(home, tmp_path):
    messages = [{"role": "user", "content": "The PR is ready for review."}]
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        json.dumps({"messages": messages, "answer": "Certainly! I'd be happy to review it."}) + "\n"
        + json.dumps({"prompt_sha256": "ab" * 32, "answer": "As an AI, I cannot merge.", "model": "other"}) + "\n"
    )
    first = home.etl("train", "rejected", "--from-jsonl", answers, "--model", "gpt-4o")
    assert first.exit_code == 0, first.output
    assert "imported 2 answers" in first.output
    assert sorted(_rows(home.warehouse, "select prompt_sha256, model from rejected_answers")) == sorted(
        [(prompt_key(messages), "gpt-4o"), ("ab" * 32, "other")]
    )
    again = home.etl("train", "rejected", "--from-jsonl", answers, "--model", "gpt-4o")
    assert "imported 0 answers" in again.output and "2 were already stored" in again.output


@pytest.fixture
def dpo_version(home) -> Path:
    """Version v2 of the demo, built after importing an answer to every prompt of v1."""
    imported = home.etl("train", "rejected", "--from-jsonl", _answers_for_every_prompt(home), "--model", "base")
    assert imported.exit_code == 0, imported.output
    built = home.etl("build", "--version", "v2")
    assert built.exit_code == 0, built.output
    return home.datasets / "v2"


def test_dpo_files_load_with_mlx_lm_lora_dataset(dpo_version, tiny_model):
    """The DPO files of a build load with mlx-lm-lora's own DPO dataset and the tiny tokenizer.

    The test stops at loading: mlx-lm-lora's DPO trainer asks mx.device_info() for
    Metal's "max_recommended_working_set_size", so it only trains on Apple silicon.
    """
    from mlx_lm_lora.trainer.datasets import DPODataset, load_local_dataset

    tokenizer = mlx_lm.load(str(tiny_model))[1]
    splits = load_local_dataset(dpo_version / "dpo", tokenizer, SimpleNamespace(train_mode="dpo"))
    chat = [len((dpo_version / "chatml" / f"{s}.jsonl").read_text().splitlines()) for s in ("train", "valid", "test")]
    assert all(isinstance(split, DPODataset) for split in splits)
    assert [len(split) for split in splits] == chat
    pair = splits[0][0]
    prompt = pair["chosen"][: pair["chosen_prompt_length"]]
    assert pair["rejected"][: pair["rejected_prompt_length"]] == prompt
    assert tokenizer.decode(pair["rejected"]).endswith(
        "<|im_start|>assistant\nGreat question! I'd be happy to help you with that.<|im_end|>\n"
    )
    assert tokenizer.decode(prompt).startswith("<|im_start|>system\nYou are Sam Rivera.")


def test_dpo_dry_run_passes_what_mlx_lm_lora_does_not_read_from_yaml(home, dpo_version, tiny_model):
    result = home.etl("train", "dpo", "--version", "v2", "--model", tiny_model, "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"{sys.executable} -m mlx_lm_lora.train --config" in result.output
    assert "--gradient-accumulation-steps 4" in result.output
    assert "train_mode: dpo" in result.output and f"data: {dpo_version.resolve()}/dpo" in result.output


def test_dpo_refuses_without_pairs_or_model(home, tiny_model):
    result = home.etl("train", "dpo", "--version", "v1", "--model", tiny_model)
    assert result.exit_code != 0 and "etl train rejected --version v1" in result.output
    result = home.etl("train", "dpo", "--version", "v1")
    assert result.exit_code != 0 and "pass --model" in result.output


# ----------------------------------------------------------------------------- without the [train] extra


def test_other_commands_never_import_mlx():
    code = "import sys, etl.cli, etl.train.runs; assert not any(m.startswith('mlx') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_train_without_mlx_says_what_to_install(home, tiny_model, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlx_lm" else real(name, *a))
    result = home.etl("train", "sft", "--version", "v1", "--model", tiny_model)
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == (
        "etl: error: mlx-lm is not installed; run: pip install 'etl-voice[train]'"
    )
