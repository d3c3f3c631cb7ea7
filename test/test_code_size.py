"""Classes and functions read in a sitting (issue #16): in the folders listed here no class is over
``MAX_CLASS_LINES`` and no function over ``MAX_FUNCTION_LINES`` (docstrings included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_CLASS_LINES = 250
MAX_FUNCTION_LINES = 60
#: folders held to the limits: every folder with Python code of the project
CHECKED = ("sim2real", "sim_bridge", "benchmarks", "scripts")


def oversized(path: Path) -> list[str]:
    """``"<file>:<line> <kind> <name>: <n> lines"`` for each class / function of ``path`` over the limits."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ClassDef):
            limit, kind = MAX_CLASS_LINES, "class"
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            limit, kind = MAX_FUNCTION_LINES, "function"
        else:
            continue
        lines = node.end_lineno - node.lineno + 1
        if lines > limit:
            found.append(f"{path.relative_to(REPO)}:{node.lineno} {kind} {node.name}: {lines} lines (> {limit})")
    return found


@pytest.mark.parametrize("folder", CHECKED)
def test_no_class_or_function_over_the_limits(folder: str) -> None:
    found = [line for path in sorted((REPO / folder).rglob("*.py")) for line in oversized(path)]
    assert not found, "\n".join(found)


def test_the_size_check_can_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("test_code_size.REPO", tmp_path)
    big = tmp_path / "big.py"
    body = "\n".join(f"    x{k} = {k}" for k in range(MAX_FUNCTION_LINES))
    big.write_text(f"def f():\n{body}\n")
    assert oversized(big) == [f"big.py:1 function f: {MAX_FUNCTION_LINES + 1} lines (> {MAX_FUNCTION_LINES})"]
