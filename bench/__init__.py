"""The benchmark suite (`make bench`); each bench_*.py also runs alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def build_sidecar_image(tag: str, base_image: str) -> None:
    """Build the sidecar image of this tree (from Docker's cache when unchanged), with the
    host's CA bundle for pip in the build stage when there is one."""
    cmd = [sys.executable, "-m", "sidecar.build_image", "--tag", tag, "--base-image", base_image, "--quiet"]
    if HOST_CA.exists():
        cmd += ["--ca-file", str(HOST_CA)]
    subprocess.run(cmd, cwd=REPO, check=True, timeout=1200, stdout=sys.stderr)
