#!/usr/bin/env bash
# Builds the controller image of `make test-cores`: the ansible-core releases that the dev set's
# Python 3.11 cannot run (2.20 and later need Python 3.12), each in a virtual environment of its
# own (/opt/ansible-<minor>) on Debian trixie's Python 3.13. No registry is needed: the root
# filesystem comes from debootstrap (--variant=minbase + python3 python3-venv openssh-client
# ca-certificates) and enters Docker through `docker import`, as scripts/bootstrap.sh builds the
# edges' base.
#
# The releases are constraints-cores.txt's; the packages each needs are the versions
# constraints.txt pins. The wheels are downloaded here, on the host (its pip, its CA bundle and
# index configuration), for CPython 3.13 on x86_64 glibc, and installed in the root filesystem
# from that directory with no index: no certificate, resolver or pip configuration of the build
# machine ends up in the image. The collections the playbooks and tests use beside ansible-core
# (community.docker, community.general and community.docker's dependency; ansible.posix, where the
# json callback that ansible-core redirects to lives) are copied from the dev set (.venv), so only
# ansible-core differs between the rows of the matrix.
#
# /usr/local/bin/host-python runs the Python that EDGEINFER_HOST_PYTHON names on the machine
# the container runs on, whose root scripts/controller.sh mounts at /host: the interpreter of the
# hosts that the tests declare as this machine (ansible_connection: local).
#
# Built once per content key: the tag is edgeinfer/controller:trixie-<key>, the sha256 of this
# script, the two pin files and the collections' MANIFEST.json; a present image of that tag is
# kept. Runs under a lock, so callers that need the image at once share one build.
#
#   scripts/controller_image.sh          build if missing; print the image reference on stdout
#   scripts/controller_image.sh --tag    print the image reference and exit (builds nothing)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
REPOSITORY="${EDGEINFER_CONTROLLER_REPOSITORY:-edgeinfer/controller}"
DEBIAN_MIRROR="${EDGEINFER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
STATE_DIR="${EDGEINFER_STATE_DIR:-/var/lib/edgeinfer-bench}"
DEV_PY="${EDGEINFER_DEV_PYTHON:-$REPO/.venv/bin/python}"
CORES="$REPO/constraints-cores.txt"
COLLECTIONS=(ansible.posix community.docker community.general community.library_inventory_filtering_v1)

say() { printf 'controller-image: %s\n' "$*" >&2; }
die() { printf 'controller-image: error: %s\n' "$*" >&2; exit 1; }

[ -x "$DEV_PY" ] || die "$DEV_PY not found: make venv first (the collections come from the dev set)"
# Where the dev set's collections are (site-packages/ansible_collections).
collections_root=$("$DEV_PY" -c 'import ansible_collections.community.docker as c, pathlib; print(pathlib.Path(list(c.__path__)[0]).parents[1])')
manifests=()
for c in "${COLLECTIONS[@]}"; do
  m="$collections_root/${c%%.*}/${c#*.}/MANIFEST.json"
  [ -f "$m" ] || die "collection $c is not in the dev set ($m missing)"
  manifests+=("$m")
done
key=$(cat "$HERE/controller_image.sh" "$CORES" "$REPO/constraints.txt" "${manifests[@]}" | sha256sum | cut -c1-12)
IMAGE="$REPOSITORY:trixie-$key"
[ "${1:-}" = "--tag" ] && { echo "$IMAGE"; exit 0; }

mkdir -p "$STATE_DIR"
exec 9>"$STATE_DIR/controller-image.lock"
if ! flock -n 9; then
  say "waiting for the build under way"
  flock 9
fi
if docker image inspect "$IMAGE" >/dev/null 2>&1; then say "$IMAGE is current"; echo "$IMAGE"; exit 0; fi

[ "$(id -u)" -eq 0 ] || die "debootstrap needs root: run as root (sudo $0)"
if ! command -v debootstrap >/dev/null 2>&1 && [ ! -x /usr/sbin/debootstrap ]; then
  say "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
[ -e /usr/share/debootstrap/scripts/trixie ] || die "this debootstrap does not know trixie: upgrade debootstrap"

releases=$(grep -E '^ansible-core==[0-9]+\.[0-9]+\.[0-9]+$' "$CORES") || die "no ansible-core==X.Y.Z line in $CORES"

work=$(mktemp -d /var/tmp/edgeinfer-controller.XXXXXX)
trap 'rm -rf "$work"' EXIT
t0=$(date +%s)
say "building $IMAGE: debootstrap --variant=minbase trixie + python3 python3-venv openssh-client ca-certificates"
debootstrap --variant=minbase --include=python3,python3-venv,openssh-client,ca-certificates trixie \
  "$work/root" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed (last 30 lines of its log above)"; }
t1=$(date +%s)

# The wheels, on the host: CPython 3.13, x86_64, for glibc 2.34 and older (trixie has 2.41; pip
# does not widen a --platform to the older manylinux tags by itself, so each is named).
grep -vE '^(ansible|ansible-core)==' "$REPO/constraints.txt" >"$work/deps.txt"
mkdir -p "$work/root/tmp/wheels"
for req in $releases; do
  "$DEV_PY" -m pip download -q --disable-pip-version-check --only-binary=:all: -d "$work/root/tmp/wheels" \
    --python-version 3.13 --implementation cp --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -c "$work/deps.txt" "$req" 2>"$work/pip.log" \
    || { grep -v '^WARNING: Location' "$work/pip.log" | tail -n 20 >&2; die "pip download $req for CPython 3.13 failed"; }
done
for req in $releases; do
  minor=$(echo "${req#ansible-core==}" | cut -d. -f1-2)
  # A clean environment: none of the host's pip configuration (index, certificate) applies.
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 chroot "$work/root" sh -euc "
    python3 -m venv /opt/ansible-$minor
    /opt/ansible-$minor/bin/pip install -q --disable-pip-version-check --no-index --find-links /tmp/wheels '$req'
    echo /opt/collections >/opt/ansible-$minor/lib/python3.13/site-packages/edgeinfer-collections.pth
    /opt/ansible-$minor/bin/ansible --version | head -1" >&2 || die "installing $req in the root filesystem failed"
done
for c in "${COLLECTIONS[@]}"; do
  mkdir -p "$work/root/opt/collections/ansible_collections/${c%%.*}"
  cp -a "$collections_root/${c%%.*}/${c#*.}" "$work/root/opt/collections/ansible_collections/${c%%.*}/"
done
cat >"$work/root/usr/local/bin/host-python" <<'PYEOF'
#!/bin/sh
# This machine's Python, run on its own root (mounted at /host): EDGEINFER_HOST_PYTHON names it.
exec chroot /host "${EDGEINFER_HOST_PYTHON:?EDGEINFER_HOST_PYTHON: the Python on the host to run}" "$@"
PYEOF
chmod 0755 "$work/root/usr/local/bin/host-python"
# No build-time state in the image.
rm -rf "$work"/root/tmp/wheels "$work"/root/root/.cache "$work"/root/var/lib/apt/lists/* "$work"/root/var/cache/apt/* \
       "$work"/root/usr/share/doc/* "$work"/root/usr/share/man/* "$work"/root/usr/share/locale/* "$work"/root/var/log/*
find "$work/root/opt" -name '__pycache__' -prune -exec rm -rf {} +
t2=$(date +%s)
tar --numeric-owner -C "$work/root" -c . | docker import \
  -c 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c "LABEL org.edgeinfer.controller.key=$key" \
  -m "debootstrap minbase trixie + python3 python3-venv openssh-client ca-certificates; $(echo $releases) in /opt/ansible-<minor> (edgeinfer test controllers)" \
  - "$IMAGE" >/dev/null
t3=$(date +%s)
say "built $IMAGE: $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1e6}'), debootstrap $((t1 - t0)) s, venvs $((t2 - t1)) s, import $((t3 - t2)) s"
echo "$IMAGE"
