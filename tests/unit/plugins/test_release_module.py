"""edgeinfer_release through real ansible-playbook over real SSH to a loopback edge.

Each action runs four times, as community.docker's integration tests do: check mode,
real, idempotent check, idempotent real; then one assert over all four."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeinfer_contract import key_id
from testbed.ansible_run import run_playbook
from tests.unit.plugins.conftest import make_release

pytestmark = pytest.mark.fleet


def four_pass(name: str, args: dict) -> list[dict]:
    mod = "edgeinfer.deploy.edgeinfer_release"
    return [
        {"name": f"{name} (check)", mod: args, "check_mode": True, "diff": True, "register": f"{name}_1"},
        {"name": f"{name}", mod: args, "register": f"{name}_2"},
        {"name": f"{name} (idempotent check)", mod: args, "check_mode": True, "register": f"{name}_3"},
        {"name": f"{name} (idempotent)", mod: args, "register": f"{name}_4"},
        {
            "name": f"{name}: changed, changed, unchanged, unchanged",
            "ansible.builtin.assert": {
                "that": [
                    f"{name}_1 is changed",
                    f"{name}_2 is changed",
                    f"{name}_3 is not changed",
                    f"{name}_4 is not changed",
                ]
            },
        },
    ]


def test_trust_stage_and_switch_four_passes_over_ssh(fleet_factory, tmp_path: Path, signing_keys) -> None:
    fleet = fleet_factory(1)
    edge = fleet.edges[0]
    private, public = signing_keys
    incoming = Path(edge.root) / "staging" / "incoming"
    manifest = make_release(incoming, "v1", b"one", private_pem=private)
    root = edge.root
    tasks = four_pass("trust", {"root": root, "action": "trust", "trusted_keys": [public.decode()]})
    # Without trusted_keys, stage checks against the keys just provisioned under <root>/trust.
    tasks += four_pass("stage", {"root": root, "action": "stage", "source": str(incoming)})
    tasks.append(
        {
            "name": "nothing staged by check mode; signed by the trusted key",
            "ansible.builtin.assert": {
                "that": [
                    "stage_1.release == stage_2.release",
                    "stage_2.signed",
                    f"stage_2.key_id == '{key_id(public)}'",
                ]
            },
        }
    )
    tasks += four_pass("switch", {"root": root, "action": "switch", "release": "{{ stage_2.release }}"})
    tasks += [
        {
            "name": "info",
            "edgeinfer.deploy.edgeinfer_release": {"root": root, "release": "{{ stage_2.release }}"},
            "register": "info",
        },
        {
            "name": "info sees it",
            "ansible.builtin.assert": {"that": ["info.present", "info.current == stage_2.release"]},
        },
    ]
    run = run_playbook(
        [{"hosts": "edges", "gather_facts": False, "tasks": tasks}], fleet.inventory_path, tmp_path=tmp_path
    )
    assert run.rc == 0, run.explain()
    res = run.results(edge.name)
    rid = res["stage"]["release"]
    assert rid == f"v1-{manifest.digest[:8]}"
    assert res["trust (check)"]["diff"]["after"] == f"trust/{key_id(public)}.pub\n"
    assert (Path(root) / "trust" / f"{key_id(public)}.pub").read_bytes() == public
    assert res["switch (check)"]["diff"]["after"] == f"current -> {rid}\n"
    assert os.readlink(Path(root) / "models" / "current") == f"releases/{rid}"


def test_failed_verification_names_the_file_and_changes_nothing(fleet_factory, tmp_path: Path, signing_keys) -> None:
    fleet = fleet_factory(1)
    edge = fleet.edges[0]
    private, public = signing_keys
    incoming = Path(edge.root) / "staging" / "bad"
    make_release(incoming, "v1", b"one", private_pem=private)
    (incoming / "golden.json").write_text('{"windows": [1]}')
    args = {"root": edge.root, "action": "stage", "source": str(incoming), "trusted_keys": [public.decode()]}
    tasks = [{"name": "stage", "edgeinfer.deploy.edgeinfer_release": args}]
    run = run_playbook(
        [{"hosts": "edges", "gather_facts": False, "tasks": tasks}], fleet.inventory_path, tmp_path=tmp_path
    )
    assert run.rc != 0
    res = run.results(edge.name)["stage"]
    assert res["failed"] and "golden.json: size" in res["msg"]
    assert (
        res["problems"]
        and not (Path(edge.root) / "models" / "releases").exists()
        or not any((Path(edge.root) / "models" / "releases").iterdir())
    )


def test_second_deploy_fails_fast_naming_the_holder(fleet_factory, tmp_path: Path) -> None:
    fleet = fleet_factory(1)
    edge = fleet.edges[0]
    lock = {"root": edge.root, "action": "lock", "lock_holder": "alice@ctl", "deploy_id": "d1"}
    other = dict(lock, lock_holder="bob@ctl", deploy_id="d2")
    tasks = [
        {"name": "first", "edgeinfer.deploy.edgeinfer_release": lock},
        {"name": "second", "edgeinfer.deploy.edgeinfer_release": other, "ignore_errors": True, "register": "second"},
        {"name": "refused", "ansible.builtin.assert": {"that": ["second is failed", "'alice@ctl' in second.msg"]}},
        {
            "name": "unlock",
            "edgeinfer.deploy.edgeinfer_release": {"root": edge.root, "action": "unlock", "deploy_id": "d1"},
        },
        {"name": "now free", "edgeinfer.deploy.edgeinfer_release": other},
    ]
    run = run_playbook(
        [{"hosts": "edges", "gather_facts": False, "tasks": tasks}], fleet.inventory_path, tmp_path=tmp_path
    )
    assert run.rc == 0, run.explain()
    assert run.results(edge.name)["second"]["lock"]["holder"] == "alice@ctl"
