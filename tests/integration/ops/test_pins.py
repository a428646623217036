"""One pin list: constraints.txt. The sidecar image's requirements, the execution environment's
Python packages and its ansible-core carry the versions constraints.txt pins, and the EE's
collections are the ones the dev set's Ansible ships, so AWX runs what the tests ran."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;#]+)", line.strip())
        if m:
            out[re.sub(r"\[.*\]", "", m.group(1)).lower().replace("_", "-")] = m.group(2)
    return out


CONSTRAINTS = pins(REPO / "constraints.txt")


def test_the_sidecar_image_pins_what_constraints_pins() -> None:
    sidecar = pins(REPO / "sidecar" / "requirements.txt")
    assert sidecar, "sidecar/requirements.txt pins nothing"
    differ = {name: (v, CONSTRAINTS.get(name)) for name, v in sidecar.items() if CONSTRAINTS.get(name) != v}
    assert not differ, f"sidecar/requirements.txt differs from constraints.txt (name: (sidecar, constraints)): {differ}"


def test_the_execution_environment_installs_the_dev_sets_ansible() -> None:
    ee = yaml.safe_load((REPO / "awx" / "execution-environment.yml").read_text())
    deps = ee["dependencies"]
    for key in ("ansible_core", "ansible_runner"):
        name, version = deps[key]["package_pip"].split("==")
        assert CONSTRAINTS[name] == version, (key, deps[key], CONSTRAINTS.get(name))
    python = pins(REPO / "awx" / "requirements.txt")
    assert python and all(CONSTRAINTS.get(n) == v for n, v in python.items()), (python, CONSTRAINTS)
    # The collections: the versions the dev set's ansible bundle ships (the tests run those).
    import ansible_collections

    roots = [Path(p) for p in ansible_collections.__path__]
    wanted = yaml.safe_load((REPO / "awx" / "requirements.yml").read_text())["collections"]
    for c in wanted:
        namespace, name = c["name"].split(".")
        found = [
            r / namespace / name / "MANIFEST.json" for r in roots if (r / namespace / name / "MANIFEST.json").exists()
        ]
        assert found, f"{c['name']} is not in the dev set's Ansible"
        installed = json.loads(found[0].read_text())["collection_info"]["version"]
        assert installed == c["version"], (c["name"], "EE", c["version"], "dev set", installed)
