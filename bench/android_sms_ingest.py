"""Benchmark: `etl ingest android-sms` on a large generated SMS Backup & Restore file.

    python bench/android_sms_ingest.py                      # 200,000 messages
    python bench/android_sms_ingest.py --messages 1000000 --keep /tmp/sms

Writes one sms-*.xml like the app's (SMS, 1:1 and group MMS with text parts and a small
inline image, emoji as surrogate references), ingests it in a child process into a fresh
warehouse, and prints messages per second and the child's peak RSS. Memory should stay
flat in the size of the file: the backup is parsed as a stream.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import quoteattr

sys.path.insert(0, str(Path(__file__).parent))
from ingest_common import report  # noqa: E402

WORDS = "yes no maybe later tonight coffee train late soon home call you me see ok thanks".split()
IMAGE = "/9j/4AAQSkZJRgABAQAAAQABAAD" * 40  # ~1 KB of base64, as MMS photos are inline


def make_backup(path: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    people = [f"+1555{rng.randrange(10**6, 10**7)}" for _ in range(300)]
    groups = [rng.sample(people, 3) for _ in range(20)]
    date = 1_500_000_000_000
    with path.open("w", encoding="utf-8") as out:
        out.write("<?xml version='1.0' encoding='UTF-8' standalone='yes' ?>\n")
        out.write(f'<smses count="{n}" backup_set="bench" backup_date="{date}" type="full">\n')
        for i in range(n):
            date += rng.randrange(1000, 600_000)
            body = " ".join(rng.choices(WORDS, k=rng.randrange(2, 14))) + (" &#55357;&#56832;" if i % 17 == 0 else "")
            if i % 10:
                person = rng.choice(people)
                out.write(
                    f'  <sms protocol="0" address="{person}" date="{date}" type="{rng.choice("12")}" subject="null" '
                    f'body="{body}" toa="null" sc_toa="null" service_center="null" read="1" status="-1" locked="0" '
                    f'date_sent="0" sub_id="1" readable_date="" contact_name="Person {person[-4:]}" />\n'
                )
                continue
            group = rng.choice(groups) if i % 20 == 0 else [rng.choice(people)]
            box = rng.choice("12")
            sender = "+15550000000" if box == "2" else group[0]
            addrs = "".join(
                f'<addr address="{a}" type="{137 if a == sender else 151}" charset="106" />'
                for a in dict.fromkeys([sender, *group, "+15550000000"])
            )
            out.write(
                f'  <mms date="{date}" msg_box="{box}" address="{"~".join(group)}" m_id="null" m_type="132" sub="null" '
                f'read="1" contact_name={quoteattr(", ".join(group))}><parts>'
                f'<part seq="0" ct="image/jpeg" name="IMG.jpg" cl="IMG.jpg" text="null" data="{IMAGE}" />'
                f'<part seq="1" ct="text/plain" name="null" chset="106" text="{body}" /></parts>'
                f"<addrs>{addrs}</addrs></mms>\n"
            )
        out.write("</smses>\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--keep", type=Path, help="generate into this folder and keep it")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="etl-bench-sms-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        backup = folder / "sms-bench.xml"
        if not backup.exists():
            started = time.perf_counter()
            make_backup(backup, args.messages)
            print(f"generated {args.messages:,} messages in {time.perf_counter() - started:.1f} s "
                  f"({backup.stat().st_size / (1 << 20):.0f} MiB)")
        report("android-sms", folder, [str(backup)])
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
