"""`etl train`: hand a verified version to mlx-lm (SFT) or mlx-lm-lora (DPO), and keep the record."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from etl.errors import EtlError


@click.group()
def train():
    """Train adapters on a dataset version, store base-model answers, compare personas.

    \b
    etl train presets
    etl train sft --version v1 --preset 7b-lora
    etl train rejected --version v1 --model mlx-community/Qwen2.5-7B-Instruct-4bit
    etl train neutral --version p1 --model ./models/Qwen2.5-14B-Base-4bit-MLX
    etl train dpo --version v2 --preset dpo --model ./fused-sft
    etl train eval --adapter ~/.local/share/etl/runs/<run>/adapters
    """


@train.command(name="tiny-model")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
def tiny_model(path):
    """Write a tiny random Qwen2-shaped model with a ChatML tokenizer to PATH.

    It learns nothing useful; it lets you try `etl train` end to end on any machine,
    offline, in seconds:

    \b
        etl train tiny-model ./tiny
        etl train sft --version v1 --preset 7b-lora --model ./tiny --iters 5 --set grad_accumulation_steps=1
    """
    from etl.train import require
    from etl.train.tinymodel import make_tiny_model

    require()
    make_tiny_model(path)
    click.echo(f"wrote a tiny model to {path}")


@train.command()
def presets():
    """List the bundled presets (YAML in the trainers' own keys)."""
    from etl.train import presets as bundled

    for name in bundled.names():
        click.echo(f"{name:<12} {bundled.summary(name)}")
    click.echo(f"\nfiles in {bundled.PRESETS_DIR}; copy one, edit it, and pass its path to --preset")


def _run_options(default_preset: str):
    """The options `sft` and `dpo` share."""

    def decorate(command):
        options = [
            click.option("--version", "version", required=True,
                         help="Dataset version (a name under --datasets, or a folder)."),
            click.option("--preset", default=default_preset, show_default=True,
                         help="Preset name (see `etl train presets`) or path of a YAML file."),
            click.option("--model", help="Local model folder or Hugging Face repo (overrides the preset)."),
            click.option("--iters", type=int, help="Training iterations."),
            click.option("--learning-rate", type=float, help="Peak learning rate (the schedule follows it)."),
            click.option("--batch-size", type=int),
            click.option("--adapter-path", type=click.Path(file_okay=False, path_type=Path),
                         help="Where to write the adapters. Default: $ETL_HOME/runs/<run>/adapters."),
            click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
                         help="Any other trainer key, dotted for nested ones: --set lora_parameters.rank=16"),
            click.option("--dry-run", is_flag=True, help="Print the command and config; run nothing."),
            click.pass_obj,
        ]
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@train.command()
@_run_options(default_preset="7b-lora")
def sft(obj, **options):
    """Supervised fine-tuning with `mlx_lm lora` on the version's chatml/ split files.

    Every file of the version is checked against its SHA256SUMS first; the run,
    its config and its last losses go to the `train_runs` table.

    \b
    Example:
        etl train sft --version v1 --preset 7b-lora
        etl train sft --version v1 --preset 3b-dora-r32 --iters 1000 --dry-run
    """
    _train(obj, "sft", **options)


@train.command()
@_run_options(default_preset="dpo")
def dpo(obj, **options):
    """Preference training with `mlx_lm_lora.train --train-mode dpo` on the version's dpo/ files.

    The pairs come from a build after `etl train rejected`; --model is the fused SFT model.

    \b
    Example:
        etl train dpo --version v2 --model ./fused-sft
    """
    _train(obj, "dpo", **options)


def _train(obj, mode, version, preset, model, iters, learning_rate, batch_size, adapter_path, settings, dry_run):
    from etl.train import presets, require, runs
    from etl.warehouse import require_warehouse

    require_warehouse(obj.warehouse)  # before anything is planned or written: a typo creates nothing
    overrides = presets.parse_set(settings)
    overrides.update(model=model, iters=iters, learning_rate=learning_rate, batch_size=batch_size)
    plan = runs.plan_run(mode, _version_dir(obj, version), preset, overrides, adapter_path)
    for note in plan.notes:
        click.echo(f"note: {note}")
    if dry_run:
        from etl.train import mlx_config

        click.echo(f"# {plan.config_path}\n{mlx_config.dump(plan.config)}")
        click.echo(shlex.join(plan.command))
        return
    module, package = runs.TRAINERS[mode]
    require(module, package)
    click.echo(f"run {plan.run_id}: {plan.version} (dataset sha256 {plan.dataset_sha256[:12]}…)")
    click.echo(shlex.join(plan.command))
    result = runs.execute(plan, obj.warehouse)
    losses = f"last train loss {_loss(result.train_loss)}, val loss {_loss(result.val_loss)}"
    if result.exit_status != 0:
        raise EtlError(
            f"{package} exited with status {result.exit_status} ({losses}); "
            f"run {plan.run_id} is recorded in train_runs, its output in {plan.run_dir / 'train.log'}"
        )
    click.echo(f"run {plan.run_id} done: {losses}; adapters in {plan.adapter_path}")
    click.echo(f"compare with the base model: etl train eval --adapter {shlex.quote(str(plan.adapter_path))}")


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _version_dir(obj, version: str) -> Path:
    named = obj.datasets / version
    if named.is_dir():
        from etl.warehouse.builds import require_finished

        require_finished(obj.warehouse, version)
        return named
    given = Path(version).expanduser()
    if given.is_dir():
        return given
    raise EtlError(f"no dataset version {version!r} in {obj.datasets}; build one with `etl build --version {version}`")


@train.command()
@click.option("--version", "version", help="Dataset version whose prompts to answer.")
@click.option("--model", help="The base model (local folder or Hugging Face repo).")
@click.option("--limit", type=int, help="Answer at most N prompts now (the rest on a later run).")
@click.option("--max-tokens", type=int, default=256, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True, help="0 answers greedily.")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Prompts generated together.")
@click.option("--from-jsonl", "from_jsonl", type=click.Path(dir_okay=False, path_type=Path),
              help='Import answers made elsewhere: lines of {"messages"|"prompt_sha256", "answer"}.')
@click.pass_obj
def rejected(obj, version, model, limit, max_tokens, temperature, batch_size, from_jsonl):
    """Store the base model's answer to each prompt of a version (the DPO `rejected` side).

    Resumable: prompts already answered by the same model with the same parameters
    are skipped. The next `etl build` pairs them with the owner's real replies.

    \b
    Example:
        etl train rejected --version v1 --model mlx-community/Qwen2.5-7B-Instruct-4bit
        etl train rejected --from-jsonl answers.jsonl --model gpt-4o
    """
    from etl.train import rejected as base_answers
    from etl.warehouse import require_warehouse

    require_warehouse(obj.warehouse)
    if from_jsonl:
        stored, present = base_answers.import_jsonl(obj.warehouse, from_jsonl, model)
        click.echo(f"imported {stored} answers from {from_jsonl} ({present} were already stored)")
        return
    if not version or not model:
        raise EtlError("give --version and --model (or --from-jsonl FILE to import answers)")
    from etl.train import require

    require()
    params = base_answers.GenerationParams(max_tokens=max_tokens, temperature=temperature)
    outcome = base_answers.generate(
        obj.warehouse, _version_dir(obj, version), model, params, limit=limit, batch_size=batch_size, echo=click.echo
    )
    left = outcome.prompts - outcome.already - outcome.stored
    click.echo(
        f"{outcome.stored} answers stored, {outcome.already} already there, {left} left "
        f"of {outcome.prompts} prompts; build a new version to emit the DPO pairs"
    )


@train.command()
@click.option("--version", "version", required=True, help="Prose version whose chunks to rewrite.")
@click.option("--model", required=True, help="A local base model folder (or Hugging Face repo already cached).")
@click.option("--limit", type=int, help="Rewrite at most N chunks now (the rest on a later run).")
@click.option("--max-tokens", type=int, default=512, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True, help="0 rewrites greedily.")
@click.option("--batch-size", type=int, default=4, show_default=True, help="Chunks generated together.")
@click.pass_obj
def neutral(obj, version, model, limit, max_tokens, temperature, batch_size):
    """Store a base model's plain rewrite of each chunk of a prose version (the `neutral` pairs).

    Resumable: chunks already rewritten by the same model with the same parameters and
    prompt are skipped, and every finished batch is kept. The next
    `etl build --corpus prose` turns the rewrites into pairs.

    \b
    Example:
        etl train neutral --version p1 --model ./models/Qwen2.5-14B-Base-4bit-MLX
    """
    from etl.train import neutral as rewrites
    from etl.train import require

    version_dir = _version_dir(obj, version)
    rewrites.version_chunks(obj.warehouse, version_dir)  # a wrong version fails before mlx loads
    require()
    outcome = rewrites.generate(obj.warehouse, version_dir, model, max_tokens=max_tokens, temperature=temperature,
                                limit=limit, batch_size=batch_size, echo=click.echo)
    left = outcome.chunks - outcome.already - outcome.stored
    click.echo(f"{outcome.stored} rewrites stored, {outcome.already} already there, {left} left of "
               f"{outcome.chunks} chunks; build a new version to emit the neutral pairs")


@train.command(name="eval")
@click.option("--adapter", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The adapters folder of a run.")
@click.option("--model", help="Base model. Default: the one the adapters were trained on.")
@click.option("--system", help="System prompt. Default: the one in the adapters' training data.")
@click.option("--max-tokens", type=int, default=200, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Default: the adapters folder.")
def evaluate(adapter, model, system, max_tokens, out):
    """The seed's ten persona prompts, base and adapted answers side by side (eval.md, eval.html).

    \b
    Example:
        etl train eval --adapter ~/.local/share/etl/runs/<run>/adapters
    """
    from etl.train import require
    from etl.train.evaluate import run_eval

    require()
    md, page, rows = run_eval(adapter, model, out or adapter, system=system, max_tokens=max_tokens)
    base = sum(r.base_slop for r in rows)
    adapted = sum(r.adapted_slop for r in rows)
    click.echo(f"slop markers: base {base}, adapted {adapted}; score the answers in {md} or {page}")
