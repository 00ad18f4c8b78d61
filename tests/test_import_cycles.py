"""No module of etl imports, even lazily inside a function, a module that imports it back."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# pyproject's package-dir: the top-level folders are installed as etl.<folder>.
FOLDERS = {"etl": "etl", "sources": "etl.sources", "schemas": "etl.schemas", "warehouse": "etl.warehouse", "train": "etl.train"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [base])])
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in modules else base)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        # A package's own __init__ importing its submodules is how packages work, not a cycle.
        graph[name] = {t for t in targets if t in modules and t != name and not t.startswith(name + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_module_graph_finds_known_arrows():
    graph = _graph()
    assert "etl.versions" in graph["etl.verify"] and "etl.build" in graph["etl.verify"]


def test_no_import_cycles():
    assert _cycles(_graph()) == []
