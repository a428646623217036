"""Files a newcomer reads in one sitting: no file of the packages over 400 lines of code, no
function over 60 lines. A module's DOCUMENTATION, EXAMPLES and RETURN are what `ansible-doc`
shows its users; they are documentation, not code, and are not counted."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PACKAGES = (
    "edgeinfer_contract",
    "edgeinfer_load",
    "edgeinfer_validate",
    "model_tools",
    "sidecar",
    "plugins",
    "bench",
    "testbed",
    "scripts",
)
MAX_FILE, MAX_FUNCTION = 400, 60
DOC_STRINGS = {"DOCUMENTATION", "EXAMPLES", "RETURN"}


def sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py") if not p.is_symlink())


def code_lines(tree: ast.Module, text: str) -> int:
    """Lines of the file less those of a module's documentation strings."""
    docs = sum(
        node.end_lineno - node.lineno + 1
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id in DOC_STRINGS for t in node.targets)
        and node.end_lineno is not None
    )
    return text.count("\n") - docs


def test_no_file_over_400_lines_of_code() -> None:
    over = {}
    for p in sources():
        text = p.read_text()
        n = code_lines(ast.parse(text), text)
        if n > MAX_FILE:
            over[str(p.relative_to(REPO))] = n
    assert not over, f"split these by concept (at most {MAX_FILE} lines of code each): {over}"


def test_no_function_over_60_lines() -> None:
    over = {}
    for p in sources():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION:
                    over[f"{p.relative_to(REPO)}:{node.lineno} {node.name}"] = n
    assert not over, f"split these into named steps (at most {MAX_FUNCTION} lines each): {over}"


def test_the_count_leaves_out_documentation_only() -> None:
    text = 'DOCUMENTATION = r"""\na\nb\n"""\nx = 1\n'
    assert code_lines(ast.parse(text), text) == 1
