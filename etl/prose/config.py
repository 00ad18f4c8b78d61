"""How a prose version is built: the [prose] table of corpus.toml, the seed's values as defaults."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

from etl.errors import EtlError
from etl.prose.pairs import KINDS
from etl.schemas.records import canonical_json

# The seed's persona frame (seed 002, Step 4) and its three instructions (Step 2).
SEED_SYSTEM = (
    "You are the Systems Theologian. You view the world as a machine governed by indifferent geometry.\n"
    'You do not see "bad luck"; you see "entropy."\n'
    "You are analyzing the following input."
)
SEED_INSTRUCTIONS = {
    "neutral": "Rewrite this text.",
    "info_dropout": "Explain the input concept.",
    "abstract": "Describe [THING].",
}
# What the base model is asked for the neutral input (`etl train neutral`).
NEUTRAL_PROMPT = (
    "Rewrite the following passage in plain, neutral, factual language. Keep every fact and "
    "the order of ideas; drop the imagery, the rhythm and the adjectives.\n\n"
    "Passage:\n{text}\n\nPlain rewrite:\n"
)


@dataclass(frozen=True)
class ProseConfig:
    system_prompt: str = SEED_SYSTEM
    instructions: dict[str, str] = field(default_factory=lambda: dict(SEED_INSTRUCTIONS))
    kinds: tuple[str, ...] = KINDS
    min_para_words: int = 60  # the seed's curate_corpus.py --min-para-words
    chunk_tokens: int = 768  # ~3,500-4,000 pairs from the seed's budget, its validation range
    target_tokens: int = 900_000  # the seed's --target-tokens
    tokenizer: str | None = None  # a local tokenizer.json or model folder; None counts words
    split_train: float = 0.9
    split_valid: float = 0.05
    split_test: float = 0.05
    split_seed: str = "etl"
    formats: tuple[str, ...] = ("completions", "chatml")
    neutral_model: str | None = None  # whose stored rewrites feed the neutral pairs; None: any
    neutral_prompt: str = NEUTRAL_PROMPT

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    def sha256(self, owner: dict[str, Any]) -> str:
        return hashlib.sha256(canonical_json({"owner": owner, "prose": self.as_dict()}).encode()).hexdigest()

    def with_overrides(self, **overrides: Any) -> ProseConfig:
        return prose_config({**self.as_dict(), **{k: v for k, v in overrides.items() if v is not None}})


def prose_config(values: dict[str, Any]) -> ProseConfig:
    """A ProseConfig from the [prose] table (or a manifest), with one-line errors."""
    known = {f.name: f for f in dataclasses.fields(ProseConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise EtlError(f"unknown key(s) in [prose]: {', '.join(unknown)}; known: {', '.join(known)}")
    out: dict[str, Any] = {}
    defaults = ProseConfig()
    for name, value in values.items():
        default = getattr(defaults, name)
        if name == "instructions":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise EtlError("[prose] instructions maps a pair kind to its instruction, e.g. neutral = \"...\"")
            if bad := sorted(set(value) - set(KINDS)):
                raise EtlError(f"[prose] instructions: unknown kind(s) {', '.join(bad)}; kinds: {', '.join(KINDS)}")
            value = {**SEED_INSTRUCTIONS, **value}
        elif isinstance(default, tuple):
            value = tuple([value] if isinstance(value, str) else value)
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif isinstance(default, int) and not isinstance(value, int):
            raise EtlError(f"[prose] {name} must be a whole number, not {value!r}")
        out[name] = value
    config = ProseConfig(**out)
    if bad := sorted(set(config.kinds) - set(KINDS)):
        raise EtlError(f"[prose] kinds: unknown {', '.join(bad)}; kinds: {', '.join(KINDS)}")
    if bad := sorted(set(config.formats) - {"completions", "chatml"}):
        raise EtlError(f"[prose] formats: unknown {', '.join(bad)}; formats: completions, chatml")
    for name in ("min_para_words", "chunk_tokens", "target_tokens"):
        if getattr(config, name) < 1:
            raise EtlError(f"[prose] {name} must be at least 1")
    return config
