"""Edit and unsend history of an iMessage, from `message.message_summary_info`.

The column is a binary plist. The keys that matter here:
- `ec`: part index (as a string) -> list of versions `{"d": seconds since 2001, "t":
  attributedBody, "bcg": balloon guid}`, oldest first; the first is the original text.
- `rp`: indices of the parts that were unsent (retracted).
- `otr`: the original text range of every part, so `rp` covering all of them means
  the whole message was unsent.
Every other message carries bookkeeping keys only (`amc`, `ust`, …).
"""

from __future__ import annotations

import plistlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from etl.sources.typedstream import DecodeError, decode_attributed_body

APPLE_EPOCH = datetime(2001, 1, 1, tzinfo=UTC)


class SummaryError(ValueError):
    """A message_summary_info blob that is not the plist Messages writes."""


@dataclass(frozen=True)
class EditEvent:
    at: datetime | None  # when this version was written, UTC
    text: str | None  # None when its attributedBody could not be decoded
    balloon_guid: str | None = None


@dataclass(frozen=True)
class SummaryInfo:
    edits: dict[int, tuple[EditEvent, ...]] = field(default_factory=dict)
    unsent_parts: tuple[int, ...] = ()
    parts: tuple[int, ...] = ()  # every part of the original message

    @property
    def edited(self) -> bool:
        return self.edit_count > 0

    @property
    def edit_count(self) -> int:
        """Edits made, over all parts (each part's first version is the original)."""
        return sum(max(len(events) - 1, 0) for events in self.edits.values())

    @property
    def deleted(self) -> bool:
        """The whole message was unsent: no text of it survives."""
        if not self.unsent_parts:
            return False
        return not self.parts or set(self.parts) <= set(self.unsent_parts)

    def latest_text(self) -> str | None:
        """The newest version of every edited part, joined in part order."""
        latest = [events[-1].text for _, events in sorted(self.edits.items()) if events]
        if not latest or any(text is None for text in latest):
            return None
        return "".join(latest)  # type: ignore[arg-type]


def parse_summary_info(blob: bytes) -> SummaryInfo:
    try:
        data = plistlib.loads(bytes(blob))
    except Exception as exc:  # plistlib raises several types on bad input
        raise SummaryError(f"message_summary_info is not a plist: {exc}") from None
    if not isinstance(data, dict):
        raise SummaryError("message_summary_info is not a dictionary")
    return SummaryInfo(
        edits=_edits(data.get("ec")),
        unsent_parts=tuple(sorted(_part_numbers(data.get("rp")))),
        parts=tuple(sorted(_part_numbers(data.get("otr")))),
    )


def apple_seconds_to_datetime(seconds: float | int | None) -> datetime | None:
    """Seconds since 2001-01-01 UTC (as plists store them), at microsecond precision."""
    if seconds is None or seconds == 0:
        return None
    return APPLE_EPOCH + timedelta(microseconds=round(seconds * 1_000_000))


def _edits(raw) -> dict[int, tuple[EditEvent, ...]]:
    if not isinstance(raw, dict):
        return {}
    edits: dict[int, tuple[EditEvent, ...]] = {}
    for part, versions in raw.items():
        if not isinstance(versions, list) or not str(part).isdigit():
            continue
        edits[int(part)] = tuple(_event(v) for v in versions if isinstance(v, dict))
    return edits


def _event(version: dict) -> EditEvent:
    text = None
    body = version.get("t")
    if isinstance(body, bytes):
        try:
            text = decode_attributed_body(body)
        except DecodeError:
            text = None
    date = version.get("d")
    guid = version.get("bcg")
    return EditEvent(
        at=apple_seconds_to_datetime(date) if isinstance(date, (int, float)) else None,
        text=text,
        balloon_guid=guid if isinstance(guid, str) else None,
    )


def _part_numbers(raw) -> list[int]:
    """Part indices from a list of ints or a dict keyed by their string form."""
    if isinstance(raw, dict):
        raw = list(raw)
    if not isinstance(raw, list):
        return []
    parts = []
    for item in raw:
        try:
            parts.append(int(item))
        except (TypeError, ValueError):
            continue
    return parts
