"""Safe defaults: the untrained demo model is built only where an inventory asks for it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from testbed.ansible_run import BIN, REPO, run_playbook


def test_a_build_without_a_checkpoint_is_refused_by_default(tmp_path: Path) -> None:
    inv = tmp_path / "gpusrv.yml"
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inv.write_text(yaml.safe_dump({"all": {"children": {"gpusrv": {"hosts": {"gpusrv-x": host}}}}}))
    extra = {"edgeinfer_build_artifacts_dir": str(tmp_path / "artifacts"), "edgeinfer_build_python": sys.executable}
    run = run_playbook(REPO / "playbooks" / "build.yml", inv, extra, tmp_path=tmp_path)
    assert run.rc != 0, run.explain()
    failed = run.task("edgeinfer_build : Check that there is something to build")
    assert failed.get("failed"), run.explain()
    assert "nothing to build" in failed["msg"] and "edgeinfer_build_allow_untrained" in failed["msg"], failed["msg"]
    assert not (tmp_path / "artifacts").exists(), "a refused build wrote nothing"


def test_a_build_that_model_tools_refuses_fails_in_its_words_naming_the_variables(tmp_path: Path) -> None:
    inv = tmp_path / "gpusrv.yml"
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inv.write_text(yaml.safe_dump({"all": {"children": {"gpusrv": {"hosts": {"gpusrv-x": host}}}}}))
    extra = {
        "edgeinfer_build_artifacts_dir": str(tmp_path / "artifacts"),
        "edgeinfer_build_python": sys.executable,
        "edgeinfer_build_checkpoint": str(tmp_path / "none.pth"),
        "edgeinfer_build_model_version": "v1",
        # As -e gives it: text, which the role reads as the boolean it names.
        "edgeinfer_build_allow_untrained": "false",
    }
    run = run_playbook(REPO / "playbooks" / "build.yml", inv, extra, tmp_path=tmp_path)
    assert run.rc != 0, run.explain()
    failed = run.task("edgeinfer_build : Stop when the build failed, saying why")
    assert failed.get("failed"), run.explain()
    assert f"checkpoint source {tmp_path / 'none.pth'} does not exist" in failed["msg"], failed["msg"]
    assert "edgeinfer_build_checkpoint" in failed["msg"], failed["msg"]


def _hostvars(inventory: str) -> dict[str, dict]:
    out = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(REPO / "inventory" / inventory), "--list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)["_meta"]["hostvars"]


def test_only_the_embedded_default_allows_the_demo_model_and_unsigned_releases() -> None:
    local = _hostvars("local")
    assert local and all(hv.get("edgeinfer_build_allow_untrained") is True for hv in local.values()), local
    production = _hostvars("production")
    assert production
    for host, hv in production.items():
        assert hv.get("edgeinfer_build_allow_untrained", False) is False, host
        assert hv.get("edgeinfer_allow_unsigned", False) is False, host


def test_the_production_edges_require_their_hailo_and_are_reached_over_tailscale() -> None:
    production = _hostvars("production")
    edges = {h: hv for h, hv in production.items() if "edgeinfer_root" in hv}
    assert edges
    for host, hv in edges.items():
        assert hv.get("edgeinfer_backend") == "auto" and hv.get("edgeinfer_require_hailo") is True, host
        assert hv.get("edgeinfer_tailscale") is True, host
    for host, hv in _hostvars("local").items():
        assert not hv.get("edgeinfer_require_hailo", False) and not hv.get("edgeinfer_tailscale", False), host


def test_the_deploy_plays_leave_the_inventorys_rollout_knobs_to_the_inventory() -> None:
    # A play's vars outrank the inventory's group and host vars: a default set there would make
    # an inventory's failure budget silently ineffective (only -e would count).
    knobs = {"edgeinfer_failure_budget", "edgeinfer_unreachable_budget"}
    plays = yaml.safe_load((REPO / "playbooks" / "deploy.yml").read_text())
    set_in_plays = {(play.get("name"), k) for play in plays for k in play.get("vars") or {} if k in knobs}
    assert not set_in_plays
    budget_test = next(play for play in plays if play.get("hosts") == "edges")["pre_tasks"][0]["when"]
    assert "edgeinfer_failure_budget | default(0)" in budget_test
    assert "edgeinfer_unreachable_budget | default('100%')" in budget_test
