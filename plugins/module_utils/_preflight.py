# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One read of everything a deploy decides from on an edge, and the refusals it implies.

``survey`` reads the Docker engine (versions, architecture, the image, the container, who
publishes the port), the install root (release store, lock, compose files, free disk), the
Hailo device node and the binfmt_misc emulator entry; it changes nothing. ``refusals`` turns
those facts and the caller's expectations into messages that each name what to fix, so a
deploy that cannot land is refused before anything changes. ``differs`` says what the edge
serves otherwise than a deploy would make it serve (nothing: the deploy is a no-op). Standard library only: it runs on
the edge's own Python.
"""

from __future__ import annotations

import hashlib
import os
import socket

from ansible_collections.edgeinfer.deploy.plugins.module_utils._contract import docker_arch
from ansible_collections.edgeinfer.deploy.plugins.module_utils._release import ReleaseStore
from ansible_collections.edgeinfer.deploy.plugins.module_utils._store import ReleaseError
from ansible_collections.edgeinfer.deploy.plugins.module_utils._trust import (
    parse_trusted_keys,
    restage_problem,
    staged_key,
)

# qemu-user-static's binfmt_misc entry (qemu-<name>) for each Docker architecture it emulates.
QEMU_NAMES = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "arm": "arm",
    "386": "i386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64le": "mips64el",
}
# Architectures a kernel runs natively besides its own (32-bit userlands): no emulator needed.
NATIVE_COMPAT = {"amd64": ("386",), "arm64": ("arm",)}
IMAGE_FORMAT = "{{.Id}} {{.Architecture}}"


def _sha256_of(path):
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None


def _image(run, ref):
    """{'ref', 'id', 'arch'} of an image on the engine, or None when it has none of that name."""
    if not ref:
        return None
    rc, out, dummy = run(["docker", "image", "inspect", "--format", IMAGE_FORMAT, ref])
    fields = out.split()
    if rc != 0 or len(fields) < 2:
        return None
    return {"ref": ref, "id": fields[0], "arch": fields[1]}


def _listening(host, port):
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _versions(run):
    """The Docker engine's and the compose plugin's versions, or the error of each that does not answer."""
    facts = {}
    for name, argv in (
        ("docker", ["docker", "version", "--format", "{{.Server.Version}}"]),
        ("compose", ["docker", "compose", "version", "--short"]),
    ):
        rc, out, err = run(argv)
        facts[name] = {"version": out.strip() if rc == 0 else None, "error": None if rc == 0 else err.strip()}
    return facts


def _binfmt_entry(arch):
    """The binfmt_misc entry of qemu-user-static's emulator for ``arch``, words joined; "" when none."""
    try:
        with open(f"/proc/sys/fs/binfmt_misc/qemu-{QEMU_NAMES.get(arch, arch)}") as fh:
            return " ".join(fh.read().split())
    except OSError:
        return ""


def _arch(run, p, engine):
    """The kernel's architecture (docker info), the edge's (as declared, else the kernel's), and, when
    the declared one differs from the kernel's, the emulator entry that must run its images."""
    kernel = None
    if engine:
        rc, out, dummy = run(["docker", "info", "--format", "{{.Architecture}}"])
        kernel = docker_arch(out.strip()) if rc == 0 and out.strip() else None
    declared = docker_arch(p.get("edge_architecture") or "")
    emulator = _binfmt_entry(declared) if declared and kernel and declared != kernel else None
    return {"kernel": kernel, "edge": declared or kernel, "declared": declared or None, "emulator": emulator}


def _container(run, name, engine):
    """Whether the sidecar container runs, and on which image id."""
    if not (engine and name):
        return {"running": False, "image_id": None}
    rc, out, dummy = run(["docker", "inspect", "--format", "{{.State.Running}} {{.Image}}", name])
    fields = out.split()
    if rc == 0 and len(fields) == 2:
        return {"running": fields[0] == "true", "image_id": fields[1]}
    return {"running": False, "image_id": None}


def _port(run, p, engine):
    """The containers that publish the sidecar's port, and whether something else listens on it."""
    holders = []
    if engine and p.get("port"):
        rc, out, dummy = run(["docker", "ps", "--filter", f"publish={p['port']}", "--format", "{{.Names}}"])
        holders = out.split() if rc == 0 else []
    listening = bool(p.get("port")) and p.get("container") not in holders and _listening(p["probe_host"], p["port"])
    return {"holders": holders, "listening_other": listening}


def _hailo(device):
    """Whether the Hailo device node exists, and the group that owns it (the container joins it)."""
    try:
        st = os.stat(device) if device else None
    except OSError:
        st = None
    return {"present": st is not None, "gid": st.st_gid if st is not None else None}


def _state(store, root):
    """The release store as the edge has it: links, releases, what state.json knows, lock and trusted keys."""
    state = store.read_state() if os.path.isdir(root) else {"previous": None, "releases": {}}
    releases = store.list_releases()
    return {
        "current": store.current(),
        "previous": state.get("previous"),
        "last_good": store.last_good(),
        "releases": releases,
        "known": {r: state["releases"][r] for r in releases if r in state.get("releases", {})},
        "lock": store.lock.read(),
        "trusted_key_ids": store.trust.files(),
    }


def _disk(root):
    """Free space where the root is (or, before the first deploy, its nearest existing parent)."""
    probe = root
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    vfs = os.statvfs(probe or "/")
    return {"free_bytes": vfs.f_bavail * vfs.f_frsize, "path": probe}


def _files(compose_dir):
    """The sha256 of the compose env and file the sidecar runs with, and whether its admin token exists."""
    return {
        "env_sha256": _sha256_of(os.path.join(compose_dir, ".env")),
        "compose_sha256": _sha256_of(os.path.join(compose_dir, "compose.yaml")),
        "admin_token": os.path.exists(os.path.join(compose_dir, "admin_token")),
    }


def survey(run, p):
    """The edge's facts; ``run(argv) -> (rc, stdout, stderr)`` runs a command on the edge."""
    facts = _versions(run)
    engine = facts["docker"]["version"] is not None
    facts["arch"] = _arch(run, p, engine)
    facts["image"] = _image(run, p.get("image")) if engine else None
    base = _image(run, p.get("base_image")) if engine else None
    facts["base_image_id"] = base["id"] if base else None
    facts["container"] = _container(run, p.get("container"), engine)
    facts["port"] = _port(run, p, engine)
    facts["hailo"] = _hailo(p.get("hailo_device"))
    root = p["root"]
    store = ReleaseStore(root)
    facts["state"] = _state(store, root)
    release = p.get("release")
    found = bool(release) and store.exists(release)
    facts["staged_untrusted"] = _staged_untrusted(store, release, p) if found else None
    facts["staged"] = found and not facts["staged_untrusted"]
    facts["restage_refused"] = _restage_refused(store, release, p) if facts["staged_untrusted"] else None
    facts["disk"] = _disk(root)
    facts["files"] = _files(p.get("compose_dir") or os.path.join(root, "compose"))
    return facts


def _staged_untrusted(store, release, p):
    """Why the staged copy of the release may not serve under the keys this deploy trusts, or None.
    Such a copy counts as not staged: the deploy transfers the release, and staging re-signs the
    staged copy with the build's manifest once a trusted key verifies it (``found_staged``)."""
    try:
        staged_key(store, release, parse_trusted_keys(p.get("trusted_keys") or []), bool(p.get("allow_unsigned")))
    except ReleaseError as exc:
        return str(exc)
    return None


def _restage_refused(store, release, p):
    """Why this build cannot take over the untrusted staged copy of the release (restage_problem), or None;
    None too when the caller does not list the build's files (O(release_files)): staging then judges."""
    if not p.get("release_files"):
        return None
    try:
        staged = store.load_manifest(store.path_of(release))[0]
    except ReleaseError as exc:
        return str(exc)
    files = [f.to_dict() for f in staged.files]
    problem = restage_problem(release, staged.model_version, files, staged.model_version, p["release_files"])
    return problem["msg"] if problem else None


def _mib(n):
    return round(n / 1048576, 1)


def refusals(facts, p, host="the edge"):
    """Why a deploy cannot land on this edge, each naming the fix; empty when it can."""
    out = []
    if facts["docker"]["version"] is None:
        out.append(f"the Docker engine does not answer ({facts['docker']['error']}): install docker.io and start it")
    elif facts["compose"]["version"] is None:
        out.append("docker compose v2 is missing: install the compose CLI plugin (scripts/bootstrap.sh does)")
    keys = p.get("trusted_keys") or []
    if not keys and not p.get("allow_unsigned"):
        out.append(
            f"{host} trusts no signing key and refuses unsigned releases: add the public key of GPUSRV's "
            "edgeinfer_build_signing_key (the build signs with it by default; its .pub) to edgeinfer_trusted_keys; "
            "edgeinfer_allow_unsigned=true is for test inventories only (docs/deploy.md, Signing and trust)"
        )
    try:
        parse_trusted_keys(keys)
    except ReleaseError as exc:
        out.append(str(exc))
    if facts.get("restage_refused"):
        out.append(facts["restage_refused"])
    need = int(p.get("release_size") or 0) * int(p.get("disk_factor") or 1)
    if need and not facts["staged"] and facts["disk"]["free_bytes"] < need:
        out.append(
            f"{p['root']} has {_mib(facts['disk']['free_bytes'])} MiB free; the release needs "
            f"{p.get('disk_factor')} x {_mib(int(p['release_size']))} MiB: free space there or prune old releases"
        )
    out += _hailo_refusals(facts, p, host)
    holders = [h for h in facts["port"]["holders"] if h != p.get("container")]
    if holders:
        out.append(
            f"port {p['port']} is published by {', '.join(holders)}, not by {p.get('container')}: "
            "stop it or set edgeinfer_sidecar_port"
        )
    elif facts["port"]["listening_other"]:
        out.append(
            f"port {p['port']} is in use by a process that is not the sidecar: stop it or set edgeinfer_sidecar_port"
        )
    out += _arch_refusals(facts, p, host)
    return out


def _hailo_refusals(facts, p, host):
    backend, require = p.get("backend") or "auto", bool(p.get("require_hailo"))
    if require and backend == "onnxruntime":
        return ["edgeinfer_require_hailo=true contradicts edgeinfer_backend=onnxruntime: use auto or hailo"]
    if (backend == "hailo" or require) and not facts["hailo"]["present"]:
        asked = "edgeinfer_backend=hailo" if backend == "hailo" else "edgeinfer_require_hailo=true"
        return [
            f"{host} has no {p.get('hailo_device')}, and {asked} asks for it: install the Hailo-8 PCIe driver "
            "(hailort-pcie-driver) and reboot, or use edgeinfer_backend=auto with edgeinfer_require_hailo=false "
            "for an edge without one"
        ]
    return []


_DELIVERY_FIX = {
    "present": "put an image for {arch} there under that tag, or let the deploy build one on the edge "
    "(edgeinfer_image_delivery: build)",
    "load": "build the image for {arch} on the controller (on such a machine, or under emulation) under that tag, "
    "or build on the edge (edgeinfer_image_delivery: build)",
    "build": "remove it from the edge (docker image rm {image}) so that the deploy builds it there",
}
_DELIVERY_FIX["pull"] = _DELIVERY_FIX["load"]


def arch_mismatch(image, image_arch, where, host, edge_arch, declared, delivery):
    """The refusal of an image of another architecture than the edge runs, with the fix for the way
    the image reaches the edge (``delivery``). ``where`` says where the image was found (on the edge,
    or on the controller that ships it); ``declared`` whether the inventory names the edge's
    architecture (edgeinfer_edge_architecture) rather than docker info. Preflight refuses with it,
    and so does the image check for an image found only once its content tag is known
    (filter plugin arch_mismatch)."""
    source = "edgeinfer_edge_architecture" if declared else "docker info"
    fix = _DELIVERY_FIX[delivery or "present"].format(arch=edge_arch, image=image)
    msg = f"image {image} is {image_arch} ({where}), and {host} runs {edge_arch} images ({source}): {fix}"
    if declared:
        msg += f"; or, if the edge does run {image_arch} images, correct edgeinfer_edge_architecture"
    return msg


def _arch_refusals(facts, p, host):
    arch, out = facts["arch"], []
    edge, kernel, declared = arch["edge"], arch["kernel"], arch["declared"]
    image, delivery = facts["image"], p.get("image_delivery") or "present"
    if p.get("image") and image is None and delivery == "present":
        out.append(
            f"image {p['image']} is not on {host}: put it there, or set edgeinfer_image_delivery to build, load or pull"
        )
    if image is not None and edge and image["arch"] != edge:
        out.append(arch_mismatch(p["image"], image["arch"], "on the edge", host, edge, bool(declared), delivery))
    if declared and kernel and declared != kernel and declared not in NATIVE_COMPAT.get(kernel, ()):
        entry = arch["emulator"] or ""
        flags = entry.split("flags:", 1)[1].split()[0] if "flags:" in entry else ""
        if not entry.startswith("enabled ") or "F" not in flags:
            qemu = QEMU_NAMES.get(declared, declared)
            what = (
                "is missing" if not entry else ("is disabled" if not entry.startswith("enabled ") else "lacks flag F")
            )
            out.append(
                f"{host} runs {kernel} (docker info) and edgeinfer_edge_architecture is {declared}, but its binfmt_misc "
                f"entry /proc/sys/fs/binfmt_misc/qemu-{qemu} {what} (containers need the emulator registered with "
                f"flag F): install qemu-user-static on the edge (Debian's registers qemu-{qemu} with flag F), or set "
                f"edgeinfer_edge_architecture to {kernel} or leave it empty"
            )
    return out


def differs(facts, p):
    """What differs between what the edge serves and what this deploy would make it serve.

    Empty when the release is current and last good (its gates passed here) and its staged copy
    serves under the deploy's keys, the compose file
    and env are the ones given (by sha256), the container runs on the image the deploy names,
    the trusted keys are the ones given, and no deploy or dead-man is in flight (no lock)."""
    st, release, out = facts["state"], p.get("release"), []
    if not release or st["current"] != release or st["last_good"] != release or facts.get("staged_untrusted"):
        out.append("release")
    if st["lock"] is not None:
        out.append("lock")
    if not p.get("env_sha256") or facts["files"]["env_sha256"] != p["env_sha256"]:
        out.append("env")
    if not p.get("compose_sha256") or facts["files"]["compose_sha256"] != p["compose_sha256"]:
        out.append("compose")
    if not facts["files"]["admin_token"]:
        out.append("admin_token")
    if not facts["container"]["running"]:
        out.append("container")
    image = facts["image"]
    if image is None or facts["container"]["image_id"] != image["id"]:
        out.append("image")
    try:
        keys = sorted(parse_trusted_keys(p.get("trusted_keys") or []))
    except ReleaseError:
        keys = None
    if keys != st["trusted_key_ids"]:
        out.append("trusted_keys")
    return out
