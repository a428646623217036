"""Wrap a root filesystem tar as a ``docker load`` archive whose image config names its platform.

    python3 scripts/docker_archive.py --layer rootfs.tar --tag edgeinfer/base:bookworm-arm64 \\
        --arch arm64 --variant v8 --env LANG=C.UTF-8 --cmd /bin/bash --label k=v | docker load

``docker import`` on Docker 20.10 records the engine's own architecture whatever
``--platform`` says (the flag needs an experimental daemon), so an image of a foreign root
filesystem would claim amd64. Writing the archive directly sets ``architecture`` in the
config, costs one pass over the layer, and needs only the standard library and ``docker load``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def image_config(
    diff_id: str, arch: str, variant: str, env: list[str], cmd: list[str], labels: dict[str, str], comment: str
) -> dict[str, Any]:
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config: dict[str, Any] = {
        "architecture": arch,
        "os": "linux",
        "created": created,
        "config": {"Env": env, "Cmd": cmd, "Labels": labels or None},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created": created, "created_by": "scripts/docker_archive.py", "comment": comment}],
    }
    if variant:
        config["variant"] = variant
    return config


def write_archive(out: BinaryIO, layer: Path, tag: str, config: dict[str, Any], diff_id: str) -> str:
    """Write the archive to ``out``; returns the image id (the sha256 of the config)."""
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    image_id = hashlib.sha256(config_bytes).hexdigest()
    manifest = [{"Config": f"{image_id}.json", "RepoTags": [tag], "Layers": [f"{diff_id}/layer.tar"]}]
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((f"{image_id}.json", config_bytes), ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.add(layer, f"{diff_id}/layer.tar", recursive=False)
    return image_id


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/docker_archive.py", description=__doc__.splitlines()[0])
    ap.add_argument("--layer", type=Path, required=True, help="the root filesystem as an uncompressed tar")
    ap.add_argument("--tag", required=True, help="repository:tag the loaded image gets")
    ap.add_argument("--arch", required=True, help="the image config's architecture, e.g. arm64 or amd64")
    ap.add_argument("--variant", default="", help="the architecture variant, e.g. v8 for arm64")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE, repeatable")
    ap.add_argument("--cmd", nargs="+", default=["/bin/sh"], help="the default command")
    ap.add_argument("--label", action="append", default=[], help="KEY=VALUE, repeatable")
    ap.add_argument("--comment", default="", help="recorded in the image's history")
    ap.add_argument("--out", type=Path, default=None, help="write the archive here instead of to stdout")
    args = ap.parse_args(argv)
    if not args.layer.is_file():
        ap.error(f"--layer {args.layer} does not exist: give the root filesystem tar (tar -C ROOT -cf FILE .)")
    for flag, items in (("--env", args.env), ("--label", args.label)):
        bad = [i for i in items if "=" not in i]
        if bad:
            ap.error(f"{flag} {bad[0]!r}: expected KEY=VALUE")
    labels = dict(item.split("=", 1) for item in args.label)
    diff_id = sha256_file(args.layer)
    config = image_config(diff_id, args.arch, args.variant, args.env, args.cmd, labels, args.comment)
    if args.out is not None:
        with args.out.open("wb") as f:
            write_archive(f, args.layer, args.tag, config, diff_id)
    else:
        write_archive(sys.stdout.buffer, args.layer, args.tag, config, diff_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
