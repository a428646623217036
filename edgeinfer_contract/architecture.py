"""Docker's names of the machine architectures an edge or a controller reports.

The controller names the image it builds for an edge (``sidecar.build_image``) and the edge's
preflight compares an image with the edge (``edgeinfer_preflight``) in these names, so both
read them here.
"""

from __future__ import annotations

# Docker's names for the kernel's machine names (`uname -m`, and `docker info`'s Architecture,
# which reports the kernel's); any other name is Docker's own already.
DOCKER_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386", "i386": "386"}


def docker_arch(machine: str) -> str:
    """Docker's name of an architecture: x86_64 -> amd64, aarch64 -> arm64; Docker's own names pass."""
    return DOCKER_ARCH.get(machine, machine)
