"""Build the sidecar image from a minimal context: ``python -m sidecar.build_image --tag T``.

The context holds the Dockerfile, requirements.txt, ``edgeinfer_contract/`` and
``sidecar/`` only. ``--ca-file`` adds a CA bundle for pip; the Dockerfile uses it in
the build stage only, so the final image never contains it. Works with the classic
builder (Docker 20.10 without buildx) and with BuildKit.

``--platform linux/arm64`` builds for another architecture from a base image of that
architecture (``scripts/arm64_base.sh`` builds ``edgeinfer/base:bookworm-arm64``): the
wheels for it are downloaded on this host and installed offline in the build stage, so pip
resolves and downloads natively instead of under emulation.
``--print-tag [ARCH]`` prints the image's content tag and builds nothing:
``edgeinfer/sidecar:<version>-<12 hex>``, derived from the context's files, the base
image (its id where this engine has it, else its reference) and the architecture, so
that a changed sidecar gets a new tag and an unchanged one keeps its tag.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from edgeinfer_contract import docker_arch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SKIP = {"build_image.py", "compose.yaml", "Dockerfile", "requirements.txt"}
REPOSITORY = "edgeinfer/sidecar"


def context_files() -> list[tuple[str, Path]]:
    """``(name in the context, file)`` of everything the image is built from, in a fixed order."""
    files = [("Dockerfile", HERE / "Dockerfile"), ("requirements.txt", HERE / "requirements.txt")]
    for pkg, skip in (("edgeinfer_contract", set()), ("sidecar", SKIP)):
        files += [(f"{pkg}/{p.name}", p) for p in sorted((REPO / pkg).glob("*.py")) if p.name not in skip]
    return files


def context_tar(ca_file: Path | None, wheels: Path | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, path in context_files():
            tar.add(path, name)
        if ca_file is not None:
            tar.add(ca_file, "build-ca.crt")
        if wheels is not None:
            for p in sorted(wheels.glob("*.whl")):
                tar.add(p, f"wheels/{p.name}")
    return buf.getvalue()


def default_base_image() -> str:
    """The Dockerfile's own ``ARG BASE_IMAGE`` default."""
    for line in (HERE / "Dockerfile").read_text().splitlines():
        if line.startswith("ARG BASE_IMAGE="):
            return line.split("=", 1)[1].strip()
    raise SystemExit(f"{HERE / 'Dockerfile'}: no 'ARG BASE_IMAGE=<default>' line")


def content_tag(
    arch: str, base_image: str | None = None, base_id: str | None = None, repository: str = REPOSITORY
) -> str:
    """``<repository>:<sidecar version>-<12 hex>``: the tag of the image that this tree builds.

    The hex digits are a sha256 over every file of the build context (names and bytes; the
    CA bundle, which never reaches the final image, is not one of them), the base image
    (``base_id`` where known: the same reference can name another image later; else the
    reference, ``base_image`` or the Dockerfile's default) and the architecture (Docker's
    name). Any change to one of them is a new tag, so the deploy rebuilds or delivers it
    again; an unchanged tree on the same base keeps its tag, and nothing is delivered.
    """
    from sidecar import __version__

    digest = hashlib.sha256()

    def part(label: str, data: bytes) -> None:
        digest.update(b"%s\0%d\0" % (label.encode(), len(data)) + data)

    for name, path in context_files():
        part(f"file {name}", path.read_bytes())
    part("base", (base_id or base_image or default_base_image()).encode())
    part("arch", docker_arch(arch).encode())
    return f"{repository}:{__version__}-{digest.hexdigest()[:12]}"


def _docker_format(*args: str) -> str | None:
    """The output of ``docker <args>``, or None where there is no engine or no such object."""
    if shutil.which("docker") is None:
        return None
    r = subprocess.run(["docker", *args], capture_output=True, text=True)
    return (r.stdout.strip() or None) if r.returncode == 0 else None


def print_tag(arch: str, base_image: str | None, base_id: str | None, repository: str) -> int:
    if not arch:
        machine = _docker_format("info", "--format", "{{.Architecture}}")
        if machine is None:
            print("--print-tag: no Docker engine answers `docker info`: name the architecture (--print-tag arm64)",
                  file=sys.stderr)  # fmt: skip
            return 2
        arch = docker_arch(machine)
    if base_id is None:
        base_id = _docker_format("image", "inspect", "--format", "{{.Id}}", base_image or default_base_image())
    print(content_tag(arch, base_image, base_id or None, repository))
    return 0


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
    ap.add_argument(
        "--print-tag",
        nargs="?",
        const="",
        default=None,
        metavar="ARCH",
        help="print the content tag for ARCH (Docker's name: amd64, arm64; default: this engine's) and build nothing",
    )
    ap.add_argument(
        "--base-id",
        default=None,
        help="with --print-tag: the base image's id where it is built (default: this engine's; '' for unknown)",
    )
    ap.add_argument("--repository", default=REPOSITORY, help=f"with --print-tag: the tag's repository ({REPOSITORY})")
    args = ap.parse_args(argv)
    if args.print_tag is not None:
        return print_tag(args.print_tag, args.base_image, args.base_id, args.repository)
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
