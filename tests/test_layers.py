"""The layers and what each may import (docs/design.md, CONTRIBUTING.md), read from the source.

Dependencies point one way: the contract imports no other layer, nothing imports the
worker (``streams``) but the CLI, and the CLI loads the layers only inside a command's
``run`` so that ``agentstream --help`` and a missing extra cost nothing until used.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "agentstream"

# layer -> the other layers its modules may import. A layer is a subpackage or a top-level
# module of agentstream; a new one goes here and in docs/design.md's table.
ALLOWED: dict[str, frozenset[str]] = {
    "contract": frozenset(),
    "migrations": frozenset({"contract"}),
    "topic_admin": frozenset({"contract"}),
    "producers": frozenset({"contract", "topic_admin"}),
    "sinks": frozenset({"contract"}),
    "streams": frozenset({"contract", "sinks", "topic_admin"}),
    "analytics": frozenset({"contract"}),
    "otlp": frozenset({"contract", "topic_admin"}),
}
# The CLI may import every layer, but at module level only itself and the package's facade.
CLI_TOP_LEVEL = frozenset({"cli", ""})
# The package's own entry points: the SDK facade loads producers lazily (PEP 562; its
# imports are for type checkers), ``python -m agentstream`` is the CLI.
ENTRY_POINTS = {"__init__", "__main__"}


def layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imported_layers(tree: ast.AST, *, in_functions: bool = True) -> Iterator[tuple[int, str]]:
    """(line, layer) of every ``agentstream.X`` import in ``tree``, ``""`` for the package
    itself; with ``in_functions=False``, only the imports that run when the module loads
    (not those in functions or under ``if TYPE_CHECKING:``)."""
    for node in ast.iter_child_nodes(tree):
        if not in_functions and (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or _for_type_checkers(node)
        ):
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            yield from imported_layers(node, in_functions=in_functions)
            continue
        for name in names:
            if name == "agentstream":
                yield node.lineno, ""
            elif name.startswith("agentstream."):
                yield node.lineno, name.split(".")[1]


def _for_type_checkers(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in (
        "TYPE_CHECKING",
        "typing.TYPE_CHECKING",
    )


def violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = layer_of(path)
        if layer in ENTRY_POINTS:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(PACKAGE.parent)
        if layer == "cli":
            for line, target in imported_layers(tree, in_functions=False):
                if target not in CLI_TOP_LEVEL:
                    found.append(f"{where}:{line}: cli imports {target} at module level")
            continue
        if layer not in ALLOWED:
            found.append(f"{where}: layer {layer!r} is not in ALLOWED (tests/test_layers.py)")
            continue
        for line, target in imported_layers(tree):
            if target != layer and target not in ALLOWED[layer]:
                found.append(f"{where}:{line}: {layer} imports {target or 'agentstream'}")
    return found


def test_every_layer_imports_only_what_it_may() -> None:
    assert violations() == []


def test_the_rule_finds_a_forbidden_import() -> None:
    # The checker itself, on a made-up module: a contract module importing the worker.
    tree = ast.parse("import os\nfrom agentstream.streams.app import x\nimport agentstream.sinks\n")
    assert list(imported_layers(tree)) == [(2, "streams"), (3, "sinks")]
    lazy = ast.parse(
        "from agentstream.cli.main import m\n"
        "if TYPE_CHECKING:\n    from agentstream.sinks import s\n"
        "def run():\n    import agentstream.streams\n"
    )
    assert [t for _, t in imported_layers(lazy, in_functions=False)] == ["cli"]
    assert [t for _, t in imported_layers(lazy)] == ["cli", "sinks", "streams"]
