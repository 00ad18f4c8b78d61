"""The `etl` command line. The only module that speaks click; the work lives elsewhere."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import click

from etl import __version__
from etl.errors import LINE_LIMIT, EtlError, one_line
from etl.paths import default_datasets, default_warehouse, owner_only


class EtlGroup(click.Group):
    """Turns errors meant for the user into one line on stderr and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        try:
            # Everything etl writes (and what DuckDB and the trainer write for it) is owner-only.
            with owner_only():
                return super().invoke(ctx)
        except EtlError as error:
            click.echo(_error_line("etl: error: ", error), err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("etl: interrupted; nothing was written", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as error:  # noqa: BLE001 (the edge where bugs become one line)
            if getattr(sys, "_called_from_test", False) or os.environ.get("ETL_RAISE_ERRORS"):
                raise
            hint = " (set ETL_RAISE_ERRORS=1 to see the traceback)"
            line = _error_line("etl: unexpected error: ", f"{type(error).__name__}: {error}", len(hint))
            click.echo(line + hint, err=True)
            ctx.exit(1)


def _error_line(prefix: str, message: object, reserved: int = 0) -> str:
    """One line of at most LINE_LIMIT characters, whatever the message quotes or spans."""
    return prefix + one_line(message, LINE_LIMIT - len(prefix) - reserved)


@click.group(cls=EtlGroup)
@click.version_option(__version__, prog_name="etl")
@click.option(
    "--warehouse",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="ETL_WAREHOUSE",
    help="The DuckDB warehouse file. Default: $ETL_HOME/warehouse.duckdb "
    "(ETL_HOME defaults to ~/.local/share/etl).",
)
@click.option(
    "--datasets",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="ETL_DATASETS",
    help="Folder of dataset versions. Default: $ETL_HOME/datasets.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="ETL_CONFIG",
    help="corpus.toml to use. Default: ./corpus.toml, else $ETL_HOME/corpus.toml.",
)
@click.pass_context
def cli(ctx: click.Context, warehouse: Path | None, datasets: Path | None, config_path: Path | None):
    """Turn your own messages into a clean, versioned, hashed training set.

    \b
    etl sources                      the exports etl reads
    etl ingest imessage              land your iMessage history (or email, whatsapp, …)
    etl build --version v1           clean, deduplicate and write a dataset
    etl report v1                    look at it before training
    etl sql "select * from source_counts"
    etl train sft --version v1 --preset 7b-lora
    """
    ctx.obj = SimpleNamespace(
        warehouse=(warehouse or default_warehouse()).expanduser(),
        datasets=(datasets or default_datasets()).expanduser(),
        config_path=config_path.expanduser() if config_path else None,
    )


def _config(obj):
    from etl.config import load_config

    return load_config(obj.config_path)


# ----------------------------------------------------------------------------- ingest


class IngestGroup(click.Group):
    """`etl ingest NAME`: one subcommand per registered connector."""

    def list_commands(self, ctx):
        from etl.sources import SOURCES

        return sorted([*SOURCES, "prose"])

    def get_command(self, ctx, name):
        from etl.sources import SOURCES

        if name == "prose":  # documents and paragraphs, not messages: a loader of its own
            from etl.cli_prose import ingest_prose

            return ingest_prose
        if name not in SOURCES:
            return None
        return _ingest_command(SOURCES[name])

    def resolve_command(self, ctx, args):
        from etl.sources import SOURCES

        name = args[0] if args else None
        if name and not name.startswith("-") and name not in SOURCES and name != "prose":
            raise EtlError(f"unknown source {name!r}; available sources: {', '.join(sorted([*SOURCES, 'prose']))}")
        return super().resolve_command(ctx, args)


@cli.group(cls=IngestGroup)
def ingest():
    """Land an export in the warehouse. Re-running adds only what is new."""


def _ingest_command(source) -> click.Command:
    params: list[click.Parameter] = []
    for p in source.params:
        params.append(
            click.Option(
                [f"--{p.name.replace('_', '-')}", p.name],
                help=p.help,
                default=p.default,
                is_flag=p.is_flag,
                multiple=p.multiple,
                envvar=p.envvar,
                show_default=not p.secret and p.default is not None,
                show_envvar=p.envvar is not None,
            )
        )
    if source.paths != "none":
        params.append(
            click.Argument(
                ["paths"],
                nargs=-1,
                required=source.paths == "required",
                type=click.Path(path_type=Path),
            )
        )

    @click.pass_obj
    def run(obj, paths=(), **options):
        from etl.ingest import run_ingest
        from etl.progress import counter

        config = _config(obj)
        # corpus.toml's [sources.NAME] fills the options not given on the command line.
        click_ctx = click.get_current_context()
        configured = config.source_options(source.name)
        for name, value in configured.items():
            given = name in options and click_ctx.get_parameter_source(name) not in (
                click.core.ParameterSource.DEFAULT,
                None,
            )
            if not given:
                options[name] = value
        for p in source.params:
            if p.path and options.get(p.name):
                options[p.name] = str(Path(options[p.name]).expanduser())
        chosen = [Path(x).expanduser() for x in (paths or source.default_paths)]
        with counter(f"ingest {source.name}") as advance:
            result = run_ingest(obj.warehouse, source, chosen, options, config.owner, advance)
        click.echo(
            f"{source.name}: {result.seen:,} read, {result.new:,} new, "
            f"{result.unchanged:,} already present, {result.quarantined:,} quarantined "
            f"(run {result.run_id}, warehouse {obj.warehouse})"
        )
        if result.new == 0:
            click.echo("nothing new since the last run")
        for note in result.notes:
            click.echo(f"note: {note}")
        if result.quarantined:
            click.echo(
                f'see why: etl sql "select location, reason from quarantine where run_id = \'{result.run_id}\'"'
            )

    expects = getattr(source, "expects", "an export")
    help_text = source.help if expects == "an export" else f"{source.help}\n\nExpects {expects}."
    return click.Command(source.name, params=params, callback=run, help=help_text)


@cli.command()
def sources():
    """List the connectors `etl ingest` knows."""
    from etl.sources import SOURCES

    from etl.cli_prose import PROSE_HELP

    lines = {name: SOURCES[name].help.splitlines()[0] for name in SOURCES} | {"prose": PROSE_HELP}
    for name in sorted(lines):
        click.echo(f"{name:<14} {lines[name]}")


# ----------------------------------------------------------------------------- inspect


@cli.command()
@click.pass_obj
def status(obj):
    """What the warehouse holds: counts per source, kind and owner; last runs; quarantine."""
    from etl.inspect import status_report

    click.echo(status_report(obj.warehouse))


@cli.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.pass_obj
def sql(obj, query, fmt, output):
    """Run a read-only SQL query against the warehouse.

    \b
    Example:
        etl sql "select kind, count(*) from messages group by 1"
        etl sql "select reason, count(*) from build_drops where version = 'v1' group by 1"
    """
    from etl.inspect import run_query

    run_query(obj.warehouse, query, fmt, output)


@cli.command()
@click.option("--write", is_flag=True, help="Open read-write (default: read-only).")
@click.pass_obj
def shell(obj, write):
    """An interactive SQL prompt on the warehouse (end statements with ;)."""
    from etl.inspect import interactive_shell

    interactive_shell(obj.warehouse, read_only=not write)


# ----------------------------------------------------------------------------- build


@cli.command()
@click.option("--path", type=click.Path(dir_okay=False, path_type=Path), default=Path("corpus.toml"), show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path, force):
    """Write a commented default corpus.toml to edit."""
    from etl.config import DEFAULT_TOML

    if path.exists() and not force:
        raise EtlError(f"{path} already exists; use --force to overwrite it")
    path.write_text(DEFAULT_TOML, encoding="utf-8")
    click.echo(f"wrote {path}: add your names, addresses and numbers under [owner]")


@cli.command()
@click.option("--version", "version", required=True, help="Name of the new version, e.g. v3.")
@click.option("--dry-run", is_flag=True, help="Print the counts; write nothing.")
@click.option("--source", "sources_", multiple=True, help="Only these sources (repeatable).")
@click.option("--min-response-chars", type=int)
@click.option("--conversation-gap-hours", type=float)
@click.option("--context-turns", type=int)
@click.option("--context-chars", type=int)
@click.option("--dedup-threshold", type=float)
@click.option("--max-reply-repeats", type=int)
@click.option("--system-prompt")
@click.option("--trajectory-tags/--no-trajectory-tags", default=None)
@click.option("--redact-pii/--no-redact-pii", default=None)
@click.option("--speaker-labels", type=click.Choice(["names", "pseudonyms"]),
              help="Group-chat labels of other people: names (a pseudonym where none) or pseudonyms.")
@click.option("--timings", is_flag=True, help="Print the seconds each stage took.")
@click.option("--corpus", type=click.Choice(["chat", "prose"]), default="chat", show_default=True,
              help="chat: messages into conversations; prose: documents into many-to-one style pairs.")
@click.option("--tokenizer", type=click.Path(exists=True, path_type=Path),
              help="prose: a local tokenizer.json (or model folder) to count tokens in; default: words.")
@click.option("--target-tokens", type=int, help="prose: total token budget, shared evenly across documents.")
@click.option("--chunk-tokens", type=int, help="prose: at most this many tokens per chunk.")
@click.option("--min-para-words", type=int, help="prose: shorter paragraphs are dropped.")
@click.pass_obj
def build(obj, version, dry_run, sources_, timings, corpus, tokenizer, target_tokens, chunk_tokens, min_para_words,
          **overrides):
    """Clean, deduplicate, tag and split the warehouse into dataset VERSION.

    \b
    Example:
        etl build --version v1
        etl build --version v2 --dedup-threshold 0.7 --dry-run
        etl build --version p1 --corpus prose --tokenizer ./models/qwen/tokenizer.json
    """
    from etl.build import build_version
    from etl.progress import stages
    from etl.warehouse import require_warehouse

    require_warehouse(obj.warehouse)
    if corpus == "prose":
        from etl.prose.build import build_prose_version
        from etl.prose.config import prose_config

        config = _config(obj)
        prose = prose_config(config.prose).with_overrides(
            tokenizer=str(tokenizer.expanduser().resolve()) if tokenizer else None, target_tokens=target_tokens,
            chunk_tokens=chunk_tokens, min_para_words=min_para_words)
        with stages(f"building {version}"):
            result = build_prose_version(obj.warehouse, obj.datasets, version, config, prose, dry_run=dry_run)
        click.echo(result.summary())
        return

    config = _config(obj).with_build(sources=tuple(sources_) or None, **overrides)
    with stages(f"building {version}"):
        result = build_version(obj.warehouse, obj.datasets, version, config, dry_run=dry_run)
    click.echo(result.summary())
    if timings:
        for stage, seconds in result.timings.items():
            click.echo(f"  {stage:<12} {seconds:8.2f} s", err=True)


@cli.command()
@click.argument("version")
@click.option("--rebuild", is_flag=True, help="Also rebuild it from the warehouse and compare every hash.")
@click.pass_obj
def verify(obj, version, rebuild):
    """Check every file of VERSION against its SHA256SUMS and manifest."""
    from etl.verify import rebuild_and_compare
    from etl.versions import verify_version
    from etl.warehouse import require_warehouse
    from etl.warehouse.builds import require_finished

    require_warehouse(obj.warehouse)
    require_finished(obj.warehouse, version)
    manifest = verify_version(obj.datasets / version)
    click.echo(f"{version}: every file matches (dataset sha256 {manifest['dataset_sha256']})")
    if rebuild:
        rebuild_and_compare(obj.warehouse, obj.datasets, version)
        click.echo(f"{version}: a fresh rebuild from the warehouse gives identical files")


@cli.command()
@click.argument("old")
@click.argument("new")
@click.pass_obj
def diff(obj, old, new):
    """Examples added and removed between two versions, by source and reason."""
    from etl.inspect import diff_versions

    click.echo(diff_versions(obj.warehouse, old, new))


@cli.command()
@click.argument("version")
@click.argument("version2", required=False)
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write report.html and charts/ into. "
    "Default: reports/VERSION (or reports/VERSION-vs-VERSION2) beside the datasets folder.",
)
@click.option(
    "--tokenizer",
    type=click.Path(exists=True, path_type=Path),
    help="A local tokenizer.json, or a model folder holding one, to also count tokens. Never downloaded.",
)
@click.option("--open", "open_", is_flag=True, help="Open the report in the web browser.")
@click.pass_obj
def report(obj, version, version2, output, tokenizer, open_):
    """Write an HTML report of dataset VERSION to read before training on it,
    or compare VERSION with VERSION2 side by side.

    \b
    Example:
        etl report v1
        etl report v1 v2 --open
    """
    from etl.report import open_report, write_comparison, write_report

    if version2 is None and _is_prose_version(obj.datasets / version):
        from etl.prose.report import write_prose_report

        path = write_prose_report(obj.warehouse, obj.datasets, version, output)
    elif version2 is None:
        path = write_report(obj.warehouse, obj.datasets, version, output, tokenizer=tokenizer)
    elif tokenizer is not None:
        raise EtlError("--tokenizer applies to the report of one version, not to a comparison")
    else:
        path = write_comparison(obj.warehouse, obj.datasets, version, version2, output)
    click.echo(f"report: {path}")
    if open_:
        open_report(path)


@cli.command()
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), help="Where to put the demo (default: ./etl-demo).")
@click.pass_obj
def demo(obj, home):
    """Ingest the bundled sample exports into a fresh warehouse and build v1."""
    from etl.demo import run_demo

    run_demo((home or Path("etl-demo")).resolve(), echo=click.echo)


def _is_prose_version(folder: Path) -> bool:
    from etl.versions import read_manifest

    return (folder / "manifest.json").is_file() and read_manifest(folder).get("corpus") == "prose"


from etl.cli_train import train  # noqa: E402

cli.add_command(train)


def main() -> None:
    os.umask(0o077)  # the whole process, children included: nothing etl writes is readable by others
    cli(prog_name="etl")
