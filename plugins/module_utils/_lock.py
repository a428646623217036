# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy lock of an edge (``deploy.lock``): who deploys now, since when.

One deploy at a time: another deploy is refused with the holder named, a stale lock (older than the
caller's ``stale_after``) is broken only when the caller asks. Updates of the lock file are
serialized between processes on the edge by ``flock`` on ``.lock.mutex``."""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from contextlib import contextmanager

from ansible_collections.edgeinfer.deploy.plugins.module_utils._store import (
    ReleaseError,
    file_mutex,
    now_iso,
    write_json_atomic,
)


class DeployLock:
    def __init__(self, root, path):
        self.root = root
        self.path = path

    @contextmanager
    def _mutex(self, check_mode=False):
        """Serializes lock-file updates between processes on this edge (check mode creates nothing)."""
        if check_mode and not os.path.exists(os.path.join(self.root, ".lock.mutex")):
            yield
            return
        with file_mutex(os.path.join(self.root, ".lock.mutex")):
            yield

    def read(self):
        try:
            with open(self.path) as fh:
                return json.load(fh)
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:
            return {"holder": "unknown (unreadable lock file)", "started": None, "epoch": 0}

    def acquire(self, holder, deploy_id, stale_after, break_stale=False, check_mode=False):
        """Take the deploy lock. Re-entrant for the same deploy_id. Returns (changed, lock, broken)."""
        with self._mutex(check_mode):
            held = self.read()
            broken = None
            if held:
                if held.get("deploy_id") == deploy_id:
                    return False, held, None
                # The wall clock, since a lock outlives its process and the edge's reboots; a clock
                # stepped back reads as a lock just taken, never as a negative age.
                age = max(0.0, time.time() - float(held.get("epoch") or 0))
                stale = age > stale_after
                if not (stale and break_stale):
                    hint = (
                        f"it is stale ({int(age)} s old > {stale_after} s): break it with lock_break_stale=true"
                        if stale
                        else f"wait for it to finish (held {int(age)} s), or break it once it is older than {stale_after} s"
                    )
                    raise ReleaseError(
                        f"edge is being deployed by {held.get('holder')} since {held.get('started')} "
                        f"(deploy {held.get('deploy_id')}); {hint}",
                        lock=held,
                        stale=stale,
                    )
                broken = held
            lock = {
                "holder": holder,
                "deploy_id": deploy_id,
                "started": now_iso(),
                "epoch": time.time(),
                "edge": socket.gethostname(),
            }
            if not check_mode:
                write_json_atomic(self.path, lock)
            return True, lock, broken

    def release(self, deploy_id=None, check_mode=False):
        with self._mutex(check_mode):
            held = self.read()
            if not held:
                return False, None
            if deploy_id and held.get("deploy_id") not in (deploy_id, None):
                raise ReleaseError(
                    f"the lock belongs to deploy {held.get('deploy_id')} of {held.get('holder')}, not {deploy_id}"
                )
            if not check_mode:
                try:
                    os.unlink(self.path)
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        raise
            return True, held
