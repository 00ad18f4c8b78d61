"""Transcripts of recordings: speaker-labelled text (Plaud, Otter), Google Meet's
transcript document (sources/meet_transcript.py), SubRip `.srt`, WebVTT `.vtt` (Zoom,
Teams, YouTube) and YouTube's `.sbv`.

What the files look like:
- Text from Plaud and Otter: a `Speaker 1  00:01:23` (or `Sam Rivera  0:05`) line,
  then what was said on the following line(s), a blank line between blocks; or one
  line per utterance, `[00:01:23] Speaker 1: text`. A title or a date may come first;
  Otter ends with "Transcribed by https://otter.ai".
- SubRip: numbered cues, `00:01:23,456 --> 00:01:25,000`, then the text; speakers,
  when named at all, as a `Sam: ` prefix on the line where they start talking.
- WebVTT: a `WEBVTT` line and optional metadata headers, then cues with `.`
  milliseconds, optional identifiers and cue settings; `<v Sam>` voices; NOTE,
  STYLE and REGION blocks; inline `<c.color>`, `<b>` and `<00:01.500>` tags.
  Microsoft Teams writes unpadded times (`0:0:0.210 --> 0:0:2.340`), a GUID cue
  identifier, `<v Full Name>` voices (the closing `</v>` sometimes missing) and cues
  of two speakers that overlap; Zoom writes `Full Name: text` in every cue, so a
  speaker heard once is still a speaker.

A recording (one file) is one conversation; consecutive cues of one speaker are one
turn. Cue times are offsets into the recording: the recording's start comes from
`--recorded-at`, else a date in the file's header, else a date in its name, else the
file's modification time, and a note says which one was used.

A conversation's id is a hash of the file's text (decoded, line ends normalised), and a
turn's id adds its position: the same recording ingested again, whether moved, renamed,
zipped or re-saved in another encoding, adds nothing. An edited transcript is new text,
so it lands as a new conversation beside the old one (a path-based id would instead
keep the old turns and silently ignore the edits); a note says so when the same path
was ingested before with other content, or with another speaker as the owner, since
landed rows are never rewritten.

Traps handled:
- Byte-order marks (UTF-8/16/32) decide the encoding; CR, LF and CRLF all end lines;
  a file that is not UTF-8 is read as Windows-1252, with a note.
- A timing line right after text with no blank line before it starts a new cue
  (YouTube auto-captions), and an SRT cue number glued to the previous cue's text is
  that cue's number, not text.
- `Name: text` in a cue is a speaker label only when it looks like a name (at most
  four words, capitalised, no sentence punctuation, not "Note" and the like) and the
  file uses it as one: the same label on two cues or more (once two labels recur,
  one-off labels count too). A lone "Remember: ..." stays text. A cue without a label
  continues the speaker before it, as subtitles mark only the changes of speaker.
- In text transcripts a `Name  00:01:23` line is a speaker line when its label recurs,
  or opens a block with a time that fits between its neighbours': a title or a
  sentence ending in "at 10:30" stays text.
- A cue whose timing cannot be read, or text with no timing line, is quarantined and
  the rest lands; a file with no readable cue at all is an error naming the file and
  the expected shape, and then nothing of the run lands (one bad file aborts the run:
  a file that is not a transcript is not a row that can be set aside).
"""

from __future__ import annotations

import bisect
import codecs
import dataclasses
import functools
import hashlib
import html
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import PurePosixPath
from typing import Any

from etl.schemas.errors import quote
from etl.sources.archive import InputFile
from etl.sources.base import Batch, Param, Quarantined, SourceContext, SourceError, source, to_batch
from etl.sources.meet_transcript import looks_like_meet, meeting_start, parse_meet

SUFFIXES = (".txt", ".srt", ".vtt", ".sbv")
# Turns from subtitles join cues with a space: cue and line breaks are where a
# caption ran out of room on screen, not pauses in speech. Text transcripts keep
# their line breaks, which the exporter wrote between paragraphs.
SUBTITLE_JOINER = " "
TEXT_JOINER = "\n"

EXPECTED = {
    "vtt": "a WebVTT file: a WEBVTT line, then cues timed 'HH:MM:SS.mmm --> HH:MM:SS.mmm'",
    "srt": "SubRip: numbered cues timed 'HH:MM:SS,mmm --> HH:MM:SS,mmm', then their text",
    "sbv": "YouTube SBV: cues timed 'H:MM:SS.mmm,H:MM:SS.mmm', then their text",
    "text": "a transcript with a 'Speaker 1  00:01:23' line before each paragraph, "
    "or '[00:01:23] Speaker 1: text' lines",
    "meet": "a Google Meet transcript: a title line ending in '- Transcript' or a 'Transcript' line, "
    "then 'Full Name: text' paragraphs and '00:05:00' time lines",
}


@dataclass(frozen=True)
class Cue:
    """One timed piece of speech, as the file has it."""

    index: int  # 1-based position among the file's cues, malformed ones included
    line: int  # line of its timing (or speaker) line
    start_ms: int | None
    end_ms: int | None
    text: str  # markup removed, lines joined with "\n"; "" for an empty cue
    speaker: str | None = None
    labelled: bool = False  # the label is on this cue, not carried from an earlier one
    identifier: str | None = None


@dataclass(frozen=True)
class BadCue:
    """A cue (or stray text) that could not be read; it is quarantined."""

    index: int | None  # the cue's position, None for text outside any cue
    line: int
    reason: str
    payload: str


@dataclass
class Transcript:
    format: str  # vtt, srt, sbv or text
    cues: list[Cue]
    problems: list[BadCue] = field(default_factory=list)
    encoding: str = "utf-8"
    title: str | None = None
    recorded_at: datetime | None = None  # from the header; naive when it names no zone
    recorded_at_text: str | None = None  # the header text it was read from
    encoding_note: str | None = None
    digest: str = ""  # sha256 of the decoded text, line endings normalised


@dataclass(frozen=True)
class Turn:
    speaker: str | None
    cues: tuple[Cue, ...]
    text: str


# ----------------------------------------------------------------------------- decoding

_BOMS = (
    # UTF-32 LE's mark begins with UTF-16 LE's: test the longer one first.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode(data: bytes, name: str) -> tuple[str, str, str | None]:
    """(text with "\\n" line ends, encoding, a note when the encoding was a guess)."""
    note = None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom):].decode(encoding)
            except UnicodeDecodeError as exc:
                raise SourceError(
                    f"{name}: starts with a {encoding} byte-order mark but byte {exc.start + len(bom)} "
                    f"is not {encoding}; expected a text transcript"
                ) from None
            break
    else:
        encoding = _utf16_without_bom(data)
        if encoding:
            text = data.decode(encoding, errors="replace")
            note = f"{name}: no byte-order mark; read as {encoding} from its zero bytes"
        else:
            try:
                text, encoding = data.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                text, encoding = data.decode("cp1252", errors="replace"), "cp1252"
                note = f"{name}: not UTF-8; read as Windows-1252 (cp1252)"
    if "\x00" in text:
        raise SourceError(f"{name}: binary data, not a text transcript; expected {_expected_for(name)}")
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding, note


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 written without a mark: ASCII text then has a zero in every other byte."""
    head = data[:2000]
    if len(head) < 4 or b"\x00" not in head:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def _expected_for(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower().lstrip(".")
    return EXPECTED.get(suffix, "an .srt, .vtt, .sbv or Plaud/Otter .txt transcript")


# ----------------------------------------------------------------------------- parsing


def parse_cues(data: bytes, name: str) -> list[Cue]:
    """The cues of a transcript file, in file order (empty cues included)."""
    return parse_transcript(data, name).cues


def parse_transcript(data: bytes, name: str) -> Transcript:
    """Read one transcript file; `name` (its file name or location) appears in errors.

    Raises SourceError when the file holds no readable cue at all.
    """
    text, encoding, encoding_note = decode(data, name)
    fmt = detect_format(text, name)
    if not text.strip():
        raise SourceError(f"{name}: the file is empty; expected {EXPECTED[fmt]}")
    if fmt == "text":
        transcript = _parse_text(text)
    elif fmt == "meet":
        transcript = _parse_meet(text)
    else:
        transcript = _parse_subtitles(text, fmt)
    transcript.encoding = encoding
    transcript.encoding_note = encoding_note
    transcript.digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if not any(cue.text for cue in transcript.cues):
        found = f"{len(transcript.cues)} cue(s), all empty" if transcript.cues else "no readable cue"
        first = transcript.problems[0] if transcript.problems else None
        problem = f" (line {first.line}: {first.reason})" if first else ""
        raise SourceError(f"{name}: {found}{problem}; expected {EXPECTED[fmt]}")
    return transcript


_WEBVTT_HEADER = re.compile(r"WEBVTT(?=[ \t\n]|$)")
_ARROW = re.compile(r"^\s*[\d:.,]+\s*-->\s*[\d:.,]+", re.MULTILINE)
_SBV_TIMING_SHAPE = re.compile(r"^\s*\d[\w:.]*,\d[\w:.]*\s*$")


def detect_format(text: str, name: str) -> str:
    """vtt, srt, sbv or text: the header and the file's name decide, then its lines."""
    suffix = PurePosixPath(name).suffix.lower()
    if _WEBVTT_HEADER.match(text):
        return "vtt"
    if suffix == ".vtt":
        if not text.strip():
            return "vtt"
        raise SourceError(f"{name}: does not start with a WEBVTT line; expected {EXPECTED['vtt']}")
    if suffix in (".srt", ".sbv"):
        return suffix[1:]
    if _ARROW.search(text):
        return "srt"
    first_lines = [block.split("\n", 1)[0] for block in re.split(r"\n\s*\n", text.strip())[:3]]
    if first_lines and all(_SBV_TIMING_SHAPE.match(line) for line in first_lines):
        return "sbv"
    return "meet" if looks_like_meet(text) else "text"


# -- timings

# Microsoft Teams writes its WebVTT unpadded: `0:0:0.210 --> 0:0:2.340`.
_SUBTITLE_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})")
_SBV_TIME = re.compile(r"(\d+):(\d{2}):(\d{2})\.(\d{1,3})")
_TIMING = re.compile(r"^\s*(\S+?)\s*-->\s*(\S+)(?:\s+(.*?))?\s*$")


def _milliseconds(match: re.Match | None) -> int | None:
    if match is None:
        return None
    hours, minutes, seconds, fraction = match.groups()
    if int(seconds) > 59 or (hours is not None and int(minutes) > 59):
        return None
    total = (int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)
    return total * 1000 + int(fraction.ljust(3, "0"))


def _parse_arrow_timing(line: str) -> tuple[int, int, str] | None:
    match = _TIMING.match(line)
    if not match:
        return None
    start = _milliseconds(_SUBTITLE_TIME.fullmatch(match[1]))
    end = _milliseconds(_SUBTITLE_TIME.fullmatch(match[2]))
    if start is None or end is None:
        return None
    return start, end, match[3] or ""


def _parse_sbv_timing(line: str) -> tuple[int, int, str] | None:
    parts = line.strip().split(",")
    if len(parts) != 2:
        return None
    start, end = (_milliseconds(_SBV_TIME.fullmatch(p)) for p in parts)
    if start is None or end is None:
        return None
    return start, end, ""


# -- markup

# WebVTT's cue spans and timestamps (`<c.yellow>`, `<v Sam>`, `<00:01.500>`); other
# `<...>` is kept, since "2<3" is text.
_VTT_TAG = re.compile(r"</?(?:c|i|b|u|v|lang|ruby|rt)(?:\.[^\s>]*)?(?:[ \t][^>]*)?>|<(?:\d+:)?\d{2}:\d{2}\.\d{3}>")
_VTT_VOICE = re.compile(r"<v(?:\.[^\s>]*)?[ \t]+([^>]+)>")
# SubRip's HTML-ish styling and ASS override blocks (`{\an8}`).
_SRT_TAG = re.compile(r"</?(?:b|i|u|s|font)(?:\s[^>]*)?>|\{\\[^}]*\}", re.IGNORECASE)


def _clean_lines(lines: Iterable[str], fmt: str) -> str:
    kept = []
    for line in lines:
        if fmt == "vtt":
            line = html.unescape(_VTT_TAG.sub("", line))
        else:
            line = _SRT_TAG.sub("", line)
        line = line.strip()
        if line:
            kept.append(line)
    return "\n".join(kept)


# -- subtitle files


@dataclass
class _Pending:
    """A cue being read: its timing line, then text lines until the next cue."""

    index: int
    line: int
    timing: tuple[int, int, str] | None
    raw_timing: str
    identifier: str | None
    lines: list[str] = field(default_factory=list)


def _parse_subtitles(text: str, fmt: str) -> Transcript:
    lines = text.split("\n")
    transcript = Transcript(format=fmt, cues=[])
    start = 0
    header: list[str] = []
    if fmt == "vtt":
        # The header runs from WEBVTT to the first blank line (metadata, old-style Style:).
        while start < len(lines) and lines[start].strip() and "-->" not in lines[start]:
            header.append(lines[start])
            start += 1
        title = header[0][len("WEBVTT"):].strip(" \t-") if header else ""
        transcript.title = title or None
        found = _header_date(header)
        if found:
            transcript.recorded_at, transcript.recorded_at_text = found
    is_timing, parse_timing = (
        (lambda line: bool(_SBV_TIMING_SHAPE.match(line)), _parse_sbv_timing)
        if fmt == "sbv"
        else (lambda line: "-->" in line, _parse_arrow_timing)
    )
    expected_timing = {
        "vtt": "HH:MM:SS.mmm --> HH:MM:SS.mmm",
        "srt": "HH:MM:SS,mmm --> HH:MM:SS,mmm",
        "sbv": "H:MM:SS.mmm,H:MM:SS.mmm",
    }[fmt]
    raw: list[_Pending] = []
    for block in _blocks(lines, start):
        first = block[0][1]
        if fmt == "vtt" and "-->" not in first and re.match(r"(NOTE|STYLE|REGION)(?=[ \t]|$)", first):
            continue  # comments, style sheets and regions are not speech
        pending: _Pending | None = None
        before: list[tuple[int, str]] = []  # lines of the block before its first timing
        for number, line in block:
            if is_timing(line):
                identifier = None
                if pending is None:
                    identifier = _identifier(before, fmt, transcript)
                elif fmt == "srt" and pending.lines and pending.lines[-1].strip().isdigit():
                    # "...text\n12\n00:01:02,000 --> ..." with the blank line lost.
                    identifier = pending.lines.pop().strip()
                pending = _Pending(len(raw) + 1, number, parse_timing(line), line, identifier)
                raw.append(pending)
            elif pending is None:
                before.append((number, line))
            else:
                pending.lines.append(line)
        if pending is None:
            transcript.problems.append(
                BadCue(None, block[0][0], "text without a timing line", "\n".join(line for _, line in block))
            )
    for item in raw:
        if item.timing is None:
            transcript.problems.append(
                BadCue(
                    item.index,
                    item.line,
                    f"timing {quote(item.raw_timing.strip())} cannot be read; expected {expected_timing}",
                    "\n".join([item.raw_timing, *item.lines]),
                )
            )
            continue
        start_ms, end_ms, _settings = item.timing
        for voice, part in _voices(item.lines) if fmt == "vtt" else [(None, item.lines)]:
            transcript.cues.append(
                Cue(
                    item.index,
                    item.line,
                    start_ms,
                    end_ms,
                    _clean_lines(part, fmt),
                    speaker=voice,
                    labelled=voice is not None,
                    identifier=item.identifier,
                )
            )
    if not any(cue.speaker for cue in transcript.cues):
        transcript.cues = label_prefixed_speakers(transcript.cues)
    transcript.cues = carry_speakers(transcript.cues)
    return transcript


def _voices(lines: list[str]) -> list[tuple[str | None, list[str]]]:
    """A WebVTT cue's lines by voice: a line opening with `<v Name>` starts that
    speaker's part (one cue may hold two voices, one per line)."""
    parts: list[tuple[str | None, list[str]]] = []
    for line in lines:
        opening = _VTT_VOICE.match(line.strip())
        if opening:
            parts.append((opening[1].strip(), [line]))
        elif parts:
            parts[-1][1].append(line)
        else:
            parts.append((None, [line]))
    if len(parts) == 1 and parts[0][0] is None:
        inside = _VTT_VOICE.search("\n".join(lines))  # `<i><v Sam>...`
        return [(inside[1].strip() if inside else None, lines)]
    return parts or [(None, lines)]


def _blocks(lines: list[str], start: int) -> Iterator[list[tuple[int, str]]]:
    """Runs of non-blank lines with their 1-based line numbers."""
    block: list[tuple[int, str]] = []
    for number in range(start, len(lines)):
        line = lines[number]
        if line.strip():
            block.append((number + 1, line))
        elif block:
            yield block
            block = []
    if block:
        yield block


def _identifier(before: list[tuple[int, str]], fmt: str, transcript: Transcript) -> str | None:
    """The line before a cue's timing: a WebVTT identifier or a SubRip number."""
    if not before:
        return None
    if len(before) == 1 and (fmt == "vtt" or before[0][1].strip().isdigit()):
        return before[0][1].strip()
    what = "text" if fmt == "vtt" else "text where a cue number was expected"
    transcript.problems.append(
        BadCue(None, before[0][0], f"{what} before a timing line", "\n".join(line for _, line in before))
    )
    return None


# -- speaker labels in the text

_LABEL_PREFIX = re.compile(r"^(?:[-\u2013\u2014][ \t]*)?(?P<label>[^\s:][^:]{0,40}?)[ \t]*:(?:[ \t]+(?P<rest>.*))?$")
_LABEL_WORD = re.compile(r"[\w.'\u2019()\-]+")
# Words that end in a colon in ordinary captions and notes without naming anyone.
_NOT_SPEAKERS = frozenset(
    {
        "note", "notes", "nb", "warning", "caution", "tip", "tips", "chapter", "part", "step",
        "todo", "ps", "update", "edit", "edited", "source", "subtitle", "subtitles", "caption",
        "captions", "translation", "translated", "transcript", "transcribed", "summary", "title",
        "http", "https", "www", "re", "fwd", "question", "answer", "example", "important",
        "reminder",
    }
)


@functools.lru_cache(maxsize=4096)
def looks_like_label(label: str) -> bool:
    """A speaker's name or tag: 1–4 words, capitalised, nothing a sentence would have."""
    words = label.split()
    if not 1 <= len(words) <= 4 or len(label) > 40:
        return False
    if not all(_LABEL_WORD.fullmatch(word) for word in words):
        return False
    if not label[0].isupper() or not any(ch.isalpha() for ch in label):
        return False
    if words[0].rstrip(".").casefold() in _NOT_SPEAKERS or label.casefold().rstrip(".") in _NOT_SPEAKERS:
        return False
    # "Jean de la Cruz" is a name; "Meet Sam at" (10:30) and "Okay so" are not.
    lowercase = sum(1 for word in words if word[0].islower())
    return lowercase * 2 <= len(words) and not words[-1][0].islower()


def accepted_labels(candidates: Iterable[str]) -> set[str]:
    """The candidate labels a file uses as labels: those on two cues or more; once two
    labels recur, the file is a labelled dialogue and one-off labels count too."""
    counts = Counter(candidates)
    recurring = {label for label, n in counts.items() if n >= 2}
    return set(counts) if len(recurring) >= 2 else recurring


def label_prefixed_speakers(cues: list[Cue]) -> list[Cue]:
    """Take `Name: text` prefixes as speakers when the file uses them as labels.

    A cue whose lines start with different labels (`Sam: hi` / `Alex: hello`) becomes
    one cue per speaker, with the same timing.
    """
    split = [[_label_and_rest(line) for line in cue.text.split("\n")] for cue in cues]
    labels = accepted_labels(label for lines in split for label, _, _ in lines if label)
    firsts = [lines[0][0] for lines in split if lines and lines[0][2].strip()]
    if len(firsts) >= 2 and all(firsts):
        # Zoom's shape: every cue opens with its speaker, so one who speaks once counts.
        labels |= set(firsts)
    if not labels:
        return cues
    out = []
    for cue, lines in zip(cues, split, strict=True):
        parts: list[tuple[str | None, list[str]]] = [(None, [])]
        for label, rest, line in lines:
            if label in labels:
                parts.append((label, [rest] if rest else []))
            else:
                parts[-1][1].append(line)
        if parts[0][1] or len(parts) == 1:
            out.append(replace(cue, text="\n".join(parts[0][1])) if len(parts) > 1 else cue)
        for speaker, kept in parts[1:]:
            out.append(replace(cue, text="\n".join(kept), speaker=speaker, labelled=True))
    return out


def _label_and_rest(line: str) -> tuple[str | None, str, str]:
    match = _LABEL_PREFIX.match(line)
    if match and looks_like_label(match["label"]):
        return match["label"], match["rest"] or "", line
    return None, "", line


def carry_speakers(cues: list[Cue]) -> list[Cue]:
    """An unlabelled cue continues the speaker before it (labels mark changes)."""
    speaker = None
    out = []
    for cue in cues:
        if cue.speaker is not None:
            speaker = cue.speaker
        elif speaker is not None:
            cue = replace(cue, speaker=speaker, labelled=False)
        out.append(cue)
    return out


# -- text transcripts (Plaud, Otter)

_TEXT_TIME = r"\d{1,2}(?::\d{1,2}){1,2}(?:[.,]\d{1,3})?"
_TEXT_TIME_PARTS = re.compile(r"(?:(\d{1,2}):)?(\d{1,2}):(\d{2})(?:[.,](\d{1,3}))?")
# `Speaker 1  00:01:23`, `Sam Rivera 0:05`, `Speaker 2 [00:01:23]`: a label, a time, nothing else.
_SPEAKER_LINE = re.compile(rf"^(?P<label>\S(?:.*?\S)?)[ \t]+[\[(]?(?P<ts>{_TEXT_TIME})[\])]?[ \t]*$")
# `00:01:23` or `[00:01:23]` alone: Otter without speaker names.
_TIME_LINE = re.compile(rf"^[\[(]?(?P<ts>{_TEXT_TIME})[\])]?[ \t]*$")
# `[00:01:23] Speaker 1: text`, `00:00:01 Speaker A: text`, `[00:01:23] text`.
_UTTERANCE_LINE = re.compile(
    rf"^(?P<open>[\[(])?(?P<ts>{_TEXT_TIME})(?(open)[\])])[ \t]+(?:[-\u2013\u2014][ \t]*)?(?P<rest>\S.*)$"
)
_OTTER_FOOTER = re.compile(r"^transcribed by \S*otter\.ai\S*$", re.IGNORECASE)


def _text_milliseconds(value: str) -> int | None:
    match = _TEXT_TIME_PARTS.fullmatch(value)
    if match is None:
        return None
    hours, minutes, seconds, fraction = match.groups()
    # Without hours, minutes may pass 59 (`75:12`); with them they may not.
    if int(seconds) > 59 or (hours is not None and int(minutes) > 59):
        return None
    total = (int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)
    return total * 1000 + int((fraction or "0").ljust(3, "0"))


@dataclass
class _Start:
    """A line that may start a cue of a text transcript."""

    number: int  # 0-based
    kind: str  # "speaker" (label and time, words below), "time" (time alone), "utterance" (time, words after)
    ts: str
    label: str | None = None
    words: str = ""  # what follows the label on an utterance line
    unlabelled_words: str = ""  # everything after the time, in case the label is not taken
    opens_block: bool = False  # first line, or after a blank one
    bracketed: bool = False


def _parse_text(text: str) -> Transcript:
    lines = [line.strip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if lines and _OTTER_FOOTER.match(lines[-1]):
        lines.pop()
    candidates = [start for number, line in enumerate(lines) if (start := _start_candidate(lines, number, line))]

    # A speaker line counts when its label recurs; a one-off label when it opens a
    # block and its time fits between the recurring ones around it (a title, or a
    # sentence ending in "at 10:30", does not). With no recurring label, the first
    # speaker line is the one speaker.
    speakers = [c for c in candidates if c.kind == "speaker"]
    recurring = {label for label, n in Counter(c.label for c in speakers).items() if n >= 2}
    if recurring:
        anchors = [c for c in speakers if c.label in recurring]
        taken = {c.number for c in anchors}
        taken.update(c.number for c in speakers if c.opens_block and _fits(c, anchors))
    else:
        taken = {speakers[0].number} if speakers else set()
    first = min(taken, default=-1)
    utterance_labels = accepted_labels(c.label for c in candidates if c.kind == "utterance" and c.label)
    starts: list[_Start] = []
    for c in candidates:
        if c.kind == "speaker" and c.number not in taken:
            continue
        if c.kind == "time" and c.number < first:
            continue  # a duration in the header, before the first speaker
        if c.kind == "utterance" and c.label and c.label not in utterance_labels:
            if not c.bracketed:
                continue  # "10:30 Meet Sam: ..." is prose, not a timed line
            c.label, c.words = None, c.unlabelled_words
        starts.append(c)

    transcript = Transcript(format="text", cues=[])
    if starts:
        preamble = lines[: starts[0].number]
        title = next((line for line in preamble if line), None)
        transcript.title = title if title and not find_date(title) else None
        found = _header_date(preamble)
        if found:
            transcript.recorded_at, transcript.recorded_at_text = found
    for position, c in enumerate(starts):
        end = starts[position + 1].number if position + 1 < len(starts) else len(lines)
        body = [c.words] + lines[c.number + 1 : end]
        start_ms = _text_milliseconds(c.ts)
        if start_ms is None:
            transcript.problems.append(
                BadCue(
                    position + 1,
                    c.number + 1,
                    f"time {quote(c.ts)} cannot be read; expected H:MM:SS or MM:SS",
                    "\n".join(lines[c.number : end]).strip(),
                )
            )
            continue
        transcript.cues.append(
            Cue(
                position + 1,
                c.number + 1,
                start_ms,
                None,
                "\n".join(line for line in body if line),
                speaker=c.label,
                labelled=c.label is not None,
            )
        )
    transcript.cues = carry_speakers(transcript.cues)
    return transcript


def _parse_meet(text: str) -> Transcript:
    meeting = parse_meet(text, looks_like_label)
    transcript = Transcript(format="meet", cues=[], title=meeting.title)
    if meeting.when:
        transcript.recorded_at = meeting_start(meeting.when, find_date)
        transcript.recorded_at_text = meeting.when if transcript.recorded_at else None
    for index, p in enumerate(meeting.paragraphs, 1):
        transcript.cues.append(Cue(index, p.line, p.start_ms, None, p.text, speaker=p.speaker, labelled=p.speaker is not None))
    if not transcript.cues:
        transcript.problems.append(BadCue(None, meeting.body_line, "no 'Full Name: text' paragraph", text[:2000]))
    transcript.cues = carry_speakers(transcript.cues)
    return transcript


def _fits(one_off: _Start, anchors: list[_Start]) -> bool:
    """Whether a line's time lies between those of the anchor lines before and after it."""
    at = _text_milliseconds(one_off.ts)
    if at is None:
        return False
    numbers = [a.number for a in anchors]
    position = bisect.bisect(numbers, one_off.number)
    before = _text_milliseconds(anchors[position - 1].ts) if position else 0
    after = _text_milliseconds(anchors[position].ts) if position < len(anchors) else None
    return (before or 0) <= at and (after is None or at <= after)


def _start_candidate(lines: list[str], number: int, line: str) -> _Start | None:
    opens_block = number == 0 or not lines[number - 1]
    if match := _TIME_LINE.match(line):
        return _Start(number, "time", match["ts"]) if opens_block else None
    if (match := _SPEAKER_LINE.match(line)) and looks_like_label(match["label"]) and not find_date(match["label"]):
        return _Start(number, "speaker", match["ts"], match["label"], opens_block=opens_block)
    if match := _UTTERANCE_LINE.match(line):
        start = _Start(number, "utterance", match["ts"], words=match["rest"], unlabelled_words=match["rest"])
        start.bracketed = match["open"] is not None
        prefix = _LABEL_PREFIX.match(match["rest"])
        if prefix and looks_like_label(prefix["label"]):
            start.label, start.words = prefix["label"], prefix["rest"] or ""
        return start if start.bracketed or start.label else None
    return None


# ----------------------------------------------------------------------------- dates

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, start=1)}
_ISO_DATE = re.compile(
    r"(?<!\d)(?P<y>(?:19|20)\d{2})[-/.](?P<mo>\d{1,2})[-/.](?P<d>\d{1,2})"
    r"(?:[T ,]+(?P<h>\d{1,2})[:.](?P<mi>\d{2})(?:[:.](?P<s>\d{2})(?:\.\d+)?)?[ \t]*(?P<ampm>[AaPp][Mm])?"
    r"[ \t]*(?P<tz>Z|UTC|GMT|[+-]\d{2}:?\d{2})?)?(?!\d)"
)
_NAMED_DATE = re.compile(
    r"(?:(?P<d1>\d{1,2})[ \t]+(?P<m1>[A-Za-z]{3,9})\.?,?|(?P<m2>[A-Za-z]{3,9})\.?[ \t]+(?P<d2>\d{1,2})(?:st|nd|rd|th)?,?)"
    r"[ \t]+(?P<y>(?:19|20)\d{2})"
    r"(?:[ \t,]+(?:at[ \t]+)?(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?[ \t]*(?P<ampm>[AaPp][Mm])?)?"
)
# Compact names: 20240305_100312, 2024-03-05 10_03_12, 20240305 1003.
_NAME_DATE = re.compile(
    r"(?<!\d)(?P<y>(?:19|20)\d{2})[-_.]?(?P<mo>\d{2})[-_.]?(?P<d>\d{2})"
    r"(?:[ _T-]+(?P<h>\d{2})[-_.:h]?(?P<mi>\d{2})(?:[-_.:m]?(?P<s>\d{2}))?)?(?!\d)"
)


def find_date(text: str, patterns: tuple[re.Pattern, ...] | None = None) -> datetime | None:
    """The first date (with its time, when there is one) in a line of text; naive unless
    a zone is written. Day-first or month-first numeric dates (03/05/2024) are ambiguous
    and not read."""
    for pattern in patterns or (_ISO_DATE, _NAMED_DATE):
        for match in pattern.finditer(text):
            found = _date_from(match)
            if found:
                return found
    return None


def _date_from(match: re.Match) -> datetime | None:
    groups = match.groupdict()
    month_name = groups.get("m1") or groups.get("m2")
    if month_name:
        month = _MONTHS.get(month_name[:3].casefold())
        day = groups.get("d1") or groups.get("d2")
    else:
        month, day = int(groups["mo"]), groups["d"]
    hour, minute, second = int(groups.get("h") or 0), int(groups.get("mi") or 0), int(groups.get("s") or 0)
    ampm = (groups.get("ampm") or "").lower()
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "pm" else 0)
    try:
        found = datetime(int(groups["y"]), month or 0, int(day), hour, minute, second)
    except (TypeError, ValueError):
        return None
    zone = groups.get("tz")
    if zone:
        if zone in ("Z", "UTC", "GMT"):
            return found.replace(tzinfo=UTC)
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        return found.replace(tzinfo=timezone(sign * offset))
    return found


def _header_date(lines: list[str]) -> tuple[datetime, str] | None:
    for line in lines:
        found = find_date(line)
        if found:
            return found, line.strip()
    return None


def date_in_name(name: str) -> datetime | None:
    # Names write times with - or _ (10-03-12), which the header pattern would cut to a date.
    stem = PurePosixPath(name).stem
    found = find_date(stem, (_NAME_DATE, _ISO_DATE, _NAMED_DATE))
    # Zoom names its recordings GMT20240305-100012_Recording: that time is UTC.
    if found is not None and found.tzinfo is None and re.search(r"GMT(?:19|20)\d{6}", stem):
        found = found.replace(tzinfo=UTC)
    return found


# ----------------------------------------------------------------------------- turns


def merge_turns(cues: Iterable[Cue], joiner: str = SUBTITLE_JOINER) -> list[Turn]:
    """Consecutive cues of one speaker become one turn; empty cues carry no speech and
    are left out. Cues with no speaker stay one turn each: nothing says they are one
    person."""
    turns: list[Turn] = []
    run: list[Cue] = []

    def close() -> None:
        if run:
            turns.append(Turn(run[0].speaker, tuple(run), joiner.join(cue.text for cue in run)))

    for cue in cues:
        if not cue.text:
            continue
        if run and (cue.speaker is None or cue.speaker != run[-1].speaker):
            close()
            run = []
        run.append(cue)
    close()
    return turns


# ----------------------------------------------------------------------------- connector


@source(
    "transcript",
    version=1,
    help="Recording transcripts: Plaud/Otter text, SubRip .srt, WebVTT .vtt (files, folders, zips).",
    params=(
        Param(
            "me",
            "Your speaker label in these transcripts (e.g. 'Speaker 1' or 'Sam'); repeat for several.",
            multiple=True,
        ),
        Param(
            "recorded_at",
            "When the recording started (ISO, e.g. 2024-03-05T10:03:00+01:00); for one file. "
            "Default: the date in the file, else its modification time.",
        ),
    ),
    expects="a transcript (.txt, .srt, .vtt, .sbv)",
    accept=lambda relpath: PurePosixPath(relpath).suffix.lower() in SUFFIXES,
)
def read_transcripts(ctx: SourceContext) -> Iterator[Batch]:
    files = [f for path in ctx.paths for f in _files(ctx, path)]
    recorded_at = _option_datetime(ctx.options.get("recorded_at"))
    if recorded_at is not None and len(files) > 1:
        raise SourceError(
            f"--recorded-at gives the start of one recording, but {len(files)} transcripts were given; "
            "ingest them one at a time, or leave it out to use the date in each file"
        )
    labels = _label_mapping(ctx.options.get("labels"))
    me = _as_labels(ctx.options.get("me"))
    bases: dict[str, list[str]] = {}
    unlabelled: list[str] = []
    zoneless: list[str] = []
    for f in files:
        transcript = parse_transcript(f.read_bytes(), f.location)
        if transcript.encoding_note:
            ctx.note(transcript.encoding_note)
        start, basis = _recording_start(f, transcript, recorded_at)
        if start.tzinfo is None:
            # Written without a zone: the recorder's local time, taken to be this computer's.
            start = start.astimezone()
            zoneless.append(f"{f.name} ({start:%z})")
        bases.setdefault(basis, []).append(f"{f.name} ({start.isoformat(timespec='seconds')})")
        batch, owner_used, speakers = _batch(ctx, f, transcript, start, basis, labels, me)
        if not speakers:
            unlabelled.append(f.name)
        _note_changes(ctx, f, transcript, owner_used)
        yield batch
    _note_bases(ctx, bases)
    if zoneless:
        ctx.note(f"start times written without a zone were read as this computer's local time: {_some(zoneless)}")
    if unlabelled:
        ctx.note(
            f"{_some(unlabelled)}: no speaker labels, so the owner of each line is unknown "
            "(landed with is_owner empty, one row per cue)"
        )


def _files(ctx: SourceContext, path) -> list[InputFile]:
    found = ctx.inputs([path], required=False)
    if not found:
        raise SourceError(f"{path}: no transcript files in it; expected .txt, .srt, .vtt or .sbv files")
    return found


def _option_datetime(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise SourceError(
            f"--recorded-at {value!r} is not an ISO date and time; expected e.g. 2024-03-05T10:03:00+01:00"
        ) from None


def _as_labels(value: Any) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value if str(v).strip())


def _label_mapping(value: Any) -> dict[str, tuple[str, ...]]:
    if value in (None, {}):
        return {}
    if not isinstance(value, dict):
        raise SourceError(
            '[sources.transcript] labels must map file names to your speaker label, '
            'e.g. labels = {"meeting.vtt" = "Speaker 2"}'
        )
    return {str(name): _as_labels(labels) for name, labels in value.items()}


def _labels_for(f: InputFile, mapping: dict[str, tuple[str, ...]]) -> tuple[str, tuple[str, ...]] | None:
    """The `labels` entry naming this file: by name, by path inside its folder or
    archive, or by a path ending."""
    location = f.location.replace("\\", "/")
    for key, labels in mapping.items():
        wanted = key.replace("\\", "/")
        if wanted in (f.name, f.member, location) or location.endswith(("/" + wanted, "!" + wanted)):
            return key, labels
    return None


def _recording_start(f: InputFile, transcript: Transcript, option: datetime | None) -> tuple[datetime, str]:
    """When the recording started (naive when no zone is written), and what said so
    (stored as `time_basis`)."""
    if option is not None:
        return option, "recorded-at option"
    if transcript.recorded_at is not None:
        return transcript.recorded_at, "file header"
    named = date_in_name(f.name)
    if named is not None:
        return named, "file name"
    if f.member is not None:
        with zipfile.ZipFile(f.path) as archive:
            return datetime(*archive.getinfo(f.member).date_time), "modification time"
    return datetime.fromtimestamp(f.path.stat().st_mtime, UTC), "modification time"


def _owner_speakers(
    ctx: SourceContext,
    f: InputFile,
    speakers: list[str],
    mapping: dict[str, tuple[str, ...]],
    me: tuple[str, ...],
) -> set[str]:
    """Which of a file's speakers are the owner.

    A `labels` entry for the file decides alone. Otherwise `--me` stands in for the
    configured speaker_labels ("Speaker 1" means someone else in each recording),
    while the owner's names, handles and addresses count everywhere.
    """
    entry = _labels_for(f, mapping)
    if entry is not None:
        labels, identities, how = entry[1], None, f"labels[{entry[0]!r}]"
    else:
        labels = me or tuple(ctx.owner.speaker_labels)
        identities = dataclasses.replace(ctx.owner, speaker_labels=())
        how = "--me" if me else "[owner]"
    wanted = {label.strip().casefold() for label in labels}
    owner = {s for s in speakers if s.strip().casefold() in wanted or (identities and identities.matches(s))}
    if speakers and not owner:
        given = f"{how} {', '.join(repr(label) for label in labels)}".strip() if labels else how
        ctx.note(
            f"{f.location}: none of its speakers ({', '.join(speakers)}) is you by {given}; "
            "set --me LABEL or [sources.transcript] labels; its lines land with is_owner empty"
        )
    return owner


def _batch(
    ctx: SourceContext,
    f: InputFile,
    transcript: Transcript,
    start: datetime,
    basis: str,
    mapping: dict[str, tuple[str, ...]],
    me: tuple[str, ...],
) -> tuple[Batch, list[str], list[str]]:
    """The file's turns as raw rows, with (owner speakers, all speakers)."""
    speakers = sorted({cue.speaker for cue in transcript.cues if cue.speaker and cue.text})
    owner = _owner_speakers(ctx, f, speakers, mapping, me)
    conversation = transcript.digest[:16]
    title = transcript.title or PurePosixPath(f.name).stem
    cues, joiner = transcript.cues, TEXT_JOINER
    if transcript.format not in ("text", "meet"):
        cues, joiner = [replace(cue, text=" ".join(cue.text.split("\n"))) for cue in cues], SUBTITLE_JOINER
    rows = []
    for number, turn in enumerate(merge_turns(cues, joiner)):
        first, last = turn.cues[0], turn.cues[-1]
        ends = [cue.end_ms for cue in turn.cues if cue.end_ms is not None]
        metadata = {
            "format": transcript.format,
            "file": f.name,
            "speaker": turn.speaker,
            "cues": len(turn.cues),
            "first_cue": first.index,
            "last_cue": last.index,
            "start_s": first.start_ms / 1000 if first.start_ms is not None else None,
            "end_s": max(ends) / 1000 if ends else None,
            "time_basis": basis,
        }
        carried = sum(1 for cue in turn.cues if cue.speaker and not cue.labelled)
        if carried:
            metadata["speaker_carried_cues"] = carried
        rows.append(
            {
                "source_id": f"{conversation}:{number:06d}",
                "conversation_id": conversation,
                "conversation_title": title,
                "sent_at": start + timedelta(milliseconds=first.start_ms or 0),
                "sender": turn.speaker,
                "sender_name": turn.speaker,
                "is_owner": (turn.speaker in owner) if (owner and turn.speaker) else None,
                "kind": "text",
                "text": turn.text,
                "metadata": metadata,
            }
        )
    quarantined = [
        Quarantined(
            f"{f.location} cue {p.index} / line {p.line}" if p.index else f"{f.location} line {p.line}",
            p.reason,
            p.payload,
        )
        for p in transcript.problems
    ]
    watermark = {"sha256": transcript.digest, "owner": sorted(owner)}
    batch = to_batch(rows, quarantined, stream=_stream(f), watermark=watermark)
    return batch, sorted(owner), speakers


def _stream(f: InputFile) -> str:
    path = str(f.path.resolve())
    return f"{path}!{f.member}" if f.member else path


def _note_changes(ctx: SourceContext, f: InputFile, transcript: Transcript, owner: list[str]) -> None:
    """Landed rows are never rewritten: say so when a file changed since its last run."""
    previous = ctx.previous_watermark(_stream(f))
    if not isinstance(previous, dict):
        return
    if previous.get("sha256") not in (None, transcript.digest):
        ctx.note(
            f"{f.location} changed since it was last ingested: this version lands as a new conversation "
            "and the earlier one stays in the warehouse"
        )
    elif previous.get("owner") is not None and previous.get("owner") != owner:
        before = ", ".join(previous["owner"]) or "no speaker"
        ctx.note(
            f"{f.location} was landed with {before} as you; rows already landed keep those owner flags "
            "(delete them from raw_messages to land them again with the new ones)"
        )


def _note_bases(ctx: SourceContext, bases: dict[str, list[str]]) -> None:
    why = {
        "recorded-at option": "from --recorded-at",
        "file header": "from the date in the file's header",
        "file name": "from the date in the file's name",
        "modification time": "from the file's modification time (no date in the file; "
        "pass --recorded-at for the true start)",
    }
    for basis, files in bases.items():
        ctx.note(f"recording start {why[basis]}: {_some(files)}")


def _some(items: list[str], at_most: int = 5) -> str:
    shown = ", ".join(items[:at_most])
    return shown + (f" and {len(items) - at_most} more" if len(items) > at_most else "")
