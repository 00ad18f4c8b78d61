"""A small book and blog, written here, in every format `etl ingest prose` reads.

The book has what a real one has around its prose: a copyright page, a table of
contents, a dedication, chapter headings, a footnote, acknowledgements and a page
about the author. Each format is written with the library that reads it back.
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import datetime
from pathlib import Path

TITLE = "The Patient Machine"
AUTHOR = "Mara Quill"

PROSE = [
    "The river had been measured for three hundred years before anyone thought to ask what it was measuring "
    "in return. The gauges stood along its banks like patient clerks, each one recording the height of the "
    "water at dawn and at dusk, and the records filled a building that nobody visited except to add more "
    "paper to the shelves that leaned under the weight of all that careful attention.",
    "My grandmother kept one of those gauges for forty years, and she spoke of it the way other people spoke "
    "of a difficult neighbour. It was never wrong, she said, and that was the trouble with it, because a "
    "thing that is never wrong has no reason to listen, and a thing that does not listen will eventually "
    "tell you something you cannot afford to hear on a morning when you have no time left to argue.",
    "There is a kind of machine that waits. It does not break and it does not hurry; it simply accumulates "
    "the small consequences of every decision made around it, the way a riverbed accumulates silt, until "
    "one day the accumulated weight becomes the only fact in the room and all the other facts, the hopeful "
    "ones and the convenient ones, are quietly carried downstream and out of sight.",
    "We built the dams in the years after the flood, and we built them well, with concrete poured in "
    "shifts that ran through the night and engineers who slept in the cabs of their trucks. The dams held. "
    "They still hold. But the river remembered its old course the way a body remembers an injury, and "
    "every spring it pressed against the new walls with a patience that none of us could match.",
]

CHAPTERS = [("Chapter One: The Gauge", PROSE[:2]), ("Chapter Two: The Silt", PROSE[2:])]
FOOTNOTE = "The gauge at Harrow Bend was decommissioned in 1987."
COPYRIGHT = "Copyright © 2021 Mara Quill. All rights reserved. ISBN 978-0-00-000000-0"
DEDICATION = "For my grandmother, who kept the gauge."
ACKNOWLEDGEMENTS = "I thank the archivists of the river authority, who let me read everything."
ABOUT = "Mara Quill lives by a river she no longer trusts. This is her first book."


def write_txt(folder: Path) -> Path:
    """Hard-wrapped text as it comes out of a PDF: page numbers and a running header."""
    lines = [TITLE.upper(), "", COPYRIGHT, "", "Contents", "", "Chapter One: The Gauge ........ 1",
             "Chapter Two: The Silt ........ 9", "", DEDICATION, ""]
    for heading, paragraphs in CHAPTERS:
        lines += [heading, ""]
        for i, paragraph in enumerate(paragraphs):
            words = paragraph.split()
            lines += [" ".join(words[j:j + 12]) for j in range(0, len(words), 12)]
            lines += ["", TITLE, "", str(12 + i), ""]
    lines += ["Acknowledgements", "", ACKNOWLEDGEMENTS, "", "About the Author", "", ABOUT, ""]
    path = folder / "patient_machine.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_markdown(folder: Path) -> Path:
    body = [f"---\ntitle: {TITLE}\ndate: 2021-03-04\nauthor: {AUTHOR}\n---\n", f"# {TITLE}\n"]
    for heading, paragraphs in CHAPTERS:
        body.append(f"## {heading}\n")
        body += [p + "\n" for p in paragraphs]
    body[3] = body[3].rstrip("\n") + "[^1]\n"
    body.append("![A gauge on the river bank at dawn](gauge.jpg)\n")
    body.append(f"[^1]: {FOOTNOTE}\n")
    path = folder / "patient-machine.md"
    path.write_text("\n".join(body), encoding="utf-8")
    return path


def book_html(with_head: bool = True) -> str:
    parts = []
    for heading, paragraphs in CHAPTERS:
        parts.append(f"<h2>{heading}</h2>")
        parts += [f"<p>{p}</p>" for p in paragraphs]
    parts[2] = parts[2].replace("</p>", '<sup><a href="#fn1" id="fnref1">1</a></sup></p>')
    parts.append('<figure><img src="gauge.jpg"/><figcaption>The gauge at dawn.</figcaption></figure>')
    parts.append(f'<section class="footnotes"><ol><li id="fn1"><p>{FOOTNOTE}</p></li></ol></section>')
    body = "\n".join(parts)
    if not with_head:
        return body
    return (f'<!DOCTYPE html><html><head><title>{TITLE}</title>'
            f'<meta property="article:published_time" content="2021-03-04T09:30:00Z">'
            f'<meta name="author" content="{AUTHOR}"></head><body><article><h1>{TITLE}</h1>\n{body}'
            '<script>var tracking = 1;</script></article></body></html>')


def write_html(folder: Path) -> Path:
    path = folder / "patient-machine.html"
    path.write_text(book_html(), encoding="utf-8")
    return path


def write_docx(folder: Path) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = TITLE
    document.core_properties.author = AUTHOR
    document.core_properties.created = datetime(2021, 3, 4, 9, 30)
    document.add_paragraph(TITLE, style="Title")
    document.add_paragraph(COPYRIGHT)
    for heading, paragraphs in CHAPTERS:
        document.add_heading(heading, level=1)
        for p in paragraphs:
            document.add_paragraph(p)
    document.add_paragraph("Figure 1. The gauge at dawn.", style="Caption")
    path = folder / "patient-machine.docx"
    document.save(str(path))
    return path


def write_epub(folder: Path) -> Path:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("urn:uuid:0f3f2a52-patient-machine")
    book.set_title(TITLE)
    book.set_language("en")
    book.add_author(AUTHOR)
    book.add_metadata("DC", "date", "2021-03-04")

    def page(name: str, title: str, html: str, epub_type: str) -> epub.EpubHtml:
        item = epub.EpubHtml(title=title, file_name=name, lang="en")
        item.content = f'<html><body><section epub:type="{epub_type}">{html}</section></body></html>'
        book.add_item(item)
        return item

    items = [
        page("copyright.xhtml", "Copyright", f"<p>{COPYRIGHT}</p>", "copyright-page"),
        page("dedication.xhtml", "Dedication", f"<p>{DEDICATION}</p>", "dedication"),
    ]
    for number, (heading, paragraphs) in enumerate(CHAPTERS, start=1):
        body = f"<h1>{heading}</h1>" + "".join(f"<p>{p}</p>" for p in paragraphs)
        if number == 1:
            body = body.replace("</p>", '<a epub:type="noteref" href="#n1">1</a></p>', 1)
            body += f'<aside epub:type="footnote" id="n1"><p>{FOOTNOTE}</p></aside>'
        items.append(page(f"chapter{number}.xhtml", heading, body, "chapter"))
    items.append(page("about.xhtml", "About the Author", f"<h1>About the Author</h1><p>{ABOUT}</p>", "backmatter"))
    book.toc = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items]
    path = folder / "patient-machine.epub"
    epub.write_epub(str(path), book)
    return path


def write_wxr(folder: Path) -> Path:
    first = "\n\n".join(PROSE[:2]) + "\n\n<h3>Share this:</h3>"
    second = "".join(f"<!-- wp:paragraph --><p>{p}</p><!-- /wp:paragraph -->" for p in PROSE[2:])
    items = "".join(
        f"""<item><title>{title}</title><link>https://quill.example/{slug}/</link>
<pubDate>Thu, 04 Mar 2021 09:30:00 +0000</pubDate><dc:creator><![CDATA[mquill]]></dc:creator>
<content:encoded><![CDATA[{content}]]></content:encoded>
<wp:post_id>{pid}</wp:post_id><wp:post_date_gmt>{gmt}</wp:post_date_gmt>
<wp:status>publish</wp:status><wp:post_type>{kind}</wp:post_type></item>"""
        for title, slug, content, pid, gmt, kind in (
            ("The Gauge", "the-gauge", first, 11, "2021-03-04 09:30:00", "post"),
            ("The Silt", "the-silt", second, 12, "2021-04-01 10:00:00", "post"),
            ("logo", "logo", "", 13, "2021-04-01 10:00:00", "attachment"),
            ("Empty", "empty", "", 14, "2021-04-02 10:00:00", "post"),
        )
    )
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
 xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:wp="http://wordpress.org/export/1.2/">
<channel><title>Quill</title><wp:wxr_version>1.2</wp:wxr_version>
<wp:author><wp:author_login><![CDATA[mquill]]></wp:author_login>
<wp:author_display_name><![CDATA[{AUTHOR}]]></wp:author_display_name></wp:author>
{items}</channel></rss>"""
    path = folder / "quill.wordpress.2021-04-02.xml"
    path.write_text(xml, encoding="utf-8")
    return path


def write_substack(folder: Path) -> Path:
    index = io.StringIO()
    writer = csv.writer(index)
    writer.writerow(["post_id", "post_date", "is_published", "email_sent_at", "inbox_sent_at", "type", "audience",
                     "title", "subtitle", "podcast_url"])
    writer.writerow(["101.the-gauge", "2021-03-04T09:30:00.000Z", "true", "", "", "newsletter", "everyone",
                     "The Gauge", "On measuring", ""])
    writer.writerow(["102.missing", "2021-03-05T09:30:00.000Z", "true", "", "", "newsletter", "everyone",
                     "Missing", "", ""])
    post = "".join(f"<p>{p}</p>" for p in PROSE[:2])
    post += ('<div class="subscription-widget-wrap"><div class="subscription-widget"><p class="cta-caption">'
             "Thanks for reading Quill! Subscribe for free to receive new posts.</p></div></div>")
    post += '<p class="button-wrapper"><a class="button primary" href="https://quill.example/subscribe"><span>Subscribe now</span></a></p>'
    path = folder / "substack-export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("posts.csv", index.getvalue())
        archive.writestr("posts/101.the-gauge.html", post)
        archive.writestr("posts/101.the-gauge.delivers.csv", "email,timestamp\n")
    return path


def write_medium(folder: Path) -> Path:
    body = f'<h3 class="graf graf--h3 graf--title">The Silt</h3>' + "".join(
        f'<p class="graf graf--p">{p}</p>' for p in PROSE[2:])
    page = f"""<!DOCTYPE html><html><head><title>The Silt</title></head><body><article class="h-entry">
<header><h1 class="p-name">The Silt</h1></header>
<section data-field="subtitle" class="p-summary">What waits</section>
<section data-field="body" class="e-content"><section class="section"><div class="section-inner">{body}</div></section></section>
<footer><p>By <a href="https://medium.com/@quill" class="p-author h-card">{AUTHOR}</a> on
<a href="https://medium.com/p/abc"><time class="dt-published" datetime="2021-04-01T10:00:00.000Z">April 1, 2021</time></a>.</p>
<p><a href="https://medium.com/@quill/the-silt-abc" class="p-canonical">Canonical link</a></p>
<p>Exported from <a href="https://medium.com">Medium</a> on May 1, 2021.</p></footer></article></body></html>"""
    path = folder / "medium-export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("README.html", "<p>Your Medium export</p>")
        archive.writestr("posts/2021-04-01_The-Silt-abc.html", page)
        archive.writestr("posts/draft_Broken-def.html", "<html><body><p>no body section</p></body></html>")
    return path


WRITERS = {
    "txt": write_txt, "md": write_markdown, "html": write_html, "docx": write_docx, "epub": write_epub,
    "wordpress": write_wxr, "substack": write_substack, "medium": write_medium,
}


def write_all(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {name: write(folder) for name, write in WRITERS.items()}


ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")


def essays(count: int) -> list[tuple[str, list[str]]]:
    """`count` essays with paragraphs of their own (the book's prose, each opened differently)."""
    return [
        (f"Essay {ORDINALS[n].title()}",
         [f"In the {ORDINALS[n]} winter of the survey, nothing changed at the bank. " + p for p in PROSE])
        for n in range(count)
    ]


def write_essays(folder: Path, count: int = 6) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for title, paragraphs in essays(count):
        path = folder / f"{title.lower().replace(' ', '-')}.md"
        path.write_text(f"# {title}\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")
        paths.append(path)
    return paths
