"""The corpus config: who the owner is and how a version is built.

Precedence, resolved in one place: command-line options > corpus.toml > defaults.
The resolved config is a frozen dataclass; its canonical JSON and hash go into
every manifest, so a version always says exactly how it was made.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl.schemas.errors import EtlError
from etl.schemas.owner import Owner
from etl.schemas.paths import etl_home
from etl.schemas.records import canonical_json

CONFIG_NAME = "corpus.toml"


@dataclass(frozen=True)
class BuildConfig:
    # One short persona line (seed 000, Finding 4): no tool history in the system prompt.
    system_prompt: str = "You are {owner}. Be direct, casual and brief, as you always are."
    min_response_chars: int = 10
    conversation_gap_hours: float = 6.0
    context_turns: int = 9  # odd, so the context always starts on a `user` turn
    context_chars: int = 4000
    dedup_threshold: float = 0.8
    dedup_ngram: int = 5
    dedup_num_perm: int = 128
    dedup_seed: int = 1
    max_reply_repeats: int = 3
    split_train: float = 0.9
    split_valid: float = 0.05
    split_test: float = 0.05
    split_seed: str = "etl"
    redact_pii: bool = False
    trajectory_tags: bool = False
    formats: tuple[str, ...] = ("chatml", "dpo")
    sources: tuple[str, ...] = ()  # empty: every source in the warehouse
    rejected_model: str | None = None  # which stored base-model answers feed DPO; None: any
    # How other people are labelled in group chats: "names" (a contact's or the
    # export's name, else a pseudonym) or "pseudonyms" (`Friend 1`, … for everyone).
    # Unset: names, but pseudonyms when redact_pii is on (a name is personal data too).
    speaker_labels: str = ""

    def __post_init__(self) -> None:
        if self.speaker_labels not in ("", "names", "pseudonyms"):
            raise EtlError(f'speaker_labels must be "names" or "pseudonyms", not {self.speaker_labels!r}')

    @property
    def label_mode(self) -> str:
        return self.speaker_labels or ("pseudonyms" if self.redact_pii else "names")

    def system_text(self, owner: Owner) -> str:
        return self.system_prompt.replace("{owner}", owner.display_name or "the owner")


@dataclass(frozen=True)
class Config:
    owner: Owner = field(default_factory=Owner)
    build: BuildConfig = field(default_factory=BuildConfig)
    # [sources.NAME] tables: defaults for that connector's options (`etl ingest NAME`);
    # the command line overrides them. Not part of the build hash: they shape what
    # lands, which the manifest records through its ingest runs.
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    # [contacts]: handle -> name, for every source. In the hash (labels depend on it)
    # but never written out in full: a manifest must not list other people.
    contacts: dict[str, str] = field(default_factory=dict)
    # [prose]: how `etl build --corpus prose` is made (etl.prose.config reads it); prose
    # versions hash it themselves, so chat versions' hashes do not depend on it.
    prose: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # where it was read from; not part of the hash

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """The config a manifest recorded (`as_dict`'s output), e.g. to rebuild its version."""
        return cls(owner=_coerce(Owner, data.get("owner", {})), build=_coerce(BuildConfig, data.get("build", {})))

    def source_options(self, name: str) -> dict[str, Any]:
        return dict(self.sources.get(name, {}))

    def as_dict(self) -> dict[str, Any]:
        return {
            "owner": _jsonable(dataclasses.asdict(self.owner)),
            "build": _jsonable(dataclasses.asdict(self.build)),
            "contacts": {
                "entries": len(self.contacts),
                "sha256": hashlib.sha256(canonical_json(self.contacts).encode()).hexdigest(),
            },
        }

    def sha256(self) -> str:
        return hashlib.sha256(canonical_json(self.as_dict()).encode()).hexdigest()

    def with_build(self, **overrides: Any) -> Config:
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return self
        return dataclasses.replace(self, build=_coerce(BuildConfig, {**dataclasses.asdict(self.build), **given}))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _coerce(cls: type, values: dict[str, Any]) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise EtlError(f"unknown key(s) in [{cls.__name__.removesuffix('Config').lower() or 'owner'}]: {', '.join(unknown)}")
    out = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if isinstance(default, tuple):
            value = tuple([value] if isinstance(value, str) else value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise EtlError(f"{name} must be true or false, not {value!r}")
        elif isinstance(default, float) and isinstance(value, int):
            value = float(value)
        out[name] = value
    return cls(**out)


def find_config(explicit: Path | None = None) -> Path | None:
    """--config, else ETL_CONFIG, else ./corpus.toml, else $ETL_HOME/corpus.toml."""
    if explicit:
        if not explicit.exists():
            raise EtlError(f"no config file at {explicit}; write one with `etl init`")
        return explicit
    if env := os.environ.get("ETL_CONFIG"):
        path = Path(env).expanduser()
        if not path.exists():
            raise EtlError(f"ETL_CONFIG points to {path}, which does not exist")
        return path
    for candidate in (Path.cwd() / CONFIG_NAME, etl_home() / CONFIG_NAME):
        if candidate.exists():
            return candidate
    return None


def load_config(explicit: Path | None = None) -> Config:
    path = find_config(explicit)
    if path is None:
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise EtlError(f"{path}: not valid TOML: {error}") from None
    unknown = sorted(set(data) - {"owner", "build", "sources", "contacts", "prose"})
    if unknown:
        raise EtlError(
            f"{path}: unknown section(s) {', '.join(unknown)}; "
            "expected [owner], [build], [contacts], [prose] and [sources.NAME]"
        )
    if not isinstance(data.get("prose", {}), dict):
        raise EtlError(f"{path}: [prose] is a table of keys, e.g. min_para_words = 60")
    contacts = data.get("contacts", {})
    if not isinstance(contacts, dict) or not all(isinstance(v, str) for v in contacts.values()):
        raise EtlError(f'{path}: [contacts] maps a handle to a name, e.g. "+14155550167" = "Lena"')
    sources = data.get("sources", {})
    if not isinstance(sources, dict) or not all(isinstance(v, dict) for v in sources.values()):
        raise EtlError(f"{path}: [sources] holds one table per connector, e.g. [sources.supabase]")
    try:
        owner = _coerce(Owner, data.get("owner", {}))
        build = _coerce(BuildConfig, data.get("build", {}))
    except EtlError as error:
        raise EtlError(f"{path}: {error}") from None
    except TypeError as error:
        raise EtlError(f"{path}: {error}") from None
    return Config(owner=owner, build=build, sources=sources, contacts=dict(sorted(contacts.items())),
                  prose=data.get("prose", {}), path=path)


DEFAULT_TOML = """\
# corpus.toml: who you are, and how `etl build` turns your messages into a dataset.
# Every key is optional; the values shown are the defaults.

[owner]
# How you appear in your exports. A message whose author matches none of these
# (and whose export has no "from me" flag) lands with is_owner unknown.
names = []            # display names, e.g. ["Sam Rivera", "Sam"]
emails = []           # your addresses, e.g. ["sam@example.com"]
phones = []           # E.164, e.g. ["+15551234567"]
handles = []          # chat handles and user ids
speaker_labels = []   # transcript labels, e.g. ["Speaker 1"]
region = ""           # your country for phone numbers written without +, e.g. "US"; empty: from phones

[build]
# One short persona line; {owner} is your first name above.
system_prompt = "You are {owner}. Be direct, casual and brief, as you always are."
min_response_chars = 10       # replies shorter than this are dropped (after cleaning)
conversation_gap_hours = 6.0  # a longer silence starts a new conversation
context_turns = 9             # at most this many turns before your reply (odd: starts on `user`)
context_chars = 4000          # context budget; the oldest turns go first, your reply is never cut
dedup_threshold = 0.8         # MinHash Jaccard above which two replies are near-duplicates
dedup_ngram = 5               # character n-grams: short chat lines need them
dedup_num_perm = 128
dedup_seed = 1
max_reply_repeats = 3         # the same reply to different prompts is kept at most this often
split_train = 0.9             # splits by hashing the conversation id: no conversation in two splits
split_valid = 0.05
split_test = 0.05
split_seed = "etl"
redact_pii = false            # also replace email addresses, phone numbers, IBANs, IP addresses and names
trajectory_tags = false       # put the trajectory tag into the system prompt
formats = ["chatml", "dpo"]   # add "sharegpt" for Unsloth / LLaMA-Factory
sources = []                  # only these sources; empty means all
# rejected_model = "mlx-community/Qwen2.5-7B-Instruct-4bit"  # whose answers become DPO `rejected`
# speaker_labels = "names"    # group-chat labels: "names" (a pseudonym where none) or "pseudonyms";
                              # unset: names, or pseudonyms when redact_pii is on

# Names for handles, for every source: a number or address here is labelled by
# the name instead of a pseudonym.
[contacts]
# "+14155550167" = "Lena"

# Defaults for a connector's options, by its name in `etl ingest NAME`; the command
# line overrides them. `etl ingest NAME --help` lists the options.
# [sources.transcript]
# me = "Speaker 1"
"""
