"""The prose path through training: neutral rewrites by a base model, and SFT with the persona preset.

Real mlx-lm on a tiny model built on the spot; nothing is downloaded.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import prose_books as book
from etl.cli import cli
from etl.train import presets
from etl.warehouse import open_warehouse

mlx_lm = pytest.importorskip("mlx_lm", reason="the [train] extra is not installed")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from etl.train.tinymodel import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def etl(tmp_path):
    def run(*args):
        return CliRunner().invoke(cli, ["--warehouse", str(tmp_path / "wh.duckdb"), "--datasets",
                                        str(tmp_path / "datasets"), *map(str, args)])

    run.warehouse, run.datasets, run.home = tmp_path / "wh.duckdb", tmp_path / "datasets", tmp_path
    book.write_essays(tmp_path / "essays", 6)
    assert run("ingest", "prose", tmp_path / "essays").exit_code == 0
    assert run("build", "--version", "p1", "--corpus", "prose", "--chunk-tokens", 200).exit_code == 0
    return run


def _sql(warehouse, query):
    with open_warehouse(warehouse, read_only=True) as con:
        return con.execute(query).fetchall()


def test_the_persona_preset_has_the_seeds_values():
    from mlx_lm.lora import CONFIG_DEFAULTS

    config = presets.load("14b-base-persona")
    assert set(config) <= set(CONFIG_DEFAULTS)
    assert config["lora_parameters"] == {
        "rank": 64, "scale": 2.0, "dropout": 0.1,
        "keys": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                 "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
    }
    assert (config["batch_size"], config["grad_accumulation_steps"], config["learning_rate"], config["iters"]) == (
        1, 4, 1e-5, 2100)
    assert config["num_layers"] == -1 and config["grad_checkpoint"] is True and config["fine_tune_type"] == "lora" and config["seed"] == 42


def test_sft_on_a_prose_version_reads_its_completions(etl, tiny_model):
    result = etl("train", "sft", "--version", "p1", "--preset", "14b-base-persona", "--model", tiny_model,
                 "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"data: {(etl.datasets / 'p1').resolve()}/completions" in result.output
    assert "rank: 64" in result.output


def test_neutral_refuses_a_version_that_is_not_prose(etl, tiny_model):
    (etl.datasets / "v9").mkdir()
    result = etl("train", "neutral", "--version", "v9", "--model", tiny_model)
    assert result.exit_code != 0 and "manifest.json is missing" in result.output


@pytest.mark.slow
def test_neutral_rewrites_are_stored_resumed_and_built_then_sft_trains(etl, tiny_model):
    [(chunks,)] = _sql(etl.warehouse, "select count(*) from prose_chunks where version = 'p1'")
    first = etl("train", "neutral", "--version", "p1", "--model", tiny_model, "--limit", 2, "--max-tokens", 12)
    assert first.exit_code == 0, first.output
    [(stored,)] = _sql(etl.warehouse, "select count(*) from neutral_rewrites")
    assert 0 < stored <= 2
    rest = etl("train", "neutral", "--version", "p1", "--model", tiny_model, "--max-tokens", 12)
    assert rest.exit_code == 0, rest.output
    assert f"{stored} already there" in rest.output
    [(total,)] = _sql(etl.warehouse, "select count(*) from neutral_rewrites")
    again = etl("train", "neutral", "--version", "p1", "--model", tiny_model, "--max-tokens", 12)
    assert "0 rewrites stored" in again.output and _sql(etl.warehouse, "select count(*) from neutral_rewrites") == [
        (total,)]

    built = etl("build", "--version", "p2", "--corpus", "prose", "--chunk-tokens", 200)
    assert built.exit_code == 0, built.output
    manifest = json.loads((etl.datasets / "p2" / "manifest.json").read_text())
    assert manifest["counts"]["pairs_by_kind"].get("neutral") == total
    assert manifest["counts"]["chunks_without_neutral"] == chunks - total
    assert etl("verify", "p2", "--rebuild").exit_code == 0

    trained = etl("train", "sft", "--version", "p2", "--preset", "14b-base-persona", "--model", tiny_model,
                  "--iters", 2, "--set", "grad_accumulation_steps=1", "--set", "steps_per_report=1",
                  "--set", "val_batches=1")
    assert trained.exit_code == 0, trained.output
    [(exit_status, train_loss, preset)] = _sql(etl.warehouse, "select exit_status, train_loss, preset from train_runs")
    assert exit_status == 0 and train_loss > 0 and preset == "14b-base-persona"
