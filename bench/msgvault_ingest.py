"""Benchmark: `etl ingest msgvault` on a large generated `msgvault export-messages` stream.

    python bench/msgvault_ingest.py                       # 200,000 messages
    python bench/msgvault_ingest.py --messages 1000000

Writes a stream in schema msgvault-message-export/1 (three sources, a few thousand
conversations, then the messages and the completion record), ingests it in a child
process into a fresh warehouse, and prints messages per second and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest_common import report  # noqa: E402

WORDS = "yes no maybe later tonight coffee train late soon home call you me see ok thanks meeting draft".split()
SOURCES = [("gmail", "me@example.com", "email"), ("discord", "123456789012345678", "discord"),
           ("synctech_sms", "phone|primary", "sms")]


def make_stream(path: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    per_source = 1000
    start = datetime(2020, 1, 1, tzinfo=UTC)
    dump = lambda record: out.write(json.dumps(record, separators=(",", ":")) + "\n")  # noqa: E731
    with path.open("w", encoding="utf-8") as out:
        dump({"record_type": "manifest", "schema": "msgvault-message-export/1", "msgvault_version": "bench",
              "window": {"start": "2020-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"},
              "filters": {"message_types": [], "sources": []}})
        for kind, identifier, _ in SOURCES:
            dump({"record_type": "source", "source_type": kind, "identifier": identifier, "display_name": kind,
                  "last_successful_sync_at": None})
        for kind, identifier, _ in SOURCES:
            for c in range(per_source):
                dump({"record_type": "conversation", "source_type": kind, "source_identifier": identifier,
                      "id": f"c{c}", "title": f"thread {c}", "conversation_type": "direct_chat", "parent_id": None})
        for i in range(n):
            kind, identifier, mtype = SOURCES[i % 3]
            mine = rng.random() < 0.4
            author = {"display_name": "Me" if mine else f"Person {i % 97}",
                      "address": identifier if mine and kind == "gmail" else f"p{i % 97}@example.org"}
            at = start + timedelta(seconds=i * 30)
            dump({"record_type": "message", "source_type": kind, "source_identifier": identifier, "id": f"m{i}",
                  "conversation_id": f"c{rng.randrange(per_source)}", "message_type": mtype, "subject": "",
                  "text": " ".join(rng.choices(WORDS, k=rng.randrange(3, 30))), "author": author,
                  "occurred_at": at.isoformat().replace("+00:00", "Z"), "deleted_from_source": False})
        dump({"record_type": "complete", "counts": {"sources": 3, "conversations": 3 * per_source, "messages": n}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--keep", type=Path, help="generate into this folder and keep it")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="etl-bench-msgvault-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        export = folder / "vault.jsonl"
        if not export.exists():
            started = time.perf_counter()
            make_stream(export, args.messages)
            print(f"generated {args.messages:,} messages in {time.perf_counter() - started:.1f} s "
                  f"({export.stat().st_size / (1 << 20):.0f} MiB)")
        report("msgvault", folder, [str(export)])
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
