"""Benchmark: `etl ingest whatsapp-db` on a large generated Android msgstore.db.

    python bench/whatsapp_db_ingest.py                    # 200,000 messages
    python bench/whatsapp_db_ingest.py --messages 1000000

Builds a msgstore.db with the tables the connector reads (jid, chat, message,
message_quoted, message_add_on, message_add_on_reaction), ingests it in a child process
into a fresh warehouse, and prints messages per second and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest_common import report  # noqa: E402

WORDS = "yes no maybe later tonight coffee train late soon home call you me see ok thanks climbing".split()


def make_msgstore(path: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE jid (_id INTEGER PRIMARY KEY, user TEXT, server TEXT, type INTEGER, raw_string TEXT);
        CREATE TABLE chat (_id INTEGER PRIMARY KEY, jid_row_id INTEGER, subject TEXT);
        CREATE TABLE message (_id INTEGER PRIMARY KEY, chat_row_id INTEGER, from_me INTEGER, key_id TEXT,
          sender_jid_row_id INTEGER, status INTEGER, timestamp INTEGER, message_type INTEGER, text_data TEXT);
        CREATE TABLE message_quoted (message_row_id INTEGER PRIMARY KEY, chat_row_id INTEGER, from_me INTEGER, key_id TEXT);
        CREATE TABLE message_add_on (_id INTEGER PRIMARY KEY, chat_row_id INTEGER, from_me INTEGER, key_id TEXT,
          sender_jid_row_id INTEGER, parent_message_row_id INTEGER);
        CREATE TABLE message_add_on_reaction (message_add_on_row_id INTEGER PRIMARY KEY, reaction TEXT, sender_timestamp INTEGER);
    """)
    people = 400
    con.executemany("INSERT INTO jid VALUES (?,?,?,?,?)",
                    [(i, f"4915{i:08d}", "s.whatsapp.net", 0, f"4915{i:08d}@s.whatsapp.net") for i in range(1, people + 1)]
                    + [(people + g, f"1203630{g:011d}", "g.us", 1, f"1203630{g:011d}@g.us") for g in range(1, 21)])
    con.executemany("INSERT INTO chat VALUES (?,?,?)", [(i, i, None) for i in range(1, people + 1)]
                    + [(people + g, people + g, f"group {g}") for g in range(1, 21)])
    rows, quotes, addons = [], [], []
    t = 1_500_000_000_000
    for i in range(1, n + 1):
        t += rng.randrange(1000, 300_000)
        chat = rng.randrange(1, people + 21)
        me = rng.random() < 0.45
        sender = None if me or chat <= people else rng.randrange(1, people + 1)
        rows.append((i, chat, int(me), f"{i:020X}", sender, 13 if me else 0, t, 0,
                     " ".join(rng.choices(WORDS, k=rng.randrange(2, 20)))))
        if i % 25 == 0 and i > 1:
            quotes.append((i, chat, 0, f"{i - 1:020X}"))
        if i % 40 == 0:
            addons.append((i, chat, 0, f"R{i}", rng.randrange(1, people + 1), i))
    con.executemany("INSERT INTO message VALUES (?,?,?,?,?,?,?,?,?)", rows)
    con.executemany("INSERT INTO message_quoted VALUES (?,?,?,?)", quotes)
    con.executemany("INSERT INTO message_add_on VALUES (?,?,?,?,?,?)", addons)
    con.executemany("INSERT INTO message_add_on_reaction VALUES (?,?,?)", [(a[0], "👍", 0) for a in addons])
    con.commit()
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--keep", type=Path, help="generate into this folder and keep it")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="etl-bench-whatsapp-db-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        db = folder / "msgstore.db"
        if not db.exists():
            started = time.perf_counter()
            make_msgstore(db, args.messages)
            print(f"generated {args.messages:,} messages in {time.perf_counter() - started:.1f} s "
                  f"({db.stat().st_size / (1 << 20):.0f} MiB)")
        report("whatsapp-db", folder, [str(db)])
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
