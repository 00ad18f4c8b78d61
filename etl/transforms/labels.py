"""Who said what, without giving other people away.

In a group chat each line carries its speaker. That label is a name the owner
gave (contacts) or the export showed, or else a stable pseudonym, `Friend 1`,
`Friend 2`, … numbered by each person's first message in the version. A phone
number or an address is never a label: it is an identifier of someone who did not
agree to be in a dataset.

People are keyed by identity: a phone number in E.164 form (read by the
`phonenumbers` package with the owner's region, so `(415) 555-0167` and
`+1 415 555 0167` are one person), an address case-folded, anything else trimmed
and case-folded. A person with a name is keyed by the name, so the same friend
met in two apps gets one pseudonym.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping

import phonenumbers
import polars as pl

NAMES = "names"
PSEUDONYMS = "pseudonyms"
LABEL_MODES = (NAMES, PSEUDONYMS)
PSEUDONYM = "Friend {n}"

_PHONE_CHARS = re.compile(r"^\+?[\d\s().\-/]{5,}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@functools.lru_cache(maxsize=65536)
def normalise_phone(value: str, region: str | None) -> str | None:
    """E.164 of a phone number, or None when `value` is not one."""
    text = value.strip()
    if not _PHONE_CHARS.match(text) or sum(ch.isdigit() for ch in text) < 5:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, (region or "").upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def identity_key(value: str | None, region: str | None = None) -> str | None:
    """The form two mentions of one person share: E.164, a case-folded address, or the
    trimmed, case-folded value. `tel:`/`mailto:` prefixes are ignored."""
    if value is None:
        return None
    text = value.strip()
    lowered = text.lower()
    for prefix in ("tel:", "mailto:", "sms:"):
        if lowered.startswith(prefix):
            text = text[len(prefix):].strip()
    if not text:
        return None
    phone = normalise_phone(text, region)
    if phone is not None:
        return phone
    return text.casefold()


def looks_like_handle(value: str | None) -> bool:
    """A phone number, an email address or an @handle: never fit to be a label."""
    if not value:
        return False
    text = value.strip()
    return bool(_EMAIL.match(text) or text.startswith("@") or (
        _PHONE_CHARS.match(text) and sum(ch.isdigit() for ch in text) >= 5
    ))


def contact_lookup(contacts: Mapping[str, str], region: str | None) -> dict[str, str]:
    """`[contacts]` keyed by identity: `"+14155550167" = "Lena"`, `"(415) 555-0167"`
    and `"lena@example.com"` all work."""
    out = {}
    for handle, name in contacts.items():
        key = identity_key(str(handle), region)
        if key is not None and isinstance(name, str) and name.strip():
            out[key] = name.strip()
    return out


def apply_contacts(messages: pl.DataFrame, contacts: Mapping[str, str], region: str | None) -> pl.DataFrame:
    """Fill in or override `sender_name` from the owner's `[contacts]`, for every source."""
    lookup = contact_lookup(contacts, region)
    if not lookup or messages.height == 0:
        return messages
    senders = messages["sender"].unique().drop_nulls().to_list()
    named = {s: lookup[k] for s in senders if (k := identity_key(s, region)) in lookup}
    if not named:
        return messages
    return messages.with_columns(
        sender_name=pl.col("sender").replace_strict(named, default=pl.col("sender_name"), return_dtype=pl.String)
    )


def person_key(sender: str | None, name: str | None, region: str | None) -> str:
    """Who a message is by: the name when there is one, else the handle's identity."""
    if name and not looks_like_handle(name):
        return "name:" + name.strip().casefold()
    key = identity_key(sender, region) or identity_key(name, region)
    return "id:" + key if key else "id:"


def label_speakers(
    messages: pl.DataFrame, *, mode: str = NAMES, region: str | None = None
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Add `author`, the label of each message's speaker, and return the pseudonyms
    given (person key -> pseudonym).

    With `mode="names"` a person with a name is labelled by it and everyone else by a
    pseudonym; with `"pseudonyms"` everyone but the owner gets one. Pseudonyms are
    numbered by first message (sent_at, source, source_id), so the same warehouse and
    config always give the same labels.
    """
    if mode not in LABEL_MODES:
        raise ValueError(f"speaker_labels must be one of {', '.join(LABEL_MODES)}, not {mode!r}")
    if messages.height == 0:
        return messages.with_columns(author=pl.lit(None, pl.String)), {}
    others = pl.col("is_owner").fill_null(False).not_()
    people = (
        messages.filter(others)
        .select("sender", "sender_name", "sent_at", "source", "source_id")
        .sort(["sent_at", "source", "source_id"], nulls_last=True)
        .unique(["sender", "sender_name"], keep="first", maintain_order=True)
    )
    keys: dict[tuple[str | None, str | None], str] = {}
    names: dict[str, str] = {}
    pseudonyms: dict[str, str] = {}
    for sender, name in people.select("sender", "sender_name").iter_rows():
        key = person_key(sender, name, region)
        keys[(sender, name)] = key
        if mode == NAMES and name and not looks_like_handle(name):
            names.setdefault(key, name.strip())
        elif key not in pseudonyms:
            pseudonyms[key] = PSEUDONYM.format(n=len(pseudonyms) + 1)
    label = {pair: names.get(key) or pseudonyms[key] for pair, key in keys.items()}
    pairs = pl.DataFrame(
        {
            "sender": [s for s, _ in label],
            "sender_name": [n for _, n in label],
            "author": list(label.values()),
        },
        schema={"sender": pl.String, "sender_name": pl.String, "author": pl.String},
    )
    labelled = messages.join(pairs, on=["sender", "sender_name"], how="left", nulls_equal=True, maintain_order="left")
    return labelled.with_columns(author=pl.when(others).then(pl.col("author"))), pseudonyms


def contact_names(messages: pl.DataFrame, contacts: Iterable[str] = ()) -> list[str]:
    """The names of other people a version knows: their `sender_name`s and the owner's contacts."""
    others = messages.filter(pl.col("is_owner").fill_null(False).not_())
    found = {n.strip() for n in others["sender_name"].drop_nulls().to_list() if not looks_like_handle(n)}
    found |= {n.strip() for n in contacts if n and n.strip()}
    return sorted(n for n in found if n)


def name_pseudonyms(
    messages: pl.DataFrame,
    pseudonyms: Mapping[str, str],
    contacts: Iterable[str] = (),
    owner_names: Iterable[str] = (),
    region: str | None = None,
) -> dict[str, str]:
    """Each other person's name (as written) to their pseudonym, for replacing names
    inside texts. A contact who never speaks in the version gets the next numbers,
    in name order. The owner's own names are never replaced."""
    given = dict(pseudonyms)
    out: dict[str, str] = {}
    others = messages.filter(pl.col("is_owner").fill_null(False).not_())
    for sender, name in others.select("sender", "sender_name").unique().sort(["sender", "sender_name"]).iter_rows():
        key = person_key(sender, name, region)
        if name and not looks_like_handle(name) and key in given:
            out[name.strip()] = given[key]
    for name in sorted({n.strip() for n in contacts if n and n.strip()} - set(out)):
        key = person_key(None, name, region)
        if key not in given:
            given[key] = PSEUDONYM.format(n=len(given) + 1)
        out[name] = given[key]
    mine = {n.strip().casefold() for n in owner_names if n}
    return {n: p for n, p in out.items() if n.casefold() not in mine}


_LETTERS = re.compile(r"[^\W\d_]+")


def _name_words(name: str) -> list[str]:
    """The parts of a name worth replacing alone: three letters or more ("Jo" is too
    common a syllable), or two in a script without spaces between words (小明)."""
    return [w for w in _LETTERS.findall(name) if len(w) >= 3 or (len(w) == 2 and not w.isascii())]


def _name_regex(names: Mapping[str, str], owner_names: Iterable[str]) -> tuple[re.Pattern[str] | None, dict[str, str]]:
    """One alternation: full names in any case; a single part of a name ("Lena" of
    "Lena Fischer") only capitalised or in capitals, so "will" stays while "Will" goes,
    and only when it belongs to one person (an ambiguous part gets a typed placeholder)."""
    mine = {w.casefold() for n in owner_names for w in _name_words(n or "")}
    target: dict[str, str] = {}
    parts: dict[str, set[str]] = {}
    full = []
    for name, pseudonym in names.items():
        words = _name_words(name)
        if len(name.split()) > 1:
            full.append(name)
            target[name.casefold()] = pseudonym
        for word in words:
            if word.casefold() not in mine:
                parts.setdefault(word[:1].upper() + word[1:], set()).add(pseudonym)
    part_target = {w: (next(iter(p)) if len(p) == 1 else "[PII:name]") for w, p in parts.items()}
    for word, pseudonym in part_target.items():
        target[word] = pseudonym
        target[word.upper()] = pseudonym
    if not target:
        return None, {}
    full.sort(key=lambda n: (-len(n), n))
    words = sorted({w for p in part_target for w in (p, p.upper())}, key=lambda w: (-len(w), w))
    alternatives = [f"(?i:{re.escape(n)})" for n in full] + [re.escape(w) for w in words]
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)"), target


def replace_names(
    frame: pl.DataFrame, names: Mapping[str, str], owner_names: Iterable[str] = (), column: str = "text"
) -> tuple[pl.DataFrame, int]:
    """Replace other people's names inside `column` by their pseudonyms, and add a
    "name" entry to `redactions` per replacement. Returns the frame and the count."""
    regex, target = _name_regex(names, owner_names)
    if regex is None or frame.height == 0:
        return frame, 0
    needles = sorted({k.casefold() for k in target})
    hinted = frame[column].str.contains_any(needles, ascii_case_insensitive=True).fill_null(False)
    positions = hinted.arg_true()
    if not len(positions):
        return frame, 0

    def swap(m: re.Match[str]) -> str:
        found = m.group(0)
        return target.get(found) or target.get(found.casefold()) or target[found.upper()]

    texts, lists, total = [], [], 0
    previous = frame["redactions"].gather(positions).to_list() if "redactions" in frame.columns else None
    for i, text in enumerate(frame[column].gather(positions).to_list()):
        new, n = regex.subn(swap, text)
        texts.append(new)
        total += n
        if previous is not None:
            lists.append((previous[i] or []) + ["name"] * n)
    # Lists cannot be scattered in place: the changed rows are put back by row index.
    changed = {column: pl.Series(texts, dtype=pl.String)}
    if previous is not None:
        changed["redactions"] = pl.Series(lists, dtype=pl.List(pl.String))
    patch = pl.DataFrame({"_row": positions.cast(pl.UInt32), **changed})
    out = (
        frame.with_row_index("_row")
        .join(patch, on="_row", how="left", suffix="_new", maintain_order="left")
        .with_columns([pl.coalesce(f"{c}_new", c).alias(c) for c in changed])
        .drop("_row", *[f"{c}_new" for c in changed])
    )
    return out, total
