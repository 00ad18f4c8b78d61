"""Recall and false positives of `redact_pii` on planted personal data.

    python bench/pii.py

Every planted value sits in a short chat line, read with the owner's region of its
country (phone numbers in national form need it; international forms do not). The
look-alikes are what chat is full of and must survive: order numbers, times, dates,
versions, git hashes, prices, measurements, scores. A planted value counts as found
when it is gone from the text and a placeholder of its type is there; a look-alike is
a false positive when anything in it changed.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from etl.transforms.redact import redact_str  # noqa: E402

# (country, type, value): numbers in the formats each country's people write them.
PLANTED = [
    ("US", "phone", "(415) 555-0134"), ("US", "phone", "415-555-0134"), ("US", "phone", "415 555 0134"),
    ("US", "phone", "+1 415 555 0134"), ("US", "phone", "415.555.0134"),
    ("GB", "phone", "020 7946 0958"), ("GB", "phone", "07911 123456"), ("GB", "phone", "+44 20 7946 0958"),
    ("GB", "phone", "+44 (0)20 7946 0958"),
    ("DE", "phone", "0151 23456789"), ("DE", "phone", "030 12345678"), ("DE", "phone", "+49 30 12345678"),
    ("DE", "phone", "0049 151 23456789"), ("DE", "phone", "030/12345678"),
    ("FR", "phone", "06 12 34 56 78"), ("FR", "phone", "01 23 45 67 89"), ("FR", "phone", "+33 6 12 34 56 78"),
    ("FR", "phone", "06.12.34.56.78"),
    ("IN", "phone", "98765 43210"), ("IN", "phone", "+91 98765 43210"), ("IN", "phone", "098765 43210"),
    ("JP", "phone", "03-1234-5678"), ("JP", "phone", "090-1234-5678"), ("JP", "phone", "+81 90 1234 5678"),
    ("BR", "phone", "(11) 91234-5678"), ("BR", "phone", "+55 11 91234 5678"),
    ("AU", "phone", "0412 345 678"), ("AU", "phone", "(02) 9876 5432"), ("AU", "phone", "+61 412 345 678"),
    ("ES", "phone", "612 34 56 78"), ("ES", "phone", "+34 612 345 678"),
    ("IT", "phone", "333 123 4567"), ("IT", "phone", "+39 06 1234 5678"),
    ("NL", "phone", "06-12345678"), ("NL", "phone", "+31 6 12345678"),
    ("DE", "iban", "DE89 3704 0044 0532 0130 00"), ("GB", "iban", "GB82 WEST 1234 5698 7654 32"),
    ("FR", "iban", "FR14 2004 1010 0505 0001 3M02 606"), ("ES", "iban", "ES91 2100 0418 4502 0005 1332"),
    ("IT", "iban", "IT60X0542811101000000123456"), ("NL", "iban", "NL91ABNA0417164300"),
    ("BR", "iban", "BR15 0000 0000 0000 1093 2840 814 P2"), ("CH", "iban", "CH93 0076 2011 6238 5295 7"),
    ("US", "email", "lena.fischer@example.com"), ("DE", "email", "j.mueller+kino@beispiel.de"),
    ("JP", "email", "taro_yamada@example.co.jp"), ("FR", "email", "Camille.Dupont@Exemple.FR"),
    ("US", "ip_address", "203.0.113.45"), ("US", "ip_address", "192.168.1.20"),
    ("US", "ip_address", "2001:db8:85a3::8a2e:370:7334"), ("DE", "ip_address", "fe80::1ff:fe23:4567:890a"),
    ("US", "credit_card", "4111 1111 1111 1111"), ("GB", "credit_card", "5500-0000-0000-0004"),
    ("FR", "credit_card", "378282246310005"),
]
TEMPLATES = ["you can reach me at {} tonight", "{}", "ok: {}.", "(new one: {})", "nr/number {} thx"]

LOOK_ALIKES = [
    ("US", "order #4155550134 shipped"), ("US", "order no. 1029384756 arrives Friday"),
    ("DE", "Bestellnummer 302-1234567-1234567"), ("US", "tracking 1Z999AA10123456784"),
    ("US", "meet at 10:30, or 14:45:00 at the latest"), ("FR", "rdv le 12/05/2024 à 18h30"),
    ("US", "2024-01-15 10:30:00"), ("DE", "am 15.01.2024 10:30"), ("US", "on 01/15/2024 10:30 am"), ("US", "released v1.2.3 and 10.0.19041.1234"),
    ("US", "commit 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"), ("US", "fixed in 3e4a1b2, see a1b2c3d4e5f6"),
    ("US", "it was $1,299.00, down from $1,499"), ("DE", "kostet 1.299,00 € statt 1.499 €"),
    ("JP", "¥12,800 (税込)"), ("US", "score was 3-1, then 21-19"), ("US", "room 404, floor 12"),
    ("US", "the 1.2.3.4.5 release train"), ("US", "std::vector<int> and a::b"),
    ("US", "ISBN 978-3-16-148410-0"), ("US", "pi is 3.14159265358979"), ("US", "ran 5 km in 25:13"),
    ("US", "population 8,336,817"), ("US", "call it 20 minutes"), ("GB", "flight BA 2490 at 07:15"),
    ("US", "uuid 123e4567-e89b-12d3-a456-426614174000"), ("US", "see PR #12345 and issue 6789"),
    ("IN", "PIN 560001, Bengaluru"), ("DE", "PLZ 10115 Berlin"), ("US", "zip 94107-1234"),
    ("US", "HTTP 503 after 30000 ms"), ("US", "1920x1080 at 144Hz"),
]


def main() -> int:
    found, total, missed = Counter(), Counter(), []
    countries = {c for c, _, _ in PLANTED}
    for country, kind, value in PLANTED:
        for template in TEMPLATES:
            total[kind] += 1
            out, types = redact_str(template.format(value), pii=True, region=country)
            if value not in out and kind in types:
                found[kind] += 1
            else:
                missed.append((country, kind, template.format(value), out))
    false_positives = []
    for country, text in LOOK_ALIKES:
        out, types = redact_str(text, pii=True, region=country)
        if out != text:
            false_positives.append((country, text, out))
    print(f"planted PII: {len(PLANTED)} values x {len(TEMPLATES)} contexts, {len(countries)} countries")
    for kind in sorted(total):
        print(f"  {kind:<12} recall {found[kind]:>3}/{total[kind]:<3} {found[kind] / total[kind]:6.1%}")
    all_found, all_total = sum(found.values()), sum(total.values())
    print(f"  {'all':<12} recall {all_found:>3}/{all_total:<3} {all_found / all_total:6.1%}")
    print(f"look-alikes: {len(false_positives)}/{len(LOOK_ALIKES)} changed (false positives)")
    for row in missed[:20]:
        print("  missed:", *row)
    for row in false_positives:
        print("  false positive:", *row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
