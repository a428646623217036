"""scripts/docker_archive.py: the docker-load archive of a foreign root filesystem (no engine needed)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from testbed.ansible_run import REPO

SCRIPT = REPO / "scripts" / "docker_archive.py"


def rootfs_tar(tmp_path: Path) -> Path:
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        data = b"#!/bin/sh\necho hi\n"
        info = tarfile.TarInfo("bin/hello")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return layer


def test_the_archive_names_its_architecture_and_the_layer_it_carries(tmp_path: Path) -> None:
    layer = rootfs_tar(tmp_path)
    out = tmp_path / "image.tar"
    cmd = [sys.executable, str(SCRIPT), "--layer", str(layer), "--tag", "edgeinfer/base:test-arm64"]
    cmd += ["--arch", "arm64", "--variant", "v8", "--env", "LANG=C.UTF-8", "--cmd", "/bin/bash"]
    cmd += ["--label", "org.edgeinfer.base.key=abc", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    diff_id = hashlib.sha256(layer.read_bytes()).hexdigest()
    with tarfile.open(out) as tar:
        (manifest,) = json.loads(tar.extractfile("manifest.json").read())
        config_bytes = tar.extractfile(manifest["Config"]).read()
        carried = tar.extractfile(manifest["Layers"][0]).read()
    config = json.loads(config_bytes)
    assert manifest["RepoTags"] == ["edgeinfer/base:test-arm64"]
    assert manifest["Config"] == hashlib.sha256(config_bytes).hexdigest() + ".json"
    assert (config["architecture"], config["variant"], config["os"]) == ("arm64", "v8", "linux")
    assert config["rootfs"] == {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]}
    assert carried == layer.read_bytes()
    assert config["config"]["Cmd"] == ["/bin/bash"] and config["config"]["Env"] == ["LANG=C.UTF-8"]
    assert config["config"]["Labels"] == {"org.edgeinfer.base.key": "abc"}


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--layer", "/nonexistent.tar"], "--layer /nonexistent.tar does not exist"),
        (["--env", "LANG"], "--env 'LANG': expected KEY=VALUE"),
    ],
)
def test_bad_arguments_name_the_flag_and_the_fix(tmp_path: Path, args: list[str], names: str) -> None:
    base = ["--layer", str(rootfs_tar(tmp_path)), "--tag", "t:arm64", "--arch", "arm64"]
    r = subprocess.run([sys.executable, str(SCRIPT), *base, *args], capture_output=True, text=True)
    assert r.returncode == 2 and names in r.stderr, r.stderr


def test_a_foreign_platform_needs_a_base_image_of_it(capsys: pytest.CaptureFixture[str]) -> None:
    from sidecar.build_image import engine_arch, main

    other = "arm64" if engine_arch() == "amd64" else "amd64"
    with pytest.raises(SystemExit) as exc:
        main(["--platform", f"linux/{other}"])
    assert exc.value.code == 2
    assert f"--platform linux/{other} needs --base-image" in capsys.readouterr().err
