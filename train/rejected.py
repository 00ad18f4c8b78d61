"""A base model's answers to a version's prompts: the `rejected` side of the DPO pairs.

Each answer is stored in `rejected_answers` under the prompt's key (`prompt_key` of the
messages the model saw), the model and the hash of the generation parameters. Answers
are written batch by batch, so an interrupted run resumes where it stopped: prompts
already answered by the same model with the same parameters are skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from etl.schemas.errors import EtlError
from etl.schemas import REJECTED_ANSWERS
from etl.schemas.records import SPLITS, canonical_json, prompt_key
from etl.train.mlx_config import model_ref
from etl.schemas.hashing import verify_version
from etl.warehouse import insert_frame, open_warehouse

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 256
    # Greedy by default: the base model's most likely answer, the same on every run.
    temperature: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def sha256(self) -> str:
        return params_sha256(self.as_dict())


def params_sha256(params: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(params).encode()).hexdigest()


@dataclass
class Outcome:
    prompts: int  # distinct prompts in the version
    already: int  # answered before this run
    stored: int  # answered now


def prompt_of(messages: Messages) -> Messages:
    """What the model sees before the owner's reply: the record minus its final assistant turn."""
    if messages and messages[-1].get("role") == "assistant":
        return messages[:-1]
    return messages


def version_prompts(version_dir: Path) -> list[Messages]:
    """Each distinct prompt of the version's chat records, in file order."""
    seen: set[str] = set()
    prompts: list[Messages] = []
    for split in SPLITS:
        path = version_dir / "chatml" / f"{split}.jsonl"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            prompt = prompt_of(json.loads(line)["messages"])
            if (key := prompt_key(prompt)) not in seen:
                seen.add(key)
                prompts.append(prompt)
    return prompts


def generate(
    warehouse: Path,
    version_dir: Path,
    model: str,
    params: GenerationParams,
    *,
    limit: int | None = None,
    batch_size: int = 8,
    echo: Callable[[str], None] = print,
) -> Outcome:
    """Answer every prompt of the version not yet answered by `model` with `params`."""
    verify_version(version_dir)
    model = model_ref(model)
    prompts = version_prompts(version_dir)
    done = _stored_keys(warehouse, model, params.sha256)
    pending = [p for p in prompts if prompt_key(p) not in done]
    already = len(prompts) - len(pending)
    todo = pending if limit is None else pending[:limit]
    stored = 0
    if todo:
        echo(f"answering {len(todo)} prompts with {model} ({already} already stored)")
    for batch, answers in _answer(model, todo, params, batch_size):
        stored += _insert(warehouse, [prompt_key(p) for p in batch], answers, model, params.as_dict())
        echo(f"  {stored}/{len(todo)} stored")
    return Outcome(prompts=len(prompts), already=already, stored=stored)


def _answer(
    model_path: str, prompts: list[Messages], params: GenerationParams, batch_size: int
) -> Iterator[tuple[list[Messages], list[str]]]:
    if not prompts:
        return
    from mlx_lm import load
    from mlx_lm.generate import batch_generate
    from mlx_lm.sample_utils import make_sampler

    model, tokenizer = load(model_path)
    sampler = make_sampler(temp=params.temperature)
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        tokens = [tokenizer.apply_chat_template(p, add_generation_prompt=True) for p in batch]
        response = batch_generate(model, tokenizer, tokens, max_tokens=params.max_tokens, sampler=sampler)
        yield batch, [text.strip() for text in response.texts]


def _stored_keys(warehouse: Path, model: str, params_sha256: str) -> set[str]:
    with open_warehouse(warehouse) as con:
        rows = con.execute(
            "SELECT prompt_sha256 FROM rejected_answers WHERE model = ? AND params_sha256 = ?",
            [model, params_sha256],
        ).fetchall()
    return {key for (key,) in rows}


def _insert(warehouse: Path, keys: list[str], answers: list[str], model: str, params: dict[str, Any]) -> int:
    now = datetime.now(UTC)
    frame = pl.DataFrame(
        {
            "prompt_sha256": keys,
            "model": [model] * len(keys),
            "params_sha256": [params_sha256(params)] * len(keys),
            "params": [canonical_json(params)] * len(keys),
            "answer": answers,
            "created_at": [now] * len(keys),
        },
        schema=REJECTED_ANSWERS.polars_schema(),
    )
    # Opened per batch, so other `etl` commands can use the warehouse between batches.
    with open_warehouse(warehouse) as con:
        return insert_frame(con, REJECTED_ANSWERS, frame, ignore_existing=True)


def import_jsonl(warehouse: Path, path: Path, model: str | None) -> tuple[int, int]:
    """Store answers generated elsewhere; returns (stored, already present).

    Each line: {"messages": [...]} (the prompt the model saw; a final assistant turn is
    dropped) or {"prompt_sha256": "..."}, plus "answer", and optionally "model" and
    "params" (default: the --model given, and {"source": "import"}).
    """
    groups: dict[tuple[str, str], tuple[dict[str, Any], list[str], list[str]]] = {}
    for number, record in _lines(path):
        key, answer, line_model, params = _imported(record, model, f"{path}:{number}")
        entry = groups.setdefault((line_model, canonical_json(params)), (params, [], []))
        entry[1].append(key)
        entry[2].append(answer)
    stored = total = 0
    for (line_model, _), (params, keys, answers) in groups.items():
        stored += _insert(warehouse, keys, answers, line_model, params)
        total += len(keys)
    return stored, total - stored


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise EtlError(f"no file at {path}; give a JSONL file of answers to --from-jsonl")
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise EtlError(f"{path}:{number} is not JSON ({error.msg}); one object per line") from None


def _imported(record: dict[str, Any], model: str | None, where: str) -> tuple[str, str, str, dict]:
    answer = record.get("answer")
    if not isinstance(answer, str):
        raise EtlError(f"{where} has no \"answer\" string")
    if "prompt_sha256" in record:
        key = record["prompt_sha256"]
    elif "messages" in record:
        key = prompt_key(prompt_of(record["messages"]))
    else:
        raise EtlError(f"{where} needs \"messages\" or \"prompt_sha256\" to know which prompt it answers")
    line_model = record.get("model") or model
    if not line_model:
        raise EtlError(f"{where} names no model; add \"model\" to the line or pass --model")
    return key, answer.strip(), model_ref(line_model), record.get("params") or {"source": "import"}
