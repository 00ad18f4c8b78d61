"""Training presets: YAML files in the trainers' own keys, found by name or by path."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from etl.schemas.errors import EtlError

PRESETS_DIR = Path(__file__).parent / "presets"


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `5e-5` as a float, as mlx-lm's own config loader does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_yaml(text: str) -> Any:
    return yaml.load(text, _Loader)


def names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def path_of(name_or_path: str) -> Path:
    """A bundled preset by name, or any YAML file by path (a copied and edited preset)."""
    given = Path(name_or_path).expanduser()
    if given.suffix in (".yaml", ".yml") and given.is_file():
        return given
    bundled = PRESETS_DIR / f"{name_or_path}.yaml"
    if bundled.is_file():
        return bundled
    raise EtlError(
        f"unknown preset {name_or_path!r}; available: {', '.join(names())} "
        "(or give the path of a YAML file; see `etl train presets`)"
    )


def load(name_or_path: str) -> dict[str, Any]:
    path = path_of(name_or_path)
    config = read_yaml(path.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise EtlError(f"preset {path} is not a YAML mapping of mlx-lm keys")
    return config


def summary(name: str) -> str:
    """The first comment line of a preset: what it is and where it comes from."""
    for line in path_of(name).read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def parse_set(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`--set key=value` pairs; values are YAML (numbers, lists, true/false), keys may be dotted."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise EtlError(f"--set {item!r}: expected key=value, e.g. --set lora_parameters.rank=16")
        overrides[key.strip()] = read_yaml(value)
    return overrides


def apply_overrides(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of `config` with each (possibly dotted) key set; None values are skipped."""
    result = copy.deepcopy(config)
    for key, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = key.split(".")
        node = result
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise EtlError(f"cannot set {key}: {part} is not a mapping in the preset")
            node = child
        node[leaf] = value
    return result
