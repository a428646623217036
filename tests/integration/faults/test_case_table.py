"""The case table (cases.py) and the fault matrix's tests agree: one test per row, named after it,
in the table's order, and every row with an end state judged through `expect`. Needs no fleet."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.integration.faults.cases import CASES

HERE = Path(__file__).resolve().parent


def numbered_tests(module: str) -> list[tuple[str, str]]:
    """(name, source) of the module's ``test_NN_*`` functions, in file order."""
    path = HERE / f"test_matrix_{module}.py"
    source = path.read_text()
    return [
        (node.name, ast.get_source_segment(source, node) or "")
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef) and re.match(r"test_\d\d_", node.name)
    ]


def test_the_cases_are_numbered_one_to_n_in_order() -> None:
    assert [c.number for c in CASES] == list(range(1, len(CASES) + 1))
    assert len({c.name for c in CASES}) == len(CASES)


def test_each_module_runs_its_rows_in_the_table_order() -> None:
    for module in ("bad_releases", "fleet_faults"):
        rows = [c.test_name for c in CASES if c.module == module]
        assert [name for name, _ in numbered_tests(module)] == rows, module


def test_every_row_with_an_end_state_is_judged_from_the_table() -> None:
    bodies = {name: body for module in ("bad_releases", "fleet_faults") for name, body in numbered_tests(module)}
    for case in CASES:
        body = bodies[case.test_name]
        if case.outcomes:
            assert f"expect({case.number}," in body or f"canary_caught(matrix, run, before, {case.number})" in body, (
                case.test_name
            )
        if case.caught_by:
            assert "caught_by" in body or "canary_caught(" in body, case.test_name
