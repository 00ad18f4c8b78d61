"""`etl ingest prose`: golden documents from every format, idempotence, quarantine, authorship."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

import prose_books as book
from etl.cli import cli
from etl.sources import Quarantined
from etl.sources import prose
from etl.warehouse import open_warehouse

P1, P2, P3, P4 = book.PROSE
CH1, CH2 = (heading for heading, _ in book.CHAPTERS)
MARCH_4 = datetime(2021, 3, 4, tzinfo=UTC)
MARCH_4_0930 = datetime(2021, 3, 4, 9, 30, tzinfo=UTC)


def _read(path):
    items = list(prose.read_file(path))
    docs = [i for i in items if not isinstance(i, Quarantined)]
    return docs, [i for i in items if isinstance(i, Quarantined)]


def _shape(doc):
    return [(p.kind, p.text) for p in doc.paragraphs]


def test_markdown_front_matter_headings_footnotes_and_captions(tmp_path):
    [doc], [] = _read(book.write_markdown(tmp_path))
    assert (doc.format, doc.title, doc.published_at, doc.author) == ("md", book.TITLE, MARCH_4, book.AUTHOR)
    assert _shape(doc) == [
        ("heading", book.TITLE), ("heading", CH1), ("text", P1 + "[^1]"), ("text", P2), ("heading", CH2),
        ("text", P3), ("text", P4), ("caption", "A gauge on the river bank at dawn"),
        ("footnote", f"[^1]: {book.FOOTNOTE}"),
    ]


def test_html_keeps_reading_order_marks_footnotes_and_skips_scripts(tmp_path):
    [doc], [] = _read(book.write_html(tmp_path))
    assert (doc.title, doc.published_at, doc.author) == (book.TITLE, MARCH_4_0930, book.AUTHOR)
    assert _shape(doc) == [
        ("heading", book.TITLE), ("heading", CH1), ("text", P1), ("text", P2 + "[^1]"), ("heading", CH2),
        ("text", P3), ("text", P4), ("caption", "The gauge at dawn."), ("footnote", book.FOOTNOTE),
    ]
    assert not any("tracking" in p.text for p in doc.paragraphs)


def test_docx_styles_become_kinds_and_roles(tmp_path):
    [doc], [] = _read(book.write_docx(tmp_path))
    assert (doc.title, doc.author, doc.published_at) == (book.TITLE, book.AUTHOR, MARCH_4_0930)
    assert _shape(doc) == [
        ("heading", book.TITLE), ("text", book.COPYRIGHT), ("heading", CH1), ("text", P1), ("text", P2),
        ("heading", CH2), ("text", P3), ("text", P4), ("caption", "Figure 1. The gauge at dawn."),
    ]
    assert [p.role for p in doc.paragraphs][:3] == ["Title", "Normal", "Heading 1"]


def test_epub_reads_the_spine_in_order_with_each_item_and_its_epub_type(tmp_path):
    [doc], [] = _read(book.write_epub(tmp_path))
    assert (doc.title, doc.author, doc.published_at) == (book.TITLE, book.AUTHOR, MARCH_4)
    prose_part = [(p.kind, p.text) for p in doc.paragraphs if "item:nav.xhtml" not in p.role]
    assert prose_part == [
        ("text", book.COPYRIGHT), ("text", book.DEDICATION), ("heading", CH1), ("text", P1 + "[^1]"), ("text", P2),
        ("footnote", book.FOOTNOTE), ("heading", CH2), ("text", P3), ("text", P4),
        ("heading", "About the Author"), ("text", book.ABOUT),
    ]
    roles = {p.text: p.role for p in doc.paragraphs}
    assert roles[book.COPYRIGHT] == "item:copyright.xhtml copyright-page"
    assert roles[book.DEDICATION] == "item:dedication.xhtml dedication"
    # The navigation document is in the spine too: it lands, marked as the table of contents.
    assert doc.paragraphs[0].role.startswith("item:nav.xhtml") and "toc" in doc.paragraphs[0].role


def test_plain_text_keeps_line_breaks_and_every_block(tmp_path):
    [doc], [] = _read(book.write_txt(tmp_path))
    assert doc.format == "txt" and doc.title == "patient machine" and doc.published_at is None
    texts = [p.text for p in doc.paragraphs]
    assert {p.kind for p in doc.paragraphs} == {"text"}
    assert texts[:3] == [book.TITLE.upper(), book.COPYRIGHT, "Contents"]
    assert texts.count(book.TITLE) == 4 and "12" in texts  # running headers and page numbers, as exported
    assert texts[6].replace("\n", " ") == P1 and "\n" in texts[6]


def test_wordpress_export_posts_with_and_without_paragraph_tags(tmp_path):
    docs, [empty] = _read(book.write_wxr(tmp_path))
    assert [(d.title, d.published_at, d.author, d.url) for d in docs] == [
        ("The Gauge", MARCH_4_0930, book.AUTHOR, "https://quill.example/the-gauge/"),
        ("The Silt", datetime(2021, 4, 1, 10, tzinfo=UTC), book.AUTHOR, "https://quill.example/the-silt/"),
    ]
    assert _shape(docs[0]) == [("text", P1), ("text", P2), ("heading", "Share this:")]
    assert _shape(docs[1]) == [("text", P3), ("text", P4)]
    assert empty.reason == "post has no content" and empty.location.endswith("item 4")


def test_substack_zip_reads_posts_through_its_csv_index(tmp_path):
    [doc], [missing] = _read(book.write_substack(tmp_path))
    assert (doc.format, doc.title, doc.published_at) == ("substack", "The Gauge", MARCH_4_0930)
    assert doc.metadata["subtitle"] == "On measuring"
    assert [p.text for p in doc.paragraphs] == [
        P1, P2, "Thanks for reading Quill! Subscribe for free to receive new posts.", "Subscribe now"]
    assert ".subscription-widget-wrap" in doc.paragraphs[2].role and ".button-wrapper" in doc.paragraphs[3].role
    assert missing.reason == "no posts/102.missing.html for post '102.missing'" and "line 3" in missing.location


def test_medium_zip_reads_each_post_body_and_quarantines_a_broken_one(tmp_path):
    [doc], [broken] = _read(book.write_medium(tmp_path))
    assert (doc.format, doc.title, doc.author) == ("medium", "The Silt", book.AUTHOR)
    assert doc.published_at == datetime(2021, 4, 1, 10, tzinfo=UTC)
    assert doc.url == "https://medium.com/@quill/the-silt-abc"
    assert _shape(doc) == [("heading", "The Silt"), ("text", P3), ("text", P4)]
    assert "draft_Broken-def.html" in broken.location and "no body section" in broken.reason


def test_a_zip_of_something_else_and_a_damaged_file_are_quarantined(tmp_path):
    other = tmp_path / "photos.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("a.jpg", b"\xff\xd8")
    damaged = tmp_path / "broken.docx"
    damaged.write_bytes(b"PK\x03\x04 not really a docx")
    for path, words in ((other, "neither a Substack export"), (damaged, "cannot read docx")):
        [], [q] = _read(path)
        assert q.location == str(path) and words in q.reason


# ----------------------------------------------------------------------------- the command


@pytest.fixture
def etl(tmp_path):
    warehouse = tmp_path / "wh.duckdb"

    def run(*args):
        return CliRunner().invoke(cli, ["--warehouse", str(warehouse), *map(str, args)])

    run.warehouse = warehouse
    return run


def _sql(warehouse, query):
    with open_warehouse(warehouse, read_only=True) as con:
        return con.execute(query).fetchall()


def test_ingest_a_folder_of_every_format_lands_documents_once(tmp_path, etl):
    folder = tmp_path / "writing"
    book.write_all(folder)
    (folder / "broken.epub").write_bytes(b"not a zip")
    first = etl("ingest", "prose", folder)
    assert first.exit_code == 0, first.output
    # 1 txt + md + html + docx + epub, 2 WordPress posts, 1 Substack and 1 Medium post; 4 quarantined:
    # the damaged epub, the empty post, the post missing from the zip, the Medium draft without a body.
    assert "13 documents read, 9 new" in first.output and "4 quarantined" in first.output
    assert _sql(etl.warehouse, "select format, count(*) from documents group by 1 order by 1") == [
        ("docx", 1), ("epub", 1), ("html", 1), ("md", 1), ("medium", 1), ("substack", 1), ("txt", 1), ("wordpress", 2)]
    [(paragraphs,)] = _sql(etl.warehouse, "select count(*) from paragraphs")
    assert paragraphs == sum(n for (n,) in _sql(etl.warehouse, "select paragraphs from documents"))
    reasons = _sql(etl.warehouse, "select location, reason from quarantine order by location")
    assert any(loc.endswith("broken.epub") and "cannot read epub" in why for loc, why in reasons)
    # The order of paragraphs is kept exactly.
    [(order,)] = _sql(etl.warehouse, "select list(text order by position) from paragraphs p join documents d "
                                     "using (document_id) where d.format = 'wordpress' and d.title = 'The Silt'")
    assert order == [P3, P4]

    again = etl("ingest", "prose", folder)
    assert again.exit_code == 0 and "0 new" in again.output and "9 already present" in again.output
    assert _sql(etl.warehouse, "select count(*) from documents") == [(9,)]
    assert _sql(etl.warehouse, "select count(*) from ingest_runs where source = 'prose'") == [(2,)]


def test_owner_is_the_author_unless_told_otherwise(tmp_path, etl):
    path = book.write_markdown(tmp_path)
    config = tmp_path / "corpus.toml"
    config.write_text('[owner]\nnames = ["Mara Quill"]\n')
    result = CliRunner().invoke(cli, ["--warehouse", str(etl.warehouse), "--config", str(config),
                                      "ingest", "prose", str(path)])
    assert result.exit_code == 0, result.output
    other = tmp_path / "guest.txt"
    other.write_text(P3 + "\n\n" + P1)
    result = CliRunner().invoke(cli, ["--warehouse", str(etl.warehouse), "--config", str(config),
                                      "ingest", "prose", str(other), "--author", "Guest Writer"])
    assert result.exit_code == 0, result.output
    assert _sql(etl.warehouse, "select format, author, is_owner from documents order by format") == [
        ("md", "Mara Quill", True), ("txt", "Guest Writer", False)]


def test_a_wrong_path_is_one_line_and_nothing_is_written(tmp_path, etl):
    result = etl("ingest", "prose", tmp_path / "nope.epub")
    assert result.exit_code != 0
    assert result.output.strip() == f"etl: error: no file or folder at {tmp_path / 'nope.epub'}"
    assert not etl.warehouse.exists()


def test_prose_is_listed_among_the_sources(etl):
    result = etl("sources")
    assert result.exit_code == 0 and "prose" in result.output and "Substack" in result.output
