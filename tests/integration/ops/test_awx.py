"""The AWX side, as far as it can be checked without an AWX: the execution environment turns
into a build context with ansible-builder, and the configuration playbook is syntax-checked,
linted, and its job templates, surveys and workflow graph are rendered and checked."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.ansible_run import run_playbook

from .conftest import REPO

BIN = Path(sys.executable).parent
AWX = REPO / "awx"
CONFIGURE = REPO / "playbooks" / "awx_configure.yml"


def _builder() -> str:
    exe = shutil.which("ansible-builder", path=str(BIN)) or shutil.which("ansible-builder")
    if not exe:
        pytest.fail("ansible-builder not installed: pip install ansible-builder==3.2.0 (a dev dependency)")
    return exe


def _collection_tarball() -> Path:
    out = REPO / "build" / "collection"
    found = sorted(out.glob("edgeinfer-deploy-*.tar.gz"))
    if not found:  # what `make collection` does
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(out), str(REPO)],
            check=True,
            capture_output=True,
        )
        found = sorted(out.glob("edgeinfer-deploy-*.tar.gz"))
    return found[-1]


def test_ansible_builder_create_makes_a_build_context(tmp_path: Path):
    tarball = _collection_tarball()
    ctx = tmp_path / "context"
    r = subprocess.run(
        [
            _builder(),
            "create",
            "-f",
            str(AWX / "execution-environment.yml"),
            "-c",
            str(ctx),
            "--output-filename",
            "Containerfile",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    containerfile = (ctx / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert 'ARG PYCMD="/usr/bin/python3.11"' in containerfile
    assert f"ansible-core=={version('ansible-core')}" in containerfile
    assert f"ansible-runner=={version('ansible-runner')}" in containerfile
    assert "ansible-galaxy collection install --offline --no-deps" in containerfile
    assert (ctx / "_build" / "edgeinfer" / tarball.name).is_file()
    for name in ("requirements.yml", "requirements.txt", "bindep.txt"):
        assert (ctx / "_build" / name).read_text() == (AWX / name).read_text()


def test_ee_pins_are_the_versions_tested_here():
    listed = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "list", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    installed: dict[str, str] = {}
    for collections in json.loads(listed.stdout).values():
        for name, info in collections.items():
            installed.setdefault(name, info["version"])
    for c in yaml.safe_load((AWX / "requirements.yml").read_text())["collections"]:
        assert installed.get(c["name"]) == c["version"], c
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    assert set(galaxy["dependencies"]) <= {
        c["name"] for c in yaml.safe_load((AWX / "requirements.yml").read_text())["collections"]
    }
    for line in (AWX / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, pin = line.split("==")
            assert version(name) == pin, line


def test_awx_configure_passes_syntax_check_and_lint():
    r = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", str(CONFIGURE)], capture_output=True, text=True, cwd=REPO
    )
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([str(BIN / "ansible-lint"), str(CONFIGURE)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr


def _play() -> dict[str, Any]:
    return yaml.safe_load(CONFIGURE.read_text())[0]


def _tasks(module: str) -> dict[str, dict[str, Any]]:
    return {t["name"]: t[module] for t in _play()["tasks"] if module in t}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The module arguments of every awx.awx task, templated by Ansible with the play's own vars."""
    tmp = tmp_path_factory.mktemp("awx")
    play = _play()
    modules = {t["name"]: {k: v for k, v in t.items() if k.startswith("awx.awx.")} for t in play["tasks"]}
    modules = {k: next(iter(v.values())) for k, v in modules.items() if v}
    (tmp / "args.yml").write_text(yaml.safe_dump({"_args": modules}))
    inline = [
        {
            "name": "render",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": play["vars"],
            "vars_files": [*(str(CONFIGURE.parent / f) for f in play["vars_files"]), str(tmp / "args.yml")],
            "tasks": [{"name": "rendered", "ansible.builtin.debug": {"var": "_args"}}],
        }
    ]
    run = run_playbook(inline, "localhost,", {"edgeinfer_awx_scm_url": "https://git.example/deploy.git"}, tmp_path=tmp)
    assert run.rc == 0, run.explain()
    return run.results("localhost")["rendered"]["_args"]


def _known_variables() -> set[str]:
    names = {"release", "edgeinfer_awx_run_benchmark"}
    for role in ("edgeinfer", "edgeinfer_build"):
        names |= set(yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text()))
    return names


def test_job_templates_run_the_project_s_playbooks_with_surveys(rendered):
    jts = {k: v for k, v in rendered.items() if k.startswith("Job template")}
    assert {v["playbook"] for v in jts.values()} == {
        "playbooks/build.yml",
        "playbooks/deploy.yml",
        "playbooks/rollback.yml",
        "playbooks/validate.yml",
        "playbooks/ab.yml",
    }
    build = jts.pop("Job template | build")
    assert (REPO / build["playbook"]).is_file()
    # GPUSRV only: the workflow's limit (edges) must not reach the build.
    assert (build["limit"], build["ask_limit_on_launch"]) == ("gpusrv", False)
    assert [q["variable"] for q in build["survey_spec"]["spec"]] == [
        "edgeinfer_build_model_version",
        "edgeinfer_build_checkpoint",
    ]
    for name, jt in jts.items():
        assert (REPO / jt["playbook"]).is_file()
        assert jt["ask_limit_on_launch"] is True, name
        assert jt["survey_enabled"] is True, name
        spec = jt["survey_spec"]["spec"]
        variables = [q["variable"] for q in spec]
        assert len(variables) == len(set(variables)), name
        assert set(variables) <= _known_variables(), set(variables) - _known_variables()
        for q in spec:
            assert q["type"] in {"text", "integer", "float", "multiplechoice"}, q
            if q["type"] == "integer":
                assert isinstance(q["default"], int) and q["min"] <= q["default"] <= q["max"], q
            if q["type"] == "float" and (q["required"] or q["default"] != ""):
                assert q["min"] <= float(q["default"]) <= q["max"], q
            if q["type"] == "multiplechoice":
                assert q["default"] in q["choices"], q
        # thresholds and skip-benchmark on every template
        assert {
            "edgeinfer_benchmark_p95_ms",
            "edgeinfer_benchmark_min_success_rate",
            "edgeinfer_awx_run_benchmark",
        } <= set(variables)
    deploy = rendered["Job template | deploy"]
    assert {"edgeinfer_build_model_version"} <= {q["variable"] for q in deploy["survey_spec"]["spec"]}
    assert deploy["job_slice_count"] == 1
    rollback = rendered["Job template | rollback"]
    assert "release" in {q["variable"] for q in rollback["survey_spec"]["spec"]}
    ab = rendered["Job template | A/B"]
    assert {
        "edgeinfer_build_model_version",
        "edgeinfer_ab_edges",
        "edgeinfer_ab_min_windows",
        "edgeinfer_ab_timeout",
        "edgeinfer_ab_min_cka",
        "edgeinfer_ab_min_knn_jaccard",
        "edgeinfer_ab_max_p95_factor",
    } <= {q["variable"] for q in ab["survey_spec"]["spec"]}
    # the survey's defaults are the role's
    defaults = yaml.safe_load((REPO / "roles" / "edgeinfer" / "defaults" / "main.yml").read_text())
    for q in ab["survey_spec"]["spec"]:
        if q["variable"].startswith("edgeinfer_ab_") and q["variable"] != "edgeinfer_ab_edges":
            assert q["default"] == defaults[q["variable"]], q


def test_workflow_is_build_then_deploy_then_rollback_on_failure_then_always_record(rendered):
    wf = rendered["Workflow | deploy, on failure rollback, always record"]
    nodes = {n["identifier"]: n for n in wf["workflow_nodes"]}
    jts = {v["name"]: v["playbook"] for k, v in rendered.items() if k.startswith("Job template")}
    assert {k: jts[n["unified_job_template"]["name"]] for k, n in nodes.items()} == {
        "build": "playbooks/build.yml",
        "deploy": "playbooks/deploy.yml",
        "rollback": "playbooks/rollback.yml",
        "record": "playbooks/validate.yml",
    }

    def edges(node: str, kind: str) -> list[str]:
        return [e["identifier"] for e in nodes[node].get("related", {}).get(kind, [])]

    assert edges("build", "success_nodes") == ["deploy"]
    assert edges("build", "failure_nodes") == edges("build", "always_nodes") == []  # nothing was deployed
    assert edges("deploy", "success_nodes") == ["record"]
    assert edges("deploy", "failure_nodes") == ["rollback"]
    assert edges("rollback", "always_nodes") == ["record"]
    assert nodes["record"]["extra_data"] == {"edgeinfer_awx_run_benchmark": "false"}
    # a workflow survey answer would override the record node's extra_data
    assert "edgeinfer_awx_run_benchmark" not in {q["variable"] for q in wf["survey_spec"]["spec"]}


@pytest.mark.parametrize(("answer", "expected"), [("true", True), ("false", False)])
def test_the_benchmark_survey_answer_reaches_the_roles_as_a_boolean(
    rendered, answer: str, expected: bool, tmp_path: Path
):
    """AWX sends the answer as a string; the template's own extra_vars turn it into a boolean."""
    extra = dict(rendered["Job template | deploy"]["extra_vars"], edgeinfer_awx_run_benchmark=answer)
    inline = [
        {
            "name": "types",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "enabled",
                    "ansible.builtin.debug": {
                        "msg": "{{ [edgeinfer_benchmark_enabled, edgeinfer_benchmark_enabled | type_debug] }}"
                    },
                }
            ],
        }
    ]
    run = run_playbook(inline, "localhost,", extra, tmp_path=tmp_path)
    assert run.rc == 0, run.explain()
    assert run.results("localhost")["enabled"]["msg"] == [expected, "bool"]


def test_ab_workflow_is_build_then_ab_then_always_record(rendered):
    wf = rendered["Workflow | A/B in shadow, promote through the deploy, always record"]
    nodes = {n["identifier"]: n for n in wf["workflow_nodes"]}
    jts = {v["name"]: v["playbook"] for k, v in rendered.items() if k.startswith("Job template")}
    assert {k: jts[n["unified_job_template"]["name"]] for k, n in nodes.items()} == {
        "build": "playbooks/build.yml",
        "ab": "playbooks/ab.yml",
        "record": "playbooks/validate.yml",
    }

    def edges(node: str, kind: str) -> list[str]:
        return [e["identifier"] for e in nodes[node].get("related", {}).get(kind, [])]

    assert edges("build", "success_nodes") == ["ab"]
    assert edges("build", "failure_nodes") == edges("build", "always_nodes") == []
    assert edges("ab", "always_nodes") == ["record"]
    assert nodes["record"]["extra_data"] == {"edgeinfer_awx_run_benchmark": "false"}
    variables = [q["variable"] for q in wf["survey_spec"]["spec"]]
    assert "edgeinfer_awx_run_benchmark" not in variables
    assert len(variables) == len(set(variables)) and set(variables) <= _known_variables()
