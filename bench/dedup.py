"""Benchmark of the dedup stage on a synthetic message history.

    python bench/dedup.py --n 1000000

Generates N replies (Zipf-skewed canned chat lines, templated lines with
random slots, paragraphs), plants ~10% paraphrases of earlier replies (case,
punctuation, emoji, typo, filler word, word swap edits) and ~3% exact copies
(half with the same prompt too), each with a prompt, then times
``etl.transforms.dedup.deduplicate`` on the in-memory frame and scores it:

- recall: a planted paraphrase is caught when it ends in the same cluster as
  its source; reported overall and on the pairs whose exact character
  n-gram Jaccard (normalised texts) reaches the threshold;
- precision of near-duplicate drops (per distinct dropped text): the text is
  a planted paraphrase, or its exact Jaccard with its keeper reaches the
  threshold.

The corpus is generated in a child process and handed over as Parquet, so the
reported peak RSS is that of loading the frame and deduplicating it. Stage
times are wall seconds of the median round; process CPU seconds and the load
average are printed beside them, because on a shared machine the wall time
says more about the neighbours than about the code.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

CANNED = """ok|sounds good|merge it|on my way|on it|thanks!|thank you|lgtm|ship it|will do|yep|nope|done|
give me 5 min|show me the logs|can you send the link?|let me check|good call|makes sense|agreed|
no worries|sure thing|got it|perfect|nice|haha|lol|yes|no|maybe later|not sure|brb|back|ping me when it's up|
looks fine to me|approved|rebase please|can you add a test?|i'll take a look|running late, 10 min|
see you there|sounds like a plan|let's do it|i'm out today|call me|can't talk now|in a meeting|
what's the error?|works for me|same here|fixed|deployed|rolled back|it's green now|ci is red again|
that's weird|interesting|no idea|ask sam|good morning|good night|happy friday|congrats!|
nice work|great, thanks|sorry, my bad|my fault, fixing now|one sec|almost done|need 5 more minutes|
let me think about it|i disagree|fair point|true|exactly|right|cool|awesome|wow|ugh|
can we push it to tomorrow?|let's sync after lunch|send me the doc|i'll review tonight|
did you eat?|coming home soon|love you|miss you|what time?|where are you?|call you back|
which branch?|what's the ticket number?|is prod down?|who's on call?|restart it|try again|
clear the cache|check the env vars|did you pull main?|works on my machine|nice catch|good find""".replace(
    "\n", ""
).split("|")

NAMES = "sam alex jordan taylor casey morgan riley jamie drew quinn avery blake cameron dana eli finn gray harper ivy jules kai lee max noor omar pat reese sky tess uma val wes xan yara zoe".split()
OBJECTS = [
    "the deploy", "staging", "the auth module", "the login page", "the migration", "the api", "the dashboard",
    "the cron job", "the billing service", "the search index", "the ios build", "the android build",
    "the release notes", "the onboarding flow", "the cache layer", "the load balancer", "the db backup",
    "the test suite", "the docs", "the design doc", "the roadmap", "the invoice", "the flight", "the hotel",
    "the car", "dinner", "the kids' pickup", "the groceries", "the rent", "the dentist appointment",
    "the metrics pipeline", "the feature flag", "the rate limiter", "the webhook", "the queue worker",
]
TIMES = [
    "3pm", "tomorrow", "after lunch", "in 10 min", "monday", "tonight", "end of day", "friday", "next week",
    "this afternoon", "before standup", "9am", "noon", "after the meeting", "in an hour", "later today",
]
BRANCHES = ["main", "develop", "release", "hotfix", "feature/search", "feature/auth", "fix/login", "chore/deps"]
REPOS = ["api", "web", "infra", "mobile", "etl", "billing", "docs"]
TEMPLATES = [
    "can you check {obj} before {time}?",
    "did you see {url}",
    "pushed {commit} to {branch}",
    "meeting with {name} at {time}",
    "{name} said {obj} is broken again",
    "i'll look at {obj} {time}",
    "can we move {obj} to {time}?",
    "{obj} is done, can you review {url}",
    "just merged {url} into {branch}",
    "heads up: {obj} will be down {time}",
    "ask {name} about {obj}",
    "{name} is handling {obj}, ping them",
    "i think {obj} needs another pass",
    "the fix for {obj} is in {commit}",
    "running {n} minutes late for {obj}",
    "picked up {obj}, see you {time}",
    "reverted {commit}, {obj} was failing",
    "{obj} looks good to me, ship it {time}",
    "can you pair with {name} on {obj} {time}?",
    "blocked on {obj} until {name} replies",
    "opened {url} for {obj}",
    "rebased {branch} on main, conflicts in {obj}",
    "do we still need {obj}?",
    "remind me about {obj} {time}",
    "{name} wants a demo of {obj} {time}",
    "ci failed on {branch} at {commit}",
    "I moved {obj} to {time}, hope that works",
    "let's talk about {obj} with {name} {time}",
    "ticket for {obj}: {url}",
    "bumped {obj} by {n} percent",
]
SENTENCES = [
    "I looked into {obj} this morning and the root cause is a race in the worker.",
    "We should probably split this into two changes so review is easier.",
    "{name} and I talked about it and we both think the simpler option wins.",
    "The numbers from last week look fine but the tail latency is still high.",
    "I'd rather not touch {obj} before the release, it's too risky.",
    "If we do this now we save ourselves a painful migration later.",
    "Honestly I don't have strong feelings either way.",
    "Let's keep the old path behind a flag for a week and then delete it.",
    "I tested it locally with {n} requests and nothing broke.",
    "The docs are out of date, I'll fix them after this lands.",
    "My main worry is the error handling around {obj}.",
    "Can we get {name} to sign off before we merge?",
    "It took me {n} minutes to reproduce, so it's not flaky, it's real.",
    "I'm going to be offline {time} so please don't wait for me.",
    "That plan works for me as long as we write the tests first.",
    "I pushed a draft so you can see the direction.",
    "We tried that last year and it didn't scale past a few thousand users.",
    "Let me know if you want me to take over {obj}.",
    "Thanks for digging into this, really appreciate it.",
    "The weekend was great, we finally went hiking with {name}.",
]
PROMPTS = [
    "The deploy failed with a 503 error on the staging server.",
    "Should we refactor the auth module or just patch the bug?",
    "The PR is ready for review.",
    "are you coming tonight?",
    "Can you take a look at {url}?",
    "{name} is asking about {obj}.",
    "what do you think about {obj}?",
    "when can you look at {obj}?",
    "I pushed {commit}, can you check it?",
    "is {obj} still broken?",
    "thanks for the help with {obj}!",
    "dinner at {time}?",
    "who owns {obj}?",
    "we need a decision on {obj} by {time}.",
]
FILLERS = ["just", "like", "actually", "really", "um", "so", "basically", "honestly", "maybe", "pretty"]
EMOJI = ["👍", "😂", "🙏", "🔥", "✅", "😅", "🎉", "❤️", "👀", "🤔"]
SYNONYMS = {
    "ok": "okay", "okay": "ok", "good": "great", "great": "good", "thanks": "thx", "thank": "thx",
    "yes": "yeah", "yeah": "yes", "check": "look at", "look": "check", "fix": "patch", "broken": "busted",
    "review": "look over", "minutes": "mins", "min": "minutes", "tomorrow": "tmrw", "tonight": "later",
    "meeting": "call", "done": "finished", "think": "guess", "need": "want", "can": "could", "will": "gonna",
    "probably": "likely", "simpler": "easier", "fine": "ok", "sure": "yep", "later": "soon", "please": "pls",
}
KEYS = "qwertyuiopasdfghjklzxcvbnm"


def _slot(rng: random.Random, text: str) -> str:
    return text.format(
        obj=rng.choice(OBJECTS),
        time=rng.choice(TIMES),
        name=rng.choice(NAMES).capitalize() if rng.random() < 0.5 else rng.choice(NAMES),
        url=(
            f"https://github.com/acme/{rng.choice(REPOS)}/pull/{rng.randint(1, 9999)}"
            if rng.random() < 0.5
            else f"https://jira.example.com/browse/{rng.choice(['OPS', 'WEB', 'API'])}-{rng.randint(100, 99999)}"
        ),
        commit=f"{rng.getrandbits(28):07x}",
        branch=rng.choice(BRANCHES),
        n=rng.randint(2, 90),
    )


OPENERS = ["hey", "fyi", "btw", "so", "quick q:", "ok so", "heads up,", "hmm", "also", "sorry,", "ugh", "yo", "re the standup,", "one more thing:"]
TAILS = ["thanks", "lmk", "if you can", "no rush", "asap", "when you get a chance", "cool?", "sound ok?", "i think", "for now", "again", "👍", "😅", "🙏", "haha", "right?"]


def _chat_line(rng: random.Random) -> str:
    """A free-form chat line: a slotted core, sometimes an opener and a tail."""
    text = _slot(rng, rng.choice(TEMPLATES))
    if rng.random() < 0.4:
        opener = rng.choice(OPENERS)
        if opener in ("so", "also", "hmm") or rng.random() < 0.3:
            opener = rng.choice([opener, rng.choice(NAMES) + ","])
        text = f"{opener} {text}"
    if rng.random() < 0.35:
        text = f"{text} {rng.choice(TAILS)}"
    if rng.random() < 0.15:
        text = f"{text} {_slot(rng, rng.choice(TEMPLATES))}"
    return text.capitalize() if rng.random() < 0.3 else text


def _original(rng: random.Random, canned_w: list[float]) -> str:
    u = rng.random()
    if u < 0.33:
        text = rng.choices(CANNED, weights=canned_w)[0]
        if rng.random() < 0.3:
            text = text.capitalize()
        return text
    if u < 0.91:
        return _chat_line(rng)
    k = rng.randint(2, 6)
    return " ".join(_slot(rng, s) for s in rng.sample(SENTENCES, k))[:400]


def _edit(rng: random.Random, text: str) -> tuple[str, str]:
    kind = rng.choice(["case", "punct", "emoji", "typo", "filler", "swap"])
    words = text.split(" ")
    if kind == "case":
        if rng.random() < 0.5:
            text = text.upper() if len(text) < 20 and rng.random() < 0.3 else text[:1].swapcase() + text[1:]
        else:
            i = rng.randrange(len(words))
            words[i] = words[i].capitalize() if words[i][:1].islower() else words[i].lower()
            text = " ".join(words)
    elif kind == "punct":
        if text and text[-1] in ".!?":
            text = text[:-1] if rng.random() < 0.5 else text + text[-1]
        else:
            text = text + rng.choice([".", "!", "?", "!!", "..."])
    elif kind == "emoji":
        text = text + " " + rng.choice(EMOJI) if rng.random() < 0.8 else rng.choice(EMOJI) + " " + text
    elif kind == "typo":
        cands = [i for i, w in enumerate(words) if len(w) >= 3 and w.isalpha()]
        if not cands:
            return text + rng.choice(EMOJI), "emoji"
        i = rng.choice(cands)
        w = words[i]
        j = rng.randrange(len(w) - 1)
        op = rng.randrange(4)
        if op == 0:
            w = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
        elif op == 1:
            w = w[:j] + w[j + 1 :]
        elif op == 2:
            w = w[:j] + w[j] + w[j:]
        else:
            w = w[:j] + rng.choice(KEYS) + w[j + 1 :]
        words[i] = w
        text = " ".join(words)
    elif kind == "filler":
        words.insert(rng.randrange(len(words) + 1), rng.choice(FILLERS))
        text = " ".join(words)
    else:
        syn = [i for i, w in enumerate(words) if w.lower().strip(",.!?") in SYNONYMS]
        if syn and rng.random() < 0.7:
            i = rng.choice(syn)
            core = words[i].lower().strip(",.!?")
            words[i] = words[i].lower().replace(core, SYNONYMS[core])
        elif len(words) >= 2:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        else:
            return text + rng.choice(EMOJI), "emoji"
        text = " ".join(words)
    return text, kind


def generate(n: int, seed: int = 20251122) -> pl.DataFrame:
    rng = random.Random(seed)
    canned_w = [1.0 / (k + 1) ** 1.1 for k in range(len(CANNED))]
    responses: list[str] = []
    prompts: list[str] = []
    kinds: list[str] = []
    sources: list[int] = []
    edits: list[str] = []
    originals: list[int] = []
    for i in range(n):
        u = rng.random()
        if u < 0.10 and originals:
            # A paraphrase of an earlier original, mostly recent ones.
            src = originals[-1 - min(int(rng.expovariate(1 / 2000)), len(originals) - 1)]
            text, e1 = _edit(rng, responses[src])
            ed = e1
            if rng.random() < 0.3:
                text, e2 = _edit(rng, text)
                ed = f"{e1}+{e2}"
            responses.append(text)
            prompts.append(_slot(rng, rng.choice(PROMPTS)))
            kinds.append("paraphrase")
            sources.append(src)
            edits.append(ed)
        elif u < 0.13 and originals:
            src = originals[rng.randrange(len(originals))]
            responses.append(responses[src])
            prompts.append(prompts[src] if rng.random() < 0.5 else _slot(rng, rng.choice(PROMPTS)))
            kinds.append("copy")
            sources.append(src)
            edits.append("")
        else:
            responses.append(_original(rng, canned_w))
            prompts.append(_slot(rng, rng.choice(PROMPTS)))
            kinds.append("original")
            sources.append(-1)
            edits.append("")
            originals.append(i)
    t0 = datetime(2020, 1, 1)
    pre_dropped = [("too_short" if rng.random() < 0.01 else None) for _ in range(n)]
    df = pl.DataFrame(
        {
            "example_id": [f"ex{i:08d}" for i in range(n)],
            "prompt": prompts,
            "response": responses,
            "sent_at": pl.datetime_range(t0, t0 + timedelta(seconds=30 * (n - 1)), "30s", eager=True)
            if n
            else pl.Series([], dtype=pl.Datetime),
            "drop_reason": pl.Series(pre_dropped, dtype=pl.String),
            "kind": kinds,
            "source": sources,
            "edit": edits,
        }
    )
    # Input rows arrive in no particular order.
    return df.sample(fraction=1.0, shuffle=True, seed=seed)


def _char_ngrams(text: str, n: int) -> set[str]:
    if len(text) < n:
        return {text}
    return {text[i : i + n] for i in range(len(text) - n + 1)}


def _jaccard(a: str, b: str, n: int) -> float:
    x, y = _char_ngrams(a, n), _char_ngrams(b, n)
    return len(x & y) / len(x | y)


def score(data: pl.DataFrame, out: pl.DataFrame, cfg) -> dict:
    from etl.transforms.dedup import normalize_expr

    t = cfg.threshold
    df = (
        data.select("example_id", "kind", "source", "edit", "response")
        .join(out.select("example_id", "drop_reason", "dup_cluster", "dup_jaccard"), on="example_id")
        .with_columns(
            normalize_expr(pl.col("response")).alias("norm"),
            pl.col("example_id").str.slice(2).cast(pl.Int64).alias("i"),
        )
        .sort("i")
    )
    norm = df.get_column("norm").to_list()
    cluster = df.select(pl.coalesce("dup_cluster", "example_id")).to_series().to_list()
    reason = df.get_column("drop_reason").to_list()
    kind = df.get_column("kind").to_list()
    source = df.get_column("source").to_list()
    edit = df.get_column("edit").to_list()
    res: dict = {}
    # Recall of planted paraphrases whose source is still in play.
    caught = []
    for i, k in enumerate(kind):
        if k != "paraphrase":
            continue
        s = source[i]
        if reason[s] not in (None, "duplicate", "near_duplicate", "reply_repeats") or (
            reason[i] not in (None, "duplicate", "near_duplicate", "reply_repeats")
        ):
            continue  # one of the pair was dropped upstream
        j = _jaccard(norm[i], norm[s], cfg.ngram)
        same = cluster[i] == cluster[s]
        dropped = reason[i] in ("duplicate", "near_duplicate")
        caught.append((same, j >= t, norm[i] == norm[s], same or dropped, edit[i].split("+")[0]))
    arr = np.array([c[:4] for c in caught], dtype=bool).reshape(-1, 4)
    hi = arr[:, 1]
    res["planted_paraphrases"] = int(len(arr))
    res["recall_all"] = float(arr[:, 0].mean()) if len(arr) else None
    res["pairs_exact_j_ge_t"] = int(hi.sum())
    res["same_after_normalising"] = int(arr[:, 2].sum())
    # Same cluster as the source (the source's text kept, or the source's keeper).
    res["recall_exact_j_ge_t"] = float(arr[hi, 0].mean()) if hi.any() else None
    # Same cluster as the source, or dropped into another cluster.
    res["caught_exact_j_ge_t"] = float(arr[hi, 3].mean()) if hi.any() else None
    by_edit: dict[str, list[bool]] = {}
    for c in caught:
        by_edit.setdefault(c[4], []).append(c[0])
    res["recall_by_edit"] = {e: round(float(np.mean(v)), 3) for e, v in sorted(by_edit.items())}
    # Precision of near-duplicate drops, per distinct dropped text.
    first_of_id = {}
    planted_texts = {norm[i] for i, k in enumerate(kind) if k == "paraphrase"}
    ids = df.get_column("example_id").to_list()
    for i, eid in enumerate(ids):
        first_of_id[eid] = i
    dropped: dict[str, str] = {}
    for i, r in enumerate(reason):
        if r == "near_duplicate" and norm[i] not in dropped:
            dropped[norm[i]] = norm[first_of_id[cluster[i]]]
    good = near_miss = 0
    for text, keeper_text in dropped.items():
        if text in planted_texts:
            good += 1
            continue
        j = _jaccard(text, keeper_text, cfg.ngram)
        if j >= t:
            good += 1
        elif j >= t - 0.05:
            near_miss += 1
    res["near_dropped_texts"] = len(dropped)
    res["precision_near"] = good / len(dropped) if dropped else None
    # Wrong drops whose exact Jaccard with the keeper is within 0.05 of the threshold.
    res["wrong_drops_within_0.05"] = near_miss / max(1, len(dropped) - good)
    # Exact copies end in their source's cluster.
    copies = [cluster[i] == cluster[source[i]] for i, k in enumerate(kind) if k == "copy" and reason[i] != "too_short" and reason[source[i]] != "too_short"]
    res["exact_copy_recall"] = float(np.mean(copies)) if copies else None
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3, help="timed runs (after one warm-up)")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=20251122)
    ap.add_argument("--data", type=Path, default=None, help="cache the generated corpus here (Parquet)")
    ap.add_argument("--no-score", action="store_true")
    ap.add_argument("--generate-to", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.generate_to is not None:
        generate(args.n, args.seed).write_parquet(args.generate_to)
        return

    from etl.transforms.dedup import DedupConfig, deduplicate

    cfg = DedupConfig(threshold=args.threshold)
    tmp = None
    path = args.data
    if path is None or not path.exists():
        if path is None:
            tmp = tempfile.TemporaryDirectory()
            path = Path(tmp.name) / "corpus.parquet"
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--n", str(args.n), "--seed", str(args.seed), "--generate-to", str(path)],
            check=True,
        )
        print(f"generated {args.n:,} examples in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    data = pl.read_parquet(path)
    frame = data.select("example_id", "prompt", "response", "sent_at", "drop_reason")

    runs = []
    out = None
    for r in range(args.rounds + 1):
        t = time.perf_counter()
        out, found = deduplicate(frame, cfg, threads=args.threads)
        stats = {**found.as_dict(), "wall_s": time.perf_counter() - t}
        if r:
            runs.append(stats)
        print(
            f"{'warm-up' if not r else f'round {r}'}: {stats['wall_s']:.2f} s", file=sys.stderr
        )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    med = min(runs, key=lambda s: abs(s["wall_s"] - statistics.median(x["wall_s"] for x in runs)))
    stage_keys = ["normalise_s", "exact_s", "shingle_s", "signature_s", "banding_s", "verify_s", "greedy_s", "assign_s"]
    report = {
        "n": args.n,
        "threads": args.threads or "default",
        "threshold": cfg.threshold,
        "ngram": cfg.ngram,
        "num_perm": cfg.num_perm,
        "bands_rows": [med["lsh_bands"], med["lsh_rows"]],
        "wall_s_rounds": [round(s["wall_s"], 2) for s in runs],
        "wall_s_median": round(statistics.median(s["wall_s"] for s in runs), 2),
        "stages_s (median round)": {k: round(med[k], 3) for k in stage_keys},
        # Process CPU seconds (all threads): on a busy machine, a better guide
        # than wall time to what the stage costs.
        "stages_cpu_s (median round)": {k: round(med[k.replace("_s", "_cpu_s")], 3) for k in stage_keys},
        "total_cpu_s (median round)": round(med["total_cpu_s"], 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "distinct_texts": med["distinct_texts"],
        "shingles": med["shingles"],
        "signing_texts_per_s": round(med["distinct_texts"] / (med["shingle_s"] + med["signature_s"])),
        "signing_texts_per_cpu_s": round(
            med["distinct_texts"] / (med["shingle_cpu_s"] + med["signature_cpu_s"])
        ),
        "candidate_pairs": med["candidate_pairs"],
        "verified_pairs": med["verified_pairs"],
        "large_bucket_members": med["large_bucket_members"],
        "completion_checked": med["completion_checked"],
        "completion_rounds": med["completion_rounds"],
        "drops": {k: med[k] for k in ("duplicate", "near_duplicate", "reply_repeats")},
        "peak_rss_mib": round(peak_mib),
    }
    if not args.no_score:
        report["quality"] = score(data, out, cfg)
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
