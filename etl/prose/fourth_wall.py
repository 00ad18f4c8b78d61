"""Fourth-wall removal: everything around an author's prose that is not the prose.

Pure functions on a Polars frame of paragraphs (document_id, position, kind, role,
text), in reading order. Each marks what it drops in `drop_reason` (one of
`REASONS`) and leaves every other row as it was; `unwrap` and `strip_markers`
change text but drop nothing. `remove_fourth_wall` runs them in order.

Where the format says what a block is, that wins: an EPUB's `epub:type`
(EPUB 3 Structural Semantics Vocabulary) or DPUB-ARIA role, a Word style, an HTML
heading or caption, a platform's widget class. Plain text, and text that came out of
a PDF or OCR, has none of that, so the same things are recognised by their shape: a
short unpunctuated line is a heading, a section under "Contents" or "Index" is back
or front matter, a number alone on a line is a page number, a short line repeated on
every page is a running header.
"""

from __future__ import annotations

import polars as pl

# Every reason a paragraph can be dropped for, and what it means.
REASONS: dict[str, str] = {
    "footnote": "a footnote or endnote body, or a paragraph under Notes",
    "title_page": "title page, half-title or cover",
    "copyright": "copyright page, colophon, imprint, ISBN and rights lines",
    "toc": "table of contents, list of figures, page list",
    "dedication": "a dedication before the prose starts",
    "preface": "preface or foreword (the seed removes prefaces)",
    "acknowledgements": "acknowledgements",
    "about_author": "about the author",
    "index": "a book's index",
    "heading": "a chapter, section or post heading",
    "page_number": "a page number on its own line (PDF, OCR)",
    "running_header": "a short line repeated on many pages: running header or footer",
    "caption": "an image, figure or table caption",
    "boilerplate": "a blog platform's subscribe, share, like or 'appeared first on' line",
    "preformatted": "code or preformatted text",
}

# epub:type / DPUB-ARIA role tokens, and the section headings that mean the same.
ROLE_REASONS: tuple[tuple[str, str], ...] = (
    ("title_page", r"titlepage|halftitlepage|halftitle|cover|doc-cover"),
    ("copyright", r"copyright-page|colophon|doc-colophon|imprint|imprimatur|errata|doc-errata"),
    ("toc", r"toc|doc-toc|landmarks|page-list|doc-pagelist|loi|lot|toc-brief"),
    ("dedication", r"dedication|doc-dedication"),
    ("preface", r"preface|doc-preface|foreword|doc-foreword"),
    ("acknowledgements", r"acknowledgments|doc-acknowledgments|acknowledgements"),
    ("index", r"index|doc-index|index-group|index-entry"),
    ("page_number", r"pagebreak|doc-pagebreak"),
)
SECTION_REASONS: tuple[tuple[str, str], ...] = (
    ("footnote", r"notes|endnotes|footnotes|notes and references"),
    ("copyright", r"copyright|copyright page|colophon|imprint"),
    ("toc", r"contents|table of contents|list of (figures|illustrations|tables)"),
    ("dedication", r"dedication"),
    ("preface", r"preface|foreword|prefatory note"),
    ("acknowledgements", r"acknowledge?ments?"),
    ("about_author", r"about the authors?|about the writer|about the editors?"),
    ("index", r"index|general index"),
)
# Word's built-in style names for the same things.
STYLE_REASONS: tuple[tuple[str, str], ...] = (
    ("toc", r"(?i)^(toc \d+|toc heading|table of figures)$"),
    ("index", r"(?i)^index \d+$|^index heading$"),
)
# Classes blog platforms put on their widgets: Substack's subscribe and share blocks,
# Jetpack's sharing and related posts, WordPress button blocks.
BOILERPLATE_CLASSES = (
    r"subscription-widget(-wrap)?|subscribe-widget|button-wrapper|captioned-button-wrap|share-dialog|"
    r"sharedaddy|sd-sharing(-enabled)?|sd-block|jp-relatedposts|wp-block-buttons|post-share|social-share"
)
# The platforms' own words around a post (Substack's "Thanks for reading X! Subscribe for
# free to receive new posts", Jetpack's "Share this:" and "Like this:", the feed footer
# "The post X appeared first on Y.").
BOILERPLATE_TEXT = (
    r"(?i)^("
    r"subscribe( now| for free)?|share( this( post| article| story)?)?|like this|like loading\.*|leave a comment|"
    r"restack|give a gift subscription|upgrade to paid|share [^.]{0,40}|(\d+ )?(likes?|comments?|restacks?|shares?)|"
    r"thanks for reading\b.{0,120}\bsubscribe\b.*|.{0,80}\bsubscribe for free\b.*|"
    r"the post .{1,200} appeared first on .{1,200}|originally published (at|on|in)\b.*|"
    r"(posted|filed) (in|under)\b.*|tags?:.*|click to (share|email|print)\b.*|"
    r"(sign up|join) .{0,60}\b(newsletter|mailing list)\b.*|follow (me|us) on\b.*|"
    r"if you (enjoyed|liked) this.{0,120}\b(subscribe|share)\b.*|(read more|continue reading)\b.{0,40}"
    r")[.!:…]*$"
)
COPYRIGHT_TEXT = (
    r"(?i)(all rights reserved|\bISBN(-1[03])?:?\s*[0-9][0-9Xx -]{8,}|library of congress cataloging|"
    r"^(copyright|©|\(c\))\s*(©\s*)?\d{4}|first published (in|by)\b|no part of this (book|publication) may be)"
)
DEDICATION_TEXT = r"(?i)^(for|to|in memory of|in loving memory of|dedicated to)\s"
CHAPTER_HEADING = (
    r"(?i)^(chapter|part|book|section|prologue|epilogue|interlude|afterword|appendix|act|canto)\b"
    r"|^[IVXLCDM]{1,7}\.?$|^\d{1,3}\.?$"
)
PAGE_NUMBER = r"(?i)^[\s\-–—]*(page\s+)?(\d{1,4}|[ivxlcdm]{1,7})(\s*(of|/)\s*\d{1,4})?[\s\-–—]*$"
CAPTION_TEXT = r"(?i)^(figure|fig\.|image|photo(graph)?|plate|illustration|table|map|chart)\s*\d*[a-z]?\s*[.:—–-]\s"
FOOTNOTE_BODY = r"^(\[\^[^\]\s]{1,6}\]:|\[\d{1,3}\]\s|[¹²³⁴⁵⁶⁷⁸⁹⁰]+\s?\S)"
# Markers inside a kept paragraph: [^1] (Markdown and what ingest writes for a noteref),
# [12] right after a word or punctuation, superscript digits.
MARKER = r"\[\^[^\]\s]{1,6}\]|([\p{L}\p{P}])\[\d{1,3}\]|[¹²³⁴⁵⁶⁷⁸⁹⁰]+"

RUNNING_HEADER_MIN_REPEATS = 3


def _tokens(names: str) -> str:
    # A whole token of the space-separated role text, never a part of a class name.
    return rf"(^|\s)({names})(\s|$)"


def unwrap(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Undo hard wrapping: a word hyphenated at a line end is joined, other breaks become spaces.

    Preformatted text, and rows already dropped (kept as they were, for the record), are left alone.
    """
    keep = (pl.col("kind") == "preformatted") | pl.col("drop_reason").is_not_null()
    text = (
        pl.col("text")
        .str.replace_all(r"(\p{Ll})-\n[ \t]*(\p{Ll})", "${1}${2}")
        .str.replace_all(r"[ \t]*\n[ \t]*", " ")
        .str.replace_all(r"[ \t\u00a0]+", " ")
        .str.strip_chars()
    )
    return lf.with_columns(text=pl.when(keep).then(pl.col("text")).otherwise(text))


def _is_heading() -> pl.Expr:
    """Declared headings, and in unstructured text a short unpunctuated line that looks like one."""
    text = pl.col("text").str.strip_chars()
    words = text.str.count_matches(r"\S+")
    single_line = ~pl.col("text").str.contains("\n")
    unpunctuated = ~text.str.contains(r"[.,;:!?\"”’)…]$") | text.str.contains(CHAPTER_HEADING)
    letters = text.str.replace_all(r"[^\p{L}]", "")
    capitalised = text.str.count_matches(r"(^|\s)[\p{Lu}\d]") / words.clip(1)
    looks = (
        text.str.contains(CHAPTER_HEADING)
        | text.str.contains("(?i)^(" + "|".join(p for _, p in SECTION_REASONS) + ")$")
        | ((letters.str.len_chars() > 1) & (letters == letters.str.to_uppercase()))
        | (capitalised >= 0.6)
    )
    plain = pl.col("kind") == "text"
    inferred = plain & (pl.col("role").is_null() | ~pl.col("role").str.contains(r"(^|\s)item:")) & single_line
    inferred = inferred & (words <= 12) & unpunctuated & looks & ~text.str.contains(PAGE_NUMBER)
    inferred = inferred & ~text.str.contains(COPYRIGHT_TEXT) & ~_repeated()
    return (pl.col("kind") == "heading") | inferred


def _header_key() -> pl.Expr:
    return pl.col("text").str.strip_chars().str.to_lowercase().str.replace_all(r"[\d\s]+", " ").str.strip_chars()


def _repeated() -> pl.Expr:
    """The same short line (digits aside) on several pages of one document: a running header or footer."""
    text = pl.col("text").str.strip_chars()
    short = (text.str.count_matches(r"\S+") <= 12) & ~text.str.contains("\n") & (_header_key() != "")
    return short & (pl.len().over(["document_id", _header_key()]) >= RUNNING_HEADER_MIN_REPEATS) & (
        pl.col("kind") != "heading")


def mark_sections(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Adds `is_heading` and `section`: the heading a paragraph sits under (lower case),
    within its document and, for an EPUB, its spine item."""
    item = pl.col("role").str.extract(r"(^|\s)item:(\S+)", 2).fill_null("")
    return (
        lf.with_columns(is_heading=_is_heading(), _item=item)
        .with_columns(
            section=pl.when(pl.col("is_heading"))
            .then(pl.col("text").str.to_lowercase().str.replace_all(r"[^\p{L}\p{N} ]", "").str.strip_chars())
            .otherwise(None)
            .forward_fill()
            .over(["document_id", "_item"], order_by="position")
        )
        .drop("_item")
    )


def drop_fourth_wall(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Marks every paragraph that is not the author's prose with its reason; first rule wins.

    Needs `is_heading` and `section` (from `mark_sections`).
    """
    role = pl.col("role").fill_null("")
    text = pl.col("text").str.strip_chars()
    section = pl.col("section").fill_null("")
    words = text.str.count_matches(r"\S+")
    first_prose = (
        pl.when((pl.col("kind") == "text") & (words >= 40) & ~pl.col("is_heading")).then(pl.col("position"))
        .min().over("document_id")
    )
    front = pl.col("position") < first_prose.fill_null(2**62)

    rules: list[tuple[str, pl.Expr]] = [
        ("footnote", (pl.col("kind") == "footnote") | text.str.contains(FOOTNOTE_BODY)),
        *((reason, role.str.contains(_tokens(tokens))) for reason, tokens in ROLE_REASONS),
        *((reason, role.str.contains(pattern)) for reason, pattern in STYLE_REASONS),
        ("copyright", text.str.contains(COPYRIGHT_TEXT) & (words <= 120)),
        ("dedication", front & (words <= 25) & text.str.contains(DEDICATION_TEXT) & ~pl.col("is_heading")),
        *((reason, section.str.contains(f"^({pattern})$")) for reason, pattern in SECTION_REASONS),
        ("boilerplate", role.str.contains(rf"(^|\s)\.({BOILERPLATE_CLASSES})(\s|$)")
         | ((words <= 40) & text.str.contains(BOILERPLATE_TEXT))),
        ("running_header", _repeated()),
        ("heading", pl.col("is_heading")),
        ("page_number", text.str.contains(PAGE_NUMBER)),
        ("caption", (pl.col("kind") == "caption") | text.str.contains(CAPTION_TEXT)),
        ("preformatted", pl.col("kind") == "preformatted"),
    ]
    reason = pl.lit(None, pl.String)
    for name, condition in reversed(rules):
        reason = pl.when(condition).then(pl.lit(name)).otherwise(reason)
    existing = pl.col("drop_reason") if "drop_reason" in lf.collect_schema().names() else pl.lit(None, pl.String)
    return lf.with_columns(drop_reason=pl.coalesce(existing, reason))


def strip_markers(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Removes footnote markers from kept text; `markers` lists what was removed."""
    found = pl.col("text").str.extract_all(MARKER).list.eval(pl.element().str.replace(r"^[\p{L}\p{P}](\[)", "["))
    cleaned = (
        pl.col("text").str.replace_all(MARKER, "${1}").str.replace_all(r"[ \t]{2,}", " ").str.replace_all(r" ([,.;:])", "${1}")
    )
    kept = pl.col("drop_reason").is_null()
    return lf.with_columns(
        markers=pl.when(kept).then(found).otherwise(pl.lit([], pl.List(pl.String))),
        text=pl.when(kept).then(cleaned.str.strip_chars()).otherwise(pl.col("text")),
    )


def remove_fourth_wall(paragraphs: pl.LazyFrame) -> pl.LazyFrame:
    """The whole stage in order: find sections, drop, then unwrap and strip markers from what is kept.

    Lines are undone after the drops: a heading or page number is told by being a line of its own.
    """
    return strip_markers(unwrap(drop_fourth_wall(mark_sections(paragraphs))))
