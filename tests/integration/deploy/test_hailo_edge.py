"""The hailo compose profile on a loopback edge: a stand-in device node (the container must get it
mapped, with the node's group), backend auto finding it, edgeinfer_require_hailo refusing an edge
without one and rolling back a deploy whose sidecar serves on the CPU.

The stand-in is a character device with /dev/null's numbers: the container opens nothing on it;
what is proven here is what the deploy does with a Hailo edge, not the Hailo itself."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from testbed.deploy import DeployBench, make_bench

pytestmark = [pytest.mark.fleet, pytest.mark.docker, pytest.mark.slow]

HAILO_GID = 4242


@pytest.fixture(scope="module")
def hailo_edge(sidecar_image: str, artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """One loopback edge with a stand-in /dev/hailo0 of its own, owned by root:HAILO_GID 0660."""
    from testbed.fleet import Fleet

    tmp = tmp_path_factory.mktemp("hailo-edge")
    fleet = Fleet.up(1, tmp / "fleet")
    device = Path(fleet.edges[0].root).parent / "hailo0"
    os.mknod(device, 0o660 | stat.S_IFCHR, os.makedev(1, 3))
    os.chown(device, 0, HAILO_GID)
    try:
        bench = make_bench(fleet, artifacts_dir, sidecar_image, tmp)
        bench.base_vars["edgeinfer_hailo_device"] = str(device)
        yield bench
    finally:
        fleet.down()
        device.unlink(missing_ok=True)


def container(bench: DeployBench) -> dict:
    name = f"{bench.fleet.edges[0].compose_project}-sidecar"
    out = subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


def test_auto_finds_the_device_and_maps_it_with_its_group(hailo_edge: DeployBench) -> None:
    bench = hailo_edge
    device = bench.base_vars["edgeinfer_hailo_device"]
    run = bench.deploy("v1", seed=1, edgeinfer_backend="auto")
    assert run.rc == 0, run.explain()
    host = container(bench)["HostConfig"]
    assert [(d["PathOnHost"], d["PathInContainer"]) for d in host["Devices"]] == [(device, "/dev/hailo0")]
    assert host["GroupAdd"] == [str(HAILO_GID)]
    # The stock image has no HailoRT: the sidecar serves on the CPU, and everything says why.
    status, health = bench.health()
    assert status == 200 and health["backend"] == "onnxruntime", health
    record = bench.last_record()
    assert record["backend"] == "onnxruntime" and record["outcome"] == "deployed"
    assert record["backend_reason"].startswith(f"auto: {device} found"), record["backend_reason"]
    log = next(bench.records.glob(f"edge-1/{record['deploy_id']}.md")).read_text()
    assert f"Backend: onnxruntime (auto: {device} found" in log
    assert "no HEF: edges will serve ONNX Runtime on CPU" in log
    assert "[no HEF: edges will serve ONNX Runtime on CPU]" in run.stdout


def test_require_hailo_rolls_back_a_cpu_sidecar_and_refuses_an_edge_without_the_device(
    hailo_edge: DeployBench,
) -> None:
    bench = hailo_edge
    v1 = bench.release_of("v1")
    assert bench.health()[1].get("model_sha256") == v1["digest"], "this case follows the deploy of v1 above"

    fell_back = bench.deploy("v2", seed=2, edgeinfer_backend="auto", edgeinfer_require_hailo=True)
    assert fell_back.rc != 0
    record = bench.last_record()
    assert record["outcome"] == "rolled_back", record
    assert "the sidecar serves on onnxruntime, expected hailo" in record["failure"]["msg"]
    assert bench.health()[1]["model_sha256"] == v1["digest"]

    missing = "/nonexistent/hailo0"
    refused = bench.deploy("v2", seed=2, edgeinfer_require_hailo=True, edgeinfer_hailo_device=missing)
    assert refused.rc != 0
    record = bench.last_record()
    assert record["outcome"] == "refused", record
    assert f"edge-1 has no {missing}, and edgeinfer_require_hailo=true asks for it" in record["failure"]["msg"]
    assert bench.state()["current"] == v1["release"]


@pytest.fixture(scope="module")
def hailo_image(sidecar_image: str) -> str:
    """The sidecar image with the HailoRT double installed where the real wheel would be (an
    image whose BASE_IMAGE carries HailoRT, docs/sidecar.md), its device the mapped /dev/hailo0."""
    import io
    import tarfile

    doubles = Path(__file__).resolve().parents[2] / "doubles"
    tag = f"{sidecar_image}-hailo-double"
    dockerfile = (
        f"FROM {sidecar_image}\n"
        "COPY hailo_platform /opt/app/hailo_platform\n"
        "COPY hailo_double_hef.py /opt/app/hailo_double_hef.py\n"
        "ENV HAILO_DOUBLE_DEVICE=/dev/hailo0\n"
    ).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        tar.add(doubles / "hailo_platform" / "__init__.py", "hailo_platform/__init__.py")
        tar.add(doubles / "hailo_double_hef.py", "hailo_double_hef.py")
    r = subprocess.run(["docker", "build", "-q", "-t", tag, "-"], input=buf.getvalue(), capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return tag


def test_a_release_with_a_hef_serves_on_the_hailo_within_the_hailo_floor(
    hailo_edge: DeployBench, hailo_image: str
) -> None:
    """v1's model compiled to a test HEF (INT8, from 1,024 calibration windows) on an image with
    HailoRT, backend hailo: the Hailo serves, the gate judges it by the Hailo floor, and the answers
    carry the quantization error (they are not fp32's)."""
    import numpy as np

    from edgeinfer_contract import QUALITY_FLOORS, ModelConfig
    from testbed.sidecar import normalize, raw_windows
    from tests.doubles.hailo_platform import write_hef
    from tests.integration.faults.matrix import craft

    bench = hailo_edge

    def compile_hef(release: Path) -> None:
        cfg = ModelConfig.load(release / "model_config.json")
        calibration = normalize(cfg, raw_windows(cfg, 1024, seed=5)).astype(np.float32)
        write_hef(release / "model.hef", release / "model.onnx", calibration)

    with_hef = craft(bench, "v3h", compile_hef, add_roles={"model.hef": "hef"})
    run = bench.deploy(
        "v1",
        seed=1,
        edgeinfer_release_source=with_hef,
        edgeinfer_image=hailo_image,
        edgeinfer_backend="hailo",
        edgeinfer_require_hailo=True,
    )
    assert run.rc == 0, run.explain()
    status, health = bench.health()
    assert status == 200 and health["backend"] == "hailo" and health["served_file"] == "model.hef", health
    assert health["backend_reason_code"] == "configured", health
    # The hailo profile, asked for by name this time (the first case found it under auto).
    assert container(bench)["HostConfig"]["Devices"][0]["PathInContainer"] == "/dev/hailo0"
    record = bench.last_record()
    assert record["outcome"] == "deployed" and record["backend"] == "hailo" and record["hef"] is True
    assert record["gates"]["golden_floor"] == {"min_cosine": QUALITY_FLOORS["hailo"], "source": "hailo"}
    # Within the Hailo floor, and not fp32's exact answers.
    assert QUALITY_FLOORS["hailo"] <= record["gates"]["golden"]["min_cosine"] <= 0.999999, record["gates"]
    env = (Path(bench.fleet.edges[0].root) / "compose" / ".env").read_text()
    assert f'HEF_PATH="/models/releases/{with_hef["release"]}/model.hef"' in env
