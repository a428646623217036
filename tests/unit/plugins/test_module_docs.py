"""Every module documents itself: ansible-doc parses DOCUMENTATION, EXAMPLES and RETURN,
and every argument_spec option is documented with the same type."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
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


def ansible_doc(*args: str) -> subprocess.CompletedProcess[str]:
    doc = Path(sys.executable).with_name("ansible-doc")
    return subprocess.run(
        [str(doc), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": str(doc.parent), "ANSIBLE_NOCOLOR": "1"},
    )


# Each plugin type of the collection, the header ansible-doc's text mode gives it, and its files.
PLUGIN_TYPES = {"module": "MODULE", "filter": "FILTER", "strategy": "STRATEGY"}


def plugin_files(kind: str) -> set[str]:
    folder = REPO / "plugins" / ("modules" if kind == "module" else kind)
    return {p.stem for p in folder.glob("*.py") if not p.name.startswith("_")}


@pytest.mark.parametrize("kind", sorted(PLUGIN_TYPES))
def test_ansible_doc_renders_every_plugin_as_text(kind: str) -> None:
    """The text a user reads (`ansible-doc edgeinfer.deploy.<name>`), not only the JSON: every
    plugin of each type is listed, renders without an error, with its options, author and examples."""
    listed = ansible_doc("-t", kind, "-l", "-j", "edgeinfer.deploy")
    assert listed.returncode == 0, listed.stderr
    names = sorted(json.loads(listed.stdout))
    # A plugin whose file does not load is missing from the list: filter files hold several filters.
    if kind == "filter":
        assert names, "no filter listed"
    else:
        assert names == sorted(f"edgeinfer.deploy.{n}" for n in plugin_files(kind)), names
    proc = ansible_doc("-t", kind, *names)
    assert proc.returncode == 0, proc.stderr
    assert "ERROR" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    pages = proc.stdout.split(f"> {PLUGIN_TYPES[kind]} ")[1:]
    assert [p.split()[0] for p in pages] == names, proc.stdout[:2000]
    for name, page in zip(names, pages, strict=True):
        assert "AUTHOR: EdgeInfer deploy team (@edgeinfer)" in page, f"{name}: no author in the Name (@handle) form"
        if kind != "strategy":
            assert "EXAMPLES:" in page, f"{name}: no examples rendered"
        if kind == "module":
            assert "OPTIONS" in page and "ATTRIBUTES" in page and "RETURN VALUES" in page, (
                f"{name}: a section is missing"
            )
