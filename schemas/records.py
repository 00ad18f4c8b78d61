"""The records a version writes: mlx-lm chat lines, DPO lines, and their keys."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

ROLES = ("system", "user", "assistant")
SPLITS = ("train", "valid", "test")  # a version's files per format: chatml/train.jsonl, …


def canonical_json(value: Any) -> str:
    """The one JSON form used for every written line and every hash.

    Sorted keys, no spaces, UTF-8 left unescaped: the same text as
    `json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))`,
    written by orjson because it is eight times faster on a million lines.
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def chat_record(example_id: str, messages: list[dict[str, str]]) -> dict[str, Any]:
    """An mlx-lm chat line: {"messages": [...]}; `id` rides along (mlx-lm ignores it)."""
    return {"id": example_id, "messages": messages}


def dpo_record(system: str, prompt: str, chosen: str, rejected: str) -> dict[str, str]:
    """A line for `mlx_lm_lora.train --train-mode dpo`: `prompt` is one string."""
    return {"system": system, "prompt": prompt, "chosen": chosen, "rejected": rejected}


def prompt_key(messages: list[dict[str, str]]) -> str:
    """sha256 of the messages a model sees before the owner's reply (system + context).

    Rejected answers are stored under this key, so a later build finds the base
    model's answer to exactly the prompt it emits.
    """
    return hashlib.sha256(canonical_json(messages).encode()).hexdigest()


def flatten_prompt(messages: list[dict[str, str]]) -> str:
    """Earlier turns as one string for the DPO `prompt` field (system kept apart)."""
    turns = [m for m in messages if m["role"] != "system"]
    if len(turns) == 1:
        return turns[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in turns)
