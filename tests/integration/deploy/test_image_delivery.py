"""The sidecar image reaches the edge under its content tag, by the chosen way, and only when
it changed: built on the edge from a copied context; saved on the controller, copied and
loaded (the air-gapped path); pushed by the controller to a registry (Debian's docker-registry,
on loopback) and pulled by the edge. An image of another architecture than the edge's is
refused before anything changes; a rollback restores the previous release's image by id.

One loopback edge serves the module's runs in file order, each case starting where the one
before left the edge. The edge shares this machine's Docker engine with the controller, so the
tags live under a repository of this module's own, which nothing else uses."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testbed.ansible_run import REPO, PlaybookRun, run_playbook
from testbed.deploy import DeployBench, make_bench
from testbed.ports import free_port

pytestmark = [pytest.mark.fleet, pytest.mark.docker, pytest.mark.slow]

CA = "/etc/ssl/certs/ca-certificates.crt"
REFUSAL_TASK = "Preflight | Read the edge once, refuse what cannot land there"


@dataclass
class Bench:
    deploy: DeployBench
    repository: str
    base: str
    changed_tree: Path  # a copy of the checkout whose sidecar code changed
    found: dict[str, Any]  # what the cases before found: tags and ids

    def vars(self, version: str, seed: int, **extra: Any) -> dict[str, Any]:
        """The bench's extra vars with no edgeinfer_image: the role derives the content tag."""
        v = self.deploy.vars(version, seed, edgeinfer_image_repository=self.repository, edgeinfer_image_base=self.base)
        v.pop("edgeinfer_image")
        v.update(extra)
        return v

    def run(self, playbook: str, extra_vars: dict[str, Any], tree: Path = REPO) -> PlaybookRun:
        """A playbook of ``tree`` (the checkout, or its changed copy), as a user runs it there."""
        args: list[str] = []
        for inv in self.deploy.inventory[1:]:
            args += ["-i", str(inv)]
        return run_playbook(
            tree / "playbooks" / playbook,
            self.deploy.inventory[0],
            extra_vars,
            tmp_path=self.deploy.tmp,
            env={"ANSIBLE_CONFIG": str(tree / "ansible.cfg")},
            args=args,
        )

    @property
    def root(self) -> Path:
        return Path(self.deploy.fleet.edges[0].root)

    def container_image(self) -> tuple[str, str]:
        """(container id, image id) of the sidecar that serves on the edge."""
        name = f"{self.deploy.fleet.edges[0].compose_project}-sidecar"
        out = subprocess.run(
            ["docker", "inspect", "--format", "{{.Id}} {{.Image}}", name], capture_output=True, text=True, check=True
        )
        cid, image = out.stdout.split()
        return cid, image


def image_id(ref: str) -> str | None:
    r = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def content_tag(tree: Path, *args: str) -> str:
    """The tag that ``python -m sidecar.build_image --print-tag`` of ``tree`` prints."""
    cmd = [sys.executable, "-m", "sidecar.build_image", "--print-tag", *args]
    return subprocess.run(cmd, cwd=tree, capture_output=True, text=True, check=True).stdout.strip()


def engine_arch() -> str:
    machine = subprocess.run(
        ["docker", "info", "--format", "{{.Architecture}}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


@pytest.fixture(scope="module")
def bench(sidecar_image: str, base_image: str, artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from testbed.fleet import Fleet

    tmp = tmp_path_factory.mktemp("image-delivery")
    repository = f"edgeinfer/sidecar-delivery-{secrets.token_hex(3)}"
    # The checkout after a change to the sidecar's code, as a user has it after a pull.
    changed = tmp / "checkout-changed"
    shutil.copytree(
        REPO,
        changed,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "records", ".artifacts", ".cache", "__pycache__", ".pytest_cache", ".ruff_cache"
        ),
    )
    with (changed / "sidecar" / "app.py").open("a") as fh:
        fh.write("\n# a change to the sidecar's code\n")
    fleet = Fleet.up(1, tmp / "fleet")
    try:
        yield Bench(make_bench(fleet, artifacts_dir, sidecar_image, tmp), repository, base_image, changed, {})
    finally:
        fleet.down()
        out = subprocess.run(
            ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True
        )
        ours = [ref for ref in out.stdout.split() if repository in ref]
        if ours:
            subprocess.run(["docker", "image", "rm", "-f", *ours], capture_output=True)


@dataclass
class Registry:
    address: str
    log: Path


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):
    """Debian's docker-registry on a free loopback port, without auth (Docker pulls over plain
    HTTP from 127.0.0.0/8), started and stopped by PID."""
    import os

    exe = shutil.which("docker-registry")
    if exe is None:
        msg = "docker-registry not found: run scripts/bootstrap.sh (it installs Debian's docker-registry)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    d = tmp_path_factory.mktemp("registry")
    address = f"127.0.0.1:{free_port()}"
    config = d / "config.yml"
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "info"},
                "storage": {"filesystem": {"rootdirectory": str(d / "data")}},
                "http": {"addr": address},
            }
        )
    )
    log = d / "registry.log"
    with log.open("w") as out:
        proc = subprocess.Popen([exe, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"docker-registry did not answer on {address}: {log.read_text()}"
            time.sleep(0.2)
        yield Registry(address, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_built_on_the_edge_under_its_content_tag(bench: Bench) -> None:
    tag_a = content_tag(REPO, engine_arch(), "--base-image", bench.base, "--repository", bench.repository)
    run = bench.run("deploy.yml", bench.vars("v1", 1, edgeinfer_image_delivery="build", edgeinfer_image_build_ca=CA))
    assert run.rc == 0, run.explain()
    results = run.results("edge-1")
    for name in (
        "Image build | Copy the build context (Dockerfile, requirements, edgeinfer_contract, sidecar)",
        "Image build | docker build",
    ):
        assert results[f"edgeinfer : {name}"]["changed"] is True, name
    id_a = image_id(tag_a)
    assert id_a and id_a.startswith("sha256:")
    record = bench.deploy.last_record()
    assert (record["image"], record["image_id"]) == (tag_a, id_a)
    assert (record["after"]["image"], record["after"]["image_id"]) == (tag_a, id_a)
    v1 = bench.deploy.release_of("v1")["release"]
    known = bench.deploy.state()["releases"][v1]
    assert (known["image"], known["image_id"]) == (tag_a, id_a)
    assert bench.container_image()[1] == id_a
    assert bench.deploy.health()[1]["model_version"] == "v1"
    # The CA bundle given to the build stage is not in the image that serves.
    ca = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--entrypoint",
            "/bin/sh",
            tag_a,
            "-c",
            "ls /build /etc/ssl/certs/ca-certificates.crt 2>/dev/null; find / -name build-ca.crt 2>/dev/null",
        ],
        capture_output=True,
        text=True,
    )
    assert "build-ca.crt" not in ca.stdout
    bench.found.update(tag_a=tag_a, id_a=id_a, v1=v1)


def test_an_image_of_another_architecture_is_refused_before_anything_changes(bench: Bench) -> None:
    tag_a = bench.found["tag_a"]
    state, env = (bench.root / "state.json").read_bytes(), (bench.root / "compose" / ".env").read_bytes()
    releases, container = (
        sorted(p.name for p in (bench.root / "models" / "releases").iterdir()),
        bench.container_image(),
    )
    run = bench.run(
        "deploy.yml",
        bench.vars(
            "v2", 2, edgeinfer_image=tag_a, edgeinfer_image_delivery="present", edgeinfer_edge_architecture="s390x"
        ),
    )
    assert run.rc != 0, run.explain()
    record = bench.deploy.last_record()
    assert record["outcome"] == "refused", record
    assert record["failure"]["task"] == REFUSAL_TASK, record["failure"]
    msg = record["failure"]["msg"]
    assert f"image {tag_a} is {engine_arch()} (on the edge)" in msg, msg
    assert "runs s390x images (edgeinfer_edge_architecture)" in msg and "edgeinfer_image_delivery: build" in msg, msg
    # Nothing changed: the same container serves v1 on image A, from the same state and env.
    assert bench.container_image() == container
    assert bench.deploy.health()[1]["model_version"] == "v1"
    assert (bench.root / "state.json").read_bytes() == state
    assert (bench.root / "compose" / ".env").read_bytes() == env
    assert sorted(p.name for p in (bench.root / "models" / "releases").iterdir()) == releases


def emulates(qemu: str) -> bool:
    """Whether this machine runs ``qemu``'s binaries in containers: its binfmt_misc entry is
    enabled and registered with flag F (the interpreter opened at registration)."""
    try:
        entry = Path(f"/proc/sys/fs/binfmt_misc/{qemu}").read_text().split("\n")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].strip() for line in entry if line.startswith("flags:")), "")
    return entry[0] == "enabled" and "F" in flags


def test_an_edge_declared_to_run_arm64_images_needs_the_arm64_emulator(bench: Bench) -> None:
    """edgeinfer_edge_architecture: arm64 on this amd64 edge (the emulated arm64 bench edge) asks for
    qemu-user-static's qemu-aarch64 entry: where the edge has it, the check passes; where it does
    not, it refuses, naming the fix. The check alone runs here (the tasks the deploy runs before its
    lock), on the real edge."""
    if engine_arch() == "arm64":
        pytest.skip("this machine runs arm64 natively: no emulator to ask for")
    play = [
        {
            "hosts": "edges",
            "gather_facts": False,
            "tasks": [
                {"ansible.builtin.include_role": {"name": "edgeinfer", "tasks_from": "preflight.yml"}},
            ],
        }
    ]
    extra = {
        # A tag the edge lacks: with delivery build, its architecture is checked once built, so
        # the emulator is what this check decides on.
        "edgeinfer_image": f"{bench.repository}:not-built",
        "edgeinfer_image_delivery": "build",
        "edgeinfer_edge_architecture": "arm64",
        # No release is deployed here: only the edge's own facts decide.
        "edgeinfer_release_source": {"release": "none-00000000", "model_version": "none", "files": []},
        "edgeinfer_allow_unsigned": True,
    }
    run = run_playbook(play, bench.deploy.inventory[0], extra, tmp_path=bench.deploy.tmp)
    result = run.task("edgeinfer : Preflight | Read the edge once, refuse what cannot land there")
    if emulates("qemu-aarch64"):
        assert run.rc == 0 and result and not result.get("failed"), run.explain()
        return
    assert run.rc != 0, run.explain()
    msg = result.get("msg", "")
    assert f"runs {engine_arch()} (docker info) and edgeinfer_edge_architecture is arm64" in msg, run.explain()
    assert "/proc/sys/fs/binfmt_misc/qemu-aarch64" in msg and "install qemu-user-static" in msg, msg


def test_a_changed_sidecar_is_loaded_again_under_a_new_tag(bench: Bench) -> None:
    """v2 from a checkout whose sidecar code changed: the controller builds the new image (B),
    saves it, and the edge loads it; the sidecar restarts on B."""
    tag_b = content_tag(bench.changed_tree, engine_arch(), "--base-image", bench.base, "--repository", bench.repository)
    assert tag_b != bench.found["tag_a"]
    extra = {"edgeinfer_image_delivery": "load", "edgeinfer_image_build_ca": CA}
    run = bench.run("deploy.yml", bench.vars("v2", 2, **extra), tree=bench.changed_tree)
    assert run.rc == 0, run.explain()
    results = run.results("edge-1")
    for name in (
        "Image check | Build the image on the controller when it is missing there",
        "Image load | docker save on the controller",
        "Image load | Copy the image to the edge",
        "Image load | docker load",
    ):
        assert results[f"edgeinfer : {name}"]["changed"] is True, name
    id_b = image_id(tag_b)
    assert id_b and id_b != bench.found["id_a"]
    record = bench.deploy.last_record()
    assert (record["image"], record["image_id"], record["applied"]) == (tag_b, id_b, "restart")
    assert (record["before"]["image"], record["before"]["image_id"]) == (bench.found["tag_a"], bench.found["id_a"])
    assert bench.container_image()[1] == id_b
    assert bench.deploy.health()[1]["model_version"] == "v2"
    v2 = bench.deploy.release_of("v2")["release"]
    assert bench.deploy.state()["releases"][v2]["image_id"] == id_b
    bench.found.update(tag_b=tag_b, id_b=id_b)


def test_rollback_restores_the_previous_release_on_its_image_by_id(bench: Bench) -> None:
    """v1's tag now names image B (a tag can be moved or rebuilt): the rollback puts it back on
    image A, by the id state.json kept for v1."""
    tag_a, id_a = bench.found["tag_a"], bench.found["id_a"]
    subprocess.run(["docker", "tag", bench.found["id_b"], tag_a], check=True)
    assert image_id(tag_a) == bench.found["id_b"]
    extra = dict(bench.deploy.base_vars)
    extra.pop("edgeinfer_image")  # the rollback names the image the release served on
    run = bench.run("rollback.yml", extra)
    assert run.rc == 0, run.explain()
    reverted = run.results("edge-1")[
        "edgeinfer : Rollback | Put it back (current, the compose env and the image it served with; compose or reload; health)"
    ]
    assert reverted["image"] == "retagged" and reverted["applied"] == "restart", reverted
    assert image_id(tag_a) == id_a
    assert bench.container_image()[1] == id_a
    assert bench.deploy.health()[1]["model_version"] == "v1"
    record = bench.deploy.last_record()
    assert (record["outcome"], record["image"], record["image_id"]) == ("rolled_back", tag_a, id_a)
    assert (record["after"]["release"], record["after"]["image_id"]) == (bench.found["v1"], id_a)


def test_an_unchanged_sidecar_is_not_built_again(bench: Bench) -> None:
    """v1 again from the unchanged checkout: its content tag is on the edge, so nothing is
    built, and the deploy changes nothing."""
    run = bench.run("deploy.yml", bench.vars("v1", 1, edgeinfer_image_delivery="build", edgeinfer_image_build_ca=CA))
    assert run.rc == 0, run.explain()
    assert run.stats["edge-1"]["changed"] == 0, run.explain()
    assert "edgeinfer : Image build | docker build" not in run.results("edge-1")
    record = bench.deploy.last_record()
    assert (record["outcome"], record["image"], record["image_id"]) == (
        "unchanged",
        bench.found["tag_a"],
        bench.found["id_a"],
    )


def test_pulled_from_a_registry_the_controller_pushed_to(bench: Bench, registry: Registry) -> None:
    """v2 by pull: the controller pushes its image to the registry, the edge pulls it from
    there (the registry's log shows the pull) and serves it under the content tag."""
    tag_a, id_a = bench.found["tag_a"], bench.found["id_a"]
    run = bench.run(
        "deploy.yml", bench.vars("v2", 2, edgeinfer_image_delivery="pull", edgeinfer_image_registry=registry.address)
    )
    assert run.rc == 0, run.explain()
    results = run.results("edge-1")
    for name in (
        "Image pull | Push the image to the registry from the controller",
        "Image pull | docker pull on the edge",
    ):
        assert results[f"edgeinfer : {name}"]["changed"] is True, name
    # The registry saw the push (PUT of the manifest), then the edge's pull ask for it (a HEAD, and
    # a GET unless the engine has that manifest already).
    path, tag = tag_a.split(":")
    requests = [line for line in registry.log.read_text().splitlines() if f" /v2/{path}/manifests/" in line]
    pushed = next((i for i, line in enumerate(requests) if f'"PUT /v2/{path}/manifests/{tag} ' in line), None)
    assert pushed is not None, registry.log.read_text()[-3000:]
    assert any(f'"HEAD /v2/{path}/manifests/{tag} ' in line for line in requests[pushed + 1 :]), requests
    assert image_id(f"{registry.address}/{tag_a}") == id_a
    record = bench.deploy.last_record()
    assert (record["outcome"], record["image"], record["image_id"]) == ("deployed", tag_a, id_a)
    assert bench.container_image()[1] == id_a
    assert bench.deploy.health()[1]["model_version"] == "v2"
