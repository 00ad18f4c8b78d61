"""Meta text: what an app writes into a conversation that nobody typed.

Tapbacks written out as sentences, media placeholders, "This message was deleted",
call notices, Claude Code's interrupt markers and command echoes. Each family is
matched by its shape (a whole message made of a known frame around a quoted
message, a file name, a tag), never by a list of finished strings, so "Reacted 🎉
to “…”" or "[Request interrupted by user for …]" with a suffix nobody listed is
still found, while a sentence that merely mentions "liked" or "deleted" is not.

The phrases live in `meta_phrases/*.json`, each entry with the source it comes
from. One definition serves both the build (a Polars regex over every row, see
`polars_pattern`) and the connectors that must decide at ingest whether a line is
the person's (`classify`): the patterns use only syntax that Python's `re` and
Rust's `regex` read alike.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources

# Invisible marks exporters put around system text (WhatsApp's LRM, bidi isolates).
_PAD = r"[\s\u200B-\u200F\u202A-\u202E\u2060\u2066-\u2069\uFEFF]*"

_OPEN = "“\"„«「『‘‹"  # not the straight apostrophe: "it's" opens nothing
_CLOSE = "”\"“»」』’'›"
# The quoted message of a reaction: any quote pair, any text (several lines too).
_QUOTED = f"[{_OPEN}][\\s\\S]*[{_CLOSE}]"
# One reaction token: an emoji sequence (with its joiners, variation selectors and
# keycaps), never a word: "Welcome to “Paris”" is not a reaction.
_EMOJI = f"(?:[^\\s\\w{_OPEN}{_CLOSE}<>\\[\\]().,!?:;]|[\\u200D\\uFE0E\\uFE0F\\u20E3])+"
_PLACEHOLDERS = {
    "quoted": _QUOTED,
    "emoji": _EMOJI,
    "file": r"[^\n]*\.[A-Za-z0-9]{1,5}[^\n]*",
        "name": r"[^\n]+",
    "rest": r"[^\]\n]*",
    "duration": r"\u200E?(?:\d{1,3}(?::\d{2}){0,2}\s*(?:sec|secs|seconds|min|mins|minutes|hr|hrs|hours|h|m|s)?\.?|No answer)",
}
_META_CHARS = set("\\.^$|?*+()[]{}")

REASONS = (
    "meta:interrupted",
    "meta:no_response",
    "meta:tool_notice",
    "meta:media_placeholder",
    "meta:deleted",
    "meta:call",
    "meta:tapback",
    "meta:command",
    "meta:injected",
)


@dataclass(frozen=True)
class Family:
    reason: str
    pattern: str  # unanchored; read the same by Python `re` and Rust `regex`
    # For a cheap first pass over every row (the full pattern then runs on the few
    # rows it lets through): whole-message phrases as `phrase_key` writes them, and a
    # small pattern for the templates with a placeholder. `screen` None: use `pattern`.
    phrases: frozenset[str] = frozenset()
    screen: str | None = None
    triggers: tuple[str, ...] = ()  # instead of `screen`: one of these is in every match


def _escape(text: str) -> str:
    # Only the characters both engines treat as syntax: Rust rejects escapes of
    # letters or spaces that Python's re.escape would add.
    return "".join("\\" + c if c in _META_CHARS else c for c in text)


def _literal(text: str) -> str:
    out = []
    for part in re.split(r"(\s+|['’])", text):
        if not part:
            continue
        if part.isspace():
            out.append(r"\s+")  # Apple writes no-break spaces in some languages
        elif part in ("'", "’"):
            out.append("['’]")
        else:
            out.append(_escape(part))
    return "".join(out)


def _template(template: str, objects: list[str], *, any_text: str = r"[^\n]*") -> str:
    out = []
    for piece in re.split(r"(\{[a-z_]+\})", template):
        if not piece:
            continue
        if piece.startswith("{") and piece.endswith("}"):
            name = piece[1:-1]
            if name == "object":
                out.append("(?:" + "|".join(_literal(o) for o in objects) + ")")
            elif name == "any":
                out.append(any_text)
            else:
                out.append(_PLACEHOLDERS[name])
        else:
            out.append(_literal(piece))
    return "".join(out)


def _load(name: str) -> dict:
    return json.loads(resources.files(__package__).joinpath("meta_phrases", name).read_text("utf-8"))


def _phrase_file(name: str, *, ignore_case: bool, full_stop: bool) -> Family:
    data = _load(name)
    alternatives, patterned, phrases = [], [], set()
    for entry in data["entries"]:
        objects = entry.get("objects", [])
        for template in entry.get("templates", []):
            alternatives.append(_template(template, objects))
            if "{" in template:
                patterned.append(alternatives[-1])
            else:
                phrases.add(phrase_key(template))
        alternatives += entry.get("regex", [])
        patterned += entry.get("regex", [])

    def wrap(parts: list[str]) -> str:
        pattern = "|".join(f"(?:{a})" for a in dict.fromkeys(parts))
        if full_stop:
            pattern = f"(?:{pattern})[.。]?"
        return f"(?i:{pattern})" if ignore_case else pattern

    if not ignore_case:  # reactions: every one quotes, names an attachment or carries Google's marks
        objects = [o for entry in data["entries"] for o in entry.get("objects", [])]
        for entry in data["entries"]:
            for template in entry.get("templates", []):
                assert "{quoted}" in template or "{object}" in template, template
            for regex in entry.get("regex", []):
                assert "\\u200A" in regex, regex
        return Family(data["reason"], wrap(alternatives), triggers=(*_OPEN, "\u200a", *dict.fromkeys(objects)))
    return Family(data["reason"], wrap(alternatives), frozenset(phrases), wrap(patterned) if patterned else "(?!)")


PAD_CHARS = "".join(chr(c) for c in (*range(0x200B, 0x2010), *range(0x202A, 0x202F), 0x2060, *range(0x2066, 0x206A), 0xFEFF))


def phrase_key(text: str) -> str:
    """A whole message as the phrase sets hold it: without invisible marks or a final
    full stop, whitespace runs as one space, ’ as ', lowercased."""
    text = re.sub(r"\s+", " ", text.replace("’", "'")).strip(" " + PAD_CHARS).rstrip(".。").strip(" " + PAD_CHARS)
    return text.lower()


@functools.cache
def families() -> tuple[Family, ...]:
    """Every family, most specific first: the first that matches gives the reason."""
    markers: dict[str, list[str]] = {}
    for family in _load("assistant_markers.json")["families"]:
        markers.setdefault(family["reason"], []).extend(
            [_template(t, [], any_text=r"[\s\S]*") for t in family["templates"]] + family.get("regex", [])
        )

    def marker(reason: str) -> Family:
        return Family(reason, "|".join(f"(?:{a})" for a in markers[reason]))

    return (
        marker("meta:interrupted"),
        marker("meta:no_response"),
        marker("meta:tool_notice"),
        _phrase_file("media_placeholders.json", ignore_case=True, full_stop=True),
        _phrase_file("deleted.json", ignore_case=True, full_stop=True),
        _phrase_file("calls.json", ignore_case=True, full_stop=True),
        _phrase_file("tapbacks.json", ignore_case=False, full_stop=False),
        marker("meta:command"),
        marker("meta:injected"),
    )


def polars_pattern(pattern: str) -> str:
    """`pattern` as a whole message for Polars (Rust regex), invisible padding allowed."""
    return rf"\A{_PAD}(?:{pattern}){_PAD}\z"


@functools.cache
def _compiled() -> tuple[re.Pattern, tuple[tuple[str, re.Pattern], ...]]:
    each = tuple((f.reason, re.compile(f"{_PAD}(?:{f.pattern}){_PAD}")) for f in families())
    anything = re.compile(_PAD + "(?:" + "|".join(f"(?:{f.pattern})" for f in families()) + ")" + _PAD)
    return anything, each


def classify(text: str | None) -> str | None:
    """The meta family `text` belongs to as a whole message ("meta:tapback", …), or None
    when it is something a person could have typed."""
    if not text:
        return None
    anything, each = _compiled()
    if not anything.fullmatch(text):
        return None
    return next(reason for reason, pattern in each if pattern.fullmatch(text))
