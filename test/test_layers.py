"""The package's folders are layers: every import goes down (per the rule in each layer's ``__init__``
docstring) and no module import graph has a cycle (lazy, function-level imports included)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("sim2real", "sim_bridge")
_RULE = re.compile(r"may import from sim2real:\s*(?P<layers>[^.;]*)(?:;\s*and\s+(?P<extra>[\w, ]+))?\.", re.S)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules imported anywhere in the file (function-level imports too)."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for raw in targets:
            target = raw
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "sim_bridge":
        return "sim_bridge"
    return parts[1] if len(parts) > 1 else "sim2real"


def _rules(modules: dict[str, Path]) -> dict[str, set[str]]:
    rules = {}
    for name, path in modules.items():
        is_layer = name == "sim_bridge" or (name.startswith("sim2real.") and name.count(".") == 1)
        if path.name != "__init__.py" or not is_layer:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        match = _RULE.search(" ".join(doc.split()))
        assert match, f"{path} has no 'Layer rule ... may import from sim2real: ...' line in its docstring"
        layers = {s.strip() for s in match["layers"].split(",")} - {"nothing", ""}
        extra = {s.strip() for s in (match["extra"] or "").split(",")} - {""}
        rules[_layer(name)] = layers | extra
    return rules


def test_every_layer_states_its_rule_and_imports_only_below_it():
    modules = _modules()
    rules = _rules(modules)
    assert {"core", "io", "runtime", "data", "translator", "evaluation", "training", "apps", "nodes",
            "sim_bridge"} <= set(rules)
    known = set(modules)
    violations = []
    for name, path in modules.items():
        layer = _layer(name)
        if layer == "sim2real":
            continue
        assert layer in rules, f"{name} lives in a folder without a layer rule"
        for target in _imports(name, path, known):
            target_layer = _layer(target)
            if target_layer in (layer, "sim2real") or target_layer in rules[layer]:
                continue
            violations.append(f"{name} -> {target} ({layer} may import {sorted(rules[layer])})")
    assert not violations, "imports against the layer rules:\n" + "\n".join(violations)


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_import_cycle():
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    # a package's __init__ is imported by its submodules' imports: not an edge worth a cycle of its own
    graph = {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in graph.items()}
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("graph, cyclic", [({"a": {"b"}, "b": {"c"}, "c": set()}, False),
                                           ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True)])
def test_cycle_finder_finds_a_planted_cycle(graph, cyclic):
    assert (_find_cycle(graph) is not None) == cyclic


def test_layer_check_sees_a_planted_upward_import(tmp_path, monkeypatch):
    # the same code, pointed at a copy of core/ with an import of the evaluation layer planted in it
    planted = REPO / "sim2real" / "core" / "errors.py"
    modules = _modules()
    source = planted.read_text() + "\nfrom sim2real.evaluation import metrics  # planted\n"
    fake = tmp_path / "errors.py"
    fake.write_text(source)
    found = _imports("sim2real.core.errors", fake, set(modules))
    assert "sim2real.evaluation.metrics" in found
    assert _layer("sim2real.evaluation.metrics") not in _rules(modules)["core"]
