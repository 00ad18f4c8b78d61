"""The owner's reply and nothing else: quote headers, separators, header blocks, mobile
signatures and list footers of mail clients in the languages people write mail in.

The phrases are data (`reply_data/*.json`, each set with a note of where it comes from);
this module turns them into a few line patterns and adds the shapes that need no phrase:
a date/time with an address ending in a colon, a block of `Label: value` lines with an
address, a quote header directly above a `>` block. It works line by line and only on
lines of at most `MAX_LINE` characters (a header is never longer), so its cost is
linear in the message, whatever is in it.

`strip_replies` is the build's strip stage: this pass on email, then the general rules
of `text.strip_quotes_and_signatures` (`>` lines, `-- ` signatures, sign-offs) on every
message. Each cut is recorded by its reason in `strip_rules`, see `REASONS`.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources

import polars as pl

from etl.transforms import text as T

TEXT = "text"
MAX_LINE = 1000  # longer lines are never a header, label, separator or signature
_MAX_HEADER_LINES = 3  # a client wraps a long header over at most this many lines
_MAX_HEADER = 400  # characters of a header, wrapped lines joined
_MIN_WRAPPED = 35  # a line the client wrapped is at least this long

# Reasons this module writes into `strip_rules` (and the build into build_drops).
QUOTE_HEADER_REPLY = "quote_header:reply"  # "On … wrote:" and its translations
QUOTE_HEADER_DATE_ADDRESS = "quote_header:date_address"  # a date, an address, a colon
QUOTE_HEADER_OUTLOOK = "quote_header:outlook"  # From:/Sent:/To:/Subject: block
QUOTE_HEADER_ORIGINAL = "quote_header:original_message"  # "-----Original Message-----"
QUOTE_LINES = "quote:lines"
SIGNATURE_MOBILE = "signature:mobile"
SIGNATURE_DASHES = "signature:dashes"
SIGNATURE_SIGNOFF = "signature:signoff"
FOOTER_MAILING_LIST = "footer:mailing_list"
REASONS = (
    QUOTE_HEADER_REPLY, QUOTE_HEADER_DATE_ADDRESS, QUOTE_HEADER_OUTLOOK, QUOTE_HEADER_ORIGINAL,
    QUOTE_LINES, SIGNATURE_MOBILE, SIGNATURE_DASHES, SIGNATURE_SIGNOFF, FOOTER_MAILING_LIST,
)  # fmt: skip
EMPTY_AFTER_STRIP = "empty_after_strip"

# The general rules' names, in this module's vocabulary.
_GENERAL_RULES = {
    "quoted_reply": QUOTE_HEADER_REPLY,
    "reply_header": QUOTE_HEADER_REPLY,
    "original_message": QUOTE_HEADER_ORIGINAL,
    "outlook_header": QUOTE_HEADER_OUTLOOK,
    "signature": SIGNATURE_DASHES,
    "mailing_list_footer": FOOTER_MAILING_LIST,
    "quote_lines": QUOTE_LINES,
    "mobile_signature": SIGNATURE_MOBILE,
    "signoff": SIGNATURE_SIGNOFF,
}


# ============================================================================ data


def _load(name: str) -> dict:
    return json.loads(resources.files("etl.transforms").joinpath(f"reply_data/{name}.json").read_text("utf-8"))


def _by_language(name: str, key: str) -> dict[str, list]:
    """Every set's entries of `key`, merged per language."""
    merged: dict[str, list] = {}
    for entry in _load(name)["sets"]:
        for language, values in entry[key].items():
            merged.setdefault(language, []).extend(values)
    return merged


def languages() -> list[str]:
    """The languages the header data covers."""
    return sorted(_by_language("quote_headers", "templates"))


_DEVICE_PART = r"(?P<device>[^\s,;:!?<>()\[\]]+?(?:\s+[^\s,;:!?<>()\[\]]+?){0,5}?)"
_PUNCT = ",，、"


def _literal(piece: str) -> str:
    """A template's literal text as a pattern: spaces match any run of spaces (or a wrap),
    commas are optional, a colon is ASCII or full-width with an optional space before it."""
    out: list[str] = []
    for k, ch in enumerate(piece):
        if ch.isspace():
            if out and out[-1] in (r"\s+", r"\s*"):
                continue
            between_words = k > 0 and piece[k - 1].isalnum() and k + 1 < len(piece) and piece[k + 1].isalnum()
            out.append(r"\s+" if between_words else r"\s*")
        elif ch in _PUNCT:
            out.append(f"[{_PUNCT}]?")
        elif ch in ":：":
            out.append("[:：]")
        else:
            out.append(re.escape(ch))
    return "".join(out)


def _template_pattern(template: str, placeholders: dict[str, str]) -> str:
    out = []
    for part in re.split(r"(\{\w+\})", template):
        if part.startswith("{") and part.endswith("}"):
            out.append(placeholders[part[1:-1]])
        elif part:
            out.append(_literal(part))
    return "".join(out)


@functools.cache
def _header_templates() -> tuple[tuple[str, bool, bool, re.Pattern], ...]:
    """Every quote header template as (keyword, has a date, sender after the verb,
    anchored pattern). The
    keyword, its longest literal word run, must occur in a line for the pattern to be
    tried: a line costs a few substring tests, not a hundred patterns."""
    out = []
    seen: set[str] = set()
    for templates in _by_language("quote_headers", "templates").values():
        for template in templates:
            if template in seen:
                continue
            seen.add(template)
            body = _template_pattern(
                template,
                {"date": r"(?P<date>[^\n]{1,150}?)", "time": r"[^\n]{1,60}?", "sender": r"(?P<sender>[^\n]{1,200}?)",
                 "address": r"[^\n<>]{1,100}@[^\n<>]{1,100}"},
            )
            for name in ("date", "sender"):  # a template may name one twice: only the first is captured
                first = body.find(f"(?P<{name}>")
                if first >= 0:
                    body = body[: first + 1] + body[first + 1 :].replace(f"(?P<{name}>", "(?:")
            if template.rstrip().casefold().endswith("wrote:"):
                body = body[: body.rfind("[:：]")] + "[:：]?"  # English "On … wrote" without its colon
            literals = [p.strip(" ,，、:：()") for p in re.split(r"\{\w+\}", template)]
            keyword = max(literals, key=len).casefold()
            has_date = "{date}" in template or "{time}" in template
            sender_last = re.sub(r"[\s:：]+$", "", template).endswith("{sender}")
            out.append((keyword, has_date, sender_last, re.compile(r"^[\s*_-]*(?:" + body + r")[\s*_-]*$", re.IGNORECASE)))
    return tuple(out)


def _template_header(joined: str) -> str | None:
    """'dated' or 'undated' when a template matches the header text with a plausible
    sender (and a digit in its date); 'keyword' when only a template's words occur (the
    shape rules then stay out: the templates know that verb); else None."""
    folded = joined.casefold()
    found = None
    for keyword, has_date, sender_last, pattern in _header_templates():
        if keyword not in folded:
            continue
        found = found or "keyword"
        match = pattern.match(joined)
        if not match:
            continue
        groups = match.groupdict()
        if groups.get("sender") is not None and not _looks_like_sender(groups["sender"], has_date, sender_last):
            continue
        if has_date:
            if not re.search(r"\d", match.group(0)):
                continue
            return "dated"
        found = "undated"
    return found


@functools.cache
def _label_sets() -> tuple[frozenset[str], frozenset[str]]:
    """(labels of the sender field, every known field label), casefolded, all languages."""
    froms, known = set(), set()
    for entry in _load("header_labels")["sets"]:
        for fields in entry["labels"].values():
            for field, names in fields.items():
                for name in names:
                    key = " ".join(name.casefold().rstrip(".").split())
                    known.add(key)
                    if field == "from":
                        froms.add(key)
    return frozenset(froms), frozenset(known)


@functools.cache
def _separator_patterns() -> tuple[re.Pattern, re.Pattern]:
    """(original message, forwarded message) separator lines."""
    kinds: dict[str, list[str]] = {"original": [], "forward": [], "forward_intro": []}
    for entry in _load("separators")["sets"]:
        for phrases in entry["phrases"].values():
            kinds[entry["kind"]].extend(phrases)

    def alternation(phrases) -> str:
        return "|".join(sorted({_literal(p) for p in phrases}, key=len, reverse=True))

    ruled = r"^[\s>*]*(?:[-_=~]{2,}\s*(?:%s)\s*[-_=~]*|[-_=~]*\s*(?:%s)\s*[-_=~]{2,})[\s*]*$"
    original = re.compile(ruled % ((alternation(kinds["original"]),) * 2), re.IGNORECASE)
    forward_alt = alternation(kinds["forward"] + kinds["forward_intro"])
    intro = alternation(kinds["forward_intro"])
    forward = re.compile(
        (ruled % (forward_alt, forward_alt)) + rf"|^[\s*]*(?:{intro})\s*[:：]?[\s*]*$", re.IGNORECASE
    )
    return original, forward


@functools.cache
def _mobile_patterns() -> tuple[re.Pattern, re.Pattern]:
    """(any device name, a capitalised app name): mobile signature lines."""
    own, apps = [], []
    for entry in _load("mobile_signatures")["sets"]:
        for templates in entry["templates"].values():
            for template in templates:
                pattern = _template_pattern(template, {"device": _DEVICE_PART}).replace("(?P<device>", "(?:")
                (apps if entry["client"] == "apps" else own).append(f"(?:{pattern})")
    link = r"(?:\s*(?:<[^<>\n]*>|\([^()\n]*\)|\[[^\[\]\n]*\]))?"
    return tuple(
        re.compile(r"^[\s*_]*(?P<sig>" + "|".join(group) + r")\s*[.!。]?" + link + r"[\s*_]*$", re.IGNORECASE)
        for group in (own, apps)
    )  # type: ignore[return-value]


# ============================================================================ line shapes

_ADDRESS = re.compile(r"[^\s<>@:;,\"'()\[\]]+@[^\s<>@:;,\"'()\[\]]+\.[^\s<>@:;,\"'()\[\]]+")
_TIME = re.compile(r"\d{1,2}\s*[:.h時시]\s*\d{2}|\d{1,2}\s*(?:[AaPp]\.?[Mm]\b|[時시点點])|[午오][前后後전후]\s*\d")
_DATE = re.compile(r"(?<!\d)(?:1[89]|2[01])\d{2}(?!\d)|\d{1,4}\s*[./-]\s*\d{1,2}\s*[./-]\s*\d{1,4}|\d{1,2}\s*[年月日년월일]")
_ENDS_WITH_COLON = re.compile(r"[:：][\s*_-]*$")
_ENDS_WITH_WROTE = re.compile(r"\bwrote[\s*_-]*$", re.IGNORECASE)
# "… <bob@example.com>:", "… bob@example.com napisał:", "… 님이 작성:": an address, then at most a few words.
_ADDRESS_THEN_COLON = re.compile(
    r"(?:<\s*)?[^\s<>@:;,\"'()\[\]]+@[^\s<>@:;,\"'()\[\]]+\.[^\s<>@:;,\"'()\[\]]+(?:\s*>)?[\"')\]]?"
    r"[^\n:：@<>]{0,40}[:：][\s*_-]*$"
)
_LABEL_LINE = re.compile(r"^[\s>]*\*{0,2}(?P<label>[^\W\d_][^:：\n*<>@]{0,30}?)\s*\*{0,2}\s*[:：]\*{0,2}(?:\s+(?P<value>.*)|\s*)$")
_RULE = re.compile(r"^\s*(?:[-_=~*]\s?){3,}$")
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")
_LIST_FOOTER = re.compile(r"mailing list|listinfo|mailman|list-manage|unsubscribe|@lists?\.|lists\.", re.IGNORECASE)
_QUOTED = re.compile(r"^[ \t]*>")


def _lines_of(lines: list[str], i: int, n: int) -> str | None:
    """Lines i..i+n-1 joined by a space (a header the client wrapped), or None: a wrapped
    line is long (clients wrap near 72-78 characters) or holds the date, and none is
    blank, quoted or huge."""
    if i + n > len(lines):
        return None
    parts = [lines[k].strip() for k in range(i, i + n)]
    if not all(parts) or any(len(p) > MAX_LINE for p in parts):
        return None
    if any(_QUOTED.match(lines[k]) for k in range(i, i + n)) or any(len(p) < _MIN_WRAPPED and not (len(p) >= 15 and re.search(r"\d", p)) for p in parts[:-1]):
        return None
    return " ".join(parts)


def _looks_like_sender(sender: str, dated: bool, capitalised: bool) -> bool:
    """A name and/or an address, not a clause. Without its addresses and quotes (and, in
    a dated header, without what precedes the last date or time token, which the lazy
    date may have left to it) it is at most five words, the first capitalised or in a
    script without case (when the sender follows the verb, as in "Den … skrev Jan:", where
    a sentence could fit too); or there was only an address."""
    name = re.sub(r"[<>\[\]()\"'«»“”„]|mailto:", " ", _ADDRESS.sub(" ", sender))
    if dated:
        name = re.split(r"\d\S*", name)[-1]
        name = re.sub(r"^\s*(?:[AaPp]\.?[Mm]\.?|Uhr|h|г\.|р\.|ص|م|GMT\S*|UTC\S*)?[\s,，、]*", "", name)
    words = name.replace(",", " ").split()
    if not words:
        return "@" in sender or dated
    if len(words) > 5:
        return False
    first = words[0]
    return not capitalised or "@" in sender or first[0].isupper() or not first[0].islower() or (len(first) > 1 and first[1].isupper())


def _header_at(lines: list[str], i: int, quoted_below) -> tuple[str, int] | None:
    """The quote header starting at line i, as (reason, number of lines), if any. A
    header ends its (last) line with a colon, or is English "On … wrote"."""
    if _QUOTED.match(lines[i]) or not lines[i].strip():
        return None
    for n in range(1, _MAX_HEADER_LINES + 1):
        joined = _lines_of(lines, i, n)
        if joined is None:
            return None
        last = lines[i + n - 1]
        if _ENDS_WITH_COLON.search(last) or _ENDS_WITH_WROTE.search(last):
            found = _template_header(joined) if len(joined) <= _MAX_HEADER else None
            if found == "dated" or (found == "undated" and ("@" in joined or quoted_below(i + n))):
                return QUOTE_HEADER_REPLY, n
            if found is None and _ENDS_WITH_COLON.search(last) and _DATE.search(lines[i]):
                if _ADDRESS_THEN_COLON.search(joined):
                    return QUOTE_HEADER_DATE_ADDRESS, n
                if n == 1 and _TIME.search(joined) and quoted_below(i + 1):
                    return QUOTE_HEADER_DATE_ADDRESS, n
            if _ENDS_WITH_COLON.search(last) and joined.count("(") <= joined.count(")"):
                return None  # a header does not go on past a line ending in a colon ("(időpont:" does)
    return None


def _label_block_at(lines: list[str], i: int) -> int:
    """How many lines an inline header block (From:/Sent:/To:/Subject: in any language)
    starting at line i spans, or 0. Known labels: two are enough when the first names the
    sender; unknown labels: three to six, with an address and a date, and text below."""
    froms, known = _label_sets()
    labels, values, end, wrapped = [], [], i, 0
    while end < len(lines) and len(labels) < 8:
        line = lines[end]
        if len(line) > MAX_LINE:
            break
        match = _LABEL_LINE.match(line)
        if match and len(match.group("label").split()) <= 3:
            labels.append(" ".join(match.group("label").casefold().rstrip(".").split()))
            values.append(match.group("value") or "")
            end += 1
            continue
        if labels and line.strip() and not wrapped and len(labels) < 3:
            wrapped += 1  # a long value wrapped onto the next line
            values.append(line)
            end += 1
            continue
        break
    if len(labels) < 2:
        return 0
    n_known = sum(label in known for label in labels)
    value_text = " ".join(values)
    if labels[0] in froms and n_known >= 2 and (len(labels) >= 3 or "@" in value_text or re.search(r"\d", value_text)):
        return end - i
    if labels[1] in froms and labels[0] in known and n_known >= 3:
        return end - i
    below = any(line.strip() for line in lines[end : end + 3])
    if 3 <= len(labels) <= 6 and len(set(labels)) == len(labels) and _ADDRESS.search(value_text):
        if (_DATE.search(value_text) or _TIME.search(value_text)) and below:
            return end - i
    return 0


def _quote_block_end(lines: list[str], j: int) -> int:
    """The line after the `>` block starting at or after line j (blank lines and one
    unmarked line between two quoted ones, a wrapped link, belong to it)."""
    while j < len(lines):
        if not lines[j].strip() or _QUOTED.match(lines[j]):
            j += 1
        elif j + 1 < len(lines) and _QUOTED.match(lines[j + 1]) and j > 0 and _QUOTED.match(lines[j - 1]):
            j += 1
        else:
            break
    return j


def _footer_at(lines: list[str], i: int) -> bool:
    """A Mailman-style footer: a line of underscores, then the list's name, address or link."""
    return bool(_UNDERSCORES.match(lines[i])) and any(
        _LIST_FOOTER.search(line) for line in lines[i + 1 : i + 5] if len(line) <= MAX_LINE
    )


# ============================================================================ one message


def cut_reply(text: str) -> tuple[str, list[str]]:
    """The owner's part of one mail and the reasons of what was cut (see `REASONS`).

    Above a forwarded message (kept whole unless a cut above it drops it): a quote
    header directly followed by `>` lines goes with those lines and the text below
    stays (an interleaved reply); any other header, separator, header block or list
    footer goes with everything after it. Then trailing `>` lines and mobile signatures.
    """
    lines = text.split("\n")
    original, forward = _separator_patterns()
    stop = next((k for k, line in enumerate(lines) if len(line) <= MAX_LINE and forward.match(line)), len(lines))
    kept: list[str] = []
    reasons: list[str] = []

    def quoted_below(k: int) -> bool:
        while k < len(lines) and not lines[k].strip():
            k += 1
        return k < len(lines) and bool(_QUOTED.match(lines[k]))

    def cut_from(k: int, reason: str) -> None:
        while kept and (not kept[-1].strip() or _RULE.match(kept[-1])):
            kept.pop()  # the rule and blank lines above a header go with it
        reasons.append(reason)

    i, cut = 0, False
    while i < stop:
        line = lines[i]
        if len(line) <= MAX_LINE and line.strip():
            if original.match(line):
                cut_from(i, QUOTE_HEADER_ORIGINAL)
                cut = True
                break
            if _footer_at(lines, i):
                cut_from(i, FOOTER_MAILING_LIST)
                cut = True
                break
            header = _header_at(lines, i, quoted_below)
            if header:
                reason, n = header
                if quoted_below(i + n):
                    j = _quote_block_end(lines, i + n)
                    if j < stop:  # the reply goes on below the quote
                        reasons.append(reason)
                        i = j
                        continue
                cut_from(i, reason)
                cut = True
                break
            if _label_block_at(lines, i):
                cut_from(i, QUOTE_HEADER_OUTLOOK)
                cut = True
                break
        kept.append(line)
        i += 1
    if not cut:
        kept.extend(lines[stop:])
    # What ends the message: quoted lines (a bottom quote) and mobile signatures.
    own, apps = _mobile_patterns()
    while kept:
        last = kept[-1]
        if not last.strip():
            kept.pop()
            continue
        if _QUOTED.match(last) and not cut and stop == len(lines):
            kept.pop()
            if QUOTE_LINES not in reasons:
                reasons.append(QUOTE_LINES)
            continue
        if len(last) <= 200 and (own.match(last) or _app_signature(apps, last)):
            kept.pop()
            if SIGNATURE_MOBILE not in reasons:
                reasons.append(SIGNATURE_MOBILE)
            continue
        break
    if not reasons:
        return text, []
    reply = re.sub(r"\A(?:[ \t\r]*\n)+", "", "\n".join(kept)).rstrip()
    return reply, list(dict.fromkeys(reasons))


def _app_signature(apps: re.Pattern, line: str) -> bool:
    """'Sent with Spark', 'Sent from Yahoo Mail': the app is named with a capital (or in a
    script without case), so 'Sent from home' stays."""
    match = apps.match(line)
    if not match:
        return False
    words = re.split(r"\s+", match.group("sig"))
    return any(w[:1].isupper() or (w[:1].isalpha() and not w[:1].islower()) for w in words[1:])


# ============================================================================ the build stage

@functools.cache
def _hint() -> str:
    """Rows matching none of this cannot match a rule here and skip Python entirely: a
    colon (every header, label and list footer has one), a '>', underscores, or a word
    of a mobile signature template (its longest literal run, from the data)."""
    words = set()
    for entry in _load("mobile_signatures")["sets"]:
        for templates in entry["templates"].values():
            for template in templates:
                literals = [p.strip(" .,:") for p in re.split(r"\{\w+\}", template)]
                words.add(max(literals, key=len).casefold())
    alternation = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True) if w)
    return rf"[:：>]|_{{10}}|(?i:{alternation})"


def _is_email(lf: pl.LazyFrame) -> pl.Expr:
    if "source" in lf.collect_schema().names():
        return pl.col("source").is_null() | (pl.col("source") == "email")
    return pl.lit(True)


def _cut_rows(rows: pl.DataFrame) -> pl.DataFrame:
    texts, rules, chars = [], [], []
    for value in rows[TEXT].to_list():
        reply, fired = cut_reply(value)
        texts.append(reply)
        rules.append(fired)
        chars.append(len(value) - len(reply))
    return pl.DataFrame(
        {TEXT: texts, "_r_rules": rules, "_r_chars": chars},
        schema={TEXT: pl.String, "_r_rules": pl.List(pl.String), "_r_chars": pl.Int64},
    )


def strip_replies(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Cut quoted history, client boilerplate and list footers from `text`.

    Email rows (or every row when there is no `source` column) go through `cut_reply`;
    then every row gets the general rules of `text.strip_quotes_and_signatures`. Adds
    `stripped_chars` (Int64: characters cut) and `strip_rules` (List(String): the reasons
    of the cuts, see `REASONS`); a text row left empty gets "empty_after_strip".
    """
    lf = T.rewrite_flagged_rows(
        lf,
        flag=_is_email(lf) & pl.col(TEXT).str.contains(_hint()),
        inputs=[TEXT],
        process=_cut_rows,
        outputs={TEXT: (pl.String, T.KEEP), "_r_rules": (pl.List(pl.String), []), "_r_chars": (pl.Int64, 0)},
    )
    lf = T.strip_quotes_and_signatures(lf)
    general = pl.col("strip_rules").list.eval(pl.element().replace(_GENERAL_RULES))
    rules = pl.concat_list(pl.col("_r_rules"), general).list.unique(maintain_order=True)
    emptied = (pl.col("_r_chars") > 0) & (pl.col(TEXT).fill_null("").str.strip_chars() == "")
    text_kind = T._is_text_kind(lf)
    return lf.with_columns(
        rules.alias("strip_rules"),
        (pl.col("stripped_chars") + pl.col("_r_chars")).alias("stripped_chars"),
        pl.when(pl.col(T.DROP_REASON).is_null() & emptied & text_kind)
        .then(pl.lit(EMPTY_AFTER_STRIP))
        .otherwise(pl.col(T.DROP_REASON))
        .alias(T.DROP_REASON),
    ).drop("_r_rules", "_r_chars")


def strip_reply_details(s: str) -> tuple[str, int, list[str]]:
    """The stripped text, characters cut and reasons, for one mail body."""
    row = T._run_on_one(strip_replies, s).row(0, named=True)
    return row[TEXT], row["stripped_chars"], row["strip_rules"]


def strip_reply(s: str) -> str:
    """`strip_replies` on one mail body."""
    return strip_reply_details(s)[0]


def cut_records(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per message the strip stage cut: source, message_id, the first reason,
    every reason, and the characters cut (the build writes them to `build_cuts`)."""
    if "stripped_chars" not in frame.columns:
        return pl.DataFrame(schema={"source": pl.String, "message_id": pl.String, "reason": pl.String,
                                    "reasons": pl.String, "chars": pl.Int64})  # fmt: skip
    cut = frame.filter(pl.col("stripped_chars") > 0)
    return cut.select(
        pl.col("source").cast(pl.String) if "source" in cut.columns else pl.lit(None, pl.String).alias("source"),
        pl.col("source_id").cast(pl.String).alias("message_id") if "source_id" in cut.columns
        else pl.lit(None, pl.String).alias("message_id"),
        pl.col("strip_rules").list.first().fill_null("other").alias("reason"),
        pl.col("strip_rules").list.join(",").alias("reasons"),
        pl.col("stripped_chars").alias("chars"),
    ).sort("source", "message_id")
