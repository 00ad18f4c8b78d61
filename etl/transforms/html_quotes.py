"""Quoted history in HTML mail, found by its structure.

`html_mail_text` is what the mail connector lands: the visible text with the quoted
part kept but marked (its lines start with "> "), so the build cuts it and a better
stripper needs no new ingest. `strip_html_quote` and `html_reply_text` remove it
(talon's `extract_from_html` contract).
"""

from __future__ import annotations

import re

import polars as pl

from etl.transforms.text import (
    _FORWARD_MARKER,
    _FROM,
    _HTML_BLOCK,
    _HTML_DROP,
    _HTML_SPACE,
    _SENT_OR_DATE,
    _SUBJECT,
    _VERB,
    CUT_RULES,
    _visible_text,
)

# Structure says where a client put the message being answered, in any language:
# Gmail's div.gmail_quote, a <blockquote> (Apple Mail, Thunderbird, most webmail),
# Outlook's bordered header block or #divRplyFwdMsg, Yahoo's .yahoo_quoted. The rules
# follow mailgun/talon's `extract_from_html` (the first structural rule that applies
# wins), then the plain-text header rules above run on what is left, so an
# "On … wrote:" or "From:/Sent:" block outside any quote element goes too.

_CUT_MARK = "etl-quote-cut"  # stands where a quote was removed, until the attribution check
_QUOTE_CLASSES = ("yahoo_quoted", "protonmail_quote")
_BORDER_TOP = re.compile(r"border-top(?:-style)?\s*:\s*solid", re.IGNORECASE)
_FIELD_START = re.compile(rf"\A[\s\xa0]*\*?(?:{_FROM}|{_SENT_OR_DATE})[ \t\xa0]*:", re.IGNORECASE)
_FIELD_ANY = re.compile(
    rf"(?:\A|[^\w])(?:{_FROM}|{_SENT_OR_DATE}|{_SUBJECT}|to|cc|an|til|till|aan|para|кому)[ \t\xa0]*:", re.IGNORECASE
)
_FORWARD_RE = re.compile(_FORWARD_MARKER)
# A short line ending in ':' that names a date or an address ("26.06.2014, 14:41, "Bob"
# <bob@example.com>:") or says "wrote:", directly above a removed quote: its attribution.
_ATTRIBUTION = re.compile(rf"\A(?=[^\n]*(?:[@0-9]|(?i:{_VERB})[ \t]*:))[^\n]{{0,300}}:\s*\Z")
_HTML_HEADER_RULES = ("reply_header", "original_message", "outlook_header")
_HTML_HEADER_CUT = "|".join(f"(?:{pattern})" for name, pattern in CUT_RULES if name in _HTML_HEADER_RULES)
_KEEPS_ELEMENT = ("img", "hr", "table", "input", "video", "audio", "iframe", "object")


def strip_html_quote(html: str) -> str:
    """The HTML of a reply without the message it quotes.

    Returned as a whole document (`<html><head></head><body>…`), as talon does; the
    input unchanged when there is no quote, or when removing it would leave nothing.
    """
    from bs4 import BeautifulSoup

    if not html.strip():
        return html
    html = html.replace("\r\n", "\n")
    soup = BeautifulSoup(html, "html.parser")
    if not _cut_quote(soup) or not _visible_text(soup).strip():
        return html
    return _serialise(soup)


def html_reply_text(html: str) -> tuple[str, int]:
    """The visible text of an HTML mail without the message it quotes (see
    `strip_html_quote`), and how many characters of text the quote had."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html.replace("\r\n", "\n"), "html.parser")
    whole = _visible_text(soup)
    if not _cut_quote(soup):
        return whole, 0
    reply = _visible_text(soup)
    if not reply.strip():  # all of it was quoted: not a reply
        return whole, 0
    return reply, len(whole) - len(reply)


def _cut_quote(soup) -> bool:
    """Remove the quoted part of a parsed mail in place; True when something went."""
    rules = (_cut_quote_container, _cut_blockquote, _cut_outlook_splitter, _cut_by_id, _cut_from_block)
    cut = any(rule(soup) for rule in rules)  # the first that applies, as talon
    cut = _cut_at_reply_header(soup) or cut
    cut = _cut_attribution(soup) or cut
    for marker in soup.find_all(_CUT_MARK):
        parent = marker.parent
        marker.extract()
        _prune_empty(parent)
    return cut


def _classes(element) -> list[str]:
    return element.get("class") or []


def _first_text(element) -> str:
    return next((s for s in element.strings if s.strip()), "")


def _replace_with_marker(element, soup) -> None:
    element.replace_with(soup.new_tag(_CUT_MARK))


def _remove_with_following(element, soup) -> None:
    """Remove `element` and its later siblings (the quote goes to the end of its container)."""
    for sibling in list(element.next_siblings):
        sibling.extract()
    _replace_with_marker(element, soup)


def _remove_rest(node) -> None:
    """Remove `node` and everything after it in the document."""
    parent = node.parent
    for sibling in [node, *node.next_siblings]:
        sibling.extract()
    ancestor = parent
    while ancestor is not None:
        for sibling in list(ancestor.next_siblings):
            sibling.extract()
        ancestor = ancestor.parent
    _prune_empty(parent)


def _prune_empty(element) -> None:
    """Remove `element` and its ancestors while a removal left them without content."""
    while element is not None and element.name not in ("body", "html", "[document]", None):
        if any(s.strip() for s in element.strings) or element.find(_KEEPS_ELEMENT) or element.name in _KEEPS_ELEMENT:
            return
        parent = element.parent
        element.extract()
        element = parent


def _cut_quote_container(soup) -> bool:
    """Gmail's outermost div.gmail_quote (not a forward), Yahoo's and Proton's quote
    containers, Zimbra's divider and what follows it."""
    gmail = soup.find("div", class_="gmail_quote")
    if gmail is not None:
        if _FORWARD_RE.match(_first_text(gmail).strip()):
            return False  # a forwarded message is kept whole
        _replace_with_marker(gmail, soup)
        return True
    for name in _QUOTE_CLASSES:
        quote = soup.find(class_=lambda value, name=name: bool(value) and name in value)
        if quote is not None:
            _replace_with_marker(quote, soup)
            return True
    divider = soup.find("hr", attrs={"data-marker": "__DIVIDER__"})
    if divider is not None:
        _remove_with_following(divider, soup)
        return True
    return False


def _cut_blockquote(soup) -> bool:
    """The last blockquote that is not inside another (Gmail's own blockquote.gmail_quote
    outside a div.gmail_quote is text the writer indented), with Thunderbird's
    .moz-cite-prefix line above it."""
    quotes = [
        q for q in soup.find_all("blockquote")
        if " ".join(_classes(q)) != "gmail_quote" and q.find_parent("blockquote") is None
    ]  # fmt: skip
    if not quotes:
        return False
    quote = quotes[-1]
    prefix = quote.find_previous_sibling(True)
    if prefix is not None and prefix.name == "div" and "moz-cite-prefix" in _classes(prefix):
        prefix.extract()
    _replace_with_marker(quote, soup)
    return True


def _cut_outlook_splitter(soup) -> bool:
    """Outlook's reply header block and everything after it: the web client's
    #appendonsend / #divRplyFwdMsg (with the rule above it), or the desktop client's
    and Windows Mail's div with a solid top border that starts with a header field."""
    splitter = soup.find(id="appendonsend")
    if splitter is None:
        splitter = soup.find("div", id="divRplyFwdMsg")
        if splitter is not None:
            rule = splitter.find_previous_sibling(True)
            if rule is not None and rule.name == "hr":
                splitter = rule
    if splitter is None:
        splitter = next(
            (
                div for div in soup.find_all("div", style=_BORDER_TOP)
                if _FIELD_START.match(_first_text(div))
            ),
            None,
        )  # fmt: skip
        if splitter is not None and splitter.parent is not None and splitter.parent.find(True, recursive=False) is splitter:
            splitter = splitter.parent  # the header block opens the quote's own container
    if splitter is None or splitter.name in ("body", "html"):
        return False
    _remove_with_following(splitter, soup)
    return True


def _cut_by_id(soup) -> bool:
    """Outlook for Mac's #OLK_SRC_BODY_SECTION."""
    quote = soup.find(id="OLK_SRC_BODY_SECTION")
    if quote is None:
        return False
    _replace_with_marker(quote, soup)
    return True


def _looks_like_header_block(string) -> bool:
    """The text from `string` on holds at least two header fields (From: … To: …)."""
    text, length = [], 0
    for node in [string, *string.next_elements]:
        if isinstance(node, str):
            text.append(str(node))
            length += len(node)
            if length > 400:
                break
    return len(_FIELD_ANY.findall("".join(text)[:400])) >= 2


def _cut_from_block(soup) -> bool:
    """A header block ("From: …", "Date: …") that is not enclosed in a quote element:
    the div that holds it, or the text after an <hr>, and everything after it."""
    starts = [s for s in soup.find_all(string=_FIELD_START) if _looks_like_header_block(s)]
    if not starts:
        return False
    # The block is an element whose text starts with the field…
    enclosed = [s for s in starts if s.parent is not None and _first_text(s.parent) is s]
    if enclosed:
        block = enclosed[-1].parent
        div = block if block.name == "div" else block.find_parent("div")
        if div is None:
            return False
        container = div.parent
        # …unless that div is all there is: then the header is not enclosed in it.
        if not (container is not None and container.name == "body" and len(container.find_all(True, recursive=False)) == 1):
            if _forwarded_before(div):
                return False
            _remove_with_following(div, soup)
            return True
    # …or text right after an element, typically an <hr>.
    for string in starts:
        previous = string.previous_sibling
        if previous is not None and previous.name is not None:
            if _forwarded_before(string):
                return False
            _remove_with_following(previous, soup)
            return True
    return False


def _forwarded_before(node) -> bool:
    """A forward marker ("---------- Forwarded message ----------") comes shortly before
    `node`: the header block belongs to a forwarded message, which is kept whole."""
    text, length = [], 0
    for previous in node.previous_elements:
        if isinstance(previous, str):
            text.append(str(previous))
            length += len(previous)
            if length > 300:
                break
    return bool(_FORWARD_RE.search("".join(reversed(text))))


def _text_lines(soup):
    """The non-blank lines of visible text, each as its (text node, text) pieces, and
    for each cut marker the index of the last line above it. Breaks lines as
    `html_to_text` does; whitespace is collapsed, blank lines are left out."""
    from bs4 import Comment, Doctype, NavigableString, ProcessingInstruction

    lines: list[list[tuple]] = []
    markers: list[tuple] = []
    current: list[tuple] = []

    def end_line() -> None:
        nonlocal current
        if any(text.strip() for _, text in current):
            lines.append(current)
        current = []

    def walk(node) -> None:
        for child in node.children:
            if isinstance(child, (Comment, Doctype, ProcessingInstruction)):
                continue
            if isinstance(child, NavigableString):
                current.append((child, _HTML_SPACE.sub(" ", str(child))))
                continue
            name = (child.name or "").lower()
            if name == _CUT_MARK:
                end_line()
                markers.append((child, len(lines) - 1))
                continue
            if name in _HTML_DROP:
                continue
            if name == "br":
                end_line()
                continue
            block = name in _HTML_BLOCK
            if block:
                end_line()
            elif name in ("td", "th"):
                current.append((None, " "))
            walk(child)
            if block:
                end_line()

    walk(soup)
    end_line()
    return lines, markers


def _cut_at_reply_header(soup) -> bool:
    """The plain-text header rules (reply headers, "Original Message", From/Sent blocks)
    on the visible text above any forwarded message: the header's line and all after it go."""
    lines, _ = _text_lines(soup)
    texts = ["".join(text for _, text in line) for line in lines]
    joined = "\n".join(texts)
    forward = _FORWARD_RE.search(joined)
    head = joined[: forward.start()] if forward else joined
    if not head.strip():
        return False
    found = pl.Series([head], dtype=pl.String).str.find(_HTML_HEADER_CUT)[0]  # Rust regex: linear time
    if found is None:
        return False
    at = len(head.encode("utf-8")[:found].decode("utf-8", "ignore"))  # byte offset → characters
    offset = 0
    for line, text in zip(lines, texts):
        if offset + len(text) >= at:
            position = offset
            for node, piece in line:
                if node is not None and position + len(piece) > at and piece.strip():
                    _remove_rest(node)
                    return True
                position += len(piece)
            node = next((node for node, piece in line if node is not None and piece.strip()), None)
            if node is not None:
                _remove_rest(node)
                return True
            return False
        offset += len(text) + 1
    return False


def _cut_attribution(soup) -> bool:
    """The line directly above a removed quote, when it is the quote's attribution."""
    lines, markers = _text_lines(soup)
    cut = False
    for _, above in markers:
        if above < 0:
            continue
        line = lines[above]
        if not _ATTRIBUTION.match("".join(text for _, text in line).strip()):
            continue
        for node, _ in line:
            if node is not None and node.parent is not None:
                parent = node.parent
                node.extract()
                _prune_empty(parent)
        cut = True
    return cut


def _serialise(soup) -> str:
    """The document as HTML5 (`<br>`, not `<br/>`), wrapped in html/head/body when the
    mail was a fragment, without the `o:`-style namespace prefixes Outlook writes."""
    from bs4.dammit import EntitySubstitution
    from bs4.formatter import HTMLFormatter

    def escape(value: str) -> str:
        return EntitySubstitution.substitute_xml(value).replace("\xa0", "&#160;")

    formatter = HTMLFormatter(entity_substitution=escape, void_element_close_prefix=None)
    for tag in soup.find_all(lambda t: ":" in (t.name or "")):
        tag.name = tag.name.split(":", 1)[1]
    document = soup.find("html")
    if document is None:
        body = soup.find("body")
        if body is not None:
            return f"<html><head></head>{body.decode(formatter=formatter)}</html>"
        return f"<html><head></head><body>{soup.decode(formatter=formatter)}</body></html>"
    if document.find("head") is None:
        document.insert(0, soup.new_tag("head"))
    return document.decode(formatter=formatter)


def html_mail_text(html: str) -> tuple[str, int]:
    """The visible text of an HTML mail with the message it quotes marked, not removed:
    each line of it starts with "> ", as in a plain-text reply. Also how many characters
    of text the quote had. All of it quoted: the text unmarked (then it is no reply)."""
    from bs4 import BeautifulSoup

    html = html.replace("\r\n", "\n")
    whole, cut = BeautifulSoup(html, "html.parser"), BeautifulSoup(html, "html.parser")
    text = _visible_text(whole)
    # The same parse twice: the n-th text node of one is the n-th of the other, so what
    # the rules remove from `cut` says which nodes of `whole` are quoted.
    nodes = cut.find_all(string=True)
    position = {id(node): k for k, node in enumerate(nodes)}
    if not _cut_quote(cut):
        return text, 0
    reply = _visible_text(cut)
    if not reply.strip():
        return text, 0
    kept = {position[id(node)] for node in cut.find_all(string=True) if id(node) in position}
    order = {id(node): k for k, node in enumerate(whole.find_all(string=True))}
    return _visible_text(whole, quoted=lambda node: order.get(id(node)) not in kept), len(text) - len(reply)
