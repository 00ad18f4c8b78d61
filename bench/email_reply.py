"""How often the reply of a mail comes out exactly right: ours next to mail-parser-reply
and email-reply-parser, per language and per client shape.

    pip install -e '.[bench]' && python bench/email_reply.py

Cases: the evaluation corpus of tests/email_corpus.py (25 languages x the owner's texts
under 15 client shapes, and the owner's texts alone, which must come back unchanged), and
the open suites in ../shared/fixtures/email_reply/ (talon's plain-text cases and standard
replies, github's and zapier's emails with a stated reply). A case passes when the reply,
stripped of outer whitespace, equals the expected one. Also times ours on an 8 MB line.
"""

from __future__ import annotations

import argparse
import collections
import email
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from email_corpus import LANGUAGES, cases  # noqa: E402

from etl.transforms.replies import strip_reply  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures" / "email_reply"


def open_suites() -> list[tuple[str, str, str, str]]:
    """(suite, shape, body, expected) from the shared fixtures, where they state a reply."""
    out = []
    if not FIXTURES.exists():
        return out
    for case in json.loads((FIXTURES / "talon/inline_text_cases.json").read_bytes())["cases"]:
        out.append(("talon", "inline", case["input"], case["expected"]))
    for path in sorted((FIXTURES / "talon/standard_replies").glob("*.eml")):
        message = email.message_from_binary_file(path.open("rb"))
        part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
        out.append(("talon", "standard", part.get_payload(decode=True).decode("utf-8"), "Hello"))
    for suite, folder in (("github", "github_email_reply_parser"), ("zapier", "zapier_email_reply_parser")):
        for case in json.loads((FIXTURES / folder / "expected.json").read_bytes())["cases"]:
            expected = case.get("expected_reply", case.get("expected_reply_stripped"))
            if expected is None or "file" not in case:
                continue
            body = (FIXTURES / folder / case["file"]).read_bytes().decode("utf-8")
            out.append((suite, "file", body, expected))
    return out


def parsers() -> dict:
    found = {"etl": strip_reply}
    try:
        from mailparser_reply import EmailReplyParser as MultiLanguage
        from mailparser_reply.constants import MAIL_LANGUAGES

        multi = MultiLanguage(languages=sorted(set(MAIL_LANGUAGES) & set(LANGUAGES)))
        found["mail-parser-reply"] = lambda text: multi.parse_reply(text=text)
    except ImportError:
        print("mail-parser-reply is not installed (pip install -e '.[bench]'): left out", file=sys.stderr)
    try:
        from email_reply_parser import EmailReplyParser

        found["email-reply-parser"] = EmailReplyParser.parse_reply
    except ImportError:
        print("email-reply-parser is not installed (pip install -e '.[bench]'): left out", file=sys.stderr)
    return found


def score(cases_, parse) -> dict[str, collections.Counter]:
    by = {"language": collections.Counter(), "shape": collections.Counter(), "total": collections.Counter()}
    for group, shape, body, expected in cases_:
        try:
            ok = (parse(body) or "").strip() == expected.strip()
        except Exception:  # noqa: BLE001  # a parser that raises fails the case
            ok = False
        for key, value in (("language", group), ("shape", shape), ("total", "all")):
            by[key][(value, "n")] += 1
            by[key][(value, "ok")] += ok
    return by


def table(title: str, keys: list[str], scores: dict, kind: str) -> None:
    names = list(scores)
    print(f"\n{title}")
    print(f"| {kind} | cases | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for key in keys:
        n = scores[names[0]][kind][(key, "n")]
        cells = [f"{100 * scores[name][kind][(key, 'ok')] / n:.1f}%" for name in names]
        print(f"| {key} | {n} | " + " | ".join(cells) + " |")


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    corpus = cases()
    suites = open_suites()
    found = parsers()
    corpus_scores = {name: score(corpus, parse) for name, parse in found.items()}
    table("Evaluation corpus, per language", list(LANGUAGES) + ["all"], {
        n: {**s, "language": s["language"] + collections.Counter({("all", k): v for (g, k), v in s["total"].items()})}
        for n, s in corpus_scores.items()}, "language")  # fmt: skip
    shapes = list(dict.fromkeys(shape for _, shape, _, _ in corpus))
    table("Evaluation corpus, per client shape ('none': the owner's text alone)", shapes, corpus_scores, "shape")
    if suites:
        suite_scores = {name: score(suites, parse) for name, parse in found.items()}
        table("Open suites (../shared/fixtures/email_reply)", ["talon", "github", "zapier"], suite_scores, "language")
    huge = "Thanks\n\n" + "x" * 8_000_000 + "\n\nOn 5 Feb 2024, Jan <j@x.com> wrote:\n> q"
    start = time.perf_counter()
    strip_reply(huge)
    print(f"\netl on one 8 MB line and a quote: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
