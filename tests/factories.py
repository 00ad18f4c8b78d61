"""Landing made-up messages through the real ingest path, for build tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from etl.config import Owner
from etl.ingest import run_ingest
from etl.schemas import raw_frame
from etl.sources import Batch, Source

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def message(source_id: str, text: str | None, *, owner: bool, conversation: str = "c1", minutes: float = 0,
            kind: str = "text", sender: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "source": "test",
        "source_id": source_id,
        "conversation_id": conversation,
        "sent_at": T0 + timedelta(minutes=minutes),
        "sender": "me" if owner else (sender or "alex"),
        "is_owner": owner,
        "kind": kind,
        "text": text,
        **extra,
    }


def dialogue(conversation: str, lines: Iterable[tuple[bool, str]], start: float = 0) -> list[dict[str, Any]]:
    """Alternating lines of one conversation, a minute apart."""
    return [
        message(f"{conversation}-{i:03d}", text, owner=owner, conversation=conversation, minutes=start + i)
        for i, (owner, text) in enumerate(lines)
    ]


def land(warehouse: Path, rows: list[dict[str, Any]], name: str = "test") -> str:
    def read(ctx):
        yield Batch(rows=raw_frame(rows), stream="memory", watermark={"n": len(rows)})

    result = run_ingest(warehouse, Source(name, 1, "rows made by a test", read, paths="none"), [], {}, Owner())
    return result.run_id
