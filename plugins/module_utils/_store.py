# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every part of an edge's release store shares: the refusal it raises, files written
atomically (a temporary file, fsync, rename, fsync of the directory), so that a crash leaves the old
file or the new one, never half of one, and the mutex that serializes read-modify-writes of a file
between the processes of an edge (the controller's modules, the dead-man's watcher)."""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager

# models/last_good: the release the sidecar serves when current fails to load.
LAST_GOOD = "last_good"


class ReleaseError(Exception):
    """A refusal with the reason and, where there is one, the fix."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def read_json_object(path, shape):
    """The JSON object in ``path`` ({} when there is none), its keys of ``shape`` (name: type) set
    to an empty one when absent; a file that is not JSON, or of another shape, is refused by name."""
    fix = "restore it or remove it to start over"
    try:
        with open(path) as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {key: kind() for key, kind in shape.items()}
    except json.JSONDecodeError as exc:
        raise ReleaseError(f"{path} is not valid JSON ({exc}); {fix}") from None
    if not isinstance(data, dict):
        raise ReleaseError(f"{path} holds a JSON {type(data).__name__}, not an object; {fix}")
    for key, kind in shape.items():
        if not isinstance(data.setdefault(key, kind()), kind):
            raise ReleaseError(f"{path}: {key!r} is a {type(data[key]).__name__}, not a {kind.__name__}; {fix}")
    return data


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path, data, mode=None):
    """Replace ``path`` with ``data`` (mode ``mode``; None: the umask's) by a rename, never half written;
    the caller makes the directory durable (fsync_dir) once it has written all it writes there."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


def write_json_atomic(path, data):
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
    fsync_dir(os.path.dirname(path) or ".")


@contextmanager
def file_mutex(path):
    """Hold ``flock`` on ``path`` (created when missing) until the block ends: one process at a
    time between the read of a file and the write of its update. The kernel drops the lock when
    its holder dies, so a crash never leaves it held."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
