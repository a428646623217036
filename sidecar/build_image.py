"""Build the sidecar image from a minimal context: ``python -m sidecar.build_image --tag T``.

The context holds the Dockerfile, requirements.txt, ``edgeinfer_contract/`` and
``sidecar/`` only. ``--ca-file`` adds a CA bundle for pip; the Dockerfile uses it in
the build stage only, so the final image never contains it. Works with the classic
builder (Docker 20.10 without buildx) and with BuildKit.

``--platform linux/arm64`` builds for another architecture from a base image of that
architecture (``scripts/arm64_base.sh`` builds ``edgeinfer/base:bookworm-arm64``): the
wheels for it are downloaded on this host and installed offline in the build stage, so pip
resolves and downloads natively instead of under emulation.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SKIP = {"build_image.py", "compose.yaml", "Dockerfile", "requirements.txt"}


def context_tar(ca_file: Path | None, wheels: Path | None = None) -> bytes:
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
        if wheels is not None:
            for p in sorted(wheels.glob("*.whl")):
                tar.add(p, f"wheels/{p.name}")
    return buf.getvalue()


def buildkit_available() -> bool:
    return (
        shutil.which("docker") is not None
        and subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode == 0
    )


# Docker's architecture names, and the wheel platform tags each runs: manylinux_2_17 (2014) up
# to the glibc of Debian bookworm (2.36). pip expands none of the perennial tags by itself.
WHEEL_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
GLIBC_MINORS = range(36, 16, -1)


def engine_arch() -> str:
    r = subprocess.run(["docker", "version", "-f", "{{.Server.Arch}}"], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]


def image_arch(image: str) -> str | None:
    r = subprocess.run(["docker", "image", "inspect", "-f", "{{.Architecture}}", image], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def download_wheels(arch: str, dest: Path, ca_file: Path | None) -> None:
    """Download the binary wheels of requirements.txt for ``arch`` (CPython 3.11, bookworm's glibc)
    into ``dest``. pip runs in a clean environment (no PIP_* variables, no config files), so it
    resolves as pip in the image would, against the package index alone."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--only-binary=:all:"]
    for minor in GLIBC_MINORS:
        cmd += ["--platform", f"manylinux_2_{minor}_{WHEEL_ARCH[arch]}"]
    cmd += ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
    if ca_file is not None:
        cmd += ["--cert", str(ca_file)]
    cmd += ["-d", str(dest), "-r", str(HERE / "requirements.txt")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    subprocess.run(cmd, env=env, check=True)


def build(
    tag: str, base_image: str | None, ca_file: Path | None, quiet: bool = False, wheels: Path | None = None
) -> int:
    cmd = ["docker", "build", "-t", tag]
    if base_image:
        cmd += ["--build-arg", f"BASE_IMAGE={base_image}"]
    if quiet:
        cmd.append("-q")
    cmd.append("-")
    env = dict(os.environ, DOCKER_BUILDKIT="1" if buildkit_available() else "0")
    return subprocess.run(cmd, input=context_tar(ca_file, wheels), env=env).returncode


def build_for(arch: str, tag: str, base_image: str, ca_file: Path | None, quiet: bool = False) -> int:
    """Build for ``arch`` from a base image of that architecture, with wheels downloaded here;
    the built image must say ``arch`` (its config inherits the base's)."""
    base_arch = image_arch(base_image)
    if base_arch != arch:
        raise SystemExit(
            f"--base-image {base_image} is {base_arch or 'not in the local engine'}, --platform linux/{arch} "
            f"needs a linux/{arch} base: scripts/arm64_base.sh builds edgeinfer/base:bookworm-arm64"
        )
    with tempfile.TemporaryDirectory(prefix="edgeinfer-wheels-") as tmp:
        download_wheels(arch, Path(tmp), ca_file)
        rc = build(tag, base_image, ca_file, quiet, wheels=Path(tmp))
    if rc == 0 and (built := image_arch(tag)) != arch:
        print(f"build_image: {tag} says Architecture {built}, expected {arch}", file=sys.stderr)
        return 1
    return rc


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
    ap.add_argument(
        "--platform",
        choices=[f"linux/{a}" for a in WHEEL_ARCH],
        default=None,
        help="build for this platform (default: the engine's); another one needs --base-image of it",
    )
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.ca_file is not None and not args.ca_file.is_file():
        ap.error(f"--ca-file {args.ca_file} does not exist")
    arch = args.platform.split("/")[1] if args.platform else None
    if arch is not None and arch != engine_arch():
        if not args.base_image:
            ap.error(
                f"--platform {args.platform} needs --base-image of that platform, e.g. edgeinfer/base:bookworm-{arch}"
            )
        return build_for(arch, args.tag, args.base_image, args.ca_file, args.quiet)
    return build(args.tag, args.base_image, args.ca_file, args.quiet)


if __name__ == "__main__":
    sys.exit(main())
