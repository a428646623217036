# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every part of an edge's release store shares: the refusal it raises, and files written
atomically (a temporary file, fsync, rename, fsync of the directory), so that a crash leaves the old
file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import time


class ReleaseError(Exception):
    """A refusal with the reason and, where there is one, the fix."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path, data):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")
