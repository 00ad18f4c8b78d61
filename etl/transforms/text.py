"""Per-message text transforms: repair and normalise, strip quoted replies, drop meta-messages.

Quoted history in HTML mail is found by `html_quotes`; mail replies in many languages by `replies`.

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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ftfy
import polars as pl

from etl.schemas import meta_text

TEXT = "text"
DROP_REASON = "drop_reason"
# Every drop reason this module gives; `*` stands for the message kind or the meta family.
REASONS = ("empty", "empty_after_strip", "superseded", "forwarded", "kind:*", "meta:*")


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


def _run_on_one(transform: Callable[[pl.LazyFrame], pl.LazyFrame], s: str, **columns) -> pl.DataFrame:
    frame = pl.DataFrame(
        {TEXT: [s], DROP_REASON: [None], **{k: [v] for k, v in columns.items()}},
        schema_overrides={TEXT: pl.String, DROP_REASON: pl.String},
    )
    return transform(frame.lazy()).collect()


KEEP = object()  # `rewrite_flagged_rows` output default: keep the input column's value
_LIST_SEPARATOR = "\x1f"


def rewrite_flagged_rows(
    lf: pl.LazyFrame,
    flag: pl.Expr,
    inputs: Sequence[str],
    process: Callable[[pl.DataFrame], pl.DataFrame],
    outputs: Mapping[str, tuple[Any, Any]],
) -> pl.LazyFrame:
    """Run `process` on the rows where `flag` holds, and only on those.

    Polars runs a string kernel over every value of a column, masked or not, so the way
    to spend nothing on the rows no rule can touch is to take the others out: `flag` is
    one vectorised pass over all rows, the flagged rows are filtered, handed to
    `process` (eager Polars, or Python where unavoidable) and gathered back into place.
    `outputs` maps each column `process` returns to its dtype and the value the other
    rows get (`KEEP`: the input column of that name).
    """
    packed, flag_name = "_rewrite_packed", "_rewrite_flag"
    # List(String) outputs defaulting to [] travel as joined strings: gathering strings
    # is cheap, gathering lists is not.
    as_text = {
        name for name, (dtype, default) in outputs.items() if dtype == pl.List(pl.String) and default == []
    }
    carried = {name: (pl.String if name in as_text else dtype) for name, (dtype, _) in outputs.items()}

    def run(batch: pl.Series) -> pl.Series:
        frame = batch.struct.unnest()
        n = frame.height
        positions = frame[flag_name].fill_null(False).arg_true()
        done = process(frame.filter(pl.col(flag_name).fill_null(False)).drop(flag_name)) if len(positions) else None
        columns = []
        for name, (dtype, default) in outputs.items():
            if name in as_text:
                base = pl.repeat(None, n, dtype=pl.String, eager=True).alias(name)
                if done is not None:
                    joined = done[name].list.join(_LIST_SEPARATOR)
                    base = merge_rows(base, positions, pl.select(pl.when(joined != "").then(joined)).to_series())
            else:
                base = frame[name] if default is KEEP else pl.repeat(default, n, dtype=dtype, eager=True)
                base = base.cast(dtype).alias(name)
                if done is not None:
                    base = merge_rows(base, positions, done[name].cast(dtype))
            columns.append(base.alias(name))
        return pl.DataFrame(columns).to_struct(packed)

    def unpack(name: str) -> pl.Expr:
        field = pl.col(packed).struct.field(name)
        if name in as_text:
            field = pl.coalesce(field.str.split(_LIST_SEPARATOR), pl.lit([], dtype=pl.List(pl.String)))
        return field.alias(name)

    packed_inputs = pl.struct(*[pl.col(c) for c in inputs], flag.fill_null(False).alias(flag_name))
    return (
        lf.with_columns(
            packed_inputs.map_batches(run, return_dtype=pl.Struct(carried), is_elementwise=False).alias(packed)
        )
        .with_columns(*[unpack(name) for name in outputs])
        .drop(packed)
    )


def merge_rows(base: pl.Series, positions: pl.Series, values: pl.Series) -> pl.Series:
    """Eager: `base` with row positions[j] replaced by values[j]. Works for every dtype
    (Series.scatter does not take lists or structs): one append and one gather."""
    n = len(base)
    index = pl.int_range(0, n, dtype=pl.UInt32, eager=True).scatter(
        positions, pl.int_range(n, n + len(positions), dtype=pl.UInt32, eager=True)
    )
    return base.append(values).gather(index)


def _replace_where(
    target: pl.Series,
    mask: pl.Series,
    transform: Callable[[pl.Series], pl.Series],
    source: pl.Series | None = None,
) -> pl.Series:
    """Eager: `target` with the rows in `mask` replaced by `transform(source[mask])`."""
    positions = mask.fill_null(False).arg_true()
    if not len(positions):
        return target
    return target.clone().scatter(positions, transform((target if source is None else source).gather(positions)))


def _eval(expr: Callable[[pl.Expr], pl.Expr], s: pl.Series) -> pl.Series:
    """Eager: an expression of one column applied to a Series."""
    return pl.DataFrame({"v": s}).select(expr(pl.col("v"))).to_series()


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
# A joiner whose neighbours cannot be a kept context: found without capture groups, so
# the (slower) rewrite below only runs on rows that really have a stray joiner.
_JOINER_PREV_OK = rf"\p{{Extended_Pictographic}}\x{{FE0F}}\x{{1F3FB}}-\x{{1F3FF}}{_JOINER_SCRIPTS[1:-1]}"
_JOINER_NEXT_OK = rf"\p{{Extended_Pictographic}}{_JOINER_SCRIPTS[1:-1]}"
_STRAY_JOINER = (
    rf"(?:\A|[^{_JOINER_PREV_OK}])[\x{{200C}}\x{{200D}}]|[\x{{200C}}\x{{200D}}](?:[^{_JOINER_NEXT_OK}]|\z)"
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
    except Exception:  # noqa: BLE001  # pragma: no cover - a future ftfy with new syntax
        # C1 controls, or the lead byte of a UTF-8 sequence read as Latin-1/cp1252
        # followed by a continuation byte read the same way.
        return (
            r"[\x{80}-\x{9F}]|[\x{C2}-\x{F4}][\x{80}-\x{BF}\x{152}\x{153}\x{160}\x{161}\x{178}\x{17D}"
            r"\x{17E}\x{192}\x{2C6}\x{2DC}\x{2013}\x{2014}\x{2018}-\x{201E}\x{2020}-\x{2022}\x{2026}"
            r"\x{2030}\x{2039}\x{203A}\x{20AC}\x{2122}]"
        )


def _char_class(codepoints) -> str:
    points = sorted(set(codepoints))
    parts, i = [], 0
    while i < len(points):
        j = i
        while j + 1 < len(points) and points[j + 1] == points[j] + 1:
            j += 1
        parts.append(f"\\x{{{points[i]:X}}}" + (f"-\\x{{{points[j]:X}}}" if j > i else ""))
        i = j + 1
    return "[" + "".join(parts) + "]"


@functools.cache
def _nfc_sensitive() -> str:
    """Characters NFC can change or compose with (NFC_Quick_Check No/Maybe): non-zero
    combining classes, singletons, composition exclusions, second halves of canonical
    pairs, Hangul V/T jamo. A text without any of them is already NFC, so NFC runs on
    few rows (emoji variation selectors, precomposed accents and most scripts pass)."""
    import unicodedata

    points = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    for cp in range(0xC0, 0x30000):
        ch = chr(cp)
        if unicodedata.combining(ch):
            points.add(cp)
            continue
        decomposition = unicodedata.decomposition(ch)
        if decomposition and decomposition[0] != "<":
            parts = decomposition.split()
            if len(parts) == 1 or unicodedata.normalize("NFC", ch) != ch:
                points.add(cp)
            points.update(int(p, 16) for p in parts[1:])
    return _char_class(points)


def _attachment_placeholders(t: pl.Expr) -> pl.Expr:
    return (
        t.str.replace_all(_ATTACHMENT_BETWEEN_WORDS, "${1} ${2}")
        .str.replace_all(_ATTACHMENT_BETWEEN_WORDS, "${1} ${2}")
        .str.replace_all("\uFFFC", "", literal=True)
    )


def _stray_joiners_removed(t: pl.Expr) -> pl.Expr:
    return t.str.replace_all(_JOINERS_IN_CONTEXT, "${1}")


def _where_matches(s: pl.Series, pattern: str, rule: Callable[[pl.Expr], pl.Expr]) -> pl.Series:
    """Eager: `rule` applied to the rows of `s` matching `pattern`, and to no other."""
    return _replace_where(s, _eval(lambda t: t.str.contains(pattern), s), lambda rows: _eval(rule, rows))


def _basic_normalise_series(s: pl.Series) -> pl.Series:
    """The vectorised rules, in an order where none re-enables an earlier one (each is
    idempotent): line breaks, attachment placeholders, invisibles, stray joiners, NFC,
    odd spaces, trailing spaces, blank-line runs, outer whitespace. The rare rules run
    on the rows that need them only."""
    s = _eval(lambda t: t.str.replace_all(r"\r\n?|[\x{2028}\x{2029}]", "\n"), s)
    s = _where_matches(s, "\uFFFC", _attachment_placeholders)
    s = _eval(lambda t: t.str.replace_all(_INVISIBLE, ""), s)
    s = _where_matches(s, _STRAY_JOINER, _stray_joiners_removed)
    s = _where_matches(s, _nfc_sensitive(), lambda t: t.str.normalize("NFC"))
    return _eval(lambda t: _spacing_rules(t.str.replace_all(r"[\x{A0}\x{202F}]", " ")), s)


def _spacing_rules(t: pl.Expr) -> pl.Expr:
    """Trailing spaces per line, runs of blank lines, outer whitespace."""
    return t.str.replace_all(r"[^\S\n]+\n", "\n").str.replace_all("\n\n\n+", "\n\n").str.strip_chars()


@functools.cache
def _special_characters() -> str:
    """Characters some rule other than spacing acts on: CR and Unicode line breaks,
    invisibles and joiners, U+FFFC, NBSP/U+202F, and what NFC can change."""
    points = {0x0D, 0x2028, 0x2029, 0xFFFC, 0xA0, 0x202F, 0xFEFF}
    for lo, hi in ((0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x2069)):
        points.update(range(lo, hi + 1))
    return _char_class(points)[:-1] + _nfc_sensitive()[1:-1] + "]"


# Printable ASCII except '<', with no space at either end, is already normal and
# cannot be HTML or mojibake: such rows skip every rule.
_NEEDS_NORMALISING = r"[^\x20-\x3B\x3D-\x7E]|\A | \z"


def _looks_like_html(text: pl.Expr) -> pl.Expr:
    return text.str.contains(_HTML_START) & text.str.contains(_HTML_CLOSE)


def _looks_like_mojibake(text: pl.Expr) -> pl.Expr:
    return text.str.contains(_mojibake_pattern())


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
    from bs4 import BeautifulSoup

    return _visible_text(BeautifulSoup(html, "html.parser"))


def _visible_text(soup, quoted: Callable[[Any], bool] | None = None) -> str:
    """`html_to_text` of an already parsed document. With `quoted` (a test on each text
    node), the lines made only of quoted text nodes start with "> "."""
    from bs4 import Comment, Doctype, NavigableString, ProcessingInstruction

    out: list[str] = []
    flags: list[bool | None] = []

    def emit(piece: str, flag: bool | None = None) -> None:
        out.append(piece)
        flags.append(flag)

    def newline(count: int = 1) -> None:
        while out and out[-1].endswith(" "):
            out[-1] = out[-1].rstrip(" ")
        emit("\n" * count)

    def walk(node, in_pre: bool) -> None:
        for child in node.children:
            if isinstance(child, (Comment, Doctype, ProcessingInstruction)):
                continue
            if isinstance(child, NavigableString):
                flag = quoted(child) if quoted is not None else None
                if in_pre:
                    emit(str(child), flag)
                    continue
                piece = _HTML_SPACE.sub(" ", str(child))
                if not out or out[-1].endswith("\n"):
                    piece = piece.lstrip(" ")
                if piece:
                    emit(piece, flag)
                continue
            name = (child.name or "").lower()
            if name in _HTML_DROP:
                continue
            if name == "br":
                newline()
                continue
            if name in ("td", "th"):
                emit(" ")
            # Outlook writes every line as <p class=MsoNormal> with zero margins.
            paragraph = name == "p" and "MsoNormal" not in (child.get("class") or [])
            if name in _HTML_BLOCK:
                newline(2 if paragraph else 1)
            walk(child, in_pre or name == "pre")
            if name in _HTML_BLOCK:
                newline(2 if paragraph else 1)

    walk(soup, False)
    if quoted is None:
        return "".join(out)
    return _quote_marked_lines(out, flags)


def _quote_marked_lines(pieces: list[str], flags: list[bool | None]) -> str:
    """The pieces joined, with "> " before each line whose text is all quoted."""
    lines: list[tuple[str, set]] = []
    current: list[str] = []
    seen: set = set()
    for piece, flag in zip(pieces, flags):
        for k, part in enumerate(piece.split("\n")):
            if k:
                lines.append(("".join(current), seen))
                current, seen = [], set()
            current.append(part)
            if part.strip() and flag is not None:
                seen.add(flag)
    lines.append(("".join(current), seen))
    return "\n".join("> " + line if seen == {True} else line for line, seen in lines)


def _repair_one(text: str, is_html: bool, is_mojibake: bool) -> str:
    if is_html:
        text = html_to_text(text)
    return ftfy.fix_text(text, _FTFY_CONFIG) if is_mojibake or is_html else text


def _repair(values: pl.Series) -> pl.Series:
    """Repair flagged texts (no nulls).

    One round is HTML-to-text (for HTML), ftfy, then the vectorised rules. A text whose
    result is still flagged (an entity that decoded to mojibake, a tag ftfy revealed)
    goes round again until nothing changes: the result is then either unflagged or a
    fixed point, which is what makes `normalise_text` idempotent.
    """
    pending = pl.Series(range(len(values)), dtype=pl.UInt32)
    for _ in range(_MAX_REPAIR_ROUNDS):
        current = values.gather(pending)
        is_html = _eval(_looks_like_html, current).fill_null(False).to_list()
        is_mojibake = _eval(_looks_like_mojibake, current).fill_null(False).to_list()
        repaired = pl.Series(
            [_repair_one(*args) for args in zip(current.to_list(), is_html, is_mojibake)], dtype=pl.String
        )
        repaired = _basic_normalise_series(repaired)
        values = values.clone().scatter(pending, repaired)
        again = (repaired != current) & _eval(_needs_repair, repaired)
        if not again.any():
            break
        pending = pending.filter(again)
    return values


_SPACING = r"[\n\t]|\A\s|\s\z"


def _normalise_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """The flagged rows: full rules where a special character occurs, spacing rules
    where only whitespace needs work, repair where HTML or mojibake is suspected."""
    raw = rows[TEXT]
    flags = rows.select(
        special=pl.col(TEXT).str.contains(_special_characters()),
        spacing=pl.col(TEXT).str.contains(_SPACING),
        repair=_needs_repair(pl.col(TEXT)),
    )
    out = _replace_where(raw, flags["special"], _basic_normalise_series)
    out = _replace_where(out, flags["spacing"] & ~flags["special"], lambda s: _eval(_spacing_rules, s))
    # A rule can uncover HTML or mojibake (an invisible character splitting "Ã©").
    changed = (out != raw).fill_null(False)
    uncovered = _replace_where(changed, changed, lambda rows: _eval(_needs_repair, rows), source=out)
    out = _replace_where(out, flags["repair"] | uncovered, _repair, source=raw)
    return pl.DataFrame({TEXT: out})


def normalise_text(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Repair and normalise `text`; rows left with no text get the reason "empty".

    Mojibake is repaired with ftfy and whole-document HTML is turned into text, both
    only on rows a regex flags. Every row gets: CRLF/CR → LF, invisible characters
    removed (joiners kept inside emoji sequences and the scripts that spell with them),
    U+FFFC attachment placeholders removed, NFC, NBSP/U+202F → space, trailing spaces
    per line removed, runs of blank lines collapsed to one, outer whitespace trimmed.
    Idempotent. Only rows with something besides printable ASCII are looked at twice.
    """
    lf = rewrite_flagged_rows(
        lf,
        flag=pl.col(TEXT).str.contains(_NEEDS_NORMALISING),
        inputs=[TEXT],
        process=_normalise_rows,
        outputs={TEXT: (pl.String, KEEP)},
    )
    return lf.with_columns(_with_drop_reason(_is_text_kind(lf) & (pl.col(TEXT).fill_null("") == ""), "empty"))


def normalise_str(s: str) -> str:
    """`normalise_text` on one string."""
    return _run_on_one(normalise_text, s)[TEXT][0]


# ============================================================================ strip_quotes_and_signatures

# Every regex here runs on Rust's finite-automaton engine (linear time, no backtracking),
# so a 1 MB quote or a line of 10,000 '>' costs one pass. They avoid Unicode `\b`
# (which pushes the engine off its fast path) and allow a '\r' before line ends, so raw
# CRLF mail works too.

_ML = "(?m)"  # ^/$ at every line
_EOL = r"[ \t\r]*$"
_NOT_WORD = r"[^\p{L}\p{N}_]"

# A reply header: "On <date>, <name> wrote:" and its translations. The first line
# carries a digit (a date or time), the header may wrap onto up to four more lines,
# and it ends its line with ':' or with dashes ("wrote ----").
_INTRO = r"(?:on|am|le|el|em|il|op|w[ \t]+dniu|den|dne|på|vào|в)"
_VERB = (
    r"(?:wrote|sent|schrieb|a[ \t]+écrit|escribió|escreveu|ha[ \t]+scritto|schreef|geschreven"
    r"|napisał|napisała|skrev|đã[ \t]+viết|пишет|написал|написала)"
)
# After the verb comes at most a name and an address ("schrieb Max Muster <m@x.de>:"), not
# a clause ("skrev jeg til kommunen og de svarede:"): a few words, none starting in lower case
# unless it is part of an address or a quoted name.
_AFTER_VERB = r"(?:[ \t]+(?:[^\s:\p{Ll}][^\s:]*|[^\s:]*[@<>\"][^\s:]*)){0,6}"
_HEADER_END = _AFTER_VERB + r"[ \t]*(?::|-{2,})" + _EOL
_WRAPPED = r"[^\n]*(?:\n[^\n]*){0,4}?"  # rest of the line, then up to four more lines
_REPLY_HEADER = "|".join(
    [
        # On 04/19/2011 07:10 AM, Roman wrote:   ------On 12/29/1987 …, Julius wrote-----
        rf"^[ \t]*(?:-+[ \t]*)?(?i:{_INTRO})[ \t][^\n]*[0-9]{_WRAPPED}{_NOT_WORD}(?i:{_VERB}){_HEADER_END}",
        # 02.04.2012 14:20 пользователь "bob" <bob@example.com> написал:
        rf"^[ \t]*[0-9]{{1,4}}[./-][0-9]{{1,2}}[./-][0-9]{{1,4}}[^0-9]{_WRAPPED}{_NOT_WORD}(?i:{_VERB}){_HEADER_END}",
        # mid-line, as clients put it after a signature dash: "reply--- On Wed, … wrote:"
        r"(?:[ \t]+|-{2,}[ \t]*)On[ \t][^\n]*[0-9][^\n]*" + _NOT_WORD + r"(?i:wrote)[ \t]*:" + _EOL,
        # Name <address@example.com> wrote:
        rf"^[^\n]*<[^\n<>]*@[^\n<>]*>[ \t]*(?i:{_VERB})[ \t]*:{_EOL}",
        # ---- John Smith wrote ----
        r"^[ \t]*-{2,}[^\n]*" + _NOT_WORD + r"(?i:wrote)[ \t]*-{2,}" + _EOL,
        # 2011/4/7 Name <address@example.com>   (the address may wrap)
        r"^[ \t]*[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}[^0-9][^\n<]*<\s*[^\s<>@]+@[^\s<>]+\s*>:?" + _EOL,
    ]
)


def _quote_block(line: str) -> str:
    # '>' lines, where one unmarked line between two quote lines still belongs to the
    # block (a wrapped link, a broken marker). Removing a block also removes the blank
    # lines after it, so the text around it closes up.
    return rf"{line}(?:\n(?:[^\n]*\n)?{line})*\n?(?:[ \t\r]*\n)*"


# Under a reply header anything starting with '>' is quoted (">Test", ">**"); elsewhere a
# quote marker is followed by a space, another '>' or the line end, so ">_<" stays.
_ANY_QUOTE_LINE = r"[ \t]*>[^\n]*"
_QUOTE_LINE = r"[ \t]*>(?:[ \t>][^\n]*)?" + _EOL
_QUOTED_REPLY = rf"{_ML}(?:{_REPLY_HEADER})\n(?:[ \t\r]*\n)*" + _quote_block(_ANY_QUOTE_LINE)
_QUOTE_LINES = rf"{_ML}^" + _quote_block(_QUOTE_LINE)

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
        (
            rf"{_ML}^[ \t]*-{{3,}}[ \t]*(?i:original message|reply message|ursprüngliche nachricht"
            r"|antwort nachricht|oprindelig meddelelse|message d'origine|mensaje original"
            r"|messaggio originale|oorspronkelijk bericht|originalmeddelande|opprinnelig melding"
            r"|alkuperäinen viesti|wiadomość oryginalna|původní zpráva|исходное сообщение)[ \t]*-{3,}"
        ),
    ),
    (
        "outlook_header",
        (
            # From: … then (after at most one wrapped line) Sent:/Date:/To:/Subject:
            rf"{_ML}^{_RULE_BEFORE}{_field(_FROM)}[^\n]*(?:\n[^\n]*)?\n"
            rf"{_field(_SENT_OR_DATE + '|' + _TO + '|' + _SUBJECT)}"
            # or Date: <something with a digit> directly followed by From:/To:/Subject:
            rf"|^{_RULE_BEFORE}{_field(_SENT_OR_DATE)}[^\n]*[0-9][^\n]*\n{_field(_FROM + '|' + _TO + '|' + _SUBJECT)}"
        ),
    ),
    ("signature", rf"{_ML}^--{_EOL}"),
    (
        "mailing_list_footer",
        rf"{_ML}^[ \t]*_{{10,}}[ \t\r]*\n[^\n]*(?i:mailing list|unsubscribe|listinfo|list-manage)",
    ),
)
_ANY_CUT = "|".join(f"(?:{pattern})" for _, pattern in CUT_RULES)

# A forwarded message is kept whole: rules only look at the text before it.
_FORWARD_MARKER = (
    rf"{_ML}^[ \t]*-{{2,}}[ \t]*(?i:forwarded message|weitergeleitete nachricht|message transféré"
    r"|mensaje reenviado|messaggio inoltrato|doorgestuurd bericht|videresendt meddelelse"
    r"|vidarebefordrat meddelande|mensagem encaminhada|пересылаемое сообщение)[ \t]*-*"
    r"|^[ \t]*(?i:begin forwarded message|anfang der weitergeleiteten nachricht"
    r"|début du message réexpédié|inicio del mensaje reenviado)[ \t]*:"
)

# Trailing signatures: only when they are the last lines.
_DEVICE = r"[A-Za-z0-9'’&.+-]"  # device names are ASCII; keeps the regex small
_MOBILE_LINE = (
    rf"[ \t]*(?:Sent from my(?:[ \t]+{_DEVICE}+){{1,5}}"
    r"|Sent from (?:Yahoo Mail|Mail|Outlook|Gmail|Samsung Mobile|ProtonMail|AOL Mobile Mail)"
    rf"(?:[ \t]+(?:for|on)(?:[ \t]+{_DEVICE}+){{1,3}})?"
    rf"|Sent from a mobile device|Sent via (?:the )?[A-Za-z0-9 ]{{1,30}}(?:mobile|phone|Galaxy|BlackBerry)"
    r"|Get Outlook for (?:iOS|Android)|Sent with Sparrow[^\n]*"
    r"|Envoyé de mon [A-Za-z0-9 ]{1,30}|Von meinem [A-Za-z0-9 ]{1,30} gesendet"
    r"|Enviado desde mi [A-Za-z0-9 ]{1,30}|Inviato da(?:l mio)? [A-Za-z0-9 ]{1,30}"
    r"|Verzonden met mijn? [A-Za-z0-9 ]{1,30})"
    r"[ \t]*\.?[ \t]*(?:<[^>\n]*>)?[ \t\r]*"
)
_MOBILE_SIGNATURE = rf"(?:\A|\n)(?:{_MOBILE_LINE}(?:\n[ \t\r]*)*)+\z"
# "-Abhishek Kona" after a blank line, at the very end.
_SIGNOFF = r"\n[ \t\r]*\n[ \t]*-\p{L}[\p{L}.'’-]*(?:[ \t]+\p{L}[\p{L}.'’-]*){0,3}[ \t\r]*\z"

# Necessary for any rule to fire (a '>', a line starting with '-' or '_', an address,
# a header verb, a mobile signature word, a mail header field at a line start); rows
# without it skip the strip passes entirely. Checked against the ungated rules in tests.
_STRIP_HINT = (
    r"(?m:>|@|^[ \t]*[-_*]|^[ \t]*(?i:" + _FROM[3:-1] + "|" + _SENT_OR_DATE[3:-1] + r")[ \t]*:)"
    r"|(?i:wrote|sent|schrieb|écrit|escribió|escreveu|scritto|schreef|geschreven|napisa|skrev|viết"
    r"|пишет|написал|outlook|sparrow|envoyé|von meinem|enviado|inviato|verzonden)"
)

STRIP_RULES = (
    "quoted_reply",
    *(name for name, _ in CUT_RULES),
    "quote_lines",
    "mobile_signature",
    "signoff",
)


def _strip_stages() -> list[list[pl.Expr]]:
    """Successive `with_columns` stages computing `_s_text`, `stripped_chars`,
    `strip_rules` and `_s_any` (a rule fired)."""
    text = pl.col(TEXT)
    head, tail = pl.col("_s_head"), pl.col("_s_tail")
    h1, h2, h3 = pl.col("_s_h1"), pl.col("_s_h2"), pl.col("_s_h3")
    # Rules only look above a forwarded message; the forwarded part (tail) is kept whole.
    before_forward = text.str.replace(rf"(?:{_FORWARD_MARKER})[\s\S]*", "")
    stages = [
        [before_forward.alias("_s_head")],
        [
            text.str.slice(head.str.len_chars()).alias("_s_tail"),
            head.str.replace_all(_QUOTED_REPLY, "").alias("_s_h1"),
        ],
        [h1.str.replace(rf"(?:{_ANY_CUT})[\s\S]*", "").alias("_s_h2")],
        [
            (h1 != head).alias("_s_fired_quoted_reply"),
            (h2 != h1).alias("_s_cut"),
            h2.str.replace_all(_QUOTE_LINES, "").alias("_s_h3"),
        ],
        # Which cut rule fired: the one(s) matching earliest.
        [pl.when(pl.col("_s_cut")).then(h1.str.find(pattern)).alias(f"_s_at_{name}") for name, pattern in CUT_RULES],
        [
            pl.min_horizontal([pl.col(f"_s_at_{name}") for name, _ in CUT_RULES]).alias("_s_cut_at"),
            (h3 != h2).alias("_s_fired_quote_lines"),
            # A cut drops the forwarded part too: it sits below the quote or signature.
            ((tail != "") & ~pl.col("_s_cut")).alias("_s_keeps_tail"),
            h3.str.strip_chars_end().alias("_s_h3s"),
        ],
        [pl.col("_s_h3s").str.replace(_MOBILE_SIGNATURE, "").str.strip_chars_end().alias("_s_h4")],
        [pl.col("_s_h4").str.replace(_SIGNOFF, "").str.strip_chars_end().alias("_s_h5")],
    ]
    fired = {
        "quoted_reply": pl.col("_s_fired_quoted_reply"),
        **{name: pl.col(f"_s_at_{name}") == pl.col("_s_cut_at") for name, _ in CUT_RULES},
        "quote_lines": pl.col("_s_fired_quote_lines"),
        "mobile_signature": ~pl.col("_s_keeps_tail") & (pl.col("_s_h4") != pl.col("_s_h3s")),
        "signoff": ~pl.col("_s_keeps_tail") & (pl.col("_s_h5") != pl.col("_s_h4")),
    }
    stages.append([f.fill_null(False).alias(f"_s_fired_{name}") for name, f in fired.items()])
    any_fired = pl.any_horizontal([pl.col(f"_s_fired_{name}") for name in STRIP_RULES])
    stages.append([any_fired.alias("_s_any")])
    keeps_tail, fired_any = pl.col("_s_keeps_tail"), pl.col("_s_any")
    stripped = (
        pl.when(fired_any & keeps_tail)
        .then(h3 + tail)  # the forwarded part is kept whole
        .when(fired_any)
        .then(pl.col("_s_h5"))
    )
    tidy = stripped.str.replace(r"\A(?:[ \t\r]*\n)+", "").str.strip_chars_end()
    # Joined then split: much faster in Polars than concatenating per-row lists.
    rules = pl.concat_str(
        [pl.when(pl.col(f"_s_fired_{name}")).then(pl.lit(name)) for name in STRIP_RULES],
        separator=",",
        ignore_nulls=True,
    ).str.split(",")
    stages.append(
        [
            pl.coalesce(tidy, text).alias("_s_text"),
            pl.when(pl.col("_s_any")).then(rules).otherwise(pl.lit([], dtype=pl.List(pl.String))).alias("strip_rules"),
        ]
    )
    stages.append(
        [
            pl.when(pl.col("_s_any"))
            .then(text.str.len_chars().cast(pl.Int64) - pl.col("_s_text").str.len_chars().cast(pl.Int64))
            .otherwise(pl.lit(0, dtype=pl.Int64))
            .alias("stripped_chars")
        ]
    )
    return stages


def _strip_rows(rows: pl.DataFrame) -> pl.DataFrame:
    lazy = rows.lazy()
    for stage in _strip_stages():
        lazy = lazy.with_columns(stage)
    return lazy.select(
        pl.col("_s_text").alias(TEXT),
        "stripped_chars",
        "strip_rules",
        (pl.col("_s_any") & (pl.col("_s_text").str.strip_chars() == "")).alias("_strip_emptied"),
    ).collect()


def _apply_strip(lf: pl.LazyFrame, *, gate: bool) -> pl.LazyFrame:
    lf = rewrite_flagged_rows(
        lf,
        flag=pl.col(TEXT).str.contains(_STRIP_HINT) if gate else pl.col(TEXT).is_not_null(),
        inputs=[TEXT],
        process=_strip_rows,
        outputs={
            TEXT: (pl.String, KEEP),
            "stripped_chars": (pl.Int64, 0),
            "strip_rules": (pl.List(pl.String), []),
            "_strip_emptied": (pl.Boolean, False),
        },
    )
    return lf.with_columns(
        _with_drop_reason(_is_text_kind(lf) & pl.col("_strip_emptied"), "empty_after_strip")
    ).drop("_strip_emptied")


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

# (reason, whole-message regex), most specific first. The families and their phrase
# lists are defined once in schemas/meta_text.py, which the connectors use too.
# Anchored at both ends: a sentence that merely mentions "image omitted" is a real message.
META_PATTERNS: tuple[tuple[str, str], ...] = tuple((f.reason, f.pattern) for f in meta_text.families())
META_REASONS = meta_text.REASONS


def _whole_message(pattern: str) -> str:
    return meta_text.polars_pattern(pattern)


@functools.cache
def _screens() -> tuple[list[str], str, list[str]]:
    families = meta_text.families()
    phrases = sorted(set().union(*(f.phrases for f in families)))
    screens = [f.screen if f.screen is not None else f.pattern for f in families if not f.triggers]
    triggers = sorted({t for f in families for t in f.triggers})
    return phrases, _whole_message("|".join(f"(?:{s})" for s in screens)), triggers


def _maybe_meta(text: pl.Expr) -> pl.Expr:
    """True for every row a meta family could match (`meta_text.Family` says how)."""
    phrases, screen, triggers = _screens()
    pad = " " + meta_text.PAD_CHARS
    key = (
        text.str.replace_all(r"\s+", " ")
        .str.replace_all("’", "'", literal=True)
        .str.strip_chars(pad)
        .str.strip_chars_end(".。")
        .str.strip_chars(pad)
        .str.to_lowercase()
    )
    return key.is_in(phrases) | text.str.contains(screen) | text.str.contains_any(triggers)


def _meta_rows(rows: pl.DataFrame) -> pl.DataFrame:
    reason = pl.lit(None, dtype=pl.String)
    for name, pattern in reversed(META_PATTERNS):
        reason = pl.when(pl.col(TEXT).str.contains(_whole_message(pattern))).then(pl.lit(name)).otherwise(reason)
    return rows.select(reason.alias("_meta_reason"))


_SUPERSEDED = r'"superseded"\s*:\s*true'
_FORWARDED = r'"forwarded_from"\s*:'


def drop_meta_messages(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Drop what is not a person typing: non-text kinds get "kind:<kind>"; text rows
    that are whole-message system text get a "meta:…" reason (interrupts, "No response
    requested.", tool denials, media placeholders, deletions, call notices, tapbacks
    stored as text, Claude Code command echoes and injected context: `META_REASONS`). A message its export marks as not shown (a ChatGPT branch
    that was regenerated or edited away: metadata "superseded": true) gets "superseded";
    one the owner forwarded (metadata "forwarded_from") gets "forwarded": someone else
    wrote it."""
    names = lf.collect_schema().names()
    if "metadata" in names:
        metadata = pl.col("metadata").cast(pl.String)
        lf = lf.with_columns(_with_drop_reason(metadata.str.contains(_SUPERSEDED), "superseded"))
        if "is_owner" in names:
            owner = pl.col("is_owner").fill_null(False)
            lf = lf.with_columns(_with_drop_reason(owner & metadata.str.contains(_FORWARDED), "forwarded"))
    kind = pl.col("kind").fill_null("unknown")
    lf = lf.with_columns(_with_drop_reason(kind != "text", pl.lit("kind:") + kind))
    # A cheap pass over every row (phrase lookup, small patterns, literal triggers) lets
    # through a superset of the meta rows; the full patterns run on those only.
    lf = rewrite_flagged_rows(
        lf,
        flag=pl.col(DROP_REASON).is_null() & _maybe_meta(pl.col(TEXT)),
        inputs=[TEXT],
        process=_meta_rows,
        outputs={"_meta_reason": (pl.String, None)},
    )
    return lf.with_columns(_with_drop_reason(pl.col("_meta_reason").is_not_null(), pl.col("_meta_reason"))).drop(
        "_meta_reason"
    )


def meta_reason_str(s: str, kind: str = "text") -> str | None:
    """The reason `drop_meta_messages` gives one message, or None when it is kept."""
    return _run_on_one(drop_meta_messages, s, kind=kind)[DROP_REASON][0]
