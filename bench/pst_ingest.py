"""Benchmark: `etl ingest pst`'s own work on 100,000 Outlook messages.

    python bench/pst_ingest.py                    # 100,000 messages
    python bench/pst_ingest.py --messages 300000

No PST can be written on this machine (libpff only reads), so the messages come from an
in-memory stand-in with pypff's interface (folders, messages, MAPI record sets, transport
headers, bodies). What is measured is everything the connector does per message — MAPI
properties to an RFC 822 message, the mail reading (headers, body, threads, automated
senders), the owner by Sent Items, loading into DuckDB — not libpff's own decoding of the
file, which comes on top. Runs `etl ingest pst` in this process against a fresh warehouse
and prints messages per second and peak RSS.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import sys
import tempfile
import time
import types
from datetime import datetime, timedelta
from pathlib import Path

WORDS = "yes no maybe later tonight meeting draft budget review see attached thanks regards".split()


class _Entry:
    def __init__(self, entry_type, value):
        self.entry_type, self._value = entry_type, value
        self.value_type = 0x001F if isinstance(value, str) else 0x0102
        self.data = value if isinstance(value, bytes) else b""

    def get_data_as_string(self):
        return self._value


class _Message:
    def __init__(self, i: int, rng: random.Random, sent: bool):
        when = datetime(2015, 1, 1) + timedelta(minutes=7 * i)
        self.identifier = 2_097_152 + 32 * i
        self.subject = f"thread {i // 5}"
        self.sender_name = "Me" if sent else f"Person {i % 211}"
        props = {0x001A: "IPM.Note", 0x0037: self.subject, 0x0C1A: self.sender_name,
                 0x5D01: "me@example.com" if sent else f"p{i % 211}@example.org", 0x1035: f"<m{i}@example.org>"}
        if i % 5:
            props[0x1042] = f"<m{i - 1}@example.org>"
        self.record_sets = [types.SimpleNamespace(entries=[_Entry(k, v) for k, v in props.items()])]
        self.transport_headers = None if sent else (
            f"Message-ID: <m{i}@example.org>\r\nFrom: {self.sender_name} <p{i % 211}@example.org>\r\n"
            f"To: me@example.com\r\nSubject: {self.subject}\r\nDate: {when:%a, %d %b %Y %H:%M:%S} +0000\r\n")
        self.client_submit_time = self.delivery_time = when
        self.plain_text_body = (" ".join(rng.choices(WORDS, k=rng.randrange(10, 80))) + "\r\n").encode()
        self.html_body = None
        self.conversation_index = None


class _Folder:
    def __init__(self, identifier, name, messages=(), folders=()):
        self.identifier, self.name, self._m, self._f = identifier, name, list(messages), list(folders)
        self.number_of_sub_messages, self.number_of_sub_folders = len(self._m), len(self._f)

    def get_sub_message(self, i):
        return self._m[i]

    def get_sub_folder(self, i):
        return self._f[i]


def fake_pypff(n: int):
    rng = random.Random(7)
    messages = [_Message(i, rng, sent=i % 3 == 0) for i in range(n)]
    inbox = _Folder(32898, "Inbox", [m for m in messages if m.transport_headers])
    sent = _Folder(32962, "Sent Items", [m for m in messages if not m.transport_headers])
    root = _Folder(290, None, folders=[_Folder(32802, "Top of Personal Folders", folders=[inbox, sent])])

    class File:
        def open(self, path):
            pass

        def get_message_store(self):
            entry = _Entry(0x35E4, b"\x00" * 20 + (32962).to_bytes(4, "little"))
            return types.SimpleNamespace(record_sets=[types.SimpleNamespace(entries=[entry])])

        def get_root_folder(self):
            return root

        def close(self):
            pass

    return types.SimpleNamespace(file=File)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    sys.modules["pypff"] = fake_pypff(args.messages)
    from etl.config import Owner
    from etl.ingest import run_ingest
    from etl.sources import get_source

    folder = Path(tempfile.mkdtemp(prefix="etl-bench-pst-"))
    try:
        pst = folder / "Outlook.pst"
        pst.write_bytes(b"!BDN" + b"\x00" * 508)
        started = time.perf_counter()
        result = run_ingest(folder / "w.duckdb", get_source("pst"), [pst], {}, Owner())
        elapsed = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"etl ingest pst (libpff stand-in): {result.new:,} messages in {elapsed:.2f} s = "
              f"{result.new / elapsed:,.0f} messages/s, peak RSS {peak:.0f} MiB (the stand-in's messages included)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
