"""Redact secrets (and optionally personal data) before text can reach a dataset.

Each secret becomes a typed placeholder, `[SECRET:<type>]` (`[PII:<type>]` for personal
data), and every replacement is listed in the `redactions` column so SQL can count what
was removed. Patterns are Rust regexes run by Polars, so they have no look-around:
context that must stay (the `password=` before a value, the user and host around a URL
password) is captured as `pre`/`post` and written back. Placeholders start with `[`,
which no pattern accepts where a secret starts, so redacting twice changes nothing.

Only rows that some pattern can match are processed: a cheap hint regex passes over
every row, the union of all patterns runs on the rows it keeps, and the per-pattern
passes only on the rows the union matches; results are put back in place.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import NamedTuple

import phonenumbers
import polars as pl
from stdnum import iban as stdnum_iban

from etl.transforms.text import KEEP, merge_rows, rewrite_flagged_rows

REDACTIONS = "redactions"
REASONS: tuple[str, ...] = ()  # it rewrites text and drops nothing
_B = r"(?-u:\b)"  # ASCII word boundary: secrets are ASCII, and it keeps the regex on the fast engine

# Characters a token may be made of, and where a key's value stops.
_TOKEN = r"[A-Za-z0-9_\-./+=~]"
_VALUE_STOP = r"[^\s\"'\[\]<>(){},;&`]"
# A key name must not continue a word or a placeholder ("[SECRET:…" is not a key).
_KEY_START = r"(?:\A|[^\w\[.\-])"


class SecretPattern(NamedTuple):
    """One row of the pattern table.

    `group` names the capture holding the secret: "0" replaces the whole match;
    "secret" replaces only that group and keeps the `pre`/`post` groups around it.
    `verify`, when set, is asked about each match (the secret's text) in Python and
    only confirmed matches are replaced; the regex then only selects candidates.
    `rewrite` goes further: it gets each candidate and the placeholder and returns the
    text to put in its place (for a card number inside a longer run of digits).
    """

    name: str
    pattern: str
    group: str = "0"
    verify: Callable[[str], bool] | None = None
    kind: str = "SECRET"
    rewrite: Callable[[str, str], str] | None = None

    @property
    def in_python(self) -> bool:
        return self.verify is not None or self.rewrite is not None

    @property
    def placeholder(self) -> str:
        return f"[{self.kind}:{self.name}]"

    @property
    def replacement(self) -> str:
        if self.group == "0":
            return self.placeholder
        return "${pre}" + self.placeholder + "${post}"


# ---------------------------------------------------------------- verifiers


def luhn_valid(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = ord(ch) - 48
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# Issuer prefixes of the major networks: a Luhn-valid order number is not a card.
_CARD_ISSUER = re.compile(r"4|5[1-5]|2[2-7]|3[47]|3[0689]|6(?:011|5|4[4-9]|2)|35|50|5[6-9]")


def is_card_number(candidate: str) -> bool:
    digits = re.sub(r"[ -]", "", candidate)
    return 13 <= len(digits) <= 19 and bool(_CARD_ISSUER.match(digits)) and luhn_valid(digits)


def redact_card_numbers(candidate: str, placeholder: str) -> str:
    """Replace the card numbers inside a run of digit groups ("4111 1111 1111 1111 2024"
    is a card and a year): from each group, the longest run of whole groups (at most
    19 digits) that is a valid card wins."""
    groups = [(m.start(), m.end()) for m in re.finditer(r"[0-9]+", candidate)]
    out, i, last = [], 0, 0
    while i < len(groups):
        best, digits = None, ""
        for j in range(i, len(groups)):
            digits += candidate[groups[j][0] : groups[j][1]]
            if len(digits) > 19:
                break
            if len(digits) >= 13 and _CARD_ISSUER.match(digits) and luhn_valid(digits):
                best = j
        if best is None:
            i += 1
            continue
        out += [candidate[last : groups[i][0]], placeholder]
        last, i = groups[best][1], best + 1
    return "".join(out) + candidate[last:]


def is_phone_number(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    return 9 <= len(digits) <= 15


def is_token_value(candidate: str) -> bool:
    """A value after a generic key (`token=`, `secret:`) that looks machine-made:
    at least 8 characters with a letter, and a digit or at least 16 characters."""
    has_digit = any(ch.isdigit() for ch in candidate)
    has_letter = any(ch.isalpha() for ch in candidate)
    return len(candidate) >= 8 and has_letter and (has_digit or len(candidate) >= 16)


# ---------------------------------------------------------------- the table

_GENERIC_KEYS = r"(?i:[a-z0-9_.\-]*(?:secret|token|apikey|[_\-]key))"  # api_key, SECRET_KEY, signing-key
_PASSWORD_KEYS = r"(?i:[a-z0-9_.\-]*(?:password|passwd|pwd|passphrase))"
_ASSIGN = r"[\"']?[ \t]*[:=][ \t]*[\"']?"

# Ordered: specific formats before generic ones, so a key inside `token=` is typed by
# its provider, not as a generic assignment.
SECRET_PATTERNS: tuple[SecretPattern, ...] = (
    SecretPattern(
        "private_key",
        # PEM, OpenSSH, PGP; also JSON-escaped ("\n") as in a GCP service-account file,
        # and a pasted key missing its END line (up to where the base64 stops).
        r"-----BEGIN[A-Z ]{0,30}PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]*?-----END[A-Z ]{0,30}PRIVATE KEY(?: BLOCK)?-----|(?:[A-Za-z0-9+/=\s]|\\[nr])*)",
    ),
    SecretPattern("jwt", rf"{_B}eyJ[A-Za-z0-9_-]{{8,}}\.eyJ[A-Za-z0-9_-]{{8,}}\.[A-Za-z0-9_-]{{16,}}"),
    SecretPattern("anthropic_api_key", rf"{_B}sk-ant-[A-Za-z0-9_-]{{20,}}"),
    SecretPattern("openai_api_key", rf"{_B}sk-(?:(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{{20,}}|[A-Za-z0-9]{{32,}})"),
    SecretPattern("stripe_key", rf"{_B}(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{{10,}}|whsec_[A-Za-z0-9]{{24,}})"),
    SecretPattern("github_token", rf"{_B}(?:gh[pousr]_[A-Za-z0-9]{{36,255}}|github_pat_[A-Za-z0-9_]{{22,255}})"),
    SecretPattern("gitlab_token", rf"{_B}glpat-[A-Za-z0-9_-]{{20,}}"),
    SecretPattern("slack_webhook", r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{8,}"),
    SecretPattern("slack_token", rf"{_B}(?:xox[abeoprs]-[A-Za-z0-9-]{{10,}}|xapp-[0-9]-[A-Za-z0-9-]{{10,}})"),
    SecretPattern(
        "aws_access_key",
        rf"{_B}(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{{16}}{_B}",
    ),
    SecretPattern(
        "aws_secret_key",
        # Forty base64 characters are only a secret next to their key name.
        r"(?P<pre>(?i:aws_?secret_?access_?key|aws_?secret_?key|secret_?access_?key)" + _ASSIGN + ")"
        r"(?P<secret>[A-Za-z0-9/+]{40})(?P<post>[^A-Za-z0-9/+=]|\z)",
        group="secret",
    ),
    SecretPattern("google_api_key", rf"{_B}AIza[0-9A-Za-z_-]{{35}}"),
    SecretPattern("google_oauth_token", rf"{_B}(?:ya29\.[0-9A-Za-z_-]{{20,}}|GOCSPX-[0-9A-Za-z_-]{{20,}})"),
    SecretPattern("huggingface_token", rf"{_B}hf_[A-Za-z0-9]{{30,}}"),
    SecretPattern("npm_token", rf"{_B}npm_[A-Za-z0-9]{{36}}{_B}"),
    SecretPattern("pypi_token", rf"{_B}pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{{50,}}"),
    SecretPattern("sendgrid_api_key", rf"{_B}SG\.[A-Za-z0-9_-]{{16,32}}\.[A-Za-z0-9_-]{{16,64}}"),
    SecretPattern("twilio_api_key", rf"{_B}SK[0-9a-fA-F]{{32}}{_B}"),
    SecretPattern("mailgun_api_key", rf"{_B}key-[0-9a-zA-Z]{{32}}{_B}"),
    SecretPattern("mailchimp_api_key", rf"{_B}[0-9a-f]{{32}}-us[0-9]{{1,2}}{_B}"),
    SecretPattern("digitalocean_token", rf"{_B}do[opr]_v1_[a-f0-9]{{64}}{_B}"),
    SecretPattern("shopify_token", rf"{_B}shp(?:at|ca|pa|ss)_[a-fA-F0-9]{{32}}{_B}"),
    SecretPattern("square_token", rf"{_B}sq0(?:atp|csp)-[0-9A-Za-z_-]{{22,43}}"),
    SecretPattern("databricks_token", rf"{_B}dapi[a-f0-9]{{32}}{_B}"),
    # No boundary in front: the token follows "bot" in API URLs (…/bot123456:AA…/sendMessage).
    SecretPattern("telegram_bot_token", r"[0-9]{8,10}:AA[0-9A-Za-z_-]{33}"),
    SecretPattern(
        "discord_bot_token", rf"{_B}[MNO][A-Za-z0-9_-]{{23,25}}\.[A-Za-z0-9_-]{{6}}\.[A-Za-z0-9_-]{{27,38}}{_B}"
    ),
    SecretPattern(
        "azure_storage_key", r"(?P<pre>AccountKey=)(?P<secret>[A-Za-z0-9+/]{86}==)(?P<post>)", group="secret"
    ),
    SecretPattern(
        "url_password",
        # scheme://user:PASSWORD@host: user and host stay.
        rf"(?P<pre>{_B}[a-zA-Z][a-zA-Z0-9+.\-]{{1,20}}://[^\s:/@\[\]]*:)(?P<secret>[^\s/@\[\]]+)(?P<post>@)",
        group="secret",
    ),
    SecretPattern(
        "bearer_token",
        rf"(?P<pre>{_B}(?i:bearer)[ \t]+)(?P<secret>[A-Za-z0-9\-._~+/]{{16,}}=*)(?P<post>)",
        group="secret",
    ),
    SecretPattern(
        "basic_auth",
        r"(?P<pre>(?i:authorization)[ \t]*:[ \t]*(?i:basic)[ \t]+)(?P<secret>[A-Za-z0-9+/]{8,}=*)(?P<post>)",
        group="secret",
    ),
    # A quoted password may contain spaces: up to the closing quote.
    SecretPattern(
        "password_assignment",
        rf"(?P<pre>{_KEY_START}{_PASSWORD_KEYS}[\"']?[ \t]*[:=][ \t]*\")(?P<secret>[^\"\n\[][^\"\n]*)(?P<post>\")",
        group="secret",
    ),
    SecretPattern(
        "password_assignment",
        rf"(?P<pre>{_KEY_START}{_PASSWORD_KEYS}[\"']?[ \t]*[:=][ \t]*')(?P<secret>[^'\n\[][^'\n]*)(?P<post>')",
        group="secret",
    ),
    SecretPattern(
        "password_assignment",
        rf"(?P<pre>{_KEY_START}{_PASSWORD_KEYS}{_ASSIGN})(?P<secret>{_VALUE_STOP}{{3,}})(?P<post>)",
        group="secret",
    ),
    SecretPattern(
        "password_assignment",
        rf"(?P<pre>{_KEY_START}{_GENERIC_KEYS}{_ASSIGN})(?P<secret>{_TOKEN}{{8,}})(?P<post>)",
        group="secret",
        verify=is_token_value,
    ),
    # A whole run of digit groups is one candidate; the rewrite finds the card(s) in it.
    SecretPattern("credit_card", rf"{_B}[0-9](?:[ -]?[0-9]){{12,}}{_B}", rewrite=redact_card_numbers),
)

def is_ip_address(candidate: str) -> bool:
    """An IPv4 address of exactly four parts (a longer dotted version is not one), or an
    IPv6 address with at least three groups or a digit-bearing first group ("std::map"
    and "a::b" are code)."""
    if "." in candidate and ":" not in candidate:
        parts = candidate.split(".")
        return len(parts) == 4 and _valid_ip(candidate)
    groups = [g for g in candidate.split(":") if g]
    if len(groups) < 3 and not (groups and len(groups[0]) >= 3 and any(c.isdigit() for c in groups[0])):
        return False
    return _valid_ip(candidate)


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def redact_ibans(candidate: str, placeholder: str) -> str:
    """An IBAN as written, in groups of four or in one piece: the longest run of whole
    groups from the start that passes the country length and mod-97 checks."""
    tokens = candidate.split(" ")
    for end in range(len(tokens), 0, -1):
        if stdnum_iban.is_valid("".join(tokens[:end]).upper()):
            return " ".join([placeholder, *tokens[end:]])
    return candidate


# Where a phone number may be: a run of digits and the separators people write in
# numbers, from a word boundary, a '+' or a '('. A leading '#' is taken along so that
# "order #4155550134" can be told apart (a number after '#' is a reference, not a phone).
_PHONE_CANDIDATE = rf"#?(?:\+|\(|{_B})[0-9](?:[ .\-/]{{0,2}}\(?[0-9]\)?){{5,20}}{_B}"
_PHONE_FALLBACK = re.compile(
    r"(?:\+|\b00)[1-9][0-9]{0,2}[ .\-]?(?:\([0-9]{1,4}\)[ .\-]?)?"
    r"[0-9]{1,4}(?:[ .\-]?[0-9]{1,4}){1,5}\b"
    r"|\([0-9]{2,4}\)[ .\-]?[0-9]{3,4}[ .\-]?[0-9]{3,4}\b"
    r"|\b0[0-9]{1,4}[ .\-][0-9]{2,8}(?:[ .\-][0-9]{2,4}){0,3}\b"
    r"|\b[0-9]{3}[.\-][0-9]{3}[.\-][0-9]{4}\b",
    re.ASCII,
)


# "2024-01-15 10" is a date and an hour to a reader, even where its digits dial.
_DATE = re.compile(r"(?:19|20)[0-9]{2}[-/.][01]?[0-9][-/.][0-3]?[0-9]|[0-3]?[0-9][-/.][01]?[0-9][-/.](?:19|20)[0-9]{2}")


@functools.cache
def phone_rewriter(region: str | None) -> Callable[[str, str], str]:
    """Replace the phone numbers `phonenumbers` finds in a candidate, read as the owner
    writes them (`region`, e.g. "DE": "0151 23456789" is a German mobile); "+" and "00"
    international forms are found in any region. Without a region, national forms fall
    back to the shapes most countries use, checked for 9 to 15 digits."""
    matcher_region = (region or "ZZ").upper()

    def rewrite(candidate: str, placeholder: str) -> str:
        if candidate.startswith("#"):
            return candidate
        # "0049 30 …" is "+49 30 …" to a reader in any country; same length keeps the spans.
        probe = re.sub(r"(?<![0-9])00(?=[1-9])", " +", candidate)
        spans = [
            (m.start - 1 if candidate[m.start - 1 : m.start + 1] == "00" else m.start, m.end)
            for m in phonenumbers.PhoneNumberMatcher(probe, matcher_region)
            if not _DATE.search(m.raw_string)
        ]
        if region is None:
            taken = [(m.start(), m.end()) for m in _PHONE_FALLBACK.finditer(candidate) if is_phone_number(m.group(0))]
            spans += [t for t in taken if not any(a < t[1] and t[0] < b for a, b in spans)]
        if not spans:
            return candidate
        out, last = [], 0
        for start, end in sorted(spans):
            if start < last:
                continue
            out += [candidate[last:start], placeholder]
            last = end
        return "".join(out) + candidate[last:]

    return rewrite


def _pii_patterns(region: str | None) -> tuple[SecretPattern, ...]:
    return (
        SecretPattern(
            "email", rf"{_B}[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{{2,}}{_B}", kind="PII"
        ),
        SecretPattern(
            "iban", rf"{_B}(?i:[A-Z]{{2}}[0-9]{{2}}(?: ?[A-Z0-9]){{11,32}}){_B}", rewrite=redact_ibans, kind="PII"
        ),
        SecretPattern(
            "ip_address",
            rf"{_B}[0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}}(?:\.[0-9]+)*{_B}"
            rf"|{_B}(?i:[0-9a-f]{{1,4}}(?::{{1,2}}[0-9a-f]{{1,4}}){{1,7}}){_B}",
            verify=is_ip_address,
            kind="PII",
        ),
        SecretPattern("phone", _PHONE_CANDIDATE, rewrite=phone_rewriter(region), kind="PII"),
    )


@functools.cache
def pii_patterns(region: str | None = None) -> tuple[SecretPattern, ...]:
    """The personal-data types, phone numbers read for `region` (ISO 3166, e.g. "US")."""
    return _pii_patterns(region.upper() if region else None)


PII_PATTERNS = pii_patterns(None)


# A cheap necessary condition for any pattern: provider prefixes (case-sensitive, as in
# the patterns), key names in any case, a run of digits, '+(' before a digit, '@'. One
# pass over every row; the full union then runs on the few rows it keeps. Adding a
# provider means adding its prefix here too (a test plants one of each).
_HINT = (
    r"-----BEGIN|eyJ|sk-|sk_|rk_|whsec_|gh[pousr]_|github_pat_|glpat-|hooks\.slack|xox|xapp-"
    r"|A[BCGIKNPRS][A-Z]A|AIza|ya29\.|GOCSPX-|hf_|npm_|pypi-|SG\.|SK[0-9a-fA-F]|key-|-us[0-9]|_v1_|shp|sq0"
    r"|dapi|:AA|[MNO][A-Za-z0-9_-]{23,25}\.|://"
    r"|(?i:bearer|basic|pass|pwd|secret|token|key)"
    r"|[0-9][ .\-]?[0-9][ .\-]?[0-9][ .\-]?[0-9]|[+(][0-9]|@|::|[0-9a-fA-F]:[0-9a-fA-F]"
)


def _patterns(pii: bool, region: str | None = None) -> tuple[SecretPattern, ...]:
    return SECRET_PATTERNS + (pii_patterns(region) if pii else ())


@functools.cache
def _python_regex(pattern: str) -> re.Pattern[str]:
    """The same pattern for Python's `re` (used only on the rows a verifier needs)."""
    return re.compile(pattern.replace(_B, r"\b").replace(r"\z", r"\Z"), re.ASCII)


def _verified_replace(pattern: SecretPattern) -> Callable[[pl.Series], pl.Series]:
    regex = _python_regex(pattern.pattern)
    verify = pattern.verify

    def replace_match(m: re.Match[str]) -> str:
        if pattern.rewrite is not None:
            return pattern.rewrite(m.group(0), pattern.placeholder)
        assert verify is not None
        if pattern.group == "0":
            return pattern.placeholder if verify(m.group(0)) else m.group(0)
        if not verify(m.group("secret")):
            return m.group(0)
        return (m.group("pre") or "") + pattern.placeholder + (m.group("post") or "")

    def replace_series(s: pl.Series) -> pl.Series:
        mask = s.is_not_null()
        if not mask.any():
            return s
        values = [regex.sub(replace_match, v) for v in s.filter(mask).to_list()]
        return s.scatter(mask.arg_true(), pl.Series(values, dtype=pl.String))

    return replace_series


@functools.cache
def _union(patterns: tuple[SecretPattern, ...]) -> str:
    """One regex matching wherever any pattern could (group names dropped: they repeat)."""
    return "|".join(f"(?:{re.sub(r'[(][?]P<[a-z]+>', '(?:', p.pattern)})" for p in patterns)


def _redact_column(
    lf: pl.LazyFrame, column: str, patterns: Iterable[SecretPattern]
) -> tuple[pl.LazyFrame, list[tuple[str, str]]]:
    """Apply the patterns to one column in order; returns the frame and, per pattern,
    its type name and the column counting its replacements."""
    counts = []
    for i, pattern in enumerate(patterns):
        count = f"_redact_{column}_{i}"
        col = pl.col(column)
        if not pattern.in_python:
            lf = lf.with_columns(
                col.str.count_matches(pattern.pattern).alias(count),
                col.str.replace_all(pattern.pattern, pattern.replacement),
            )
        else:
            before = col.str.count_matches(pattern.placeholder, literal=True)
            candidates = pl.when(col.str.contains(pattern.pattern)).then(col)
            replaced = pl.coalesce(
                candidates.map_batches(_verified_replace(pattern), return_dtype=pl.String, is_elementwise=True),
                col,
            )
            lf = lf.with_columns(replaced, before.alias(count)).with_columns(
                (col.str.count_matches(pattern.placeholder, literal=True) - pl.col(count)).alias(count)
            )
        counts.append((pattern.name, count))
    return lf, counts


def _redact_rows(rows: pl.DataFrame, columns: tuple[str, ...], pii: bool, region: str | None = None) -> pl.DataFrame:
    """The hinted rows: the full union finds the ones with a candidate, and only those
    go through the per-pattern passes."""
    patterns = _patterns(pii, region)
    union = _union(patterns)
    empty = pl.lit([], dtype=pl.List(pl.String))
    has_previous = REDACTIONS in rows.columns
    previous = (
        rows[REDACTIONS].fill_null([])
        if has_previous
        else pl.repeat([], rows.height, dtype=pl.List(pl.String), eager=True).alias(REDACTIONS)
    )
    matched = rows.select(pl.any_horizontal([pl.col(c).str.contains(union).fill_null(False) for c in columns]))
    positions = matched.to_series().arg_true()
    if not len(positions):
        return rows.select(*columns).with_columns(previous)

    candidates = rows.select(*columns).gather(positions)
    all_counts = []
    for column in columns:
        # Only the patterns that match somewhere in this batch get a pass.
        present = candidates.select(
            [pl.col(column).str.contains(p.pattern).any().alias(str(i)) for i, p in enumerate(patterns)]
        ).row(0)
        active = [p for p, hit in zip(patterns, present) if hit]
        candidates, counts = _redact_column(candidates.lazy(), column, active)
        candidates = candidates.collect()
        all_counts += counts
    # Each type name repeated `count` times, joined then split: per-row list building
    # (repeat_by, concat_list) is far slower in Polars than string concatenation.
    repeated = [
        pl.lit("").str.pad_end(pl.col(count), "x").str.replace_all("x", name + ",", literal=True)
        for name, count in all_counts
    ]
    joined = pl.concat_str(repeated).str.strip_chars_end(",")
    found = pl.when(joined != "").then(joined.str.split(",")).otherwise(empty)
    done = candidates.select(*columns, found.alias(REDACTIONS))
    new_lists = pl.concat_list([pl.lit(previous.gather(positions)), done[REDACTIONS]]) if has_previous else None
    out = {c: merge_rows(rows[c], positions, done[c]) for c in columns}
    out[REDACTIONS] = merge_rows(
        previous, positions, done[REDACTIONS] if new_lists is None else pl.select(new_lists).to_series()
    )
    return pl.DataFrame(out)


def redact_secrets(
    lf: pl.LazyFrame, *, pii: bool = False, columns: Iterable[str] = ("text",), region: str | None = None
) -> pl.LazyFrame:
    """Replace secrets in the string `columns` with `[SECRET:<type>]` (and, with
    `pii=True`, email addresses, phone numbers as written in `region` or with a
    country code, IBANs and IP addresses with `[PII:<type>]`).

    Adds (or extends) `redactions`: List(String), one entry per replacement, the type
    name. Idempotent: a second run changes no text and adds no entries.
    """
    columns = tuple(columns)
    names = lf.collect_schema().names()
    missing = [c for c in columns if c not in names]
    if missing:
        raise KeyError(f"redact_secrets: no column {missing[0]!r}")
    has_previous = REDACTIONS in names
    return rewrite_flagged_rows(
        lf,
        flag=pl.any_horizontal([pl.col(c).str.contains(_HINT).fill_null(False) for c in columns]),
        inputs=[*columns, *([REDACTIONS] if has_previous else [])],
        process=lambda rows: _redact_rows(rows, columns, pii, region),
        outputs={
            **{c: (pl.String, KEEP) for c in columns},
            REDACTIONS: (pl.List(pl.String), KEEP if has_previous else []),
        },
    )


def redact_str(s: str, pii: bool = False, region: str | None = None) -> tuple[str, list[str]]:
    """`redact_secrets` on one string: the redacted text and the types replaced."""
    frame = pl.DataFrame({"text": [s]}, schema={"text": pl.String})
    row = redact_secrets(frame.lazy(), pii=pii, region=region).collect().row(0, named=True)
    return row["text"], row[REDACTIONS]
