"""Benchmark: `etl ingest signal` on a large generated Signal Desktop database.

    python bench/signal_ingest.py                         # 200,000 messages, plain SQLite
    python bench/signal_ingest.py --encrypted             # the same as a SQLCipher file (needs the signal extra)

Builds `sql/db.sqlite` with Signal's conversations and messages tables (every message's
JSON, a reaction on every 20th, a quote on every 25th), ingests it in a child process into a
fresh warehouse, and prints messages per second and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import json
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
KEY = "0f" * 32


def make_db(folder: Path, n: int, encrypted: bool, seed: int = 7) -> Path:
    rng = random.Random(seed)
    (folder / "sql").mkdir(parents=True, exist_ok=True)
    path = folder / "sql" / "db.sqlite"
    if encrypted:
        from sqlcipher3 import dbapi2

        con = dbapi2.connect(str(path))
        for pragma in (f"PRAGMA KEY = \"x'{KEY}'\"", "PRAGMA cipher_page_size = 4096", "PRAGMA kdf_iter = 64000",
                       "PRAGMA cipher_hmac_algorithm = HMAC_SHA512", "PRAGMA cipher_kdf_algorithm = PBKDF2_HMAC_SHA512"):
            con.execute(pragma)
        (folder / "config.json").write_text(json.dumps({"key": KEY}))
    else:
        con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE conversations (id TEXT PRIMARY KEY, json TEXT, type TEXT, name TEXT, profileName TEXT,
          e164 TEXT, serviceId TEXT);
        CREATE TABLE messages (rowid INTEGER PRIMARY KEY, id TEXT UNIQUE, json TEXT, sent_at INTEGER,
          conversationId TEXT, type TEXT, body TEXT, sourceServiceId TEXT);
        CREATE TABLE items (id TEXT PRIMARY KEY, json TEXT);
    """)
    people = 300
    con.executemany("INSERT INTO conversations VALUES (?,?,?,?,?,?,?)",
                    [(f"c{i}", "{}", "private", f"Person {i}", None, f"+1555{i:07d}", f"aci-{i}") for i in range(people)]
                    + [(f"g{g}", "{}", "group", f"group {g}", None, None, None) for g in range(20)])
    con.execute("INSERT INTO items VALUES ('uuid_id', ?)", (json.dumps({"value": "aci-0.1"}),))
    rows, t = [], 1_500_000_000_000
    for i in range(n):
        t += rng.randrange(1000, 300_000)
        chat = f"c{rng.randrange(1, people)}" if rng.random() < 0.8 else f"g{rng.randrange(20)}"
        out = rng.random() < 0.45
        author = None if out else (f"aci-{chat[1:]}" if chat.startswith("c") else f"aci-{rng.randrange(1, people)}")
        body = " ".join(rng.choices(WORDS, k=rng.randrange(2, 20)))
        record = {"id": f"m{i}", "type": "outgoing" if out else "incoming", "sent_at": t, "body": body}
        if i % 20 == 0:
            record["reactions"] = [{"emoji": "👍", "fromId": "c0", "targetTimestamp": t, "timestamp": t + 5000}]
        if i % 25 == 0 and rows:
            record["quote"] = {"id": rows[-1][3], "text": "…"}
        rows.append((f"m{i}", json.dumps(record), chat, t, record["type"], body, author))
    con.executemany("INSERT INTO messages (id, json, conversationId, sent_at, type, body, sourceServiceId)"
                    " VALUES (?,?,?,?,?,?,?)", rows)
    con.commit()
    con.close()
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--encrypted", action="store_true")
    parser.add_argument("--keep", type=Path, help="generate into this folder and keep it")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="etl-bench-signal-"))
    try:
        signal = folder / "Signal"
        if not (signal / "sql" / "db.sqlite").exists():
            started = time.perf_counter()
            make_db(signal, args.messages, args.encrypted)
            print(f"generated {args.messages:,} messages in {time.perf_counter() - started:.1f} s")
        report("signal", folder, [str(signal)])
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
