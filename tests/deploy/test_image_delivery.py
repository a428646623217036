"""The image reaches the edge by the chosen way: built on the edge from a copied context,
or saved on the controller, copied and loaded (the air-gapped path).

The loopback edges share this machine's Docker engine with the controller, so each case
uses a tag that exists nowhere beforehand, and checks the tasks of its path ran."""

from __future__ import annotations

import secrets
import subprocess

import pytest

pytestmark = [pytest.mark.fleet, pytest.mark.docker, pytest.mark.slow]


@pytest.mark.parametrize(
    ("delivery", "tasks"),
    [
        (
            "build",
            [
                "Image build | Copy the build context (Dockerfile, requirements, edgeinfer_contract, sidecar)",
                "Image build | docker build",
            ],
        ),
        (
            "load",
            [
                "Image load | docker save on the controller",
                "Image load | Copy the image to the edge",
                "Image load | docker load",
            ],
        ),
    ],
)
def test_image_delivery(deploy_bench, base_image: str, delivery: str, tasks: list[str]) -> None:
    tag = f"edgeinfer/sidecar:delivery-{delivery}-{secrets.token_hex(3)}"
    try:
        extra = {
            "edgeinfer_image": tag,
            "edgeinfer_image_delivery": delivery,
            "edgeinfer_image_base": base_image,
            "edgeinfer_image_build_ca": "/etc/ssl/certs/ca-certificates.crt",
        }
        run = deploy_bench.deploy("v1", seed=1, **extra)
        assert run.rc == 0, run.explain()
        results = run.results("edge-1")
        for name in tasks:
            assert results[f"edgeinfer : {name}"]["changed"] is True, name
        inspect = subprocess.run(["docker", "image", "inspect", tag], capture_output=True)
        assert inspect.returncode == 0
        status, health = deploy_bench.health()
        assert status == 200 and health["model_version"] == "v1"
        # The CA bundle given to the build stage is not in the image that serves.
        ca = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--entrypoint",
                "/bin/sh",
                tag,
                "-c",
                "ls /build /etc/ssl/certs/ca-certificates.crt 2>/dev/null; find / -name build-ca.crt 2>/dev/null",
            ],
            capture_output=True,
            text=True,
        )
        assert "build-ca.crt" not in ca.stdout
    finally:
        deploy_bench.fleet.down()
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)
