"""Packages carry code, never secrets or local state: the collection tarball, the AWX
execution environment's build context made from it, and the sidecar image's build context.

The collection is built from a copy of the tracked tree into which everything a run of
`make demo`, `make bench` or a deploy leaves behind has been planted (a signing key, models,
a checkpoint, a calibration set, an edge tarball, records, benchmark output)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from .conftest import REPO

BIN = Path(sys.executable).parent
# Split, so that this file (which ships) does not hold the marker it looks for.
MARKER = "PRIVATE " + "KEY-----"
KEY_TEXT = f"-----BEGIN {MARKER}\nplanted-by-the-packaging-test\n-----END {MARKER}\n"

# Paths (relative to the tree) of what a run leaves there, as the tools name them.
PLANTED = {
    ".artifacts/keys/edgeinfer-signing.pem": KEY_TEXT,
    ".artifacts/keys/edgeinfer-signing.pem.pub": "planted public key",
    ".artifacts/demo-untrained/model.onnx": "planted model",
    ".artifacts/demo-untrained/manifest.json.sig": "planted signature",
    ".artifacts/demo-untrained/calibration.npz": "planted calibration",
    ".artifacts/checkpoints/best.pth": "planted checkpoint",
    ".artifacts/demo-untrained-1a2b3c4d.edge.tar": "planted edge tarball",
    "records/edge-local/20261205T000000Z-abcdef.json": "{}",
    "records/fleet/20261205T000000Z-abcdef.json": "{}",
    ".bench/sidecar.json": "{}",
    ".cache/edgeinfer/x": "planted cache",
    "out/report.png": "planted output",
    "model_tools/stray-signing.pem": KEY_TEXT,
    "roles/edgeinfer/files/leftover.onnx": "planted model",
}


def tracked_tree(dest: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, text=True
    ).stdout.split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file() and not src.is_symlink():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def test_the_collection_and_the_ee_context_carry_no_key_model_or_record(tmp_path: Path) -> None:
    tree = tracked_tree(tmp_path / "tree")
    tracked = {str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file()}
    for name, text in PLANTED.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    out = tree / "build" / "collection"
    r = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(tree)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    (tarball,) = out.glob("edgeinfer-deploy-*.tar.gz")
    with tarfile.open(tarball) as tar:
        members = {m.name: m for m in tar.getmembers()}
        leaked = sorted(set(PLANTED) & set(members))
        assert not leaked, f"local state in the collection tarball: {leaked}"
        # Only what git tracks, and the two files the build writes.
        files = {n for n, m in members.items() if m.isfile()} - {"MANIFEST.json", "FILES.json"}
        assert files <= tracked, sorted(files - tracked)
        for name in files:
            assert MARKER.encode() not in tar.extractfile(members[name]).read(), name

    # The AWX execution environment bakes that tarball in: its build context holds no more.
    ctx = tmp_path / "ee"
    r = subprocess.run(
        [str(BIN / "ansible-builder"), "create", "-f", str(tree / "awx" / "execution-environment.yml"), "-c", str(ctx)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    planted_names = {Path(n).name for n in PLANTED}
    for p in ctx.rglob("*"):
        if p.is_file():
            assert p.name not in planted_names, p
            if p.suffix != ".gz":
                assert MARKER not in p.read_text(errors="replace"), p


def test_the_sidecar_image_context_holds_only_its_code() -> None:
    import io

    from sidecar.build_image import context_tar

    with tarfile.open(fileobj=io.BytesIO(context_tar(None))) as tar:
        names = tar.getnames()
    assert "Dockerfile" in names and "requirements.txt" in names
    code = [n for n in names if n not in ("Dockerfile", "requirements.txt")]
    assert code and all(n.split("/")[0] in ("edgeinfer_contract", "sidecar") and n.endswith(".py") for n in code), code


def test_galaxy_dependencies_are_the_collections_the_collection_names() -> None:
    """galaxy.yml depends on exactly the collections its roles, playbooks and plugins call by FQCN."""
    import re

    import yaml

    own = "edgeinfer.deploy"
    named: set[str] = set()
    for top in ("roles", "playbooks", "plugins"):
        for path in (REPO / top).rglob("*"):
            if path.suffix in (".yml", ".yaml", ".py", ".j2") and path.is_file():
                for ns, coll in re.findall(r"\b([a-z_]+)\.([a-z_]+)\.[a-z0-9_]+\b", path.read_text()):
                    name = f"{ns}.{coll}"
                    if ns not in ("ansible", "edgeinfer") or name == "ansible.posix":
                        named.add(name)
    named.discard(own)
    known = {"community.docker", "community.general", "ansible.posix", "awx.awx", "ansible.utils"}
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    assert set(galaxy["dependencies"]) == named & known, (sorted(galaxy["dependencies"]), sorted(named & known))
