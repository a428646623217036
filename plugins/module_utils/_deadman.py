# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Commit-or-revert on the edge itself.

Before ``current`` is switched, the deploy arms a watcher on the edge (an Ansible
async job: a detached process that outlives the controller's connection). Unless
the controller confirms within ``timeout`` seconds, the watcher puts the previous
release back by itself: the ``current`` link, the compose env and the running
sidecar, then checks its health and writes what it did to the edge's record. So a
controller or a network that vanishes mid-deploy (where Ansible's ``rescue`` never
runs for the unreachable host) cannot leave a half-verified model in place.

Files under ``<root>/deadman/``: ``<deploy_id>.json`` (the watcher's state),
``<deploy_id>.confirm`` and ``<deploy_id>.cancel`` (written by the controller).

A watcher that is gone while armed (the edge rebooted: the state names another boot; or its
process was killed) cannot revert. A confirm then fails at once, so the controller's rescue
reverts; and once its timeout has passed, the next deploy or rollback that finds the edge locked
by that deploy makes the watcher's revert first (``recover_orphan``), instead of waiting for the
lock to go stale while the edge serves an unconfirmed release.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time

from ansible_collections.edgeinfer.deploy.plugins.module_utils._release import ReleaseStore
from ansible_collections.edgeinfer.deploy.plugins.module_utils._revert import revert
from ansible_collections.edgeinfer.deploy.plugins.module_utils._store import (
    ReleaseError,
    file_mutex,
    now_iso,
    write_json_atomic,
)


def _run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def paths(store, deploy_id):
    d = os.path.join(store.root, "deadman")
    base = os.path.join(d, deploy_id)
    return {"dir": d, "state": base + ".json", "confirm": base + ".confirm", "cancel": base + ".cancel"}


def read_state(store, deploy_id):
    try:
        with open(paths(store, deploy_id)["state"]) as fh:
            return json.load(fh)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write(store, deploy_id, state):
    write_json_atomic(paths(store, deploy_id)["state"], state)


def boot_id():
    """This boot of the edge (the kernel's random boot id), or None where ``/proc`` does not say."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


# Seconds an armed watcher may go without its watch starting (the task right after the arm)
# before it counts as gone: the controller died in between, or the async job never started.
WATCH_START_GRACE_S = 120


def _process_start(pid):
    """The start time of process ``pid`` (clock ticks since boot), None when there is none; a
    zombie, killed but not reaped by its parent yet, has none."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def watcher_gone(state):
    """Whether the watcher of an armed (or reverting) ``state`` no longer runs: the edge booted
    since it was armed; its process is dead, or another process has its pid (a start time that
    differs); or its watch never started within WATCH_START_GRACE_S of the arm."""
    if not state or state.get("state") not in ("armed", "reverting"):
        return False
    if state.get("boot_id") and state["boot_id"] != boot_id():
        return True
    if state.get("pid") is None:
        return time.time() - float(state.get("armed_epoch") or 0) > WATCH_START_GRACE_S
    try:
        started = _process_start(int(state["pid"]))
    except (TypeError, ValueError):
        return True
    return started is None or started != state.get("pid_start", started)


def decide(confirmed, cancelled, elapsed, timeout):
    """Pure: what the watcher does at this tick: wait, confirmed, cancelled or revert."""
    if confirmed:
        return "confirmed"
    if cancelled:
        return "cancelled"
    if elapsed >= timeout:
        return "revert"
    return "wait"


class Watcher:
    @classmethod
    def of(cls, store, state):
        """The watcher an armed ``state`` describes."""
        return cls(
            # No recorded previous: cleared, never the failed release (a revert with None would make it so).
            store.root, state["deploy_id"], state["release"], state.get("revert_to"), state.get("previous") or "",
            state["timeout"], state.get("compose_project") or "edgeinfer",
        )  # fmt: skip

    def __init__(self, root, deploy_id, release, revert_to, previous, timeout, compose_project, interval=1.0):
        self.store = ReleaseStore(root)
        self.deploy_id = deploy_id
        self.release = release
        self.revert_to = revert_to or None
        self.previous = previous
        self.timeout = float(timeout)
        self.compose_project = compose_project
        self.interval = interval
        self.p = paths(self.store, deploy_id)
        # Set when a revert that a killed watcher had begun is made again (recover_orphan).
        self.resuming = False

    def arm(self):
        os.makedirs(self.p["dir"], exist_ok=True)
        for k in ("confirm", "cancel"):
            if os.path.exists(self.p[k]):
                os.unlink(self.p[k])
        state = {
            "deploy_id": self.deploy_id,
            "release": self.release,
            "revert_to": self.revert_to,
            "previous": self.previous,
            "compose_project": self.compose_project,
            "timeout": self.timeout,
            "armed": now_iso(),
            "armed_epoch": time.time(),
            "boot_id": boot_id(),
            "pid": None,  # set by the watch
            "state": "armed",
        }
        _write(self.store, self.deploy_id, state)
        return state

    def watch(self):
        """Wait for the word; the timeout counts from when the watcher was armed."""
        state = read_state(self.store, self.deploy_id)
        if not state or state.get("state") != "armed":
            state = self.arm()
        state["pid"], state["pid_start"] = os.getpid(), _process_start(os.getpid())
        _write(self.store, self.deploy_id, state)
        # The arm time on the monotonic clock: a wall clock stepped while watching (NTP, a Pi
        # without an RTC setting its clock late) neither shortens nor stretches the window.
        armed = time.monotonic() - max(0.0, time.time() - float(state["armed_epoch"]))
        while True:
            action = decide(
                os.path.exists(self.p["confirm"]),
                os.path.exists(self.p["cancel"]),
                time.monotonic() - armed,
                self.timeout,
            )
            if action != "wait":
                break
            time.sleep(self.interval)
        return self.finish(state, action)

    def finish(self, state, action):
        """Carry out and record the decision ``action`` (confirmed, cancelled or revert)."""
        state["decided"] = now_iso()
        if action == "revert":
            # "reverting" is written before the revert, which can take minutes (compose up, health):
            # a confirm that comes meanwhile sees the decision at once instead of a watcher still armed.
            state["state"] = "reverting"
            _write(self.store, self.deploy_id, state)
            state.update(self._revert_or_fail())
        state["state"] = action
        _write(self.store, self.deploy_id, state)
        return state

    def _revert_or_fail(self):
        """The revert; when it raises (the release to go back to is gone, docker fails, state.json is
        corrupt), the failure is recorded and the deploy's lock released, instead of a watcher that
        died leaving the edge locked and its state armed."""
        try:
            return self.revert()
        except Exception as exc:  # alone on the edge: whatever failed must be written down
            out = {"actions": [], "outcome": "revert_failed", "error": f"{type(exc).__name__}: {exc}"}
            with contextlib.suppress(Exception):  # a corrupt state.json must not also cost the unlock
                self._record(out)
            self._unlock()
            return out

    # -- the revert, without the controller ------------------------------------
    def revert(self):
        store = self.store
        out = {"actions": []}
        current = store.current()
        # A revert begun by a watcher that was killed may have switched current back already: it is
        # made again whole (env, image, sidecar, health), not taken for a deploy that never switched.
        if current != self.release and not (self.resuming and current == self.revert_to):
            # The controller vanished before the switch: nothing to revert, but its lock must go.
            out["actions"].append(f"nothing to revert: current is {current}, not {self.release}")
            out["outcome"] = "not_switched"
            self._record(out)
            self._unlock()
            return out
        compose_dir = os.path.join(store.root, "compose")
        if self.revert_to:
            # The same revert as rollback.yml's (edgeinfer_revert): current, env, image, compose or reload, health.
            done = revert(
                _run, store, self.revert_to, compose_dir=compose_dir, compose_project=self.compose_project,
                previous=self.previous, reason="deadman-revert",
            )  # fmt: skip
            out["actions"] += done["actions"]
            out.update({k: done[k] for k in ("applied", "image", "reload", "health", "compose") if k in done})
            out["outcome"] = "reverted" if (done["health"] or {}).get("ok") else "reverted_unhealthy"
        else:
            # Nothing verified to go back to: stop serving rather than serve an unconfirmed model.
            out.update(self._compose(compose_dir, ["down"]))
            out["actions"].append("no previous release: sidecar stopped")
            out["outcome"] = "stopped"
        self._record(out)
        self._unlock()
        return out

    def _compose(self, compose_dir, args):
        cmd = ["docker", "compose", "--project-directory", compose_dir, "-p", self.compose_project, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        return {"compose": {"cmd": cmd, "rc": proc.returncode, "stderr": proc.stderr[-2000:]}}

    def _record(self, out):
        records = os.path.join(self.store.root, "records")
        os.makedirs(records, exist_ok=True)
        record = {
            "deploy_id": self.deploy_id,
            "host_action": "deadman",
            "time": now_iso(),
            "outcome": out.get("outcome"),
            "release": self.release,
            "reverted_to": self.revert_to,
            "reason": f"the controller did not confirm within {self.timeout:g} s",
            "actions": out.get("actions", []),
            "health": out.get("health"),
            "error": out.get("error"),
        }
        write_json_atomic(os.path.join(records, f"{self.deploy_id}.deadman.json"), record)
        with self.store.update_state() as state:
            state["history"].append({"time": now_iso(), "action": "deadman", "outcome": out.get("outcome")})

    def _unlock(self):
        # The controller that held the lock is gone; its lock must not block the next deploy.
        with contextlib.suppress(ReleaseError):  # a lock of another deploy stays where it is
            self.store.lock.release(self.deploy_id)


def running_watcher(store, deploy_id):
    """The state of the watcher of ``deploy_id`` when it still runs (armed or reverting), else None."""
    state = read_state(store, deploy_id)
    if state and state.get("state") in ("armed", "reverting") and not watcher_gone(state):
        return state
    return None


def recover_orphan(store, deploy_id, check_mode=False):
    """The revert of the watcher of ``deploy_id`` that is gone while armed (or reverting), once
    its timeout has passed: made now, as the watcher would have made it (then the deploy's lock is
    released). Two callers never both make it: the first marks the state as its own under a mutex.

    Returns the watcher's final state; None when it runs, decided, or its timeout has not passed.
    In check mode nothing is done: the state says ``revert`` with ``check_mode`` set.
    """
    with file_mutex(os.path.join(paths(store, deploy_id)["dir"], ".recover.mutex")):
        state = read_state(store, deploy_id)
        if not watcher_gone(state) or time.time() - float(state["armed_epoch"]) < float(state["timeout"]):
            return None
        if check_mode:
            return dict(state, state="revert", check_mode=True)
        resuming = state["state"] == "reverting"
        # Made by the process that found the watcher gone (the next deploy's or rollback's lock).
        state.update(pid=os.getpid(), pid_start=_process_start(os.getpid()), boot_id=boot_id(), recovered=now_iso())
        state["state"] = "reverting"
        _write(store, deploy_id, state)
    watcher = Watcher.of(store, state)
    watcher.resuming = resuming
    return watcher.finish(state, "revert")


def signal_watcher(store, deploy_id, kind, wait=10.0):
    """Write the confirm or cancel file and wait until the watcher has seen it. Returns its state.

    A watcher that is gone never sees it: a cancel is recorded at once (the controller reverts by
    itself). A confirm to it is refused by the module before it gets here."""
    p = paths(store, deploy_id)
    state = read_state(store, deploy_id)
    if state is None:
        return None
    if state.get("state") != "armed":
        return state
    if kind == "cancel" and watcher_gone(state):
        state.update(state="cancelled", decided=now_iso())
        _write(store, deploy_id, state)
        return state
    with open(p[kind], "w") as fh:
        fh.write(now_iso() + "\n")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        state = read_state(store, deploy_id)
        if state and state.get("state") != "armed":
            return state
        time.sleep(0.2)
    return read_state(store, deploy_id)
