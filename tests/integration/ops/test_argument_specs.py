"""The role's defaults and their comments are the one home of its options: the committed
roles/edgeinfer/meta/argument_specs.yml is what scripts/gen_argument_specs.py writes from them."""

from __future__ import annotations

import importlib.util

from testbed.ansible_run import REPO


def test_the_argument_specs_are_generated_from_the_defaults() -> None:
    spec = importlib.util.spec_from_file_location("gen_argument_specs", REPO / "scripts" / "gen_argument_specs.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    committed = (REPO / "roles" / "edgeinfer" / "meta" / "argument_specs.yml").read_text()
    assert gen.render() == committed, (
        "roles/edgeinfer/meta/argument_specs.yml differs from the role's defaults: "
        "run .venv/bin/python scripts/gen_argument_specs.py"
    )
