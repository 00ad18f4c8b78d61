"""WhatsApp: the chat export ("Export chat", with or without media).

One chat per `.txt` file: Android writes `WhatsApp Chat with NAME.txt` (zipped with the
media when they are attached), iOS writes `_chat.txt` inside `WhatsApp Chat - NAME.zip`.
Every message starts with a header line and runs until the next one:

    31/12/2023, 21:05 - Lena: text            Android
    [31/12/23, 9:05:10 PM] Lena: text         iOS
    13.6.2018 klo 21.25.15 - Aino: text       and many locale variants

Traps handled here:
- The header format depends on the phone's locale: date order (day-first, month-first,
  year-first; 2- or 4-digit years; `/`, `.` or `-`, dotted `13. 6. 2018.`), 12 or 24 hour
  clock (`PM`, `p.m.`, `p. m.`, with a no-break or narrow no-break space before it),
  seconds or not, brackets or a dash. The style is found from the whole file (every chat
  uses one), and so is the date order: a day above 12 proves which field is the day, a
  4-digit field is the year, and when several orders fit, the one that keeps the chat in
  chronological order wins; a real tie is read day-first and said so (`--date-order`).
- Invisible marks: U+200E before iOS system text and attachments, U+202F in times.
- A message continues over the following lines; a continuation line that merely starts
  with a date is text, not a new message.
- Media placeholders (`<Media omitted>`, `image omitted`, `<attached: …>`, `… (file
  attached)`), deletions and system lines (encryption notice, group changes, lines with
  no author) land with their own kind; nothing is dropped.
- Lines the parser cannot place (before the first header, headers in an unknown
  format, impossible dates) are counted; past 1% of the file it fails with the first one.
- The export has no time zone: times are read in `--timezone` (default: this machine's
  zone) and stored in UTC; the local time is kept in the metadata.

Ids. A conversation is keyed on the chat's name taken from the file name ("WhatsApp Chat
with Lena"), which WhatsApp gives every export of the same chat; the first lines would not
do, because an export holds only the newest tens of thousands of messages, so a longer chat
re-exported later starts elsewhere. A message is keyed on a hash of conversation, local
time, author and text (plus a counter for true repeats), so re-ingesting a re-export of a
longer chat lands only the new messages.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from etl.schemas.tables import raw_frame
from etl.sources.archive import InputFile
from etl.sources.base import Batch, Param, Quarantined, SourceContext, SourceError, me_option, metadata_json, source
from etl.sources.chat_common import decode_text, describe_binary, looks_like_json

# Past this share of lines it could not place, a file is refused rather than half-read.
MAX_UNPLACED_SHARE = 0.01
EXPECTED = "a WhatsApp chat export (the .txt, or the .zip with it, from “Export chat”)"
DATE_ORDERS = ("dmy", "mdy", "ymd")
_ORDER_NAMES = {"dmy": "day/month/year", "mdy": "month/day/year", "ymd": "year/month/day", "ydm": "year/day/month"}
# Tried in this order; the first is the reading of a file that fits every order equally.
_CANDIDATE_ORDERS = ("dmy", "mdy", "ymd", "ydm")
FIRST_YEAR = 2009  # WhatsApp's first release: no export has an earlier date

_MARKS = "\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff"
_STRIP_MARKS = re.compile(f"[{_MARKS}]")
_SPACE = "[ \u00a0\u202f]"
# 12-hour markers after the time (`PM`, `p.m.`, `p. m.`) or before it (CJK locales).
_AMPM_AFTER = rf"{_SPACE}*(?P<ampm>[aApP]\.?{_SPACE}?[mM]\.?)"
_AMPM_BEFORE = rf"(?P<ampm_pre>上午|下午|午前|午後|오전|오후){_SPACE}?"
_PM_WORDS = {"下午", "午後", "오후"}
# What follows the time. Without brackets, a bare space (“13. 6. 2018. 21:25:15 Name:
# text”) is refused before a short word and a dash or bracket: that is a 12-hour marker
# this parser does not know (“1:30 nachm. - Name”), and reading it as the author would
# be silently wrong.
_SEPARATORS = {
    "dash": rf"{_SPACE}[-–]{_SPACE}",
    "colon": rf":{_SPACE}",
    "space": rf"{_SPACE}(?(open)|(?!\S{{1,12}}{_SPACE}?(?:\]|[-–]{_SPACE})))",
}
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


# ----------------------------------------------------------------------------- header styles


@dataclass(frozen=True)
class HeaderStyle:
    """How one export writes its headers; every header of a chat uses the same."""

    bracket: bool
    date_sep: str
    seconds: bool
    time_sep: str
    ampm: str  # "", "after" or "before"
    separator: str  # "dash", "colon" or "space"


@functools.lru_cache(maxsize=64)
def _header_pattern(style: HeaderStyle | None) -> re.Pattern:
    """The header regex: loose (any style) when `style` is None, else that style only."""
    if style is None:
        bracket_open, bracket_close = r"(?P<open>\[)?", r"(?(open)(?P<close>\]))"
        date_sep, second = "(?P<dsep>[./-])", r"(?:(?P=tsep)(?P<second>\d{2}))?"
        time_sep = "(?P<tsep>[:.])"
        before, after = f"(?:{_AMPM_BEFORE})?", f"(?:{_AMPM_AFTER})?"
        separator = "(?P<sep>" + "|".join(f"(?P<{k}>{v})" for k, v in _SEPARATORS.items()) + ")"
    else:
        bracket_open = r"(?P<open>\[)" if style.bracket else "(?P<open>(?!))?"
        bracket_close = r"(?P<close>\])" if style.bracket else ""
        date_sep = f"(?P<dsep>{re.escape(style.date_sep)})"
        time_sep = f"(?P<tsep>{re.escape(style.time_sep)})"
        # Groups a style does not have still exist (never matching), so every match
        # answers the same group names.
        never = "(?!)"
        second = r"(?P=tsep)(?P<second>\d{2})" if style.seconds else f"(?P<second>{never})?"
        before = _AMPM_BEFORE if style.ampm == "before" else f"(?P<ampm_pre>{never})?"
        after = _AMPM_AFTER if style.ampm == "after" else f"(?P<ampm>{never})?"
        separator = f"(?P<sep>(?P<{style.separator}>{_SEPARATORS[style.separator]}))"
    return re.compile(
        rf"^[{_MARKS}]*{bracket_open}[{_MARKS}]*"
        rf"(?P<d1>\d{{1,4}}){date_sep}{_SPACE}?(?P<d2>\d{{1,4}})(?P=dsep){_SPACE}?(?P<d3>\d{{1,4}})\.?"
        rf",?{_SPACE}+(?:klo{_SPACE}+)?{before}"
        rf"(?P<hour>\d{{1,2}}){time_sep}(?P<minute>\d{{2}}){second}{after}"
        rf"[{_MARKS}]*{bracket_close}{separator}(?P<body>.+)$",
        re.DOTALL,
    )


_LOOSE_HEADER = _header_pattern(None)
# A line that starts like a header (date and time) without being one.
_DATE_TIME_START = re.compile(
    rf"^[{_MARKS}]*\[?[{_MARKS}]*\d{{1,4}}([./-]){_SPACE}?\d{{1,4}}\1{_SPACE}?\d{{1,4}}\.?,?{_SPACE}+"
    rf"(?:\S+{_SPACE}+)?\d{{1,2}}[:.]\d{{2}}"
)


def _style_of(match: re.Match) -> tuple:
    """A header's style as a plain tuple (cheap to count), in HeaderStyle's field order."""
    ampm = "after" if match["ampm"] else "before" if match["ampm_pre"] else ""
    separator = "dash" if match["dash"] is not None else "colon" if match["colon"] is not None else "space"
    bracket = bool(match["open"] and match["close"])
    return (bracket, match["dsep"], match["second"] is not None, match["tsep"], ampm, separator)


# ----------------------------------------------------------------------------- parsing


@dataclass
class ParsedMessage:
    line: int  # 1-based line number of the header
    local_time: datetime  # naive, as written in the export
    author: str | None  # None: a system line ("You created group …")
    text: str  # the text as exported, continuation lines joined with "\n"
    header: str  # the header line as written


@dataclass
class UnplacedLine:
    line: int
    text: str
    reason: str


@dataclass
class ParsedChat:
    messages: list[ParsedMessage]
    before: list[UnplacedLine]  # lines before the first header (all of them when there is none)
    invalid: list[tuple[UnplacedLine, str]]  # headers with an impossible date, and their message
    doubtful: list[UnplacedLine]  # header-like lines kept as text of the message before them
    lines: int  # non-blank lines in the file
    style: HeaderStyle | None = None
    date_order: str | None = None
    ambiguous: tuple[str, ...] = ()  # other date orders that fit the file as well

    @property
    def bad_lines(self) -> list[UnplacedLine]:
        """Every line the parser could not place, in file order."""
        return sorted([*self.before, *(line for line, _ in self.invalid), *self.doubtful], key=lambda u: u.line)


@dataclass
class _Header:
    index: int  # 0-based line index
    match: re.Match
    fields: tuple[str, str, str]  # the date's three numbers as written
    clock: tuple[int, int, int] | None  # hour (0-23), minute, second; None when impossible


def split_lines(text: str) -> list[str]:
    """Lines on \\n, \\r\\n or \\r only: U+2028 and friends inside a message stay text."""
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()  # the file's last line break ends a line; it adds no empty one
    return lines


def parse_chat(text: str, date_order: str | None = None, known_authors: tuple[str, ...] = ()) -> ParsedChat:
    """Messages of one exported chat; `date_order` (dmy, mdy, ymd) overrides detection.

    `known_authors` are names tried before the first ": " when splitting "Name: text",
    so a name that itself contains ": " is still read whole.
    """
    lines = split_lines(text)
    candidates = [(i, m) for i, line in enumerate(lines) if (m := _LOOSE_HEADER.match(line))]
    nonblank = sum(1 for line in lines if line.strip())
    if not candidates:
        first = next(((i, line) for i, line in enumerate(lines) if line.strip()), None)
        before = [UnplacedLine(first[0] + 1, first[1], "not a message header")] if first else []
        return ParsedChat([], before, [], [], nonblank)

    style = _dominant_style(m for _, m in candidates)
    strict = _header_pattern(style)
    headers: list[_Header] = []
    doubtful: list[UnplacedLine] = []
    for i, line in enumerate(lines):
        match = strict.match(line)
        if match:
            headers.append(_Header(i, match, (match["d1"], match["d2"], match["d3"]), _clock(match)))
        elif headers and _looks_like_own_header(line, style):
            doubtful.append(UnplacedLine(i + 1, line, "looks like a message header in another format"))

    order, ambiguous = _choose_date_order(headers, date_order)
    messages: list[ParsedMessage] = []
    invalid: list[tuple[UnplacedLine, str]] = []
    before: list[UnplacedLine] = []
    if headers:
        before = [
            UnplacedLine(i + 1, line, "before the first message header")
            for i, line in enumerate(lines[: headers[0].index])
            if line.strip()
        ]
    for n, header in enumerate(headers):
        end = headers[n + 1].index if n + 1 < len(headers) else len(lines)
        body = "\n".join([header.match["body"], *lines[header.index + 1 : end]])
        local = _local_time(header, order)
        if local is None:
            reading = _ORDER_NAMES[order]
            line = UnplacedLine(header.index + 1, lines[header.index], f"not a valid date or time read as {reading}")
            invalid.append((line, body))
            continue
        author, message = split_author(body, known_authors)
        messages.append(ParsedMessage(header.index + 1, local, author, message, lines[header.index]))
    return ParsedChat(messages, before, invalid, doubtful, nonblank, style, order, ambiguous)


def _dominant_style(matches) -> HeaderStyle:
    votes = Counter(_style_of(m) for m in matches)
    return HeaderStyle(*max(votes.items(), key=lambda item: item[1])[0])


def _looks_like_own_header(line: str, style: HeaderStyle) -> bool:
    """A line that starts with a date and time written like this file's headers and
    goes on like one ("] ", " - "), yet is not one: a header in a format the parser
    does not know. A line that merely starts with a date ("13/01/2024, 10:30 at the
    trailhead") is text."""
    start = _DATE_TIME_START.match(line)
    if not start or start.group(1) != style.date_sep:
        return False
    if ("[" in line[: start.start(1)]) != style.bracket:
        return False
    after_time = line[start.end() : start.end() + 14]  # room for an unknown "nachm."
    if style.bracket:
        return "]" in after_time
    return {"dash": " - " in after_time or " – " in after_time, "colon": ": " in after_time}.get(style.separator, True)


def split_author(body: str, known_authors: tuple[str, ...] = ()) -> tuple[str | None, str]:
    """("Name", "text") from "Name: text"; (None, body) for a system line."""
    for name in known_authors:
        if name and body.startswith(name + ": "):
            return name, body[len(name) + 2 :]
    first_line = body.split("\n", 1)[0]
    at = first_line.find(": ")
    if at < 0:
        if first_line.endswith(":") and "\n" not in body and first_line[:-1].strip():
            return first_line[:-1], ""  # "Name:" with the empty message's space trimmed
        return None, body
    return body[:at], body[at + 2 :]


# ----------------------------------------------------------------------------- dates


@functools.lru_cache(maxsize=8192)
def _ymd(fields: tuple[str, str, str], order: str) -> tuple[int, int, int] | None:
    """The valid date of a header's date fields read in `order` (a 4-digit field is
    the year); None when there is no such date. Chats repeat dates, hence the cache."""
    long = [i for i, f in enumerate(fields) if len(f) > 2]
    if len(long) > 1 or any(len(fields[i]) == 3 for i in long):
        return None
    year_at = long[0] if long else (0 if order[0] == "y" else 2)
    day, month = (int(f) for i, f in enumerate(fields) if i != year_at)
    if order.index("d") > order.index("m"):
        day, month = month, day
    year = int(fields[year_at])
    if len(fields[year_at]) <= 2:
        year += 2000  # WhatsApp exists since 2009
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]) or year < 1:
        return None
    return year, month, day


def _clock(match: re.Match) -> tuple[int, int, int] | None:
    hour, minute = int(match["hour"]), int(match["minute"])
    second = int(match["second"]) if match["second"] else 0
    marker = match["ampm"] or match["ampm_pre"]
    if marker:
        if hour > 12:
            return None
        pm = marker in _PM_WORDS or marker.lstrip(" \u00a0\u202f")[:1] in "pP"
        hour = hour % 12 + (12 if pm else 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return hour, minute, second


def _local_time(header: _Header, order: str) -> datetime | None:
    ymd = _ymd(header.fields, order)
    if ymd is None or header.clock is None:
        return None
    return datetime(*ymd, *header.clock)


def _choose_date_order(headers: list[_Header], forced: str | None) -> tuple[str, tuple[str, ...]]:
    """The date order that makes every date valid and keeps the chat in order.

    A date before WhatsApp existed counts as invalid ("3/2/24" is not 2003-02-24). Among
    orders that fit equally well, a file whose years come first is read year/month/day
    and any other day/month/year. Returns the order and the other plausible orders that
    fit exactly as well but read some date differently (empty when the file settles it).
    """
    if forced:
        return forced, ()
    fields = [h.fields for h in headers]
    clocks = [h.clock or (0, 0, 0) for h in headers]
    scores, readings = {}, {}
    for order in _CANDIDATE_ORDERS:
        dates = []
        for f, clock in zip(fields, clocks, strict=True):
            ymd = _ymd(f, order)
            dates.append(ymd + clock if ymd is not None and ymd[0] >= FIRST_YEAR else None)
        valid = [d for d in dates if d is not None]
        backwards = sum(1 for a, b in itertools.pairwise(valid) if b < a)
        scores[order] = (len(dates) - len(valid), backwards)
        readings[order] = dates
    year_first = sum(1 for f in fields if len(f[0]) > 2) * 2 > len(fields)
    # With the year first, the candidates differ only in day and month: dmy and mdy
    # would read as ydm and ymd.
    preference = ("ymd", "ydm") if year_first else _CANDIDATE_ORDERS
    best = min(preference, key=lambda o: (scores[o], preference.index(o)))
    ties: list[str] = []
    for order in preference:
        # Nobody writes year/day/month: it is a last resort, never a doubt worth a note.
        distinct = all(readings[order] != readings[o] for o in (best, *ties))
        if order != "ydm" and scores[order] == scores[best] and distinct:
            ties.append(order)
    return best, tuple(ties)


# ----------------------------------------------------------------------------- what a message is

_MEDIA_OMITTED = re.compile(
    r"<(?:Media omitted|Medien ausgeschlossen|Multimedia omitido|Médias omis|Media weggelaten"
    r"|Mídia oculta|Media omessi|[^<>\n]{1,40} omitted)>"
    r"|(?:image|video|audio|sticker|GIF|document|Contact card|video note) omitted"
    r"|.+\.\w{1,5}\b.* document omitted",
    re.IGNORECASE,
)
_ATTACHED = re.compile(r"<\s*attached:\s*(?P<file>[^<>\n]+?)\s*>")
_FILE_ATTACHED = re.compile(
    r"(?P<file>\S.*?)\s*(?:\((?:file attached|Datei angehängt|archivo adjunto|fichier joint|arquivo anexado"
    r"|file allegato|bestand bijgevoegd)\)|<attached>)",
    re.IGNORECASE,
)
_DELETED = re.compile(
    r"(?:This message was deleted|You deleted this message|Diese Nachricht wurde gelöscht"
    r"|Du hast diese Nachricht gelöscht|Se eliminó este mensaje|Eliminaste este mensaje"
    r"|Ce message a été supprimé|Vous avez supprimé ce message|Mensagem apagada|Você apagou esta mensagem"
    r"|Questo messaggio è stato eliminato|Hai eliminato questo messaggio)\.?",
    re.IGNORECASE,
)
_EDITED = re.compile(rf"[ {_MARKS}]*<This message was edited>$")
# System text WhatsApp writes under a chat's or person's name (iOS marks it with U+200E).
_ENCRYPTION = re.compile(
    r"(?:Messages and calls are end-to-end encrypted|Messages (?:to|you send to) this (?:group|chat)"
    r"(?: and calls)? are now secured with end-to-end encryption)",
    re.IGNORECASE,
)
_SYSTEM_PHRASES = re.compile(
    r"created (?:group|this group)|changed (?:the|this|their|your) (?:subject|group|phone|settings|icon)"
    r"|changed this group's|changed the group|deleted this group's icon|\badded\b|\bremoved\b|\bleft\b"
    r"|joined using|security code|now an admin|no longer an admin|disappearing messages|Missed (?:voice|video) call"
    r"|^(?:Voice|Video) call|end-to-end encrypt|business account|blocked this contact|unblocked this contact"
    r"|pinned a message|started a call|You were added|was added|turned (?:on|off)",
    re.IGNORECASE,
)
# A cheap first look (substring tests, far faster than a regex search): only a first
# line with one of these can be more than text.
_MAYBE_SPECIAL = (
    "\u200e", "<", "(", "omitted", "omitido", "ausgeschlossen", "omis", "weggelaten", "oculta", "omessi",
    "delet", "gelöscht", "elimin", "supprim", "apag", "end-to-end",
)
# "Name" in 'Name changed the subject from "A: b" to "C"' is not an author.
_SYSTEM_IN_AUTHOR = re.compile(
    r" (?:created group|changed the subject|changed the group|changed this group|changed their phone)",
    re.IGNORECASE,
)


def classify(author: str | None, text: str) -> tuple[str, dict[str, Any]]:
    """The kind of a message and what its text says about attachments and edits."""
    metadata: dict[str, Any] = {}
    if author is None:
        return "system", metadata
    if "<This message was edited>" in text and _EDITED.search(text):
        metadata["edited"] = True
    first, _, rest = text.partition("\n")
    lowered = first.lower()
    if not any(marker in lowered for marker in _MAYBE_SPECIAL):
        return "text", metadata  # most messages: no placeholder, notice or mark
    first = _STRIP_MARKS.sub("", first).strip()
    if _DELETED.fullmatch(first) and not rest.strip():
        return "deleted", metadata
    attachment = _attachment(first)
    if attachment is not None:
        metadata["attachment"] = attachment or True
        return ("attachment" if not rest.strip() else "text"), metadata
    if _ENCRYPTION.search(first) or (text[:1] == "\u200e" and not rest and _SYSTEM_PHRASES.search(first)):
        return "system", metadata
    return "text", metadata


def _attachment(first_line: str) -> str | None:
    """The attached file's name ("" when not named) if the line is a media placeholder."""
    if _MEDIA_OMITTED.fullmatch(first_line):
        return ""
    for pattern in (_ATTACHED, _FILE_ATTACHED):
        match = pattern.fullmatch(first_line)
        if match:
            return match["file"].strip()
    return None


# ----------------------------------------------------------------------------- files and names

_TITLE_PATTERNS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"WhatsApp Chat with (.+)",
        r"WhatsApp Chat - (.+)",
        r"WhatsApp-Chat mit (.+)",
        r"Chat de WhatsApp con (.+)",
        r"Conversa do WhatsApp com (.+)",
        r"Discussion WhatsApp avec (.+)",
        r"Chat WhatsApp con (.+)",
        r"WhatsApp-chat met (.+)",
        r"WhatsApp Chat (?:mit|con|com|avec|met|med|z|ile) (.+)",
    )
]
_COPY_SUFFIX = re.compile(r"(?: \(\d+\))+$")  # "… (1)" from a browser downloading it twice
_GENERIC_STEMS = {"_chat", "chat"}


def chat_title(f: InputFile) -> str | None:
    """The chat's name from the export's file name, zip name or folder name."""
    names = [PurePosixPath(f.member).stem] if f.member else [f.path.stem]
    if f.member:
        names += [PurePosixPath(f.member).parent.name, f.path.stem]
    else:
        names.append(f.path.parent.name)
    for name in names:
        title = _title_from(name)
        if title:
            return title
    # macOS may hand back a decomposed (NFD) name: "Lucía" must stay one conversation.
    stem = unicodedata.normalize("NFC", names[0])
    return None if stem.lower() in _GENERIC_STEMS else _COPY_SUFFIX.sub("", stem) or None


def _title_from(name: str) -> str | None:
    name = _COPY_SUFFIX.sub("", unicodedata.normalize("NFC", name.strip()))
    for pattern in _TITLE_PATTERNS:
        match = pattern.fullmatch(name)
        if match:
            return match.group(1).strip()
    return None


def conversation_key(title: str | None, chat: ParsedChat) -> str:
    """What identifies the chat across exports: its name; without one, its first message."""
    if title:
        return "title:" + unicodedata.normalize("NFC", title).casefold()
    first = chat.messages[0] if chat.messages else None
    return "first:" + (f"{first.local_time.isoformat()}\x1f{first.author}\x1f{first.text}" if first else "")


def _digest(*parts: str, length: int = 32) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]


def _is_whatsapp_name(relpath: str) -> bool:
    name = PurePosixPath(relpath).name
    return name.lower() == "_chat.txt" or _title_from(PurePosixPath(relpath).stem) is not None


def looks_like_whatsapp(text: str) -> bool:
    """Whether the first non-blank line is a WhatsApp message header."""
    for line in split_lines(text[:4096]):
        if line.strip():
            return _LOOSE_HEADER.match(line) is not None
    return False


# ----------------------------------------------------------------------------- owner


def _clean_name(name: str) -> str:
    """An author as displayed, without invisible marks and the "~ " of non-contacts."""
    name = _STRIP_MARKS.sub("", name).strip()
    if name.startswith("~"):
        name = name[1:].strip(" \u00a0\u202f")
    return name


# ----------------------------------------------------------------------------- the connector


@source(
    "whatsapp",
    version=1,
    help="WhatsApp chat exports: the .txt from “Export chat”, the .zip with it, or a folder of them.",
    params=(Param("date_order", "Date order of the headers when the file cannot tell: dmy, mdy or ymd."),),
    expects=EXPECTED,
    accept=lambda relpath: relpath.lower().endswith(".txt"),
    owner_hint="your name as it appears in the chat",
    looks_like=lambda head: describe_binary(head) is None and looks_like_whatsapp(decode_text(head)[0]),
    timezone=True,
)
def read_whatsapp(ctx: SourceContext) -> Iterator[Batch]:
    forced_order = _date_order_option(ctx.options.get("date_order"))
    given = {Path(p).expanduser() for p in ctx.paths}
    skipped = 0
    authors_seen: Counter[str] = Counter()
    for path in ctx.paths:
        in_path = 0
        for f in ctx.inputs([path], required=False, record=False):
            data = f.read_bytes()
            named = f.member is None and f.path in given or _is_whatsapp_name(f.member or f.path.name)
            if not named and not _is_chat(data):
                skipped += 1  # a .txt attachment saved beside the chat
                continue
            text, replaced = _text_of(f, data)
            ctx.record_inputs([f])
            if replaced:
                ctx.note(f"{f.location}: not valid UTF-8; undecodable bytes became U+FFFD")
            batch, authors = _read_chat(ctx, f, text, forced_order)
            authors_seen.update(authors)
            in_path += 1
            yield batch
        if in_path == 0:
            raise SourceError(f"{path}: no WhatsApp chat in it; expected {EXPECTED}")
    if skipped:
        ctx.note(f"skipped {skipped} .txt file(s) that are not chats (attachments saved with the export)")
    ctx.owner_noted = True  # said here, with the authors the chats name
    if not ctx.owner_matcher.configured:
        common = ", ".join(f"{name} ({n})" for name, n in authors_seen.most_common(5))
        ctx.note(f"no owner name configured, so no message is marked as yours; authors: {common}; pass --me NAME")
    elif authors_seen and not ctx.owner_matcher.matched:
        common = ", ".join(name for name, _ in authors_seen.most_common(5))
        ctx.note(f"none of the authors is one of your configured names ({common}); pass --me NAME")


def _date_order_option(value: Any) -> str | None:
    if value in (None, ""):
        return None
    order = str(value).strip().lower()
    if order not in DATE_ORDERS:
        raise SourceError(f"--date-order {value!r} is not one of {', '.join(DATE_ORDERS)}")
    return order


def _is_chat(data: bytes) -> bool:
    """Whether an unnamed .txt in a folder or archive is a chat rather than an attachment."""
    return describe_binary(data[:4096]) is None and looks_like_whatsapp(decode_text(data[:8192])[0])


def _text_of(f: InputFile, data: bytes) -> tuple[str, bool]:
    what = describe_binary(data[:4096])
    if what:
        raise SourceError(f"{f.location}: is {what}, not a chat; expected {EXPECTED}")
    text, replaced = decode_text(data)
    if looks_like_json(text):
        hint = (
            "; for a Telegram result.json use `etl ingest telegram`"
            if '"messages"' in text[:1 << 20] or '"chats"' in text[:1 << 20]
            else ""
        )
        raise SourceError(f"{f.location}: is JSON, not a WhatsApp chat export{hint}; expected {EXPECTED}")
    return text, replaced


def _read_chat(ctx: SourceContext, f: InputFile, text: str, forced_order: str | None) -> tuple[Batch, Counter[str]]:
    if not text.strip():
        raise SourceError(f"{f.location}: is empty; expected {EXPECTED}")
    chat = parse_chat(text, forced_order, known_authors=(*me_option(ctx), *getattr(ctx.owner, "names", ())))
    _check_unplaced(f, chat, forced_order)
    title = chat_title(f)
    if title is None:
        ctx.note(
            f"{f.location}: the file name does not name the chat, so it is identified by its first message; "
            "name it “WhatsApp Chat - NAME.txt” to keep later exports of it in the same conversation"
        )
    if chat.ambiguous and not forced_order:
        others = " or ".join(_ORDER_NAMES[o] for o in chat.ambiguous)
        ctx.note(
            f"{f.location}: dates read as {_ORDER_NAMES[chat.date_order]}, but {others} fits as well; "
            f"pass --date-order if that is wrong"
        )
    if chat.doubtful:
        first = chat.doubtful[0]
        ctx.note(
            f"{f.location}: {len(chat.doubtful)} line(s) start like a message header in another format and were "
            f"kept as text of the message before them (line {first.line}: {first.text[:80]!r})"
        )
    key = conversation_key(title, chat)
    conversation_id = "whatsapp:" + _digest(key, length=16)
    rows, authors = _rows(chat, conversation_id, title, ctx)
    quarantined = []
    if chat.before:
        quarantined.append(
            Quarantined(
                f"{f.location} lines {chat.before[0].line}-{chat.before[-1].line}",
                "before the first message header",
                "\n".join(u.text for u in chat.before),
            )
        )
    for line, body in chat.invalid:
        quarantined.append(Quarantined(f"{f.location} line {line.line}", line.reason, body))
    return Batch(rows=raw_frame(rows), quarantined=quarantined, stream=None), authors


def _check_unplaced(f: InputFile, chat: ParsedChat, forced_order: str | None) -> None:
    if not chat.messages and not chat.invalid:
        first = chat.before[0] if chat.before else None
        quoted = f"; line {first.line}: {first.text[:100]!r}" if first else ""
        raise SourceError(f"{f.location}: no line is a WhatsApp message header{quoted}; expected {EXPECTED}")
    bad = chat.bad_lines
    if bad and len(bad) > MAX_UNPLACED_SHARE * max(chat.lines, 1):
        first = bad[0]
        hint = " (check --date-order)" if forced_order and "valid date" in first.reason else ""
        raise SourceError(
            f"{f.location}: {len(bad)} of {chat.lines} lines could not be read as messages "
            f"(more than {MAX_UNPLACED_SHARE:.0%}); line {first.line}: {first.text[:100]!r}: {first.reason}{hint}"
        )


def _rows(chat: ParsedChat, conversation_id: str, title: str | None, ctx: SourceContext) -> tuple[dict[str, list], Counter[str]]:
    columns: dict[str, list] = {
        name: [] for name in ("source_id", "sent_at", "sender", "is_owner", "kind", "text", "metadata")
    }
    repeats: Counter[str] = Counter()
    authors: Counter[str] = Counter()
    # Per author as written: the clean name, whether it is the owner, whether it is system text.
    names: dict[str, tuple[str, bool | None, bool]] = {}
    for message in chat.messages:
        author, text = message.author, message.text
        if author is not None and author not in names:
            clean = _clean_name(author)
            names[author] = (clean, ctx.is_owner(clean), bool(_SYSTEM_IN_AUTHOR.search(author)))
        if author is not None and names[author][2]:
            author, text = None, f"{author}: {text}"  # 'X changed the subject from "A: b"'
        kind, metadata = classify(author, text)
        local_iso = message.local_time.isoformat()
        base = _digest(conversation_id, local_iso, author or "", text)
        repeats[base] += 1
        name, is_owner = names[author][:2] if author is not None else (None, None)
        if kind != "system" and name:
            authors[name] += 1
        metadata["line"], metadata["local_time"] = message.line, local_iso
        columns["source_id"].append(base if repeats[base] == 1 else f"{base}-{repeats[base]}")
        columns["sent_at"].append(ctx.to_utc(message.local_time))
        columns["sender"].append(name)
        # System lines are written by WhatsApp, not by a person in the chat.
        columns["is_owner"].append(False if kind == "system" else is_owner)
        columns["kind"].append(kind)
        if kind == "text" and "attachment" in metadata:
            # A captioned file: the placeholder line is the export's, the caption the person's.
            text = text.partition("\n")[2].strip("\n")
        columns["text"].append(text)
        columns["metadata"].append(metadata_json(metadata))
    height = len(columns["source_id"])
    columns.update(
        conversation_id=[conversation_id] * height,
        conversation_title=[title] * height,
        sender_name=columns["sender"],
    )
    return columns, authors
