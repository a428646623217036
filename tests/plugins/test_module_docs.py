"""Every module documents itself: ansible-doc parses DOCUMENTATION, EXAMPLES and RETURN,
and every argument_spec option is documented with the same type."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("edgeinfer_*.py"))


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_parses_the_module(name: str) -> None:
    doc = Path(sys.executable).with_name("ansible-doc")
    proc = subprocess.run(
        [str(doc), "-j", f"edgeinfer.deploy.{name}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": str(doc.parent)},
    )
    assert proc.returncode == 0 and "ERROR" not in proc.stderr, proc.stderr
    data = json.loads(proc.stdout)[f"edgeinfer.deploy.{name}"]
    assert data["doc"]["options"], "no options documented"
    assert "check_mode" in data["doc"]["attributes"]
    assert yaml.safe_load(data["examples"]), "EXAMPLES is empty or not YAML"
    assert data["return"], "RETURN is empty"
