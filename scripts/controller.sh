#!/usr/bin/env bash
# Runs a tool of another ansible-core as this machine's controller, in the controller image
# (scripts/controller_image.sh), for `make test-cores`:
#
#   scripts/controller.sh 2.21 ansible-playbook -i inventory.yml playbooks/deploy.yml
#
# The container shares this machine's network (the loopback edges' sshd, the sidecars' ports)
# and sees the repository, /tmp and the shared fixtures (read-only) at their own paths, so every
# path a test passes means the same inside; the working directory is the caller's. It also sees
# this machine's root at /host: a host that the tests declare as this machine
# (ansible_connection: local) runs its modules there with `chroot /host <python>`
# (EDGEINFER_LOCAL_PYTHON, testbed/ansible_run.py), on this machine's Python and packages, as
# it does under the dev set's controller. The edges are reached over SSH as always and run
# their modules on their own Python.
#
# ANSIBLE_* and EDGEINFER_* variables pass through. EDGEINFER_CONTROLLER_IMAGE names the image
# (default: the tag scripts/controller_image.sh computes, which must have been built);
# EDGEINFER_CONTROLLER_MOUNTS adds paths (space-separated) mounted at their own place.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
die() { printf 'controller: error: %s\n' "$*" >&2; exit 2; }

[ $# -ge 2 ] || die "usage: $0 MINOR TOOL [ARGS...]  (e.g. $0 2.21 ansible-playbook --version)"
minor=$1 tool=$2
shift 2
image="${EDGEINFER_CONTROLLER_IMAGE:-$(bash "$HERE/controller_image.sh" --tag)}"
docker image inspect "$image" >/dev/null 2>&1 || die "no image $image: build it with scripts/controller_image.sh"

[ "$(id -u)" -eq 0 ] || die "runs as root: the hosts that are this machine run their modules under chroot"
# The modules' temporary directory is root's own on both sides, so a module that the controller
# writes there for a host that is this machine is where that host's Python looks.
mkdir -p /root/.ansible/tmp
mounts=(-v /:/host -v "$REPO:$REPO" -v /tmp:/tmp -v /root/.ansible/tmp:/root/.ansible/tmp)
[ "$PWD" = "$REPO" ] || mounts+=(-v "$PWD:$PWD")
shared="${EDGEINFER_SHARED:-$(dirname "$REPO")/shared}"
[ -d "$shared" ] && mounts+=(-v "$(cd "$shared" && pwd -P):$shared:ro")
for p in ${EDGEINFER_CONTROLLER_MOUNTS:-}; do mounts+=(-v "$p:$p"); done
envs=()
while IFS= read -r name; do envs+=(-e "$name"); done < <(compgen -e | grep -E '^(ANSIBLE|EDGEINFER)_' || true)

name="edgeinfer-controller-$$-$RANDOM"
# The container goes with this script: on its exit, and when it is stopped.
trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
docker run --rm --init --name "$name" --network host -w "$PWD" "${mounts[@]}" "${envs[@]}" \
  "$image" "/opt/ansible-$minor/bin/$tool" "$@" </dev/null &
wait $!
