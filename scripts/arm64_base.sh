#!/usr/bin/env bash
# Builds the air-gapped arm64 base image from Debian packages alone, as scripts/bootstrap.sh
# builds the amd64 one: debootstrap --arch arm64 --variant=minbase bookworm + python3
# python3-venv. debootstrap's second stage runs arm64 binaries, so qemu-aarch64 must be
# registered with binfmt_misc (bootstrap.sh does that).
#
# The image is loaded from an archive this script writes (scripts/docker_archive.py), so its
# config says arm64: Docker 20.10's `docker import` records the engine's architecture.
#
# Built once per recipe: the image carries the sha256 of this script and of
# docker_archive.py as the label org.edgeinfer.base.key, and a present image with the same
# key is kept. Runs under a lock, so a caller that needs the image waits for a build that
# another caller (the background one started by `make setup`) has under way.
#
#   scripts/arm64_base.sh                build if missing, else say it is there
#   scripts/arm64_base.sh --background   the same, detached, logging to $STATE_DIR/arm64-base.log
#   scripts/arm64_base.sh --key          print the content key and exit
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE="${EDGEINFER_ARM64_BASE_IMAGE:-edgeinfer/base:bookworm-arm64}"
DEBIAN_MIRROR="${EDGEINFER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
STATE_DIR="${EDGEINFER_STATE_DIR:-/var/lib/edgeinfer-bench}"
LOG="$STATE_DIR/arm64-base.log"
LOCK="$STATE_DIR/arm64-base.lock"
PY="${PYTHON:-python3}"

say() { printf 'arm64-base: %s\n' "$*" >&2; }
die() { printf 'arm64-base: error: %s\n' "$*" >&2; exit 1; }

key=$(cat "$HERE/arm64_base.sh" "$HERE/docker_archive.py" | sha256sum | cut -c1-16)
[ "${1:-}" = "--key" ] && { echo "$key"; exit 0; }

present_key() { docker image inspect -f '{{index .Config.Labels "org.edgeinfer.base.key"}}' "$IMAGE" 2>/dev/null || true; }

mkdir -p "$STATE_DIR"
if [ "${1:-}" = "--background" ]; then
  if [ "$(present_key)" = "$key" ]; then say "$IMAGE is current (key $key)"; exit 0; fi
  # setsid: the build outlives make setup; whoever needs the image runs this script in the
  # foreground, which waits on the lock and finds the image built.
  setsid bash "$HERE/arm64_base.sh" >"$LOG" 2>&1 </dev/null &
  say "building $IMAGE in the background (pid $!, log $LOG)"
  exit 0
fi

exec 9>"$LOCK"
if ! flock -n 9; then
  say "waiting for the build under way (log $LOG)"
  flock 9
fi
if [ "$(present_key)" = "$key" ]; then say "$IMAGE is current (key $key)"; exit 0; fi

[ "$(id -u)" -eq 0 ] || die "debootstrap needs root: run as root (sudo $0)"
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || die "debootstrap is missing: run scripts/bootstrap.sh"
grep -qs '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
  || die "qemu-aarch64 is not registered with binfmt_misc (flag F): run scripts/bootstrap.sh"

work=$(mktemp -d /var/tmp/edgeinfer-arm64-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
t0=$(date +%s)
say "building $IMAGE (key $key): debootstrap --arch arm64 --variant=minbase bookworm + python3 python3-venv"
debootstrap --arch arm64 --variant=minbase --include=python3,python3-venv bookworm "$work/root" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed (full log above, last 30 lines)"; }
t1=$(date +%s)
# The same trimming as the amd64 base: no build-time state in the image.
rm -rf "$work"/root/var/lib/apt/lists/* "$work"/root/var/cache/apt/* "$work"/root/usr/share/doc/* \
       "$work"/root/usr/share/man/* "$work"/root/usr/share/locale/* "$work"/root/var/log/*
tar --numeric-owner -C "$work/root" -cf "$work/layer.tar" .
"$PY" "$HERE/docker_archive.py" --layer "$work/layer.tar" --tag "$IMAGE" --arch arm64 --variant v8 \
  --env LANG=C.UTF-8 --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --cmd /bin/bash --label "org.edgeinfer.base.key=$key" \
  --comment "debootstrap --arch arm64 minbase bookworm + python3 python3-venv (edgeinfer air-gapped base)" \
  | docker load >/dev/null
t2=$(date +%s)
arch=$(docker image inspect -f '{{.Architecture}}' "$IMAGE")
[ "$arch" = arm64 ] || die "$IMAGE loaded with Architecture $arch, expected arm64"
say "built $IMAGE: Architecture $arch, $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1e6}'), debootstrap $((t1 - t0)) s, archive and load $((t2 - t1)) s"
