"""Email: mbox files (Gmail Takeout's `All mail Including Spam and Trash.mbox`, Thunderbird,
Apple Mail's exported `mbox`), `.eml` files, Apple Mail `.emlx`, Outlook `.msg` (with the
`outlook` extra), and folders or `.zip` archives of any of them, read in place.

An mbox is one long text file of messages, each opened by a `From ` line. A Takeout
mbox runs to gigabytes, so it is streamed line by line and never held whole. The
traps: a body line may start with "From " too (only one that looks like a separator,
after a blank line or before a header every message has, opens a message); a download
cut short ends inside a message (that message is quarantined, to land whole from a
complete copy); a Date that is not a date (the mbox `From ` line's date stands in, else
sent_at is NULL and the date is quarantined, not the message); headers can be malformed (stdlib `policy.default` first, compat32
when it raises, and header words are decoded here so nothing else can); charsets are
often mis-declared (UTF-8 bytes labelled us-ascii or latin-1); about half of all mail
has no text/plain part (the HTML is converted, without the quoted message).

Each message lands once, keyed by its Message-ID (a hash of its bytes when it has
none), so a second export that overlaps the first adds only what is new. Gmail's
X-GM-THRID names the conversation; otherwise the root of References/In-Reply-To does.
Newsletters, notifications, bounces and auto-replies land as kind `automated`, with
the rule that matched in metadata `automated_by`; the owner's own mail never does.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import csv
import email
import email.policy
import email.utils
import hashlib
import plistlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path, PurePosixPath

from etl.schemas.owner import Owner
from etl.sources.archive import InputFile
from etl.sources.base import Batch, Quarantined, SourceContext, SourceError, source, to_batch
from etl.transforms.html_quotes import html_mail_text

NAME = "email"
BATCH_ROWS = 2_000
SNIFF_BYTES = 64 << 10
MAIL_SUFFIXES = (".mbox", ".mbx", ".eml", ".emlx", ".msg")
EXPECTED = (
    "expected an mbox file (its first line starts with 'From '), .eml/.emlx/.msg messages, "
    "or a folder or .zip of them"
)
OUTLOOK_EXTRA = "pip install 'etl-voice[outlook]'"

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Outlook .msg (an OLE2 compound file)
PST_MAGIC = b"!BDN"


@source(
    NAME,
    version=1,
    help="Email: mbox (Gmail Takeout), .eml, Apple Mail .emlx, Outlook .msg, or a folder or .zip of them.",
    expects="an mbox file or email messages",
    accept=lambda relpath: accepts_name(relpath),
)
def read_email(ctx: SourceContext) -> Iterator[Batch]:
    reader = MailReader(ctx)
    for path in ctx.paths:
        path = Path(path).expanduser()
        found = ctx.inputs([path], required=False)
        if not found:
            raise SourceError(f"{path}: no email files in it; {EXPECTED}")
        for item in found:
            yield from reader.read(item, given=item.member is None and item.path == path)
    yield from reader.flush(force=True)
    if reader.skipped:
        ctx.note(f"{reader.skipped} file(s) without a mail suffix were not email and were skipped")


def accepts_name(relpath: str) -> bool:
    """Files of a folder or zip worth opening: mail suffixes, and files without a suffix
    (Apple Mail's exported `Inbox.mbox/mbox`, Thunderbird's `Inbox`), which are sniffed."""
    name = PurePosixPath(relpath).name.lower()
    return name.endswith(MAIL_SUFFIXES) or "." not in name


# ----------------------------------------------------------------------------- formats


def sniff(head: bytes) -> str | None:
    """The format of a file from its first bytes: mbox, emlx, msg, pst, eml, or None."""
    head = head.removeprefix(b"\xef\xbb\xbf")
    if head.startswith(b"From "):
        return "mbox"
    if head.startswith(OLE_MAGIC):
        return "msg"
    if head.startswith(PST_MAGIC):
        return "pst"
    first, _, rest = head.partition(b"\n")
    if first.strip().isdigit() and _looks_like_headers(rest):
        return "emlx"
    if _looks_like_headers(head):
        return "eml"
    return None


_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
_KNOWN_HEADERS = re.compile(
    rb"(?im)^(?:from|date|message-id|subject|received|return-path|mime-version|delivered-to|to"
    rb"|content-type|x-gm-thrid|x-gmail-labels|references|in-reply-to|x-[a-z0-9-]+)[ \t]*:"
)


def _looks_like_headers(head: bytes) -> bool:
    """Starts with a header field and has a field every message has, in its header block."""
    text = head.lstrip(b"\r\n")
    if not _HEADER_LINE.match(text):
        return False
    block = re.split(rb"\r?\n\r?\n", text, maxsplit=1)[0]
    return bool(_KNOWN_HEADERS.search(block))


def describe(head: bytes) -> str:
    """What a file that is not mail looks like, for the error line."""
    if not head:
        return "an empty file"
    for magic, what in (
        (b"\x89PNG", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"%PDF", "a PDF document"),
        (b"SQLite format 3\x00", "a SQLite database"),
        (b"\x1f\x8b", "gzip-compressed (a .tgz Takeout? unpack it first: tar xzf FILE)"),
        (b"PK\x03\x04", "a zip archive"),
    ):
        if head.startswith(magic):
            return what
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] in (b"{", b"["):
        return "JSON"
    if text[:1] == b"<":
        return "HTML or XML"
    first = text.split(b"\n", 1)[0][:40].decode("utf-8", "replace")
    return f"text starting {first!r}"


# ----------------------------------------------------------------------------- mbox


# A `From ` line with an asctime date: "From sender Sun Aug  7 11:40:37 2022 …", Gmail's
# "From 1750…@xxx Mon Jan 13 09:10:11 +0000 2025", Thunderbird's "From - Mon Jan  1 …".
_FROM_LINE_DATE = re.compile(
    rb"From \S+ +(?:[A-Z][a-z]{2},? +)?(?P<month>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) +"
    rb"(?P<time>\d{1,2}:\d{2}(?::\d{2})?) +(?:(?P<zone>[+-]\d{4}|[A-Z]{3,4}) +)?(?P<year>\d{4})"
)
_ESCAPED_FROM = re.compile(rb">+From ")
_MONTHS = {m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}


@dataclass
class MboxMessage:
    raw: bytes  # the message without its From line, `>From ` unescaped
    from_line: bytes
    number: int  # 1-based position in the file
    offset: int  # byte offset of the From line
    complete: bool = True  # False: the file ends inside this message


def split_mbox(stream: Iterable[bytes]) -> Iterator[MboxMessage]:
    """The messages of an mbox, reading it one line at a time.

    A `From ` line opens a message when it follows a blank line (or starts the file)
    and either carries a date or is followed by a header line; without the blank line,
    when it is followed by a header field every message has (From:, Received:, …).
    Anything else ("From time to time" in a body) is text. `>From ` lines lose one '>'
    (mboxrd).
    """
    lines = iter(stream)
    current: list[bytes] = []
    from_line: bytes | None = None
    number = offset = start = 0
    previous_blank = True
    last = b""
    line = next(lines, None)
    if line is not None:
        line = line.removeprefix(b"\xef\xbb\xbf")  # an editor's byte order mark
    while line is not None:
        following = next(lines, None)
        if line.startswith(b"From ") and _opens_message(line, previous_blank, following, from_line is None):
            if from_line is not None:
                yield _mbox_message(current, from_line, number, start)
            from_line, current, number, start = line, [], number + 1, offset
        elif from_line is not None:
            current.append(line[1:] if line.startswith(b">") and _ESCAPED_FROM.match(line) else line)
        previous_blank = not line.strip()
        offset += len(line)
        last, line = line, following
    if from_line is not None:
        message = _mbox_message(current, from_line, number, start)
        # Cut short: mid-line, or before the blank line that ends the headers.
        message.complete = last.endswith(b"\n") and any(not ln.strip() for ln in current)
        yield message


def _opens_message(line: bytes, previous_blank: bool, following: bytes | None, first: bool) -> bool:
    if first:
        return True
    if following is None or not _HEADER_LINE.match(following):
        return previous_blank and _FROM_LINE_DATE.match(line) is not None
    # Some writers leave out the blank line before `From `: then the next line must be a
    # field every message header has, not just any "word:" line of a body.
    return previous_blank or _FROM_LINE_DATE.match(line) is not None or _KNOWN_HEADERS.match(following) is not None


def _mbox_message(lines: list[bytes], from_line: bytes, number: int, offset: int) -> MboxMessage:
    if lines and not lines[-1].strip():
        lines = lines[:-1]  # the blank line before the next From line is the separator's
    return MboxMessage(b"".join(lines), from_line, number, offset)


def from_line_date(from_line: bytes) -> datetime | None:
    """The date on an mbox `From ` line (UTC unless it says otherwise), or None."""
    match = _FROM_LINE_DATE.match(from_line)
    if not match or match["month"].decode() not in _MONTHS:
        return None
    hms = [int(x) for x in match["time"].split(b":")] + [0]
    try:
        moment = datetime(int(match["year"]), _MONTHS[match["month"].decode()], int(match["day"]), hms[0], hms[1], hms[2], tzinfo=UTC)
    except ValueError:
        return None
    zone = match["zone"]
    if zone and zone[:1] in b"+-":
        minutes = int(zone[1:3]) * 60 + int(zone[3:5])
        moment -= timedelta(minutes=minutes if zone[:1] == b"+" else -minutes)
    return moment if _plausible(moment) else None


# ----------------------------------------------------------------------------- decoding

# Labels that are said to be these but are really their supersets (WHATWG's rule):
# gb2312 mail holds GBK characters, latin-1 mail holds cp1252 quotes, and so on.
_CHARSET_ALIASES = {
    "gb2312": "gb18030", "gbk": "gb18030", "euc-cn": "gb18030", "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949", "shift_jis": "cp932", "x-sjis": "cp932",
    "iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "us-ascii": "cp1252",
    "ascii": "cp1252", "iso-8859-8-i": "iso-8859-8", "windows-874": "cp874",
    "unicode-1-1-utf-7": "utf-7", "utf8": "utf-8",
}  # fmt: skip
# Labels that promise nothing: decode as if undeclared.
_NO_CHARSET = {"x-unknown", "unknown", "unknown-8bit", "default", "x-user-defined", "charset"}
_ASCII_FAMILY = {"cp1252", "iso8859-15", "ascii"}


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()
    if name in _NO_CHARSET:
        return None
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, str]:
    """Text of `data` and the codec that read it: the declared charset, then UTF-8, then
    cp1252. Bytes that are valid UTF-8 with non-ASCII in them are read as UTF-8 when the
    label is ASCII or a Western 8-bit charset: real latin-1 text is almost never valid UTF-8."""
    codec = _codec(charset)
    if codec and data.isascii() and codec not in _ASCII_FAMILY and codec != "utf-8":
        candidates = [codec]  # 7-bit encodings: ISO-2022-JP, UTF-7
    elif data.isascii():
        return data.decode("ascii"), codec or "ascii"
    elif codec in (None, *_ASCII_FAMILY):
        candidates = ["utf-8", codec or "cp1252"]
    else:
        candidates = [codec, "utf-8"]
    for candidate in [*candidates, "cp1252"]:
        try:
            return data.decode(candidate), candidate
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("cp1252", "replace"), "cp1252"


_ENCODED_WORD = re.compile(r"=\?([^?\s]+?)\?([QqBb])\?([^?\s]*?)\?=")
_BETWEEN_WORDS = re.compile(r"(?<=\?=)[ \t\r\n]+(?==\?)")


_FOLD = re.compile(r"\r?\n(?=[ \t])")
_RAW_BYTE = re.compile("[\udc80-\udcff]")  # how the parser keeps 8-bit header bytes


def _unfolded(value: str) -> str:
    """A raw header value on one line, with 8-bit bytes decoded; encoded words are left
    as they are."""
    value = str(value)
    if "\n" in value:
        value = _FOLD.sub("", value)
    if _RAW_BYTE.search(value):
        value = decode_bytes(value.encode("utf-8", "surrogateescape"), None)[0]
    return value


def header_text(value: str | None) -> str | None:
    """A header value as text: unfolded, 8-bit bytes decoded, RFC 2047 words decoded
    (adjacent words in one charset are joined first, so a character split across two
    words survives). Never raises."""
    if value is None:
        return None
    value = _unfolded(value)
    if "=?" not in value:
        return value.strip()
    value = _BETWEEN_WORDS.sub("", value)
    out: list[str] = []
    pending: tuple[str | None, bytearray] = (None, bytearray())
    position = 0

    def flush() -> None:
        charset, data = pending
        if data:
            out.append(decode_bytes(bytes(data), charset)[0])

    for match in _ENCODED_WORD.finditer(value):
        charset, encoding, payload = match.groups()
        charset = charset.split("*", 1)[0]
        try:
            if encoding in "Bb":
                data = base64.b64decode(payload + "=" * (-len(payload) % 4))
            else:
                data = binascii.a2b_qp(payload.encode("ascii", "replace"), header=True)
        except (binascii.Error, ValueError):
            continue
        if match.start() > position or pending[0] != charset:
            flush()
            pending = (charset, bytearray())
            out.append(value[position : match.start()])
        pending[1].extend(data)
        position = match.end()
    flush()
    out.append(value[position:])
    return "".join(out).strip()


_MSGID = re.compile(r"<([^<>]+)>")


def message_ids(value: str | None) -> list[str]:
    """The ids in a Message-ID/References/In-Reply-To value, without <> or spaces."""
    if not value:
        return []
    found = [re.sub(r"\s+", "", m) for m in _MSGID.findall(value)]
    if not found and value.strip():
        found = [re.sub(r"\s+", "", value.strip().strip("<>"))]
    return [m for m in found if m]


# One address of a list: quoted strings, comments and <…> may hold commas.
_ADDRESS_PIECE = re.compile(r'(?:"(?:\\.|[^"\\])*"?|\([^)]*\)?|<[^>]*>?|[^,"(<])+')
_BARE_ADDRESS = re.compile(r"[^\s@<>\"(),;:]+@[^\s@<>\"(),;:]+")


def addresses(value: str | None) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header, decoded.

    Split by hand on commas outside quotes, comments and <>, so a display name that is
    itself an address ("alice@example.com <bob@example.com>") or holds an encoded comma
    comes out whole, where `email.utils.getaddresses` and `policy.default` split it.
    """
    if not value:
        return []
    result = []
    for piece in _ADDRESS_PIECE.findall(_unfolded(value)):
        piece = piece.strip()
        if not piece:
            continue
        if _BARE_ADDRESS.fullmatch(piece):
            result.append(("", piece))
            continue
        match = re.fullmatch(r"(.*?)<([^<>]*)>\s*(?:\(.*\))?", piece, re.DOTALL)
        if match:
            name, address = match[1].strip(), match[2].strip()
            if len(name) >= 2 and name[0] == name[-1] == '"':
                name = re.sub(r"\\(.)", r"\1", name[1:-1])
        else:
            decoded = header_text(piece) or ""
            name, address = email.utils.parseaddr(decoded)
            if not address and "@" in decoded:
                address = decoded
        name = (header_text(name) or "").strip()
        if name.casefold() == address.strip().casefold():
            name = ""
        if address or name:
            result.append((name, address.strip()))
    return result


def parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # "-0000": UTC, origin unknown
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return moment if _plausible(moment) else None


def _plausible(moment: datetime) -> bool:
    return 1971 <= moment.year <= 2100  # 1970-01-01 is a zero written as a date


# ----------------------------------------------------------------------------- a message


@dataclass
class Body:
    plain: list[tuple[bytes, str | None]] = field(default_factory=list)
    html: list[tuple[bytes, str | None]] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001 (a malformed parameter is only a missing name)
        return None
    return header_text(name) if name else None


def _walk_body(part: Message, body: Body) -> None:
    """Collect the text parts that make up the body, and name the rest as attachments.

    Of a multipart/alternative, the text/plain version is kept when there is one,
    else the HTML one; a forwarded message (message/rfc822) is an attachment.
    """
    ctype = part.get_content_type()
    if ctype == "message/rfc822" or (ctype.startswith("message/") and part.is_multipart()):
        body.attachments.append(_filename(part) or ("forwarded message" if ctype == "message/rfc822" else ctype))
        return
    if part.is_multipart():
        children = [c for c in part.get_payload() if isinstance(c, Message)]
        if ctype == "multipart/alternative":
            options = []
            for child in children:
                option = Body()
                _walk_body(child, option)
                options.append(option)
                body.attachments.extend(option.attachments)
            plain = next((o for o in options if o.plain and _has_text(o.plain)), None)
            html = next((o for o in reversed(options) if o.html), None)
            chosen = plain or html or next((o for o in options if o.plain), None)
            if chosen is not None:
                body.plain.extend(chosen.plain)
                body.html.extend(chosen.html)
            return
        for child in children:
            _walk_body(child, body)
        return
    name = _filename(part)
    disposition = part.get_content_disposition()
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        payload = str(payload or "").encode("utf-8", "surrogateescape")
    charset = part.get_content_charset()
    if ctype in ("text/plain", "text/html") and disposition != "attachment" and not name:
        (body.plain if ctype == "text/plain" else body.html).append((payload, charset))
    elif ctype.startswith("multipart/"):  # its boundary is missing: the parser left it as text
        body.plain.append((payload, charset))
    else:
        body.attachments.append(name or ctype)


def _has_text(parts: list[tuple[bytes, str | None]]) -> bool:
    return any(data.strip() for data, _ in parts)


def _defects(message: Message) -> list[str]:
    names = set()
    for part in message.walk():
        names.update(type(defect).__name__ for defect in getattr(part, "defects", ()))
    return sorted(names)


@dataclass
class Envelope:
    """Where a message came from, and what its container knows about it."""

    location: str
    fallback_date: datetime | None = None  # the mbox From line's, or .emlx's date-received
    fallback_date_from: str | None = None


_REPLY_PREFIX = re.compile(
    r"^(?:\s*(?:re|fwd?|aw|wg|sv|vs|antw|antwort|rif|r|tr|enc|res|odp|fs|rv|vl|ynt|atb|πλη|回复|回覆|答复|转发)"
    r"\s*(?:\[\d+\])?\s*[:：]\s*|\s*\[[^\]]{1,40}\]\s*)+",
    re.IGNORECASE,
)


def normalise_subject(subject: str | None) -> str:
    """The subject without Re:/Fwd:/AW:/SV:/Antw: prefixes or [list] tags, casefolded."""
    if not subject:
        return ""
    return " ".join(_REPLY_PREFIX.sub("", subject).split()).casefold()


# Local parts of addresses no person writes from.
_NO_REPLY = re.compile(
    r"(?:^|[._+-])(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|notifications?|mailer[-_.]?daemon|postmaster"
    r"|bounces?)(?:$|[._+-])",
    re.IGNORECASE,
)
# Headers only bulk and marketing senders write.
_BULK_HEADERS = ("x-campaign", "x-mailchimp", "x-mc-user", "x-mandrill", "feedback-id", "x-ses-outgoing",
                 "x-sg-eid", "x-sfmc", "x-marketo", "x-csa-complaints", "list-unsubscribe-post")  # fmt: skip
_AUTOMATED_LABELS = ("Spam", "Category Promotions")


def automated_by(headers: dict[str, list[str]], sender: str | None, labels: list[str], ctype: str) -> str | None:
    """Why a message was written by a machine, or None.

    A mailing list (List-Id) is people talking unless something else says bulk: a
    discussion list sets List-Unsubscribe and `Precedence: list` too, a newsletter adds
    `Precedence: bulk`, a bulk-sender header, or no List-Id at all.
    """
    submitted = (headers.get("auto-submitted") or [""])[0].strip().lower()
    if submitted and not submitted.startswith("no"):
        return f"auto-submitted: {submitted.split(';')[0]}"
    local = (sender or "").rpartition("@")[0] if sender and "@" in sender else (sender or "")
    if local and _NO_REPLY.search(local):
        return "no-reply sender"
    for name in headers:
        if name.startswith(_BULK_HEADERS):
            return f"header: {name}"
    precedence = (headers.get("precedence") or [""])[0].strip().lower()
    if precedence in ("bulk", "junk"):
        return f"precedence: {precedence}"
    if "list-unsubscribe" in headers and "list-id" not in headers:
        return "list-unsubscribe"
    if ctype == "multipart/report":
        return "delivery report"
    for label in _AUTOMATED_LABELS:
        if label in labels:
            return f"label: {label}"
    return None


def strip_name_signature(text: str, name: str | None) -> tuple[str, int]:
    """Remove a last short block (at most 4 lines, after a blank line) whose first line
    is the sender's name or first name: the signature under a message. Returns the
    text and the characters removed."""
    if not name or not text:
        return text, 0
    body = text.rstrip()
    blank_lines = list(re.finditer(r"\n[ \t\r]*\n", body))
    if not blank_lines:
        return text, 0
    split = blank_lines[-1]
    before, block = body[: split.start()], body[split.end() :]
    lines = [line for line in block.split("\n") if line.strip()]
    if not before.strip() or not 1 <= len(lines) <= 4:
        return text, 0
    first = lines[0].strip().lstrip("-–—~ ").rstrip(",. ").casefold()
    full = " ".join(name.split()).casefold()
    names = {full, full.split()[0]} if full else set()
    if first not in names or len(first) < 2:
        return text, 0
    kept = before.rstrip()
    return kept, len(text) - len(kept)


def _trailing_quote(text: str) -> tuple[str, str]:
    """(the text above, the quote under it): an HTML mail's quote lands as trailing "> "
    lines, and the sender's signature sits above it."""
    lines = text.split("\n")
    k = len(lines)
    while k and (not lines[k - 1].strip() or lines[k - 1].startswith(">")):
        k -= 1
    if not any(line.startswith(">") for line in lines[k:]):
        return text, ""
    return "\n".join(lines[:k]), "\n".join(lines[k:]).strip("\n")


def _gmail_labels(value: str | None) -> list[str]:
    if not value:
        return []
    return [label.strip() for label in next(csv.reader([value], skipinitialspace=True)) if label.strip()]


def content_id(raw: bytes) -> str:
    """The key of a message without a Message-ID: a hash of its bytes, with line endings
    and trailing blank lines evened out (an .eml has CRLF, an mbox LF and a separator)."""
    return "sha256:" + hashlib.sha256(raw.replace(b"\r\n", b"\n").rstrip()).hexdigest()


@dataclass
class Parsed:
    row: dict | None = None
    quarantined: list[Quarantined] = field(default_factory=list)


class MailReader:
    """Turns files into batches of raw rows, keeping count of what it skipped."""

    def __init__(self, ctx: SourceContext):
        self.ctx = ctx
        self.owner: Owner = ctx.owner or Owner()
        self.skipped = 0
        self.rows: list[dict] = []
        self.quarantined: list[Quarantined] = []
        self.seen = 0

    # -- files

    def read(self, item: InputFile, given: bool) -> Iterator[Batch]:
        try:
            with item.open() as stream:
                head = stream.read(SNIFF_BYTES)
        except OSError as exc:
            raise SourceError(f"{item.location}: cannot read it ({exc})") from None
        kind = sniff(head)
        if kind is None:
            if given:
                raise SourceError(f"{item.location}: not an mbox or email message ({describe(head)}); {EXPECTED}")
            if "." not in item.name:
                self.skipped += 1  # an index or table of contents next to the mail
                return
            self._quarantine(item.location, f"not an email message ({describe(head)})", head[:4096])
            return
        if kind == "pst":
            raise SourceError(
                f"{item.location}: an Outlook .pst archive, which is not read directly; convert it with "
                "readpst (Debian/Ubuntu package pst-utils: `readpst -r -o OUT FILE.pst`) and ingest the "
                "mbox files it writes, or save the messages as .msg"
            )
        if kind == "mbox":
            yield from self._read_mbox(item)
        else:
            raw = item.read_bytes()
            if kind == "emlx":
                raw, envelope = self._emlx(raw, item)
            elif kind == "msg":
                raw, envelope = msg_to_rfc822(raw, item), Envelope(item.location)
            else:
                envelope = Envelope(item.location)
            self._add(raw, envelope)
        yield from self.flush()

    def _read_mbox(self, item: InputFile) -> Iterator[Batch]:
        with item.open() as stream:
            for message in split_mbox(stream):
                location = f"{item.location} message {message.number} (byte {message.offset})"
                if not message.complete:
                    self._quarantine(
                        location,
                        "the file ends inside this message (a download cut short?); it lands when "
                        "read from a complete copy",
                        message.raw[:65536],
                        source_id=self._source_id(message.raw),
                    )
                else:
                    envelope = Envelope(location, from_line_date(message.from_line), "mbox From line")
                    self._add(message.raw, envelope)
                yield from self.flush()

    def _emlx(self, data: bytes, item: InputFile) -> tuple[bytes, Envelope]:
        """Apple Mail's .emlx: a line with the message's byte count, the message, then a
        property list (flags, date-received)."""
        count_line, _, rest = data.partition(b"\n")
        size = int(count_line.strip())
        raw, trailer = rest[:size], rest[size:]
        envelope = Envelope(item.location)
        try:
            properties = plistlib.loads(trailer.strip()) if trailer.strip() else {}
        except Exception:  # noqa: BLE001 (the property list is optional)
            properties = {}
        received = properties.get("date-received") if isinstance(properties, dict) else None
        if isinstance(received, (int, float)):
            try:
                moment = datetime.fromtimestamp(received, UTC)
            except (OverflowError, OSError, ValueError):
                moment = None
            if moment is not None and _plausible(moment):
                envelope.fallback_date, envelope.fallback_date_from = moment, "emlx date-received"
        return raw, envelope

    # -- batches

    def flush(self, force: bool = False) -> Iterator[Batch]:
        if not self.seen or (not force and len(self.rows) + len(self.quarantined) < BATCH_ROWS):
            return
        batch = to_batch(self.rows, self.quarantined, seen=self.seen)
        self.rows, self.quarantined, self.seen = [], [], 0
        yield batch

    def _quarantine(self, location: str, reason: str, payload: bytes, source_id: str | None = None) -> None:
        self.seen += 1
        self.quarantined.append(
            Quarantined(location, reason, base64.b64encode(payload).decode("ascii"), source_id)
        )

    @staticmethod
    def _source_id(raw: bytes) -> str:
        """The key of a message that could not be parsed, read from its header block."""
        headers = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
        found = re.search(rb"(?im)^message-id[ \t]*:[ \t]*(.*(?:\r?\n[ \t].*)*)", headers)
        ids = message_ids(found[1].decode("utf-8", "replace")) if found else []
        return ids[0] if ids else content_id(raw)

    def _add(self, raw: bytes, envelope: Envelope) -> None:
        self.seen += 1
        parsed = None
        errors = []
        for policy in (email.policy.default, email.policy.compat32):
            try:
                parsed = self._parse(raw, envelope, policy)
                if policy is email.policy.compat32 and parsed.row is not None:
                    parsed.row["metadata"]["parsed_with"] = "compat32"
                break
            except Exception as exc:  # noqa: BLE001 (one broken message must not stop the run)
                errors.append(f"{type(exc).__name__}: {exc}")
        if parsed is None:
            self.quarantined.append(
                Quarantined(
                    envelope.location,
                    f"cannot parse the message ({'; '.join(errors)})",
                    base64.b64encode(raw[:65536]).decode("ascii"),
                    self._source_id(raw),
                )
            )
            return
        if parsed.row is not None:
            self.rows.append(parsed.row)
        self.quarantined.extend(parsed.quarantined)

    # -- fields

    def _parse(self, raw: bytes, envelope: Envelope, policy) -> Parsed:
        message = email.message_from_bytes(raw, policy=policy)
        headers: dict[str, list[str]] = {}
        for name, value in message.raw_items():
            headers.setdefault(name.strip().lower(), []).append(value)

        def first(name: str) -> str | None:
            values = headers.get(name)
            return header_text(values[0]) if values else None

        def people(name: str) -> list[tuple[str, str]]:  # encoded words are decoded per name
            values = headers.get(name)
            return addresses(_unfolded(values[0])) if values else []

        ids = message_ids(first("message-id"))
        source_id = ids[0] if ids else content_id(raw)
        senders = people("from") or people("sender") or people("return-path")
        sender_name, sender = senders[0] if senders else (None, None)
        sender = sender.lower() if sender else None
        labels = _gmail_labels(first("x-gmail-labels"))
        subject = first("subject")
        references = message_ids(first("references"))
        in_reply_to = message_ids(first("in-reply-to"))

        is_owner: bool | None = bool(sender and self.owner.matches(sender)) or "Sent" in labels
        if not is_owner and not self.owner.emails and not labels:
            is_owner = None  # no addresses to compare with, and no Sent label to go by

        metadata: dict = {
            "message_id": ids[0] if ids else None,
            "in_reply_to": in_reply_to[-1] if in_reply_to else None,
            "references": len(references),
            "labels": labels,
            "list_id": first("list-id"),
            "to": [a for _, a in people("to") if a],
            "cc": [a for _, a in people("cc") if a],
        }
        quarantined: list[Quarantined] = []

        date_value = first("date")
        sent_at = parse_date(date_value)
        if sent_at is None:
            problem = f"Date header {date_value!r} is not a date" if date_value else "no Date header"
            if envelope.fallback_date is not None:
                sent_at = envelope.fallback_date
                metadata["date_error"] = f"{problem}; sent_at is the {envelope.fallback_date_from} date"
            else:
                metadata["date_error"] = f"{problem}; sent_at is unknown"
                quarantined.append(
                    Quarantined(
                        envelope.location,
                        f"{problem}: the message landed with sent_at NULL",
                        (date_value or "").encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
                        source_id,
                    )
                )

        thread = first("x-gm-thrid")
        root = (references or in_reply_to or [None])[0]
        normalised = normalise_subject(subject)
        if thread:
            conversation = f"gmail:{thread.strip()}"
        elif root:
            conversation = f"mid:{root}"
        elif normalised and normalised != " ".join((subject or "").split()).casefold():
            conversation = f"subject:{normalised}"  # a reply whose parent is not named
        elif ids:
            conversation = f"mid:{ids[0]}"  # a thread's first message: its replies name it as root
        elif normalised:
            conversation = f"subject:{normalised}"
        else:
            conversation = f"mid:{source_id}"

        body = Body()
        _walk_body(message, body)
        text, body_kind = self._text(body, metadata)
        if body.attachments:
            metadata["attachments"] = len(body.attachments)
            metadata["attachment_names"] = body.attachments
        defects = _defects(message)
        if defects:
            metadata["mime_defects"] = defects
        if text and sender_name:
            above, quote = _trailing_quote(text)
            above, signature = strip_name_signature(above, sender_name)
            if signature:
                text = above + ("\n\n" + quote if quote else "")
                metadata["signature_chars"] = signature

        reason = None if is_owner else automated_by(headers, sender, labels, message.get_content_type())
        if reason:
            kind = "automated"
            metadata["automated_by"] = reason
        elif not (text or "").strip() and body.attachments:
            kind = "attachment"
        else:
            kind = "text"
        metadata["body"] = body_kind
        delivered = people("delivered-to")
        row = {
            "source_id": source_id,
            "account": delivered[0][1].lower() if delivered and delivered[0][1] else None,
            "conversation_id": conversation,
            "conversation_title": subject or None,
            "sent_at": sent_at,
            "sender": sender,
            "sender_name": sender_name or None,
            "is_owner": is_owner,
            "kind": kind,
            "text": text,
            "reply_to": in_reply_to[-1] if in_reply_to else None,
            "metadata": metadata,
        }
        return Parsed(row, quarantined)

    @staticmethod
    def _text(body: Body, metadata: dict) -> tuple[str | None, str | None]:
        """The message text, and which part it came from ("plain", "html" or None)."""
        parts, kind = (body.plain, "plain") if _has_text(body.plain) else (body.html, "html")
        if not parts:
            return None, None
        decoded = [decode_bytes(data, charset) for data, charset in parts]
        declared = next((charset for _, charset in parts if charset), None)
        metadata["charset"] = declared
        used = decoded[0][1]
        if used != (_codec(declared) or "ascii"):
            metadata["decoded_as"] = used
        text = "\n".join(t for t, _ in decoded)
        if kind == "html":
            try:
                text, quoted = html_mail_text(text)  # the quote is marked; the build cuts it
            except RecursionError:  # absurdly deep nesting: keep the words, lose the layout
                text, quoted = re.sub(r"<[^>]*>", " ", text), 0
                metadata["html_error"] = "nested too deeply to convert; tags removed"
            metadata["html_quote_chars"] = quoted
        return text, kind


# ----------------------------------------------------------------------------- Outlook .msg


def msg_to_rfc822(data: bytes, item: InputFile) -> bytes:
    """An Outlook .msg file as an RFC 822 message (through the optional extract-msg), so
    it goes through the same reading as every other mail."""
    try:
        import extract_msg
    except ImportError:
        raise SourceError(f"{item.location}: an Outlook .msg file; reading it needs an extra: {OUTLOOK_EXTRA}") from None
    try:
        msg = extract_msg.openMsg(data)
    except Exception as exc:  # noqa: BLE001 (extract-msg raises many kinds)
        raise SourceError(f"{item.location}: not a readable Outlook .msg file ({type(exc).__name__}: {exc})") from None
    try:
        return _rfc822_from_msg(msg)
    except Exception as exc:  # noqa: BLE001
        raise SourceError(f"{item.location}: cannot read this Outlook .msg file ({type(exc).__name__}: {exc})") from None
    finally:
        close = getattr(msg, "close", None)
        if close:
            close()


def _rfc822_from_msg(msg) -> bytes:
    from email.message import EmailMessage

    out = EmailMessage()
    transport = getattr(msg, "header", None)  # the internet headers of received mail
    for name, value in transport.items() if transport is not None else ():
        if name.lower() in ("content-type", "content-transfer-encoding", "mime-version"):
            continue
        try:
            out[name] = str(value)
        except Exception:  # noqa: BLE001, S112 (a header policy.default cannot hold is left out)
            continue
    for name, value in (
        ("From", getattr(msg, "sender", None)),
        ("To", getattr(msg, "to", None)),
        ("Cc", getattr(msg, "cc", None)),
        ("Subject", getattr(msg, "subject", None)),
        ("Message-ID", getattr(msg, "messageId", None)),
    ):
        if value and name not in out:
            out[name] = str(value)
    date = getattr(msg, "date", None)
    if "Date" not in out and isinstance(date, datetime):
        out["Date"] = email.utils.format_datetime(date if date.tzinfo else date.replace(tzinfo=UTC))
    plain, html = getattr(msg, "body", None), getattr(msg, "htmlBody", None)
    if plain:
        out.set_content(str(plain))
    elif html:
        out.set_content(html.decode("utf-8", "replace") if isinstance(html, bytes) else str(html), subtype="html")
    else:
        out.set_content("")
    for attachment in getattr(msg, "attachments", None) or ():
        name = getattr(attachment, "longFilename", None) or getattr(attachment, "shortFilename", None)
        out.add_attachment(b"", maintype="application", subtype="octet-stream", filename=name or "attachment")
    return out.as_bytes()
