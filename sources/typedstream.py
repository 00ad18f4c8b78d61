"""Text of an iMessage `attributedBody`: an NSAttributedString archived as a typedstream.

Since macOS Ventura most messages keep their text only here (`message.text` is NULL).
Nearly every blob starts with one of two fixed preambles followed by the NSString's
length-prefixed UTF-8 bytes, so `decode_attributed_body` reads those directly and
hands anything else to a full typedstream parser (`pytypedstream`). Nothing is ever
guessed from "printable runs": a blob is either parsed or rejected with `DecodeError`.
"""

from __future__ import annotations

import polars as pl
import typedstream as _typedstream
from typedstream.types.foundation import NSString


class DecodeError(ValueError):
    """An attributedBody that is not a readable NSAttributedString typedstream."""


_STREAM_HEADER = b"\x04\x0bstreamtyped\x81\xe8\x03"  # streamer v4, little-endian, system 1000

# The archive up to the first byte of the string length, for the two classes Messages
# writes. Both fix every class name and back-reference number, so a prefix match
# proves the next value is the NSString holding the text (type "+": length + bytes).
_ATTRIBUTED_STRING_PREAMBLE = (
    _STREAM_HEADER
    + b"\x84\x01@"
    + b"\x84\x84\x84\x12NSAttributedString\x00"
    + b"\x84\x84\x08NSObject\x00\x85"
    + b"\x92\x84\x84\x84\x08NSString\x01\x94"
    + b"\x84\x01+"
)
_MUTABLE_ATTRIBUTED_STRING_PREAMBLE = (
    _STREAM_HEADER
    + b"\x84\x01@"
    + b"\x84\x84\x84\x19NSMutableAttributedString\x00"
    + b"\x84\x84\x12NSAttributedString\x00"
    + b"\x84\x84\x08NSObject\x00\x85"
    + b"\x92\x84\x84\x84\x0fNSMutableString\x01\x84\x84\x08NSString\x01\x95"
    + b"\x84\x01+"
)
_PLAIN_END = len(_ATTRIBUTED_STRING_PREAMBLE)
_MUTABLE_END = len(_MUTABLE_ATTRIBUTED_STRING_PREAMBLE)

_INT16 = 0x81  # typedstream tag: a 2-byte little-endian integer follows
_INT32 = 0x82  # typedstream tag: a 4-byte little-endian integer follows
_END_OF_OBJECT = 0x86


def decode_attributed_body(blob: bytes) -> str:
    """The message text of an attributedBody blob ("" for an empty string)."""
    text = decode_common_layout(blob)
    if text is None:
        return decode_attributed_body_full(blob)
    return text


def decode_common_layout(blob: bytes) -> str | None:
    """Text of a blob in the usual layout, or None to let the full parser decide.

    For callers that decode millions of blobs: try this first, then
    `decode_attributed_body_full` for the rare None.
    """
    if blob.startswith(_ATTRIBUTED_STRING_PREAMBLE):
        pos = _PLAIN_END
    elif blob.startswith(_MUTABLE_ATTRIBUTED_STRING_PREAMBLE):
        pos = _MUTABLE_END
    else:
        return None
    if pos >= len(blob):
        return None
    head = blob[pos]
    if head < 0x80:
        length, pos = head, pos + 1
    elif head == _INT16:
        length, pos = int.from_bytes(blob[pos + 1 : pos + 3], "little"), pos + 3
    elif head == _INT32:
        length, pos = int.from_bytes(blob[pos + 1 : pos + 5], "little"), pos + 5
    else:
        return None
    end = pos + length
    # The NSString object must close right after its bytes; anything else (a
    # truncated or misaligned stream) goes to the strict parser.
    if end >= len(blob) or blob[end] != _END_OF_OBJECT:
        return None
    try:
        return blob[pos:end].decode("utf-8")
    except UnicodeDecodeError:
        return None


def common_layout_texts(bodies: pl.Series) -> pl.Series:
    """`decode_common_layout` for a whole Binary column at once: the text where the
    blob has the common layout, else null (for the full parser)."""
    raw = _common_layout_bytes(bodies)
    try:
        return raw.cast(pl.String)
    except pl.exceptions.ComputeError:  # some text is not UTF-8: settle it row by row
        return pl.Series([_utf8_or_none(b) for b in raw.to_list()], dtype=pl.String)


def _utf8_or_none(data: bytes | None) -> str | None:
    try:
        return None if data is None else data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _common_layout_bytes(bodies: pl.Series) -> pl.Series:
    body, start, head = pl.col("body"), pl.col("start"), pl.col("head")

    def byte(offset: int) -> pl.Expr:
        return body.bin.get(start + offset, null_on_oob=True).cast(pl.Int64)

    return (
        pl.DataFrame({"body": bodies})
        .lazy()
        .with_columns(
            start=pl.when(body.bin.starts_with(_ATTRIBUTED_STRING_PREAMBLE))
            .then(pl.lit(_PLAIN_END, pl.Int64))
            .when(body.bin.starts_with(_MUTABLE_ATTRIBUTED_STRING_PREAMBLE))
            .then(pl.lit(_MUTABLE_END, pl.Int64))
        )
        .with_columns(head=byte(0))
        .with_columns(
            length=pl.when(head < 0x80)
            .then(head)
            .when(head == _INT16)
            .then(byte(1) + 256 * byte(2))
            .when(head == _INT32)
            .then(byte(1) + 256 * byte(2) + 65536 * byte(3) + 16777216 * byte(4)),
            first=start + pl.when(head < 0x80).then(1).when(head == _INT16).then(3).otherwise(5),
        )
        # The NSString object must close right after its bytes.
        .select(
            pl.when(body.bin.get(pl.col("first") + pl.col("length"), null_on_oob=True) == _END_OF_OBJECT).then(
                body.bin.slice(pl.col("first"), pl.col("length"))
            )
        )
        .collect()
        .to_series()
    )


def decode_attributed_body_full(blob: bytes) -> str:
    """Parse the whole typedstream and return its first NSString (the message text)."""
    if not blob:
        raise DecodeError("empty blob")
    try:
        root = _typedstream.unarchive_from_data(bytes(blob))
    except Exception as exc:  # the parser raises many types on malformed input
        raise DecodeError(_one_line(exc)) from None
    text = _first_string(root)
    if text is None:
        raise DecodeError(f"no string in archived {type(root).__name__}")
    return text


def _first_string(value, depth: int = 0) -> str | None:
    """Depth-first search for the first NSString value, as Messages stores it first."""
    if depth > 8 or value is None:
        return None
    if isinstance(value, NSString):
        return value.value
    inner = getattr(value, "value", None)
    if isinstance(inner, str):
        return inner
    if inner is not None and inner is not value:
        found = _first_string(inner, depth + 1)
        if found is not None:
            return found
    for item in getattr(value, "contents", None) or ():
        found = _first_string(item, depth + 1)
        if found is not None:
            return found
    for item in getattr(value, "values", None) or ():
        found = _first_string(item, depth + 1)
        if found is not None:
            return found
    return None


def _one_line(exc: Exception) -> str:
    message = " ".join(str(exc).split()) or type(exc).__name__
    return message[:200]


def encode_attributed_body(text: str, *, part: int = 0) -> bytes:
    """Archive `text` as Messages does: an NSAttributedString with one attribute run.

    The run carries `__kIMMessagePartAttributeName = part`; its length is counted in
    UTF-16 code units, like NSString's. Used to build sample databases and in tests.
    """
    data = text.encode("utf-8")
    utf16_length = len(text.encode("utf-16-le")) // 2
    return b"".join(
        (
            _ATTRIBUTED_STRING_PREAMBLE,
            _encode_int(len(data)),
            data,
            bytes([_END_OF_OBJECT]),
            b"\x84\x02iI",  # new type string "iI": the run's location and length
            _encode_int(1),
            _encode_int(utf16_length),
            b"\x92",  # type "@" (back-reference)
            b"\x84\x84\x84\x0cNSDictionary\x00\x94",  # new object, new class, super NSObject
            b"\x84\x01i",  # new type string "i": the entry count
            _encode_int(1),
            b"\x92\x84\x96\x96",  # key: "@", new NSString object, type "+"
            _encode_int(len(_PART_KEY)),
            _PART_KEY,
            bytes([_END_OF_OBJECT]),
            b"\x92\x84\x84\x84\x08NSNumber\x00\x84\x84\x07NSValue\x00\x94",
            b"\x84\x01*\x84\x99",  # type "*": the number's C type, "i"
            b"\x99",  # type "i"
            _encode_int(part),
            bytes([_END_OF_OBJECT] * 3),  # NSNumber, NSDictionary, NSAttributedString
        )
    )


_PART_KEY = b"__kIMMessagePartAttributeName"


def _encode_int(value: int) -> bytes:
    """A typedstream integer: one byte when it cannot be mistaken for a tag."""
    if 0 <= value < 0x80:
        return bytes([value])
    if -0x8000 <= value < 0x8000:
        return bytes([_INT16]) + value.to_bytes(2, "little", signed=True)
    return bytes([_INT32]) + value.to_bytes(4, "little", signed=True)


# ----------------------------------------------------------------------------- runs

ATTACHMENT = "\ufffc"  # where Messages puts an attachment in the text
_FILE_KEY = "__kIMFileTransferGUIDAttributeName"


def message_runs(blob: bytes) -> list[tuple[str, int | None, bool]] | None:
    """The attribute runs of an attributedBody: (text, message part, is an attachment).

    Messages gives every bubble of a message its own part number
    (`__kIMMessagePartAttributeName`) and marks an attachment's U+FFFC with its file
    transfer GUID. None when the blob is not an NSAttributedString whose runs cover
    its text exactly.
    """
    try:
        root = _typedstream.unarchive_from_data(bytes(blob))
        contents = list(root.contents)
        string = contents[0].value
        text = string.value if isinstance(string, NSString) else None
    except Exception:  # the parser raises many types on malformed input
        return None
    if not isinstance(text, str):
        return None
    units = text.encode("utf-16-le")
    runs, offset = [], 0
    for group, attributes in zip(contents[1::2], contents[2::2]):
        try:
            length = int(group.values[-1])
            entries = {k.value: getattr(v, "value", v) for k, v in attributes.value.contents.items()}
        except Exception:
            return None
        piece = units[offset * 2 : (offset + length) * 2].decode("utf-16-le", errors="replace")
        part = entries.get("__kIMMessagePartAttributeName")
        runs.append((piece, part if isinstance(part, int) else None, _FILE_KEY in entries))
        offset += length
    if offset * 2 != len(units):
        return None
    return runs


def join_around_attachments(text: str, runs: list[tuple[str, int | None, bool]] | None = None) -> str:
    """`text` without its attachment placeholders, the words either side kept apart.

    Where an attachment sat between two runs of text, they are joined by a newline
    when they are separate bubbles (different message parts), else by a space; a
    placeholder at either end, or next to whitespace already there, leaves nothing.
    Without `runs` (the text came from `message.text`), a space.
    """
    if runs is None or "".join(piece for piece, _, _ in runs) != text:
        runs = [(piece, None, False) for piece in text.split(ATTACHMENT)]
        runs = [r for pair in zip(runs, [(ATTACHMENT, None, True)] * len(runs)) for r in pair][:-1]
    out: list[str] = []
    last_part: int | None = None
    pending = False  # an attachment since the last text
    for piece, part, is_attachment in runs:
        if is_attachment or piece == ATTACHMENT:
            pending = True
            continue
        piece = piece.replace(ATTACHMENT, "")
        if not piece:
            continue
        if out and pending:
            joined = out[-1]
            if not (joined[-1:].isspace() or piece[:1].isspace()):
                out.append("\n" if part is not None and last_part is not None and part != last_part else " ")
            elif piece[:1] != "\n" and joined[-1:] != "\n" and part is not None and last_part is not None and part != last_part:
                out[-1] = joined.rstrip(" \t")
                out.append("\n")
                piece = piece.lstrip(" \t")
        out.append(piece)
        last_part, pending = part, False
    return "".join(out)


def encode_attributed_runs(runs: list[tuple[str, int, str | None]]) -> bytes:
    """Archive a message of several runs, as Messages writes text around attachments:
    each run is (text, message part, attachment GUID or None); an attachment's text
    is U+FFFC. Used to build sample databases and in tests."""
    text = "".join(piece for piece, _, _ in runs)
    data = text.encode("utf-8")
    strings = ["@", "NSAttributedString", "NSObject", "NSString", "+"]  # the preamble's shared strings
    objects = 5  # root, NSAttributedString, NSObject, the NSString and its class
    classes = {"NSObject": 2, "NSString": 4}
    c_strings: dict[str, int] = {}
    out = [_ATTRIBUTED_STRING_PREAMBLE, _encode_int(len(data)), data, bytes([_END_OF_OBJECT])]

    def ref(number: int) -> bytes:
        return _encode_int(number + 0x92 - 0x100)

    def shared(value: str) -> bytes:
        if value in strings:
            return ref(strings.index(value))
        strings.append(value)
        return b"\x84" + _encode_int(len(value)) + value.encode()

    def new_class(name: str, *supers: str) -> bytes:
        nonlocal objects
        if name in classes:
            return ref(classes[name])
        classes[name] = objects
        objects += 1
        chunk = b"\x84" + shared(name) + b"\x00"
        for parent in supers:
            if parent in classes:
                return chunk + ref(classes[parent])
            classes[parent] = objects
            objects += 1
            chunk += b"\x84" + shared(parent) + b"\x00"
        raise AssertionError("a class chain ends at a known class")

    def new_object() -> bytes:
        nonlocal objects
        objects += 1
        return b"\x84"

    def string(value: str) -> bytes:
        raw = value.encode("utf-8")
        head = new_object()
        return shared("@") + head + new_class("NSString") + shared("+") + _encode_int(len(raw)) + raw + bytes([_END_OF_OBJECT])

    def number(value: int) -> bytes:
        nonlocal objects
        chunk = shared("@") + new_object() + new_class("NSNumber", "NSValue", "NSObject") + shared("*")
        if "i" in c_strings:
            chunk += ref(c_strings["i"])
        else:
            c_strings["i"] = objects
            objects += 1
            chunk += b"\x84" + shared("i")
        return chunk + shared("i") + _encode_int(value) + bytes([_END_OF_OBJECT])

    for index, (piece, part, guid) in enumerate(runs, 1):
        entries = ([(_FILE_KEY, guid)] if guid else []) + [("__kIMMessagePartAttributeName", part)]
        out.append(shared("iI") + _encode_int(index) + _encode_int(len(piece.encode("utf-16-le")) // 2))
        out.append(shared("@") + new_object() + new_class("NSDictionary", "NSObject"))
        out.append(shared("i") + _encode_int(len(entries)))
        for key, value in entries:
            out.append(string(key))
            out.append(string(value) if isinstance(value, str) else number(value))
        out.append(bytes([_END_OF_OBJECT]))
    out.append(bytes([_END_OF_OBJECT]))
    return b"".join(out)
