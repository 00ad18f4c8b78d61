"""Long-form writing: books, essays and blog posts as documents of ordered paragraphs.

Each reader turns one file (or one post of an export) into a `Document`: its title,
date and author where the format says them, and its paragraphs in reading order,
each with a `kind` (text, heading, caption, footnote, list, quote, preformatted) and
the `role` the format itself gives it (an EPUB `epub:type`, an ARIA role, a Word
style name, a platform's class names). Nothing is cleaned here: front matter,
headings and boilerplate land as they are, and `etl build --corpus prose` drops them
with a reason.

    .txt .md .markdown          plain text; blank lines separate paragraphs
    .html .htm                  a saved page or a post
    .docx                       Word (python-docx)
    .epub                       EPUB 2/3 (ebooklib), spine order
    .xml                        WordPress export (WXR): posts and pages
    .zip                        Substack export (posts.csv + posts/*.html) or
                                Medium export (posts/*.html)
    a folder                    every file above in it, recursively
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path, PurePosixPath
from typing import Any

from etl.sources.base import Quarantined, SourceError

VERSION = 1
KINDS = ("text", "heading", "caption", "footnote", "list", "quote", "preformatted")
SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".xhtml", ".docx", ".epub", ".xml", ".zip")


@dataclass
class Paragraph:
    kind: str
    text: str
    role: str | None = None


@dataclass
class Document:
    format: str
    location: str  # file, and the member or item inside it
    title: str | None = None
    published_at: datetime | None = None
    author: str | None = None  # as the format names it
    url: str | None = None
    paragraphs: list[Paragraph] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


Read = Document | Quarantined


def read_paths(paths: list[Path]) -> Iterator[tuple[Path, Read]]:
    """Every document under `paths`, with the file it came from; a file that cannot be
    read is one `Quarantined` and the rest goes on."""
    for path in paths:
        if not path.exists():
            raise SourceError(f"no file or folder at {path}")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not files:
                raise SourceError(f"{path} holds no {', '.join(SUFFIXES)} files")
        else:
            files = [path]
        for file in files:
            for item in read_file(file):
                yield file, item


def read_file(path: Path) -> Iterator[Read]:
    suffix = path.suffix.lower()
    reader = READERS.get(suffix)
    if reader is None:
        yield Quarantined(str(path), f"not a prose format ({', '.join(SUFFIXES)})")
        return
    try:
        items = list(reader(path))
    except Exception as error:  # noqa: BLE001 (one bad file never stops the run)
        yield Quarantined(str(path), f"cannot read {suffix[1:]}: {type(error).__name__}: {error}")
        return
    if not items:
        yield Quarantined(str(path), "no document in it")
    yield from items


# ----------------------------------------------------------------------------- plain text and Markdown


def _text_of(path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _blocks(text: str) -> list[str]:
    """Blank-line separated blocks, line breaks inside kept (hard wrap is undone at build)."""
    return [b.strip("\n") for b in re.split(r"\n[ \t]*\n", text) if b.strip()]


def read_txt(path: Path) -> Iterator[Document]:
    doc = Document("txt", str(path), title=path.stem.replace("_", " "))
    doc.paragraphs = [Paragraph("text", block) for block in _blocks(_text_of(path))]
    yield doc


FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)
MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
MD_SETEXT = re.compile(r"^(.+)\n(=+|-+)\s*$")
MD_FOOTNOTE = re.compile(r"^\[\^[^\]]+\]:\s*")
MD_IMAGE = re.compile(r"^!\[([^\]]*)\]\([^)]*\)\s*$")


def read_markdown(path: Path) -> Iterator[Document]:
    text = _text_of(path)
    doc = Document("md", str(path))
    if match := FRONT_MATTER.match(text):
        doc.metadata = _front_matter(match.group(1))
        doc.title = doc.metadata.get("title")
        doc.published_at = parse_date(doc.metadata.get("date"))
        doc.author = doc.metadata.get("author")
        text = text[match.end():]
    for block in _blocks(text):
        if block.startswith("```") or block.startswith("    "):
            doc.paragraphs.append(Paragraph("preformatted", block))
        elif (m := MD_HEADING.match(block)) and "\n" not in block:
            doc.paragraphs.append(Paragraph("heading", m.group(2), role=f"h{len(m.group(1))}"))
        elif m := MD_SETEXT.match(block):
            doc.paragraphs.append(Paragraph("heading", m.group(1).strip(), role="h1" if m.group(2)[0] == "=" else "h2"))
        elif MD_FOOTNOTE.match(block):
            doc.paragraphs.append(Paragraph("footnote", block))
        elif m := MD_IMAGE.match(block):
            if m.group(1).strip():
                doc.paragraphs.append(Paragraph("caption", m.group(1).strip()))
        elif block.startswith(">"):
            doc.paragraphs.append(Paragraph("quote", re.sub(r"^>\s?", "", block, flags=re.M)))
        elif re.match(r"^\s*([-*+]|\d+[.)])\s", block):
            doc.paragraphs.append(Paragraph("list", block))
        else:
            doc.paragraphs.append(Paragraph("text", block))
    if doc.title is None:
        doc.title = next((p.text for p in doc.paragraphs if p.kind == "heading"), path.stem)
    yield doc


def _front_matter(text: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return {str(k): (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in (data or {}).items()} if isinstance(
        data, dict) else {}


# ----------------------------------------------------------------------------- HTML

BLOCKS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "pre", "figcaption", "dt", "dd",
          "div", "section", "article", "aside", "header", "footer", "nav", "figure", "ul", "ol", "dl",
          "table", "tr", "td", "th", "main", "body", "hr", "br", "caption"}
SKIP = {"script", "style", "noscript", "template", "head", "svg", "button", "form", "iframe"}
# Attributes a format uses to say what a block is for (EPUB 3 Structural Semantics,
# DPUB-ARIA roles), and the classes through which blog platforms mark theirs.
ROLE_ATTRS = ("epub:type", "role")
NOTEREF = re.compile(r"noteref|footnote-ref|footnote-anchor|fnref|footnote_reference", re.I)


def html_paragraphs(markup: str | bytes, *, loose_paragraphs: bool = False) -> tuple[list[Paragraph], Any]:
    """Paragraphs of an HTML document in reading order, and the parsed soup.

    `loose_paragraphs`: text outside block tags is split on blank lines (WordPress
    stores posts without <p>, and adds them when it shows them).
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    root = soup.body or soup
    out: list[Paragraph] = []
    _walk(root, out, [], loose_paragraphs)
    return out, soup


def _roles_of(el) -> list[str]:
    tokens = []
    for attr in ROLE_ATTRS:
        value = el.get(attr)
        if value:
            tokens += value.split() if isinstance(value, str) else list(value)
    classes = el.get("class") or []
    tokens += [f".{c}" for c in (classes.split() if isinstance(classes, str) else classes)]
    return tokens


def _walk(el, out: list[Paragraph], roles: list[str], loose: bool) -> None:
    from bs4 import Comment, NavigableString, Tag

    roles = roles + _roles_of(el)
    inline: list[Any] = []

    def flush():
        if not inline:
            return
        text = "".join(_inline_text(n) for n in inline)
        inline.clear()
        chunks = re.split(r"\n[ \t]*\n", text) if loose else [text]
        for chunk in chunks:
            if (clean := _squash(chunk, keep_breaks=loose)):
                out.append(Paragraph(_kind_of(el.name, roles), clean, _role_text(roles)))

    for child in el.children:
        if isinstance(child, Comment):
            continue
        if isinstance(child, NavigableString):
            inline.append(child)
            continue
        if not isinstance(child, Tag) or child.name in SKIP:
            continue
        if child.name in BLOCKS and child.name != "br":
            flush()
            if child.name == "hr":
                continue
            if child.name in ("p", "h1", "h2", "h3", "h4", "h5", "h6", "figcaption", "pre", "dt", "caption") or not _has_blocks(child):
                text = _squash(_inline_text(child), keep_breaks=child.name == "pre")
                if text:
                    child_roles = roles + _roles_of(child)
                    out.append(Paragraph(_kind_of(child.name, child_roles), text, _role_text(child_roles)))
            else:
                _walk(child, out, roles, loose)
        else:
            inline.append(child)
    flush()


def _has_blocks(el) -> bool:
    return el.find(lambda t: t.name in BLOCKS and t.name != "br") is not None


def _inline_text(node) -> str:
    from bs4 import NavigableString, Tag

    if isinstance(node, NavigableString):
        return str(node)
    if not isinstance(node, Tag) or node.name in SKIP:
        return ""
    if node.name == "br":
        return "\n"
    if node.name == "img":
        return ""
    if _is_noteref(node):
        # A footnote reference becomes one visible marker the build can remove
        # (inside a word, <sup>3</sup> would otherwise merge with it).
        return f"[^{node.get_text(strip=True) or '*'}]"
    return "".join(_inline_text(c) for c in node.children)


def _is_noteref(node) -> bool:
    tokens = " ".join(_roles_of(node))
    if NOTEREF.search(tokens) or (node.get("id") or "").startswith(("fnref", "footnote-anchor")):
        return True
    if node.name == "sup":
        link = node.find("a")
        return link is not None and (link.get("href") or "").startswith("#")
    if node.name == "a" and (node.get("href") or "").startswith(("#fn", "#footnote", "#note", "#en")):
        return node.get_text(strip=True).isdigit() or len(node.get_text(strip=True)) <= 2
    return False


def _squash(text: str, *, keep_breaks: bool = False) -> str:
    text = text.replace("\xa0", " ")
    if keep_breaks:
        return "\n".join(re.sub(r"[ \t]+", " ", line).strip() for line in text.strip().split("\n")).strip()
    return re.sub(r"\s+", " ", text).strip()


FOOTNOTE_ROLES = re.compile(r"(^|\s)(\.)?(footnotes?|endnotes?|rearnotes?|doc-footnote|doc-endnotes?|footnote-content)(\s|$)")


def _kind_of(tag: str, roles: list[str]) -> str:
    if FOOTNOTE_ROLES.search(" ".join(roles)):
        return "footnote"
    if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
        return "heading"
    if tag in ("figcaption", "caption"):
        return "caption"
    if tag in ("li", "dd", "dt"):
        return "list"
    if tag == "blockquote":
        return "quote"
    if tag == "pre":
        return "preformatted"
    return "text"


def _role_text(roles: list[str]) -> str | None:
    seen = list(dict.fromkeys(roles))
    return " ".join(seen[-12:]) or None


def _meta(soup, *names: str) -> str | None:
    for name in names:
        tag = soup.find("meta", attrs={"property": name}) or soup.find("meta", attrs={"name": name})
        if tag and tag.get("content"):
            return tag["content"].strip()
    return None


def read_html(path: Path) -> Iterator[Document]:
    paragraphs, soup = html_paragraphs(path.read_bytes())
    doc = Document("html", str(path), paragraphs=paragraphs)
    title = _meta(soup, "og:title") or (soup.title.get_text(strip=True) if soup.title else None)
    doc.title = title or next((p.text for p in paragraphs if p.kind == "heading"), path.stem)
    time_tag = soup.find("time", attrs={"datetime": True})
    doc.published_at = parse_date(
        _meta(soup, "article:published_time", "date", "dc.date", "DC.date")
        or (time_tag["datetime"] if time_tag else None)
    )
    doc.author = _meta(soup, "author", "article:author", "dc.creator")
    doc.url = _meta(soup, "og:url")
    if canonical := soup.find("link", rel="canonical"):
        doc.url = doc.url or canonical.get("href")
    yield doc


# ----------------------------------------------------------------------------- Word


DOCX_KIND = (
    (re.compile(r"^(title|subtitle|heading \d|toc heading)$", re.I), "heading"),
    (re.compile(r"^caption$", re.I), "caption"),
    (re.compile(r"^(footnote|endnote) text$", re.I), "footnote"),
    (re.compile(r"^(intense )?quote$", re.I), "quote"),
    (re.compile(r"^list", re.I), "list"),
)


def read_docx(path: Path) -> Iterator[Document]:
    import docx

    word = docx.Document(str(path))
    props = word.core_properties
    doc = Document("docx", str(path), title=props.title or None, author=props.author or None)
    doc.published_at = _aware(props.created)
    for para in word.paragraphs:
        text = _squash(para.text, keep_breaks=True)
        if not text:
            continue
        style = para.style.name if para.style is not None else ""
        kind = next((k for pattern, k in DOCX_KIND if pattern.match(style)), "text")
        doc.paragraphs.append(Paragraph(kind, text, role=style or None))
    if doc.title is None:
        doc.title = next((p.text for p in doc.paragraphs if p.kind == "heading"), path.stem)
    yield doc


# ----------------------------------------------------------------------------- EPUB


def read_epub(path: Path) -> Iterator[Document]:
    import ebooklib
    from ebooklib import epub

    book = epub.read_epub(str(path), options={"ignore_ncx": True})

    def first(name: str) -> str | None:
        values = book.get_metadata("DC", name)
        return str(values[0][0]).strip() if values and values[0][0] else None

    doc = Document("epub", str(path), title=first("title"), author=first("creator"))
    doc.published_at = parse_date(first("date"))
    doc.metadata = {k: v for k, v in {"language": first("language"), "identifier": first("identifier"),
                                      "publisher": first("publisher")}.items() if v}
    for item_id, _linear in book.spine:
        item = book.get_item_with_id(item_id)
        if item is None or item.get_type() not in (ebooklib.ITEM_DOCUMENT, ebooklib.ITEM_NAVIGATION):
            continue
        paragraphs, _ = html_paragraphs(item.get_content())
        for p in paragraphs:
            p.role = " ".join(filter(None, [f"item:{item.get_name()}", p.role]))
        doc.paragraphs += paragraphs
    doc.title = doc.title or path.stem
    yield doc


# ----------------------------------------------------------------------------- WordPress (WXR)

WXR_TYPES = ("post", "page")


def read_wxr(path: Path) -> Iterator[Read]:
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    if root.tag != "rss" or root.find("channel") is None:
        raise ValueError("not a WordPress export (WXR): no <rss><channel>")
    channel = root.find("channel")
    ns = {"wp": _ns(root, "wp") or "http://wordpress.org/export/1.2/",
          "content": "http://purl.org/rss/1.0/modules/content/",
          "dc": "http://purl.org/dc/elements/1.1/"}
    authors = {}
    for author in channel.findall("wp:author", ns):
        login = author.findtext("wp:author_login", default="", namespaces=ns)
        authors[login] = author.findtext("wp:author_display_name", default=login, namespaces=ns) or login
    for number, item in enumerate(channel.findall("item"), start=1):
        kind = item.findtext("wp:post_type", default="post", namespaces=ns)
        if kind not in WXR_TYPES:
            continue
        where = f"{path} item {number}"
        html = item.findtext("content:encoded", default="", namespaces=ns)
        if not html.strip():
            yield Quarantined(where, "post has no content", source_id=item.findtext("wp:post_id", namespaces=ns))
            continue
        paragraphs, _ = html_paragraphs(html, loose_paragraphs=True)
        login = item.findtext("dc:creator", default="", namespaces=ns)
        gmt = item.findtext("wp:post_date_gmt", default="", namespaces=ns)
        doc = Document(
            "wordpress", where,
            title=(item.findtext("title") or "").strip() or None,
            published_at=parse_date(gmt if gmt and not gmt.startswith("0000") else item.findtext("pubDate")),
            author=authors.get(login, login) or None,
            url=item.findtext("link"),
            paragraphs=paragraphs,
            metadata={"post_id": item.findtext("wp:post_id", namespaces=ns), "post_type": kind,
                      "status": item.findtext("wp:status", namespaces=ns)},
        )
        yield doc


def _ns(root, prefix: str) -> str | None:
    # WXR 1.0/1.1/1.2 differ only in the wp namespace's version.
    for el in root.iter():
        if el.tag.startswith("{http://wordpress.org/export/"):
            return el.tag[1:].split("}")[0]
    return None


# ----------------------------------------------------------------------------- Substack and Medium zips


def read_zip(path: Path) -> Iterator[Read]:
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        base = {PurePosixPath(n).name: n for n in names}
        if "posts.csv" in base:
            yield from _substack(path, archive, base["posts.csv"], names)
        elif any(PurePosixPath(n).parent.name == "posts" and n.endswith(".html") for n in names):
            yield from _medium(path, archive, names)
        else:
            raise ValueError("neither a Substack export (posts.csv) nor a Medium export (posts/*.html)")


def _substack(path: Path, archive: zipfile.ZipFile, index: str, names: list[str]) -> Iterator[Read]:
    folder = str(PurePosixPath(index).parent)
    prefix = "" if folder == "." else folder + "/"
    rows = list(csv.DictReader(io.StringIO(archive.read(index).decode("utf-8-sig"))))
    for number, row in enumerate(rows, start=2):
        post_id = (row.get("post_id") or "").strip()
        member = f"{prefix}posts/{post_id}.html"
        where = f"{path}:{member}"
        if member not in names:
            yield Quarantined(f"{path}:{index} line {number}", f"no {member} for post {post_id!r}", source_id=post_id)
            continue
        try:
            paragraphs, _ = html_paragraphs(archive.read(member))
        except Exception as error:  # noqa: BLE001
            yield Quarantined(where, f"cannot read post: {error}", source_id=post_id)
            continue
        yield Document(
            "substack", where,
            title=(row.get("title") or "").strip() or None,
            published_at=parse_date(row.get("post_date") or row.get("email_sent_at")),
            paragraphs=paragraphs,
            metadata={k: row.get(k) for k in ("post_id", "subtitle", "type", "audience", "is_published") if row.get(k)},
        )


def _medium(path: Path, archive: zipfile.ZipFile, names: list[str]) -> Iterator[Read]:
    posts = sorted(n for n in names if PurePosixPath(n).parent.name == "posts" and n.endswith(".html"))
    for member in posts:
        where = f"{path}:{member}"
        try:
            yield _medium_post(archive.read(member), where, PurePosixPath(member).name)
        except Exception as error:  # noqa: BLE001
            yield Quarantined(where, f"cannot read post: {type(error).__name__}: {error}")


def _medium_post(markup: bytes, where: str, name: str) -> Document:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    body = soup.find(attrs={"data-field": "body"}) or soup.find(class_="e-content")
    if body is None:
        raise ValueError("no body section (data-field=body)")
    paragraphs, _ = html_paragraphs(str(body))
    title = soup.find(class_="p-name")
    author = soup.find(class_="p-author")
    when = soup.find("time", class_="dt-published")
    canonical = soup.find("a", class_="p-canonical")
    return Document(
        "medium", where,
        title=(title.get_text(strip=True) if title else None) or (soup.title.get_text(strip=True) if soup.title else None),
        published_at=parse_date(when.get("datetime") if when else None),
        author=author.get_text(strip=True) if author else None,
        url=canonical.get("href") if canonical else None,
        paragraphs=paragraphs,
        metadata={"draft": name.startswith("draft_")},
    )


# ----------------------------------------------------------------------------- dates


def parse_date(value: Any) -> datetime | None:
    """ISO 8601, RFC 2822 (RSS) or a bare date; naive times are taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return _aware(value)
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            match = re.match(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", text)
            if not match:
                return None
            parsed = datetime(int(match.group(1)), int(match.group(2) or 1), int(match.group(3) or 1))
    return _aware(parsed)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


READERS = {
    ".txt": read_txt,
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".html": read_html,
    ".htm": read_html,
    ".xhtml": read_html,
    ".docx": read_docx,
    ".epub": read_epub,
    ".xml": read_wxr,
    ".zip": read_zip,
}
