"""Small filesystem helpers: atomic writes, staging directories, progress on stderr."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def progress(message: str) -> None:
    """Progress of long steps goes to stderr so that ``--json`` stdout stays machine-readable."""
    if os.environ.get("MODEL_TOOLS_QUIET") != "1":
        print(f"model_tools: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def staging_dir(destination: Path) -> Iterator[Path]:
    """A temp dir beside ``destination``; removed on any failure, left for the caller on success."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    tmp.chmod(0o755)  # mkdtemp makes it 0700; a release is read by the deploy user and the sidecar
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def move_files_into(src: Path, dest: Path, names: list[str]) -> None:
    """Move ``names`` from ``src`` into ``dest`` (each an atomic rename on the same filesystem)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        os.replace(src / name, dest / name)


def replace_dir(src: Path, dest: Path) -> None:
    """Put the directory ``src`` at ``dest``; an existing ``dest`` is swapped out, then removed."""
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
        os.replace(src, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dest)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
