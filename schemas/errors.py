"""Errors meant for the user: the CLI prints them as one line and exits non-zero.

They live on the floor, beside the schema, because every layer raises them.
"""

from __future__ import annotations

import re

# An error line stays readable in a terminal whatever it quotes.
LINE_LIMIT = 300
QUOTE_LIMIT = 120


class EtlError(Exception):
    """Something the user can fix; the message says what and where."""

    exit_code = 1


class WarehouseLocked(EtlError):
    exit_code = 3


class VersionExists(EtlError):
    exit_code = 4


class VerificationFailed(EtlError):
    exit_code = 5


class SourceError(EtlError):
    """The input cannot be read at all (wrong path, not the expected format)."""


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """`repr` of a piece of input for an error message, cut to about `limit` characters."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    cut = repr(text[:limit])
    return cut[:-1] + "…" + cut[-1]


# A later line of a multi-line message (DuckDB's "LINE 1: ...", Polars' "offset ... 123")
# that says where the problem is.
_LOCATION = re.compile(r"^LINE \d+:|\b(?:line|column|col|offset|row|byte|position|char)s?\b.*\d", re.IGNORECASE)
_QUOTED = re.compile(r"'[^'\n]{%d,}'|\"[^\"\n]{%d,}\"" % (QUOTE_LIMIT + 1, QUOTE_LIMIT + 1))


def one_line(message: object, limit: int = LINE_LIMIT) -> str:
    """A message as one short line: its first line, plus the location a later line gives,
    with long quoted input cut to about QUOTE_LIMIT characters and the whole to `limit`."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    if not lines:
        return ""
    text = lines[0]
    where = next((line for line in lines[1:] if _LOCATION.search(line)), None)
    if where and where not in text:
        text = f"{text} ({shorten(where, QUOTE_LIMIT)})"
    text = _QUOTED.sub(lambda m: m.group(0)[: QUOTE_LIMIT + 1] + "…" + m.group(0)[0], text)
    return shorten(text, limit)
