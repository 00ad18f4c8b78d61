"""Google Meet transcripts: the Google Doc Meet saves in the organiser's Drive
("Meet Recordings"), downloaded as .txt (File > Download > Plain text) or copied out.

What the file looks like:
- a header: the meeting's title and start, `Team sync (2024-03-05 at 10:02 GMT-8) -
  Transcript` (older documents), or the title alone, with the date in the file's name;
  an `Attendees` line and the attendees, comma-separated, on the next line; a line
  `Transcript` before what was said;
- then one paragraph per speaker change, `Full Name: what they said`, the speech
  running on over further lines until the next speaker;
- every few minutes a line holding only the elapsed time, `00:05:00`: the paragraphs
  after it were said from then on (there is no time per paragraph);
- at the end, `Meeting ended after 00:42:17 👋` and "This editable transcript was
  computer generated and might contain errors. …", neither of them speech.

The speaker is taken from the `Name:` prefix only when it names an attendee, or, with
no attendee list, when it looks like a name: "Note: the room changed" is speech.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

_TITLE = re.compile(r"^(?P<title>.*?)\s*(?:\((?P<when>[^()]*)\))?\s*[-\u2013\u2014]\s*(?:Transcript|Transcription)\s*$")
_SECTION = re.compile(r"^(?:Transcript|Transcription)\s*$", re.IGNORECASE)
_ATTENDEES = re.compile(r"^(?:Attendees|Participants)\s*$", re.IGNORECASE)
_ELAPSED = re.compile(r"^(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2})$")
_ENDED = re.compile(r"^Meeting ended after \d{1,2}:\d{2}:\d{2}\b", re.IGNORECASE)
_DISCLAIMER = re.compile(r"^This editable transcript was computer generated", re.IGNORECASE)
_SPEAKER = re.compile(r"^(?P<name>[^:\n]{1,60}?):[ \t]+(?P<rest>\S.*)$")
_WHEN = re.compile(
    r"(?P<date>.+?)(?:\s+at)?\s+(?P<h>\d{1,2}):(?P<mi>\d{2})\s*(?P<ampm>[AaPp][Mm])?"
    r"(?:\s*(?:GMT|UTC)(?P<tz>[+-]\d{1,2}(?::?\d{2})?)?)?\s*$"
)


def looks_like_meet(text: str) -> bool:
    """A Meet transcript: its header, within the first lines, says so."""
    head = [line.strip() for line in text.split("\n")[:12] if line.strip()]
    if not head:
        return False
    if _TITLE.match(head[0]) and any(_SPEAKER.match(line) or _SECTION.match(line) for line in head[1:]):
        return True
    return any(_ATTENDEES.match(line) for line in head) and any(_SECTION.match(line) for line in head)


@dataclass(frozen=True)
class Paragraph:
    line: int  # 1-based line of its first words
    start_ms: int  # the elapsed time last written before it
    speaker: str | None
    text: str


@dataclass
class Meeting:
    title: str | None = None
    when: str | None = None  # the header's date text, e.g. "2024-03-05 at 10:02 GMT-8"
    paragraphs: list[Paragraph] = field(default_factory=list)
    body_line: int = 1  # where the speech starts, for a file with none


def parse_meet(text: str, is_name: Callable[[str], bool]) -> Meeting:
    """The paragraphs of a Meet transcript. `is_name` says whether a `Label:` prefix is a
    person when the header lists no attendees."""
    lines = [line.strip() for line in text.split("\n")]
    meeting = Meeting()
    first = next((line for line in lines if line), "")
    title = _TITLE.match(first)
    body_start = 0
    if title:
        meeting.title = title["title"] or None
        meeting.when = title["when"] or None
        body_start = lines.index(first) + 1
    attendees: set[str] = set()
    listed = next((n for n, line in enumerate(lines[:40]) if _ATTENDEES.match(line)), None)
    if listed is not None and listed + 1 < len(lines):
        attendees = {name.strip() for name in lines[listed + 1].split(",") if name.strip()}
    # The speech starts after the `Transcript` line (the one after the attendees).
    after = -1 if listed is None else listed
    section = next((n for n, line in enumerate(lines[:40]) if n > after and _SECTION.match(line)), None)
    if section is not None:
        body_start = section + 1
    meeting.body_line = body_start + 1

    offset_ms = 0
    current: list[str] | None = None
    speaker: str | None = None
    start_line, start_ms = 0, 0

    def close() -> None:
        if current is not None and any(current):
            meeting.paragraphs.append(Paragraph(start_line, start_ms, speaker, "\n".join(p for p in current if p)))

    for number, line in enumerate(lines[body_start:], start=body_start + 1):
        if not line or _ENDED.match(line) or _DISCLAIMER.match(line):
            continue
        elapsed = _ELAPSED.match(line)
        if elapsed:
            close()
            current, speaker = None, None
            offset_ms = ((int(elapsed["h"]) * 60 + int(elapsed["m"])) * 60 + int(elapsed["s"])) * 1000
            continue
        label = _SPEAKER.match(line)
        name = label["name"].strip() if label else None
        if name and (name in attendees or (not attendees and is_name(name))):
            close()
            current, speaker, start_line, start_ms = [label["rest"]], name, number, offset_ms
        elif current is None:
            # Speech right after a time line, before any name: it continues the last speaker.
            current, speaker, start_line, start_ms = [line], None, number, offset_ms
        else:
            current.append(line)
    close()
    return meeting


def meeting_start(when: str, find_date: Callable[[str], datetime | None]) -> datetime | None:
    """`2024-03-05 at 10:02 GMT-8`, `Mar 5, 2024 at 10:02 AM GMT+01:00`: aware when a
    zone is written, else naive."""
    match = _WHEN.match(when.strip())
    if not match:
        return find_date(when)
    day = find_date(match["date"])
    if day is None:
        return None
    hour = int(match["h"])
    if match["ampm"]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if match["ampm"].lower() == "pm" else 0)
    try:
        found = day.replace(hour=hour, minute=int(match["mi"]), second=0, tzinfo=None)
    except ValueError:
        return None
    zone = match["tz"]
    if zone is None:
        return found.replace(tzinfo=UTC) if re.search(r"\b(?:GMT|UTC)\b", when) else found
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    hours, minutes = (int(digits[:-2]), int(digits[-2:])) if len(digits) > 2 else (int(digits), 0)
    if hours > 14 or minutes > 59:
        return None
    return found.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
