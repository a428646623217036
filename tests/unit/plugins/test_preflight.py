"""edgeinfer_preflight's judgement (refusals, what differs from a no-op) on the facts its one read
of an edge returns, and the release module's switch that writes the compose files with the release.

The read itself (docker, the release store, the port) runs against real edges in tests/integration/deploy."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

from ansible_collections.edgeinfer.deploy.plugins.module_utils._compose import ComposeFiles, env_keys
from ansible_collections.edgeinfer.deploy.plugins.module_utils._preflight import differs, refusals
from ansible_collections.edgeinfer.deploy.plugins.module_utils._release import ReleaseStore
from testbed.ansible_run import run_playbook
from tests.unit.plugins.conftest import make_release, new_keypair

PRIVATE, PUBLIC = new_keypair()

FACTS = {
    "docker": {"version": "20.10.24", "error": None},
    "compose": {"version": "2.29.0", "error": None},
    "arch": {"kernel": "amd64", "edge": "amd64", "declared": None, "emulator": None},
    "image": {"ref": "edgeinfer/sidecar:abc", "id": "sha256:aaa", "arch": "amd64"},
    "base_image_id": None,
    "container": {"running": True, "image_id": "sha256:aaa"},
    "port": {"holders": ["edgeinfer-sidecar"], "listening_other": False},
    "hailo": {"present": False, "gid": None},
    "state": {
        "current": "v1-11111111",
        "previous": None,
        "last_good": "v1-11111111",
        "releases": ["v1-11111111"],
        "known": {},
        "lock": None,
        "trusted_key_ids": [],
    },
    "staged": True,
    "disk": {"free_bytes": 10 * 2**30, "path": "/opt/edgeinfer"},
    "files": {"env_sha256": "e" * 64, "compose_sha256": "c" * 64, "admin_token": True},
}
PARAMS = {
    "root": "/opt/edgeinfer",
    "release": "v1-11111111",
    "release_size": 2**20,
    "disk_factor": 3,
    "trusted_keys": [PUBLIC.decode()],
    "allow_unsigned": False,
    "container": "edgeinfer-sidecar",
    "port": 9000,
    "backend": "auto",
    "require_hailo": False,
    "hailo_device": "/dev/hailo0",
    "image": "edgeinfer/sidecar:abc",
    "image_delivery": "present",
    "edge_architecture": "",
    "env_sha256": "e" * 64,
    "compose_sha256": "c" * 64,
}


def facts(**changes) -> dict:
    out = copy.deepcopy(FACTS)
    for path, value in changes.items():
        node = out
        *parents, leaf = path.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return out


def test_an_edge_that_can_take_the_release_has_no_refusal() -> None:
    assert refusals(facts(), PARAMS, host="edge-1") == []


@pytest.mark.parametrize(
    ("changes", "params", "expected"),
    [
        (
            {"docker__version": None, "docker__error": "Cannot connect"},
            {},
            "the Docker engine does not answer (Cannot connect)",
        ),
        ({"compose__version": None}, {}, "docker compose v2 is missing"),
        ({}, {"trusted_keys": [], "allow_unsigned": False}, "edge-1 trusts no signing key"),
        ({}, {"trusted_keys": ["not a key"]}, "trusted_keys[0]"),
        ({"staged": False, "disk__free_bytes": 2**20}, {}, "has 1.0 MiB free; the release needs 3 x 1.0 MiB"),
        ({}, {"require_hailo": True, "backend": "onnxruntime"}, "contradicts edgeinfer_backend=onnxruntime"),
        ({}, {"require_hailo": True}, "edge-1 has no /dev/hailo0, and edgeinfer_require_hailo=true asks for it"),
        ({}, {"backend": "hailo"}, "edge-1 has no /dev/hailo0, and edgeinfer_backend=hailo asks for it"),
        ({"port__holders": ["grafana"]}, {}, "port 9000 is published by grafana, not by edgeinfer-sidecar"),
        ({"port__holders": [], "port__listening_other": True}, {}, "in use by a process that is not the sidecar"),
        ({"image": None}, {}, "image edgeinfer/sidecar:abc is not on edge-1"),
        (
            {"image__arch": "arm64"},
            {},
            "image edgeinfer/sidecar:abc is arm64 (on the edge), and edge-1 runs amd64 images (docker info)",
        ),
        (
            {"arch__declared": "arm64", "arch__edge": "arm64", "arch__emulator": "", "image__arch": "arm64"},
            {"edge_architecture": "arm64"},
            "binfmt_misc entry /proc/sys/fs/binfmt_misc/qemu-aarch64 is missing",
        ),
        (
            {
                "arch__declared": "arm64",
                "arch__edge": "arm64",
                "arch__emulator": "enabled interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P flags: POC",
                "image__arch": "arm64",
            },
            {"edge_architecture": "arm64"},
            "lacks flag F",
        ),
    ],
)
def test_each_refusal_names_what_to_fix(changes: dict, params: dict, expected: str) -> None:
    reasons = refusals(facts(**changes), dict(PARAMS, **params), host="edge-1")
    assert any(expected in r for r in reasons), reasons


def test_the_emulator_is_enough_and_a_native_32_bit_userland_needs_none() -> None:
    entry = "enabled interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P flags: OCF offset 0"
    emulated = facts(arch__declared="arm64", arch__edge="arm64", arch__emulator=entry, image__arch="arm64")
    assert refusals(emulated, dict(PARAMS, edge_architecture="arm64")) == []
    native = facts(arch__kernel="arm64", arch__declared="arm", arch__edge="arm", arch__emulator=None, image__arch="arm")
    assert refusals(native, dict(PARAMS, edge_architecture="arm")) == []


def test_a_staged_release_needs_no_room_and_a_missing_image_is_delivered_unless_present() -> None:
    assert refusals(facts(disk__free_bytes=0), PARAMS) == []
    assert refusals(facts(image=None), dict(PARAMS, image_delivery="build")) == []


def test_a_no_op_needs_every_part_to_match() -> None:
    from ansible_collections.edgeinfer.deploy.plugins.module_utils._trust import parse_trusted_keys

    serving = facts(state__trusted_key_ids=sorted(parse_trusted_keys([PUBLIC.decode()])))
    assert differs(serving, PARAMS) == []
    cases = {
        "release": dict(state__last_good="v0-00000000"),
        "lock": dict(state__lock={"deploy_id": "x"}),
        "env": dict(files__env_sha256="0" * 64),
        "compose": dict(files__compose_sha256=None),
        "admin_token": dict(files__admin_token=False),
        "container": dict(container__running=False),
        "image": dict(container__image_id="sha256:bbb"),
        "trusted_keys": dict(state__trusted_key_ids=[]),
    }
    for part, change in cases.items():
        f = copy.deepcopy(serving)
        for path, value in change.items():
            node = f
            *parents, leaf = path.split("__")
            for p in parents:
                node = node[p]
            node[leaf] = value
        assert differs(f, PARAMS) == [part], part


# -- the switch writes the compose files with the release, on real files ----------------------


def run_release(capsys, **args) -> dict:
    from ansible.module_utils.testing import patch_module_args

    from ansible_collections.edgeinfer.deploy.plugins.modules import edgeinfer_release

    with patch_module_args(args), pytest.raises(SystemExit):
        edgeinfer_release.main()
    return json.loads(capsys.readouterr().out)


def staged(tmp_path: Path, root: Path, version: str, payload: bytes) -> str:
    src = tmp_path / "incoming" / version
    make_release(src, version, payload, private_pem=PRIVATE)
    _, info = ReleaseStore(root).stage(src, trusted_keys=[PUBLIC])
    return info["release"]


ENV = 'EDGEINFER_IMAGE=img:1\nEDGEINFER_PORT=9000\nMODEL_VERSION="{v}"\n'


def test_switch_with_compose_files_is_predicted_then_done_then_idempotent(tmp_path: Path, capsys) -> None:
    root, compose = tmp_path / "edge", tmp_path / "edge" / "compose"
    r1, r2 = staged(tmp_path, root, "v1", b"one"), staged(tmp_path, root, "v2", b"two")
    first = {"root": str(root), "action": "switch", "compose_dir": str(compose), "compose_file": "services: {}\n"}

    a = dict(first, release=r1, env=ENV.format(v="v1"))
    would = run_release(capsys, **a, _ansible_check_mode=True, _ansible_diff=True)
    assert would["changed"] and not compose.exists()  # check mode wrote nothing
    assert set(would["files_written"]) == {"compose.yaml", ".env", f"env/{r1}.env", "admin_token"}
    did = run_release(capsys, **a)
    assert (did["changed"], did["files_written"], did["current"]) == (True, would["files_written"], r1)
    token = compose / "admin_token"
    assert token.stat().st_mode & 0o777 == 0o400 and len(token.read_text()) == 40
    again = run_release(capsys, **a, _ansible_check_mode=True)
    assert (again["changed"], run_release(capsys, **a)["changed"]) == (False, False)

    # The next release: the env changes in MODEL_VERSION alone, the token stays, the old env is kept.
    secret = token.read_text()
    b = dict(first, release=r2, env=ENV.format(v="v2"))
    did = run_release(capsys, **b, _ansible_diff=True)
    assert did["changed"] and did["env_changed_keys"] == ["MODEL_VERSION"] and not did["compose_changed"]
    assert token.read_text() == secret
    assert (compose / "env" / f"{r1}.env").read_text() == ENV.format(v="v1")
    assert env_keys((compose / ".env").read_text())["MODEL_VERSION"] == '"v2"'
    assert did["diff"][1]["before"] == ENV.format(v="v1") and did["diff"][1]["after"] == ENV.format(v="v2")

    # A revert without env restores the env its release served with.
    back = run_release(capsys, root=str(root), action="switch", release=r1, reason="revert", compose_dir=str(compose))
    assert back["changed"] and back["env_changed_keys"] == ["MODEL_VERSION"] and back["current"] == r1
    assert (compose / ".env").read_text() == ENV.format(v="v1")


def test_switch_to_a_release_that_is_not_staged_writes_no_compose_file(tmp_path: Path, capsys) -> None:
    root, compose = tmp_path / "edge", tmp_path / "edge" / "compose"
    res = run_release(
        capsys, root=str(root), action="switch", release="v9-deadbeef", compose_dir=str(compose), env="A=1\n"
    )
    assert res["failed"] and "v9-deadbeef is not staged" in res["msg"]
    assert not compose.exists()


def test_compose_files_never_leave_a_half_written_file(tmp_path: Path) -> None:
    files = ComposeFiles(tmp_path / "c")
    files.write("v1-0", env="A=1\n", compose="x: 1\n")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [".env", "admin_token", "compose.yaml", "env"]


def test_unlock_keeps_the_record_with_what_the_edge_serves_after(tmp_path: Path, capsys) -> None:
    root = tmp_path / "edge"
    r1 = staged(tmp_path, root, "v1", b"one")
    ReleaseStore(root).switch(r1)
    run_release(capsys, root=str(root), action="lock", deploy_id="d1", lock_holder="me")
    res = run_release(capsys, root=str(root), action="unlock", deploy_id="d1", record={"outcome": "deployed"})
    assert res["record"]["after"]["release"] == r1 and res["lock"]["deploy_id"] == "d1"
    kept = json.loads((root / "records" / "d1.json").read_text())
    assert kept == res["record"] and not (root / "deploy.lock").exists()


def test_unlock_releases_only_its_own_deploys_lock(tmp_path: Path, capsys) -> None:
    root = tmp_path / "edge"
    run_release(capsys, root=str(root), action="lock", deploy_id="d1", lock_holder="me")
    bare = run_release(capsys, root=str(root), action="unlock")
    assert bare["failed"] and "deploy_id" in bare["msg"]
    other = run_release(capsys, root=str(root), action="unlock", deploy_id="d2")
    assert other["failed"] and "belongs to deploy d1" in other["msg"]
    assert json.loads((root / "deploy.lock").read_text())["deploy_id"] == "d1"


def test_the_image_check_refuses_an_image_of_another_architecture_in_preflights_words(tmp_path: Path) -> None:
    """The role's image check (an image found on the controller once its content tag is known) words
    its refusal through the filter plugin arch_mismatch, which is preflight's own message."""
    (preflight,) = refusals(facts(image__arch="arm64"), dict(PARAMS, image_delivery="load"), host="e1")
    out = tmp_path / "msg.txt"
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "message",
                "ansible.builtin.copy": {
                    "content": "{{ 'edgeinfer/sidecar:abc' | edgeinfer.deploy.arch_mismatch('arm64', where, 'e1',"
                    " 'amd64', false, 'load') }}",
                    "dest": str(out),
                },
                "vars": {"where": "on the controller, which ships it"},
                "delegate_to": "localhost",
            }
        ],
    }
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        "localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
                    }
                }
            }
        )
    )
    run = run_playbook([play], inventory=inventory, tmp_path=tmp_path, timeout=120)
    assert out.is_file(), run.explain()
    rendered = out.read_text()
    assert rendered == preflight.replace("(on the edge)", "(on the controller, which ships it)"), rendered
    assert "build the image for amd64 on the controller" in rendered, rendered
