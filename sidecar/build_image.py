"""Build the sidecar image from a minimal context: ``python -m sidecar.build_image --tag T``.

The context holds the Dockerfile, requirements.txt, ``edgeinfer_contract/`` and
``sidecar/`` only. ``--ca-file`` adds a CA bundle for pip; the Dockerfile uses it in
the build stage only, so the final image never contains it. Works with the classic
builder (Docker 20.10 without buildx) and with BuildKit.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SKIP = {"build_image.py", "compose.yaml", "Dockerfile", "requirements.txt"}


def context_tar(ca_file: Path | None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(HERE / "Dockerfile", "Dockerfile")
        tar.add(HERE / "requirements.txt", "requirements.txt")
        for pkg, skip in (("edgeinfer_contract", set()), ("sidecar", SKIP)):
            for p in sorted((REPO / pkg).glob("*.py")):
                if p.name not in skip:
                    tar.add(p, f"{pkg}/{p.name}")
        if ca_file is not None:
            tar.add(ca_file, "build-ca.crt")
    return buf.getvalue()


def buildkit_available() -> bool:
    return (
        shutil.which("docker") is not None
        and subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode == 0
    )


def build(tag: str, base_image: str | None, ca_file: Path | None, quiet: bool = False) -> int:
    cmd = ["docker", "build", "-t", tag]
    if base_image:
        cmd += ["--build-arg", f"BASE_IMAGE={base_image}"]
    if quiet:
        cmd.append("-q")
    cmd.append("-")
    env = dict(os.environ, DOCKER_BUILDKIT="1" if buildkit_available() else "0")
    return subprocess.run(cmd, input=context_tar(ca_file), env=env).returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sidecar.build_image", description=__doc__.splitlines()[0])
    ap.add_argument("--tag", default="edgeinfer/sidecar:dev")
    ap.add_argument(
        "--base-image",
        default=None,
        help="BASE_IMAGE build argument (default: the Dockerfile's python:3.11-slim-bookworm)",
    )
    ap.add_argument(
        "--ca-file",
        type=Path,
        default=None,
        help="CA bundle for pip in the build stage, e.g. /etc/ssl/certs/ca-certificates.crt",
    )
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.ca_file is not None and not args.ca_file.is_file():
        ap.error(f"--ca-file {args.ca_file} does not exist")
    return build(args.tag, args.base_image, args.ca_file, args.quiet)


if __name__ == "__main__":
    sys.exit(main())
