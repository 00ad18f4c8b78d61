"""`etl ingest prose`: long-form writing (books, essays, blog exports) into documents and paragraphs."""

from __future__ import annotations

from pathlib import Path

import click

PROSE_HELP = "Books, essays and blog posts: .txt .md .html .docx .epub, WordPress .xml, Substack/Medium .zip."


@click.command(name="prose", help=f"""{PROSE_HELP}

\b
Each document lands with its title, date where known and its paragraphs in order,
in the `documents` and `paragraphs` tables. Re-running adds only new documents; a
file that cannot be read is quarantined and the rest lands. The owner is taken to
be the author unless --author (or author in [sources.prose]) names someone else.

\b
Example:
    etl ingest prose ~/writing/book.epub ~/writing/blog-export.zip
    etl ingest prose drafts/ --author "Ana Lima"
""")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--author", help="Who wrote these documents (default: the owner).")
@click.pass_obj
def ingest_prose(obj, paths, author):
    from etl.config import load_config
    from etl.progress import counter
    from etl.prose.ingest import run_prose_ingest

    config = load_config(obj.config_path)
    author = author or config.source_options("prose").get("author")
    with counter("ingest prose") as advance:
        result = run_prose_ingest(obj.warehouse, [Path(p).expanduser() for p in paths], config.owner, author, advance)
    formats = ", ".join(f"{k} {v}" for k, v in result.formats.items())
    click.echo(
        f"prose: {result.seen:,} documents read, {result.new:,} new ({result.paragraphs:,} paragraphs"
        f"{'; ' + formats if formats else ''}), {result.unchanged:,} already present, "
        f"{result.quarantined:,} quarantined (run {result.run_id}, warehouse {obj.warehouse})"
    )
    if result.new == 0:
        click.echo("nothing new since the last run")
    for note in result.notes:
        click.echo(f"note: {note}")
    if result.quarantined:
        click.echo(f'see why: etl sql "select location, reason from quarantine where run_id = \'{result.run_id}\'"')
