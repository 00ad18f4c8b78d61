"""Per-message text transforms: repair and normalise, strip quoted replies, drop meta-messages.

Every transform takes a LazyFrame with at least `text` and `drop_reason` and returns
the same rows: it may rewrite `text`, add columns, and give a reason to rows it drops,
but only to rows that are still kept (the first reason wins). Rows are never removed
here; the build removes rows with a reason and records them.

Hot paths are Polars expressions. The few steps that need Python (ftfy, HTML parsing)
run only on the rows a cheap regex flags, so a million ordinary chat messages cost a
handful of vectorised passes.
"""

from __future__ import annotations

import functools
import re
from typing import Callable

import ftfy
import polars as pl

TEXT = "text"
DROP_REASON = "drop_reason"


# ============================================================================ shared helpers


def _with_drop_reason(condition: pl.Expr, reason: pl.Expr | str) -> pl.Expr:
    """Give `reason` to rows matching `condition` unless they already have one."""
    reason_expr = pl.lit(reason) if isinstance(reason, str) else reason
    return (
        pl.when(pl.col(DROP_REASON).is_null() & condition.fill_null(False))
        .then(reason_expr)
        .otherwise(pl.col(DROP_REASON))
        .alias(DROP_REASON)
    )


def _is_text_kind(lf: pl.LazyFrame) -> pl.Expr:
    """Rows of kind `text`: other kinds are labelled `kind:<kind>` by drop_meta_messages,
    so an empty reaction or attachment is not reported as an empty message."""
    if "kind" in lf.collect_schema().names():
        return pl.col("kind").is_null() | (pl.col("kind") == "text")
    return pl.lit(True)


def _only_where(condition: pl.Expr, value: pl.Expr) -> pl.Expr:
    """`value` on matching rows, null elsewhere: string kernels skip nulls, so an
    expensive regex then only runs on the rows that can need it."""
    return pl.when(condition).then(value)


def _run_on_one(transform: Callable[[pl.LazyFrame], pl.LazyFrame], s: str, **columns) -> pl.DataFrame:
    frame = pl.DataFrame(
        {TEXT: [s], DROP_REASON: [None], **{k: [v] for k, v in columns.items()}},
        schema_overrides={TEXT: pl.String, DROP_REASON: pl.String},
    )
    return transform(frame.lazy()).collect()


# ============================================================================ normalise_text

# Invisible format characters that only get in the way: zero-width space, word joiner
# and invisible operators, BOM, LRM/RLM, bidi embeddings and isolates.
_INVISIBLE = r"[\x{200B}\x{200E}\x{200F}\x{202A}-\x{202E}\x{2060}-\x{2064}\x{2066}-\x{2069}\x{FEFF}]"
# The object replacement character iMessage leaves where an attachment was. Between two
# words it becomes a space ("\uFFFCtest 1\uFFFCtest 2" → "test 1 test 2"); the pattern
# consumes the next character, so a second pass catches placeholders one word apart.
_ATTACHMENT_BETWEEN_WORDS = r"(\S)\x{FFFC}+(\S)"

# Joiners carry meaning in two places, and are dropped everywhere else:
# emoji ZWJ sequences (👨‍👩‍👧, 🏳️‍🌈) and scripts that use ZWNJ/ZWJ in spelling
# (Persian, Arabic, the Indic scripts). Matching a whole kept sequence first means the
# alternative (a bare joiner) only ever sees stray ones; no look-around needed.
_EMOJI_PART = r"\p{Extended_Pictographic}[\x{FE0F}\x{1F3FB}-\x{1F3FF}]*"
_JOINER_SCRIPTS = (
    r"[\p{Arabic}\p{Syriac}\p{Thaana}\p{Devanagari}\p{Bengali}\p{Gurmukhi}\p{Gujarati}"
    r"\p{Oriya}\p{Tamil}\p{Telugu}\p{Kannada}\p{Malayalam}\p{Sinhala}\p{Khmer}\p{Myanmar}]"
)
_JOINERS_IN_CONTEXT = (
    rf"({_EMOJI_PART}(?:\x{{200D}}{_EMOJI_PART})+"
    rf"|{_JOINER_SCRIPTS}\p{{M}}*(?:[\x{{200C}}\x{{200D}}]{_JOINER_SCRIPTS}\p{{M}}*)+)"
    r"|[\x{200C}\x{200D}]"
)

# Whole-document HTML only: a message must start with a tag and close one (or have a
# <br>). A chat line that merely mentions `<div>` (common when talking to a coding
# assistant) is left alone.
_HTML_START = (
    r"(?i)\A\s*(?:<!doctype\s+html|<(?:html|head|body|div|p|br|span|a|blockquote|table|font|center"
    r"|meta|style|ul|ol|h[1-6]|b|i|strong|em|img|section|article|pre)\b)"
)
_HTML_CLOSE = (
    r"(?i)</(?:html|body|div|p|span|a|blockquote|table|font|center|td|li|ul|ol|h[1-6]|b|i|strong|em"
    r"|section|article|pre)\s*>|<br\s*/?>"
)

_FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,  # HTML rows go through the parser; plain text may mean "&amp;"
    uncurl_quotes=False,  # curly quotes are part of how someone writes
    fix_character_width=False,  # keep full-width CJK punctuation as typed
    fix_latin_ligatures=False,
    remove_control_chars=False,  # only encodings are ftfy's job here
    normalization="NFC",
    explain=False,
)
_MAX_REPAIR_ROUNDS = 6


def _ftfy_badness_pattern() -> str:
    """ftfy's own mojibake detector (`ftfy.badness.BADNESS_RE`) in Rust regex syntax.

    ftfy fixes encodings only where this regex matches, so using it as the filter
    sends exactly the rows ftfy would touch through Python, and nothing else.
    """
    from ftfy.badness import BADNESS_RE

    try:
        import re._parser as sre_parse  # Python 3.11+
        from re import _constants as c
    except ImportError:  # pragma: no cover
        import sre_constants as c  # type: ignore[no-redef]
        import sre_parse  # type: ignore[no-redef]

    def char(code: int) -> str:
        return f"\\x{{{code:X}}}"

    categories = {c.CATEGORY_SPACE: r"\s", c.CATEGORY_WORD: r"\w", c.CATEGORY_DIGIT: r"\d"}

    def emit_class(items) -> str:
        negate, parts = "", []
        for op, av in items:
            if op is c.NEGATE:
                negate = "^"
            elif op is c.LITERAL:
                parts.append(char(av))
            elif op is c.RANGE:
                parts.append(f"{char(av[0])}-{char(av[1])}")
            elif op is c.CATEGORY:
                parts.append(categories[av])
            else:
                raise ValueError(f"unsupported class item {op}")
        return f"[{negate}{''.join(parts)}]"

    def emit(seq) -> str:
        out = []
        for op, av in seq:
            if op is c.LITERAL:
                out.append(char(av))
            elif op is c.IN:
                out.append(emit_class(av))
            elif op is c.ANY:
                out.append(".")
            elif op is c.AT and av is c.AT_BEGINNING:
                out.append("^")
            elif op is c.BRANCH:
                out.append("(?:" + "|".join(emit(b) for b in av[1]) + ")")
            elif op is c.SUBPATTERN:
                out.append("(?:" + emit(av[-1]) + ")")
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
                lo, hi, body = av
                hi_s = "" if hi is c.MAXREPEAT else str(hi)
                lazy = "?" if op is c.MIN_REPEAT else ""
                out.append(f"(?:{emit(body)}){{{lo},{hi_s}}}{lazy}")
            else:
                raise ValueError(f"unsupported regex op {op}")
        return "".join(out)

    return emit(sre_parse.parse(BADNESS_RE.pattern, BADNESS_RE.flags))


@functools.cache
def _mojibake_pattern() -> str:
    try:
        return _ftfy_badness_pattern()
    except Exception:  # pragma: no cover - a future ftfy with new syntax
        # Lead byte of a UTF-8 sequence read as Latin-1/cp1252, then a continuation
        # byte; C1 controls; the usual three-character cp1252 forms.
        return r"[\x{80}-\x{9F}]|[\x{C2}-\x{F4}][\x{80}-\x{BF}\x{152}\x{153}\x{160}\x{161}\x{178}\x{17D}\x{17E}\x{192}\x{2C6}\x{2DC}\x{2013}\x{2014}\x{2018}-\x{201E}\x{2020}-\x{2022}\x{2026}\x{2030}\x{2039}\x{203A}\x{20AC}\x{2122}]"


def _basic_normalise(text: pl.Expr) -> pl.Expr:
    """The vectorised rules, each idempotent, in an order where no step re-enables an
    earlier one: line breaks, invisibles, stray joiners, NFC, odd spaces, trailing
    spaces, blank-line runs, outer whitespace."""
    t = (
        text.str.replace_all(r"\r\n?|[\x{2028}\x{2029}]", "\n")
        .str.replace_all(_ATTACHMENT_BETWEEN_WORDS, "${1} ${2}")
        .str.replace_all(_ATTACHMENT_BETWEEN_WORDS, "${1} ${2}")
        .str.replace_all(r"\x{FFFC}", "")
        .str.replace_all(_INVISIBLE, "")
    )
    with_joiners = _only_where(t.str.contains(r"[\x{200C}\x{200D}]"), t)
    t = pl.coalesce(with_joiners.str.replace_all(_JOINERS_IN_CONTEXT, "${1}"), t)
    return (
        t.str.normalize("NFC")
        .str.replace_all(r"[\x{A0}\x{202F}]", " ")
        .str.replace_all(r"[^\S\n]+\n", "\n")
        .str.replace_all(r"\n{3,}", "\n\n")
        .str.strip_chars()
    )


def _looks_like_html(text: pl.Expr) -> pl.Expr:
    starts = text.str.contains(_HTML_START)
    return starts & _only_where(starts, text).str.contains(_HTML_CLOSE).fill_null(False)


def _looks_like_mojibake(text: pl.Expr) -> pl.Expr:
    # Pure ASCII cannot be mojibake (ftfy skips it too); the full detector runs on the rest.
    non_ascii = text.str.contains(r"[^\x00-\x7F]")
    return non_ascii & _only_where(non_ascii, text).str.contains(_mojibake_pattern()).fill_null(False)


def _needs_repair(text: pl.Expr) -> pl.Expr:
    return (_looks_like_html(text) | _looks_like_mojibake(text)).fill_null(False)


# ---------------------------------------------------------------- HTML to text

_HTML_DROP = {"script", "style", "head", "title", "noscript", "template", "object", "iframe", "svg"}
_HTML_BLOCK = {
    "address", "article", "aside", "blockquote", "center", "dd", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul",
}  # fmt: skip
_HTML_SPACE = re.compile(r"[ \t\r\n\f]+")


def html_to_text(html: str) -> str:
    """Visible text of an HTML message: no script/style, line breaks for <br> and block
    elements, a blank line between paragraphs, source whitespace collapsed (except in <pre>)."""
    from bs4 import BeautifulSoup, Comment, Doctype, NavigableString, ProcessingInstruction

    soup = BeautifulSoup(html, "html.parser")
    out: list[str] = []

    def newline(count: int = 1) -> None:
        while out and out[-1].endswith(" "):
            out[-1] = out[-1].rstrip(" ")
        out.append("\n" * count)

    def walk(node, in_pre: bool) -> None:
        for child in node.children:
            if isinstance(child, (Comment, Doctype, ProcessingInstruction)):
                continue
            if isinstance(child, NavigableString):
                if in_pre:
                    out.append(str(child))
                    continue
                piece = _HTML_SPACE.sub(" ", str(child))
                if not out or out[-1].endswith("\n"):
                    piece = piece.lstrip(" ")
                if piece:
                    out.append(piece)
                continue
            name = (child.name or "").lower()
            if name in _HTML_DROP:
                continue
            if name == "br":
                newline()
                continue
            if name in ("td", "th"):
                out.append(" ")
            # Outlook writes every line as <p class=MsoNormal> with zero margins.
            paragraph = name == "p" and "MsoNormal" not in (child.get("class") or [])
            if name in _HTML_BLOCK:
                newline(2 if paragraph else 1)
            walk(child, in_pre or name == "pre")
            if name in _HTML_BLOCK:
                newline(2 if paragraph else 1)

    walk(soup, False)
    return "".join(out)


def _repair_one(text: str, is_html: bool) -> str:
    if is_html:
        text = html_to_text(text)
    return ftfy.fix_text(text, _FTFY_CONFIG)


def _repair_series(s: pl.Series) -> pl.Series:
    """Repair the non-null rows (the flagged ones) until a round changes nothing.

    One round is HTML-to-text (for HTML), ftfy, then the vectorised rules; iterating to
    a fixed point is what makes `normalise_text` idempotent even when one repair
    uncovers another (an entity that decodes to mojibake, a tag revealed by ftfy).
    """
    mask = s.is_not_null()
    if not mask.any():
        return s
    positions = mask.arg_true()
    values = s.filter(mask)
    pending = pl.Series(range(len(values)), dtype=pl.UInt32)
    for _ in range(_MAX_REPAIR_ROUNDS):
        current = values.gather(pending)
        is_html = pl.select(_looks_like_html(pl.lit(current))).to_series()
        repaired = pl.Series(
            [_repair_one(v, h) for v, h in zip(current.to_list(), is_html.to_list())], dtype=pl.String
        )
        repaired = pl.select(_basic_normalise(pl.lit(repaired))).to_series()
        changed = repaired != current
        if not changed.any():
            break
        values = values.scatter(pending.filter(changed), repaired.filter(changed))
        pending = pending.filter(changed)
    return s.scatter(positions, values)


def normalise_text(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Repair and normalise `text`; rows left with no text get the reason "empty".

    Mojibake is repaired with ftfy and whole-document HTML is turned into text, both
    only on rows a regex flags. Every row gets: CRLF/CR → LF, invisible characters
    removed (joiners kept inside emoji sequences and the scripts that spell with them),
    U+FFFC attachment placeholders removed, NFC, NBSP/U+202F → space, trailing spaces
    per line removed, runs of blank lines collapsed to one, outer whitespace trimmed.
    Idempotent.
    """
    basic, flagged = "_normalise_basic", "_normalise_flagged"
    return (
        lf.with_columns(_basic_normalise(pl.col(TEXT)).alias(basic))
        .with_columns((_needs_repair(pl.col(TEXT)) | _needs_repair(pl.col(basic))).alias(flagged))
        .with_columns(
            pl.coalesce(
                _only_where(pl.col(flagged), pl.col(TEXT)).map_batches(
                    _repair_series, return_dtype=pl.String, is_elementwise=True
                ),
                pl.col(basic),
            ).alias(TEXT)
        )
        .with_columns(_with_drop_reason(_is_text_kind(lf) & (pl.col(TEXT).fill_null("") == ""), "empty"))
        .drop(basic, flagged)
    )


def normalise_str(s: str) -> str:
    """`normalise_text` on one string."""
    return _run_on_one(normalise_text, s)[TEXT][0]


# ============================================================================ strip_quotes_and_signatures

# Every regex here runs on Rust's finite-automaton engine (linear time, no backtracking),
# so a 1 MB quote or a line of 10,000 '>' costs one pass.

_ML = "(?mR)"  # ^/$ at every line (CRLF-aware)

# A reply header: "On <date>, <name> wrote:" and its translations. The first line
# carries a digit (a date or time), the header may wrap onto up to four more lines,
# and it ends its line with ':' or with dashes ("wrote ----").
_INTRO = r"(?:on|am|le|el|em|il|op|w[ \t]+dniu|den|dne|på|vào|в)"
_VERB = (
    r"(?:wrote|sent|schrieb|a[ \t]+écrit|escribió|escreveu|ha[ \t]+scritto|schreef|geschreven"
    r"|napisał|napisała|skrev|đã[ \t]+viết|пишет|написал|написала)"
)
_HEADER_END = r"[^\n]*?(?::|-{2,})[ \t\r]*$"
_REPLY_HEADER = "|".join(
    [
        # On 04/19/2011 07:10 AM, Roman wrote:   ------On 12/29/1987 …, Julius wrote-----
        rf"^[ \t]*(?:-+[ \t]*)?(?i:{_INTRO})\b[^\n]*\d[^\n]*(?:\n[^\n]*){{0,4}}?\b(?i:{_VERB}){_HEADER_END}",
        # 02.04.2012 14:20 пользователь "bob" <bob@example.com> написал:
        rf"^[ \t]*\d{{1,4}}[./-]\d{{1,2}}[./-]\d{{1,4}}\b[^\n]*(?:\n[^\n]*){{0,4}}?\b(?i:{_VERB}){_HEADER_END}",
        # mid-line, as clients put it after a signature dash: "reply--- On Wed, … wrote:"
        r"(?:[ \t]+|-{2,}[ \t]*)On[ \t][^\n]*\d[^\n]*\b(?i:wrote)[ \t]*:[ \t\r]*$",
        # Name <address@example.com> wrote:
        rf"^[^\n]*<[^\n<>]*@[^\n<>]*>[ \t]*(?i:{_VERB})[ \t]*:[ \t\r]*$",
        # ---- John Smith wrote ----
        r"^[ \t]*-{2,}[^\n]*\b(?i:wrote)[ \t]*-{2,}[ \t\r]*$",
        # 2011/4/7 Name <address@example.com>   (the address may wrap)
        r"^[ \t]*\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b[^\n<]*<\s*[^\s<>@]+@[^\s<>]+\s*>:?[ \t\r]*$",
    ]
)

_QUOTE_LINE = r"[ \t]*>[^\n]*"
# A quote block: '>' lines, where one unmarked line between two quote lines still
# belongs to it (a wrapped link, a broken marker).
_QUOTE_BLOCK = rf"{_QUOTE_LINE}(?:\n(?:[^\n]*\n)?{_QUOTE_LINE})*"
# Removing a block also removes the blank lines after it, so the text around it closes up.
_QUOTE_BLOCK_AND_GAP = rf"{_QUOTE_BLOCK}\n?(?:[ \t\r]*\n)*"

# A header directly followed by a quote block: both go, and any reply below stays.
_QUOTED_REPLY = rf"{_ML}(?:{_REPLY_HEADER})[ \t\r]*\n(?:[ \t\r]*\n)*{_QUOTE_BLOCK_AND_GAP}"
_QUOTE_LINES = rf"{_ML}^{_QUOTE_BLOCK_AND_GAP}"

_FROM = r"(?:from|von|de|fra|från|van|od|da|từ|lähettäjä|от|expéditeur)"
_SENT_OR_DATE = (
    r"(?:sent|gesendet|envoyé|sendt|skickat|verzonden|wysłano|enviado|enviada|inviato|đã[ \t]+gửi"
    r"|lähetetty|отправлено|date|datum|dato|data|fecha|päivämäärä|дата)"
)
_TO = r"(?:to|an|à|a|til|till|aan|do|para|đến|vastaanottaja|кому|cc)"
_SUBJECT = r"(?:subject|betreff|objet|emne|ämne|onderwerp|temat|asunto|oggetto|assunto|chủ[ \t]+đề|aihe|тема)"


def _field(names: str) -> str:
    # "From:", "*From:*" (bold in rich-text replies), "De :" (French spacing)
    return rf"[ \t]*\*?(?i:{names})[ \t]*:\*?"


# An optional rule line (----, ____) and blank lines before a header block go with it.
_RULE_BEFORE = r"(?:[ \t]*(?:-{3,}|_{3,})[ \t\r]*\n(?:[ \t\r]*\n)*)?"

# Cut rules: the text from the earliest match on is quoted or signature. Order breaks
# ties at one position only; the earliest match wins.
CUT_RULES: tuple[tuple[str, str], ...] = (
    ("reply_header", rf"{_ML}(?:{_REPLY_HEADER})"),
    (
        "original_message",
        rf"{_ML}^[ \t]*-{{3,}}[ \t]*(?i:original message|reply message|ursprüngliche nachricht"
        r"|antwort nachricht|oprindelig meddelelse|message d'origine|mensaje original"
        r"|messaggio originale|oorspronkelijk bericht|originalmeddelande|opprinnelig melding"
        r"|alkuperäinen viesti|wiadomość oryginalna|původní zpráva|исходное сообщение)[ \t]*-{3,}",
    ),
    (
        "outlook_header",
        # From: … then (after at most one wrapped line) Sent:/Date:/To:/Subject:
        rf"{_ML}^{_RULE_BEFORE}{_field(_FROM)}[^\n]*(?:\n[^\n]*)?\n"
        rf"{_field(_SENT_OR_DATE + '|' + _TO + '|' + _SUBJECT)}"
        # or Date: <something with a digit> directly followed by From:/To:/Subject:
        rf"|^{_RULE_BEFORE}{_field(_SENT_OR_DATE)}[^\n]*\d[^\n]*\n{_field(_FROM + '|' + _TO + '|' + _SUBJECT)}",
    ),
    ("signature", rf"{_ML}^--[ \t]*$"),
    (
        "mailing_list_footer",
        rf"{_ML}^[ \t]*_{{10,}}[ \t\r]*\n[^\n]*(?i:mailing list|unsubscribe|listinfo|list-manage)",
    ),
)

# A forwarded message is kept whole: rules only look at the text before it.
_FORWARD_MARKER = (
    rf"{_ML}^[ \t]*-{{2,}}[ \t]*(?i:forwarded message|weitergeleitete nachricht|message transféré"
    r"|mensaje reenviado|messaggio inoltrato|doorgestuurd bericht|videresendt meddelelse"
    r"|vidarebefordrat meddelande|mensagem encaminhada|пересылаемое сообщение)[ \t]*-*"
    r"|^[ \t]*(?i:begin forwarded message|anfang der weitergeleiteten nachricht"
    r"|début du message réexpédié|inicio del mensaje reenviado)[ \t]*:"
)

# Trailing signatures: only when they are the last lines.
_MOBILE_LINE = (
    r"[ \t]*(?:Sent from my(?:[ \t]+[\w'’&.+-]+){1,5}"
    r"|Sent from (?:Yahoo Mail|Mail|Outlook|Gmail|Samsung Mobile|ProtonMail|AOL Mobile Mail)"
    r"(?:[ \t]+(?:for|on)(?:[ \t]+[\w.]+){1,3})?"
    r"|Sent from a mobile device|Sent via (?:the )?[\w ]{1,30}(?:mobile|phone|Galaxy|BlackBerry)"
    r"|Get Outlook for (?:iOS|Android)|Sent with Sparrow\b[^\n]*"
    r"|Envoyé de mon [\w ]{1,30}|Von meinem [\w ]{1,30} gesendet|Enviado desde mi [\w ]{1,30}"
    r"|Inviato da(?:l mio)? [\w ]{1,30}|Verzonden met mijn? [\w ]{1,30})"
    r"[ \t]*\.?[ \t]*(?:<[^>\n]*>)?[ \t\r]*"
)
_MOBILE_SIGNATURE = rf"(?:\A|\n)(?:{_MOBILE_LINE}(?:\n[ \t\r]*)*)+\z"
# "-Abhishek Kona" after a blank line, at the very end.
_SIGNOFF = r"\n[ \t\r]*\n[ \t]*-\p{L}[\p{L}.'’-]*(?:[ \t]+\p{L}[\p{L}.'’-]*){0,3}[ \t\r]*\z"

# Necessary for any rule to fire; rows without it skip the strip passes entirely.
_STRIP_HINT = (
    r"[\n>]|(?i:wrote|sent|schrieb|écrit|escribió|escreveu|scritto|schreef|skrev|viết|пишет"
    r"|outlook|sparrow|envoyé|gesendet|enviado|inviato|verzonden)"
)

STRIP_RULES = (
    "quoted_reply",
    *(name for name, _ in CUT_RULES),
    "quote_lines",
    "mobile_signature",
    "signoff",
)


def _strip_exprs(text: pl.Expr, *, gate: bool = True) -> list[pl.Expr]:
    """Expressions producing the stripped text, `stripped_chars` and `strip_rules`.

    Staged so each intermediate is computed once: the caller adds them in order.
    """
    t = _only_where(text.str.contains(_STRIP_HINT), text) if gate else text
    head = t.str.replace(rf"(?:{_FORWARD_MARKER})[\s\S]*", "")
    stage1 = [
        head.alias("_s_head"),
        t.str.slice(head.str.len_chars()).alias("_s_tail"),
    ]
    h0 = pl.col("_s_head")
    h1 = h0.str.replace_all(_QUOTED_REPLY, "")
    stage2 = [h1.alias("_s_h1"), (h1 != h0).alias("_s_quoted_reply")]
    h1c = pl.col("_s_h1")
    offsets = [h1c.str.find(pattern).alias(f"_s_at_{name}") for name, pattern in CUT_RULES]
    combined = "|".join(f"(?:{pattern})" for _, pattern in CUT_RULES)
    stage3 = [*offsets, h1c.str.replace(rf"(?:{combined})[\s\S]*", "").alias("_s_h2")]
    cut_at = pl.min_horizontal([pl.col(f"_s_at_{name}") for name, _ in CUT_RULES])
    h2 = pl.col("_s_h2")
    h3 = h2.str.replace_all(_QUOTE_LINES, "")
    stage4 = [
        cut_at.alias("_s_cut_at"),
        h3.alias("_s_h3"),
        (h3 != h2).alias("_s_quote_lines"),
    ]
    # A cut drops the forwarded part too: it sits below the quote or signature.
    keeps_tail = (pl.col("_s_tail") != "") & pl.col("_s_cut_at").is_null()
    h3c = pl.col("_s_h3").str.strip_chars_end()
    h4 = h3c.str.replace(_MOBILE_SIGNATURE, "").str.strip_chars_end()
    h5 = h4.str.replace(_SIGNOFF, "").str.strip_chars_end()
    stage5 = [
        keeps_tail.alias("_s_keeps_tail"),
        h4.alias("_s_h4"),
        h5.alias("_s_h5"),
        (h4 != h3c).alias("_s_mobile_signature"),
    ]
    fired = {
        "quoted_reply": pl.col("_s_quoted_reply"),
        **{name: pl.col(f"_s_at_{name}") == pl.col("_s_cut_at") for name, _ in CUT_RULES},
        "quote_lines": pl.col("_s_quote_lines"),
        "mobile_signature": ~pl.col("_s_keeps_tail") & pl.col("_s_mobile_signature"),
        "signoff": ~pl.col("_s_keeps_tail") & (pl.col("_s_h5") != pl.col("_s_h4")),
    }
    stage6 = [pl.any_horizontal([f.fill_null(False) for f in fired.values()]).alias("_s_any")] + [
        f.fill_null(False).alias(f"_s_fired_{name}") for name, f in fired.items()
    ]
    stripped = (
        pl.when(pl.col("_s_keeps_tail"))
        .then(pl.col("_s_h3") + pl.col("_s_tail"))
        .otherwise(pl.col("_s_h5"))
        .str.replace(r"\A(?:[ \t\r]*\n)+", "")
        .str.strip_chars_end()
    )
    new_text = pl.when(pl.col("_s_any")).then(stripped).otherwise(text)
    rules = pl.concat_list(
        [pl.when(pl.col(f"_s_fired_{name}")).then(pl.lit(name)) for name in STRIP_RULES]
    ).list.drop_nulls()
    empty_rules = pl.lit([], dtype=pl.List(pl.String))
    stage7 = [
        new_text.alias("_s_text"),
        pl.when(pl.col("_s_any")).then(rules).otherwise(empty_rules).alias("strip_rules"),
    ]
    stage8 = [
        (text.str.len_chars().cast(pl.Int64) - pl.col("_s_text").str.len_chars().cast(pl.Int64))
        .fill_null(0)
        .alias("stripped_chars"),
    ]
    return [stage1, stage2, stage3, stage4, stage5, stage6, stage7, stage8]  # type: ignore[return-value]


def _apply_strip(lf: pl.LazyFrame, *, gate: bool) -> pl.LazyFrame:
    stages = _strip_exprs(pl.col(TEXT), gate=gate)
    for stage in stages:
        lf = lf.with_columns(stage)
    emptied = (pl.col("stripped_chars") > 0) & (pl.col("_s_text").str.strip_chars() == "")
    temp = [c for c in lf.collect_schema().names() if c.startswith("_s_") and c != "_s_text"]
    return (
        lf.with_columns(_with_drop_reason(_is_text_kind(lf) & emptied, "empty_after_strip"))
        .with_columns(pl.col("_s_text").alias(TEXT))
        .drop(*temp, "_s_text")
    )


def strip_quotes_and_signatures(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Remove quoted replies and signatures from `text`.

    Removed: a reply header ("On … wrote:" in several languages, Outlook From/Sent/To
    blocks, "-----Original Message-----") and everything after it, unless the header
    is directly followed by '>' lines, in which case header and quote go and a reply
    written below them stays; '>' quote lines anywhere; a "-- " signature and what
    follows; mailing-list footers; mobile signatures ("Sent from my iPhone") and a
    "-Name" sign-off when they end the message. A forwarded message ("---------- Forwarded
    message ----------") is kept whole. Adds `stripped_chars` (Int64) and `strip_rules`
    (List(String), the rules that fired, see `STRIP_RULES`); rows left empty get
    "empty_after_strip".
    """
    return _apply_strip(lf, gate=True)


def strip_reply_str(s: str) -> str:
    """`strip_quotes_and_signatures` on one string."""
    return _run_on_one(strip_quotes_and_signatures, s)[TEXT][0]


def strip_details_str(s: str) -> tuple[str, int, list[str]]:
    """The stripped text, characters removed and rules fired, for one string."""
    row = _run_on_one(strip_quotes_and_signatures, s).row(0, named=True)
    return row[TEXT], row["stripped_chars"], row["strip_rules"]


# ============================================================================ drop_meta_messages

# Invisible marks that exporters put around system text (WhatsApp's LRM).
_PAD = r"[\s\x{200B}-\x{200F}\x{202A}-\x{202E}\x{2060}\x{2066}-\x{2069}\x{FEFF}]*"
_OPEN_QUOTE = r"[“\"‘'«„]"
_CLOSE_QUOTE = r"[”\"’'»“]"
_ATTACHMENT_NOUN = r"an? (?:image|photo|movie|video|audio message|attachment|sticker|GIF|Memoji|location)"

# (reason, whole-message regex). Anchored at both ends: a sentence that merely
# mentions "image omitted" is a real message.
META_PATTERNS: tuple[tuple[str, str], ...] = (
    ("meta:interrupted", r"\[Request interrupted by user(?: for tool use)?\]"),
    ("meta:no_response", r"No response requested\.?"),
    (
        "meta:media_placeholder",
        r"(?i:<Media omitted>|(?:image|video|audio|sticker|GIF|document|Contact card) omitted"
        # WhatsApp names the file before some placeholders: "Report.pdf • 3 pages document omitted"
        r"|[^\n]{0,200}\.\w{1,5}[^\n]{0,40} document omitted|<\s*attached:[^>\n]+>"
        r"|[^\n]{0,200}\.\w{1,5}[ \t]*(?:\((?:file attached|Datei angehängt)\)|<\x{200E}?attached>))",
    ),
    (
        "meta:deleted",
        r"(?i:This message was deleted|You deleted this message|This message was unsent|You unsent a message"
        r"|[^\n]{1,80} unsent a message)\.?",
    ),
    (
        "meta:tapback",
        rf"(?:Loved|Liked|Disliked|Laughed at|Emphasized|Emphasised|Questioned"
        rf"|Reacted [^\n]{{1,24}} to|Removed an? [^\n]{{1,24}} from)"
        rf" (?:{_OPEN_QUOTE}[\s\S]*{_CLOSE_QUOTE}|{_ATTACHMENT_NOUN})",
    ),
    (
        "meta:command",
        r"<(?:command-name|command-message|command-args|local-command-stdout|local-command-stderr)>[\s\S]*"
        r"|Caveat: The messages below were generated by the user while running local commands[\s\S]*",
    ),
)


def drop_meta_messages(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Drop what is not a person typing: non-text kinds get "kind:<kind>"; text rows
    that are whole-message system text get a "meta:…" reason (interrupts, "No response
    requested.", media placeholders, deletions, tapbacks stored as text, Claude Code
    local-command echoes)."""
    kind_reason = pl.lit("kind:") + pl.col("kind").fill_null("unknown")
    text = pl.col(TEXT)
    meta_reason = pl.lit(None, dtype=pl.String)
    for reason, pattern in reversed(META_PATTERNS):
        matches = text.str.contains(rf"\A{_PAD}(?:{pattern}){_PAD}\z")
        meta_reason = pl.when(matches).then(pl.lit(reason)).otherwise(meta_reason)
    # Meta text is short (or starts with a tag); long messages skip the regexes.
    candidate = text.str.len_bytes() < 4096
    candidate = candidate | text.str.contains(r"\A\s*(?:<|Caveat:)")
    meta_reason = pl.when(candidate).then(meta_reason)
    return lf.with_columns(_with_drop_reason(pl.col("kind") != "text", kind_reason)).with_columns(
        _with_drop_reason(pl.lit(True), meta_reason)
    )


def meta_reason_str(s: str, kind: str = "text") -> str | None:
    """The reason `drop_meta_messages` gives one message, or None when it is kept."""
    return _run_on_one(drop_meta_messages, s, kind=kind)[DROP_REASON][0]
