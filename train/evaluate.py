"""Persona check: the seed's ten prompts, base and adapted answers side by side.

A person scores each answer 0 (assistant slop) to 3 (sounds like the owner); the run
passes at an average of 2.0 or more. Beside each answer is the count of assistant-slop
markers, a cheap automatic companion to that score.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

from etl.schemas.errors import EtlError

# Seed 001, "Evaluation Protocol".
PROMPTS = (
    "The deploy failed with a 503 error on the staging server.",
    "Should we refactor the auth module or just patch the bug?",
    "The PR is ready for review.",
    "We need to decide between Kafka and RabbitMQ for the event bus.",
    "I'm stuck on this TypeScript type error, can you help?",
    "What's the status of the Spore app update?",
    "The CI pipeline is taking 45 minutes. Can we speed it up?",
    "Should I write tests for this or ship it as-is?",
    "The client wants a progress update by Friday.",
    "We're running low on compute credits.",
)

# Phrases a generic assistant says and a person texting a colleague does not.
SLOP_MARKERS = (
    "Great question",
    "I'd be happy to",
    "Let me help",
    "I understand",
    "Certainly!",
    "As an AI",
    "I hope this helps",
    "Feel free to",
    "Absolutely!",
    "I'm here to help",
    "Let's break",
    "It's important to note",
    "I apologize",
    "Happy to help",
)
# Longest first, matched without overlaps: "I'd be happy to help" counts once, not twice.
_SLOP = re.compile("|".join(re.escape(m.lower()) for m in sorted(SLOP_MARKERS, key=len, reverse=True)))


@dataclass
class Row:
    prompt: str
    base: str
    adapted: str

    @property
    def base_slop(self) -> int:
        return slop_count(self.base)

    @property
    def adapted_slop(self) -> int:
        return slop_count(self.adapted)


def slop_count(text: str) -> int:
    """How many times the answer uses an assistant-slop marker (case and apostrophe style ignored)."""
    return len(_SLOP.findall(text.replace("\u2019", "'").lower()))


def base_model_of(adapter: Path) -> str:
    """The model the adapters were trained on, as mlx-lm recorded it in adapter_config.json."""
    config = adapter / "adapter_config.json"
    if not config.is_file():
        raise EtlError(f"{adapter} has no adapter_config.json; pass the base model with --model")
    return json.loads(config.read_text(encoding="utf-8"))["model"]


def system_prompt_of(adapter: Path) -> str | None:
    """The persona line the adapters were trained with (first system turn of their train split)."""
    config = adapter / "adapter_config.json"
    if not config.is_file():
        return None
    train = Path(json.loads(config.read_text(encoding="utf-8")).get("data", "")) / "train.jsonl"
    if not train.is_file():
        return None
    with open(train, encoding="utf-8") as f:
        first = f.readline()
    messages = json.loads(first).get("messages", []) if first.strip() else []
    return next((m["content"] for m in messages if m.get("role") == "system"), None)


def answers(model: str, adapter: Path | None, prompts: list[list[dict]], max_tokens: int) -> list[str]:
    from mlx_lm import load
    from mlx_lm.generate import batch_generate

    loaded, tokenizer = load(model, adapter_path=str(adapter) if adapter else None)
    tokens = [tokenizer.apply_chat_template(p, add_generation_prompt=True) for p in prompts]
    return [t.strip() for t in batch_generate(loaded, tokenizer, tokens, max_tokens=max_tokens).texts]


def run_eval(
    adapter: Path,
    model: str | None,
    out_dir: Path,
    *,
    system: str | None = None,
    max_tokens: int = 200,
) -> tuple[Path, Path, list[Row]]:
    """Answer the ten prompts with and without the adapters; write eval.md and eval.html."""
    adapter = adapter.resolve()
    if not (adapter / "adapters.safetensors").is_file():
        raise EtlError(f"no adapters.safetensors in {adapter}; give the adapter folder of a finished run")
    model = model or base_model_of(adapter)
    system = system if system is not None else system_prompt_of(adapter)
    head = [{"role": "system", "content": system}] if system else []
    prompts = [head + [{"role": "user", "content": p}] for p in PROMPTS]
    rows = [
        Row(p, b, a)
        for p, b, a in zip(
            PROMPTS, answers(model, None, prompts, max_tokens), answers(model, adapter, prompts, max_tokens)
        )
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "eval.md"
    page = out_dir / "eval.html"
    md.write_text(markdown(rows, model, adapter, system), encoding="utf-8")
    page.write_text(html_page(rows, model, adapter, system), encoding="utf-8")
    return md, page, rows


def _totals(rows: list[Row]) -> str:
    base = sum(r.base_slop for r in rows)
    adapted = sum(r.adapted_slop for r in rows)
    return f"slop markers in total: base {base}, adapted {adapted}"


def markdown(rows: list[Row], model: str, adapter: Path, system: str | None) -> str:
    lines = [
        "# Persona evaluation",
        "",
        f"- base model: `{model}`",
        f"- adapters: `{adapter}`",
        f"- system prompt: {system or '(none)'}",
        f"- {_totals(rows)}",
        "",
        "Score each answer 0 (assistant slop) to 3 (sounds like the owner). "
        "The adapters pass at an average of 2.0 or more.",
        "",
    ]
    for number, row in enumerate(rows, start=1):
        lines += [
            f"## {number}. {row.prompt}",
            "",
            "| | base | adapted |",
            "|---|---|---|",
            f"| answer | {_cell(row.base)} | {_cell(row.adapted)} |",
            f"| slop markers | {row.base_slop} | {row.adapted_slop} |",
            "| score (0–3) | | |",
            "",
        ]
    return "\n".join(lines)


def _cell(text: str) -> str:
    # A Markdown table cell is one line, and "|" would end it.
    return html.escape(text).replace("|", "\\|").replace("\n", "<br>") or "*(empty)*"


def html_page(rows: list[Row], model: str, adapter: Path, system: str | None) -> str:
    body = "\n".join(
        f"<tr><th>{n}. {html.escape(r.prompt)}</th>"
        f"<td><pre>{html.escape(r.base)}</pre><p>slop markers: {r.base_slop}</p></td>"
        f"<td><pre>{html.escape(r.adapted)}</pre><p>slop markers: {r.adapted_slop}</p></td>"
        "<td><input type=number min=0 max=3 size=2></td></tr>"
        for n, r in enumerate(rows, start=1)
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Persona evaluation</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #ccc; padding: .5em; vertical-align: top; text-align: left; }}
pre {{ white-space: pre-wrap; font-family: inherit; margin: 0; }}
p {{ color: #666; margin: .5em 0 0; }}
</style></head><body>
<h1>Persona evaluation</h1>
<p>base model: <code>{html.escape(model)}</code><br>adapters: <code>{html.escape(str(adapter))}</code><br>
system prompt: {html.escape(system or "(none)")}<br>{_totals(rows)}</p>
<p>Score each answer 0 (assistant slop) to 3 (sounds like the owner).
The adapters pass at an average of 2.0 or more.</p>
<table><tr><th>prompt</th><th>base</th><th>adapted</th><th>adapted score (0–3)</th></tr>
{body}
</table></body></html>
"""
