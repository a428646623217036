"""What the tests check of the standard-library packages the collection ships to the edges through
links in plugins/module_utils/ (edgeinfer_contract as _contract, edgeinfer_load as _load)."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def link_problems(package: str, links: str) -> list[str]:
    """Why ``plugins/module_utils/<links>`` is not one link per module of ``<package>``, each to
    that module; empty when it is. Ansible's packager ships what the links name, so a module
    without its link would be missing on every edge."""
    src, there = REPO / package, REPO / "plugins" / "module_utils" / links
    modules = sorted(p.name for p in src.glob("*.py"))
    linked = sorted(p.name for p in there.iterdir() if p.name != "__pycache__")
    problems = [f"{links}/ holds {linked}, {package}/ has {modules}"] if linked != modules else []
    for name in modules:
        if not ((there / name).is_symlink() and (there / name).resolve() == src / name):
            problems.append(f"{links}/{name} is not a link to {package}/{name}")
    return problems


def foreign_imports(package: str, allowed: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """``(module file, imported name)`` of each module-level absolute import of ``<package>`` that is
    neither the standard library nor one of ``allowed``. Imports inside functions are left out:
    the contract's signing imports cryptography only when it signs or verifies."""
    for path in sorted((REPO / package).glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in allowed:
                    yield path.name, name
