# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Versioned releases on an edge: staging, verification, atomic switch, lock, state.

Layout under ``root`` (see docs/artifacts.md)::

    models/current -> releases/<version>-<sha8>     relative symlink, switched by rename
    models/last_good -> releases/<version>-<sha8>   the last release that passed its gates, the same way
    models/releases/<version>-<sha8>/               one directory per release, never edited
    staging/                                        incoming transfers and temp dirs
    trust/<key id>.pub                              the signing keys this edge trusts
    state.json                                      current, previous, last_good, history, and per
                                                    release the image (tag and id) that served it
    deploy.lock                                     who deploys now, since when

A release is staged when a trusted key signed its manifest (an unsigned one only when the caller
allows it), and switched to while a key of ``trust/`` still verifies it. The keys come from the
caller (the inventory) or ``trust/``, never from the release.

Standard library only (plus ``cryptography`` when a signature is checked): this runs on the edge's
own Python. Ansible has no atomic install of its own, so the switch is built here: a new symlink is
made beside ``current`` (or ``last_good``) and renamed over it, which POSIX makes atomic.
"""

from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager, suppress

from ansible_collections.edgeinfer.deploy.plugins.module_utils._contract import ContractError, Manifest
from ansible_collections.edgeinfer.deploy.plugins.module_utils._contract import (
    release_id as _contract_release_id,
)
from ansible_collections.edgeinfer.deploy.plugins.module_utils._lock import DeployLock
from ansible_collections.edgeinfer.deploy.plugins.module_utils._store import (
    LAST_GOOD,
    ReleaseError,
    file_mutex,
    fsync_dir,
    now_iso,
    read_json_object,
    write_json_atomic,
)
from ansible_collections.edgeinfer.deploy.plugins.module_utils._trust import (
    SIGNATURE,
    TrustDir,
    check_signature,
    found_staged,
    parse_trusted_keys,
    staged_key,
)

STATE_FILE = "state.json"
CURRENT = "current"
LOCK_FILE = "deploy.lock"
TRUST_DIR = "trust"
HISTORY_MAX = 200
# What release_id makes (<version>-<sha8>, the version of letters, digits and '._-'): a name inside
# releases/, never a path out of it (a '/', or '..' and every other name starting with '.').
RELEASE_ID_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def release_id(version, digest):
    """The release contract's id (``<version>-<sha8>``), a refusal when the version cannot name one."""
    try:
        return _contract_release_id(version, digest)
    except ContractError as exc:
        raise ReleaseError(f"model_version {exc.message}", field="model_version") from None


class ReleaseStore:
    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.models = os.path.join(self.root, "models")
        self.releases = os.path.join(self.models, "releases")
        self.current_link = os.path.join(self.models, CURRENT)
        self.staging = os.path.join(self.root, "staging")
        self.state_path = os.path.join(self.root, STATE_FILE)
        self.lock_path = os.path.join(self.root, LOCK_FILE)
        self.trust_dir = os.path.join(self.root, TRUST_DIR)
        self.lock = DeployLock(self.root, self.lock_path)
        self.trust = TrustDir(self.trust_dir)

    # -- state ------------------------------------------------------------
    def ensure_layout(self):
        for d in (self.root, self.models, self.releases, self.staging):
            os.makedirs(d, mode=0o755, exist_ok=True)

    def read_state(self):
        state = read_json_object(self.state_path, {"history": list, "releases": dict})
        state.setdefault("current", self.current())
        state.setdefault("previous", None)
        state.setdefault("last_good", self.last_good())
        return state

    def write_state(self, state):
        state["history"] = state["history"][-HISTORY_MAX:]
        write_json_atomic(self.state_path, state)

    @contextmanager
    def update_state(self):
        """``state.json`` read, handed to the block and written back when the block ends without an
        error, under one mutex: the controller's modules and the dead-man's watcher run as separate
        processes, and an update made between another one's read and write would be lost."""
        with file_mutex(os.path.join(self.root, ".state.mutex")):
            state = self.read_state()
            yield state
            self.write_state(state)

    def _link_target(self, name):
        try:
            target = os.readlink(os.path.join(self.models, name))
        except OSError:
            return None
        return os.path.basename(target.rstrip("/"))

    def current(self):
        return self._link_target(CURRENT)

    def last_good(self):
        """The release ``models/last_good`` names: the last one that passed its gates here."""
        return self._link_target(LAST_GOOD)

    def _point(self, name, rid):
        """Make ``models/<name>`` a relative symlink to ``releases/<rid>`` with one atomic rename."""
        tmp_link = os.path.join(self.models, f".{name}-{os.getpid()}")
        with suppress(FileNotFoundError):
            os.unlink(tmp_link)
        os.symlink(os.path.join("releases", rid), tmp_link)
        os.replace(tmp_link, os.path.join(self.models, name))
        fsync_dir(self.models)

    def path_of(self, rid):
        if not isinstance(rid, str) or not RELEASE_ID_RE.fullmatch(rid):
            raise ReleaseError(
                f"release {rid!r} is not a release id: expected <version>-<sha8>, of letters, digits and '._-', "
                "not starting with '.'",
                field="release",
            )
        return os.path.join(self.releases, rid)

    def list_releases(self):
        try:
            return sorted(e for e in os.listdir(self.releases) if not e.startswith("."))
        except FileNotFoundError:
            return []

    def exists(self, rid):
        return os.path.isfile(os.path.join(self.path_of(rid), "manifest.json"))

    # -- verification -----------------------------------------------------
    @staticmethod
    def load_manifest(directory):
        """The manifest of ``directory`` and its exact bytes (what the signature covers)."""
        path = os.path.join(directory, "manifest.json")
        try:
            with open(path, "rb") as fh:
                blob = fh.read()
        except FileNotFoundError:
            raise ReleaseError(
                f"{path} does not exist; a release directory needs the manifest model_tools wrote"
            ) from None
        try:
            manifest = Manifest.from_bytes(blob)
        except ContractError as exc:
            raise ReleaseError(f"manifest {path}: {exc}", field=exc.field) from None
        return manifest, blob

    @staticmethod
    def read_signature(directory):
        try:
            with open(os.path.join(directory, SIGNATURE), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    @staticmethod
    def verify(directory, manifest, exclude_roles=()):
        names = [f.name for f in manifest.files if f.role not in exclude_roles]
        # A symbolic link among the files is refused here as model_tools verify refuses it:
        # the rule and its message are edgeinfer_contract's (symlink_problem).
        problems = manifest.verify_files(directory, names)
        if problems:
            raise ReleaseError(
                f"{len(problems)} artifact(s) do not match the manifest: " + "; ".join(problems), problems=problems
            )

    # -- stage -------------------------------------------------------------
    def stage(
        self, source, trusted_keys=None, allow_unsigned=False, exclude_roles=(), remove_source=False, check_mode=False
    ):
        """Verify ``source`` and copy it to ``releases/<id>``. Returns (changed, info).

        With ``remove_source`` (a transfer directory under ``staging/``), ``source`` is removed
        once the release is staged, found staged already, or refused: a refused transfer
        leaves nothing on the edge. Check mode removes nothing.

        The manifest's signature is checked first, against ``trusted_keys`` (PEM texts) or, when
        that is None, the keys under ``trust/``: see ``check_signature``. ``info`` says whether a
        trusted key signed the release (``signed``) and which (``key_id``); a ``note`` says why an
        unchecked release went in. The signature is copied into the release only when checked.
        Files whose manifest role is in ``exclude_roles`` (GPUSRV-only data such as the
        calibration set) are neither required nor copied; every other file must match.
        """
        if not remove_source:
            return self._stage(source, trusted_keys, allow_unsigned, exclude_roles, check_mode)
        source = os.path.abspath(source)
        if os.path.dirname(source) != self.staging:
            raise ReleaseError(
                f"remove_source: {source} is not a transfer directory directly under {self.staging}; "
                "stage it without remove_source, or transfer it there"
            )
        try:
            return self._stage(source, trusted_keys, allow_unsigned, exclude_roles, check_mode)
        finally:
            if not check_mode:
                shutil.rmtree(source, ignore_errors=True)

    def _stage(self, source, trusted_keys, allow_unsigned, exclude_roles, check_mode):
        exclude_roles = tuple(exclude_roles)
        trusted = self.trust.read() if trusted_keys is None else parse_trusted_keys(trusted_keys)
        manifest, blob = self.load_manifest(source)
        signature = self.read_signature(source)
        kid, note = check_signature(
            os.path.join(source, "manifest.json"), blob, manifest, signature, trusted, allow_unsigned
        )
        rid = release_id(manifest.model_version, manifest.digest)
        info = {"release": rid, "model_version": manifest.model_version, "digest": manifest.digest}
        info.update(path=self.path_of(rid), signed=kid is not None, key_id=kid, trusted_key_ids=sorted(trusted))
        if note:
            info["note"] = note
        if self.exists(rid):
            return found_staged(self, manifest, blob, signature, kid, exclude_roles, info, check_mode)
        self.verify(source, manifest, exclude_roles)
        if check_mode:
            return True, info
        self.ensure_layout()
        tmp = os.path.join(self.staging, f".incoming-{rid}-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        try:
            for name in [f.name for f in manifest.files if f.role not in exclude_roles]:
                dest = os.path.join(tmp, name)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copyfile(os.path.join(source, name), dest)
            # The manifest and signature bytes that were checked, not the files again; a
            # signature nobody checked is not kept as if it had been.
            for name, data in (("manifest.json", blob), (SIGNATURE, signature if kid is not None else None)):
                if data is not None:
                    with open(os.path.join(tmp, name), "wb") as fh:
                        fh.write(data)
            # Verify the copy, not only the source: this is what will be served.
            self.verify(tmp, manifest, exclude_roles)
            for dirpath, _dirnames, files in os.walk(tmp):
                os.chmod(dirpath, 0o755)
                for f in files:
                    os.chmod(os.path.join(dirpath, f), 0o444)
            os.rename(tmp, self.path_of(rid))
            fsync_dir(self.releases)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        with self.update_state() as state:
            state["releases"][rid] = {
                "model_version": manifest.model_version,
                "digest": manifest.digest,
                "staged": now_iso(),
                "signed": kid is not None,
                "key_id": kid,
            }
            state["history"].append({"time": now_iso(), "action": "stage", "release": rid})
        return True, info

    # -- switch --------------------------------------------------------------
    def switch(self, rid, reason="deploy", previous=None, check_mode=False):
        """Point ``current`` at ``rid``, which a trusted key still verifies, with an atomic rename.
        Returns (changed, before, after). The release replaced becomes the rollback target, unless
        ``previous`` names it: a revert after a failed deploy puts back the rollback target the edge
        had before, so that a failed release never becomes anyone's rollback target."""
        before = self.current()
        if not self.exists(rid):
            if check_mode and before != rid:
                return True, before, rid  # would switch once the release is staged
            raise ReleaseError(f"release {rid} is not staged under {self.releases}; available: {self.list_releases()}")
        if before == rid:
            return False, before, rid
        staged_key(self, rid)
        if check_mode:
            return True, before, rid
        self._point(CURRENT, rid)
        with self.update_state() as state:
            if previous is not None:
                state["previous"] = previous or None
            elif before and before != rid:
                state["previous"] = before
            state["current"] = rid
            state["history"].append({"time": now_iso(), "action": reason, "release": rid, "from": before})
        return True, before, rid

    # -- last good ---------------------------------------------------------------
    def mark_good(self, rid=None, check_mode=False):
        """Point ``last_good`` at ``rid`` (default: the current release), the release that passed
        its gates; the sidecar serves it when ``current`` fails to load. Returns (changed, before, after)."""
        rid = rid or self.current()
        if not rid:
            raise ReleaseError("no release is current and none was named: name the release that passed its gates")
        before = self.last_good()
        if not self.exists(rid):
            if check_mode and before != rid:
                return True, before, rid  # would be marked once the release is staged
            raise ReleaseError(f"release {rid} is not staged under {self.releases}; available: {self.list_releases()}")
        if before == rid and self.read_state().get("last_good") == rid:
            return False, before, rid
        if check_mode:
            return True, before, rid
        self._point(LAST_GOOD, rid)
        with self.update_state() as state:
            state["last_good"] = rid
            state["history"].append({"time": now_iso(), "action": "good", "release": rid, "from": before})
        return True, before, rid

    def record_image(self, rid, image=None, image_id=None, check_mode=False):
        """Keep, in the state file, the image (tag and id) that served ``rid``: a rollback to it
        restores that id, whatever the tag names by then. Returns whether that changed."""
        entry = self.read_state()["releases"].get(rid, {})
        wanted = {k: v for k, v in (("image", image), ("image_id", image_id)) if v}
        if all(entry.get(k) == v for k, v in wanted.items()):
            return False
        if not check_mode:
            with self.update_state() as state:
                state["releases"].setdefault(rid, {}).update(wanted)
                state["history"].append({"time": now_iso(), "action": "image", "release": rid, **wanted})
        return True

    def commit(self, rid=None, keep=None, protect=(), image=None, image_id=None, check_mode=False):
        """The release passed its gates: mark it good, keep the image it served on (``image``,
        ``image_id``) when given, then prune beyond ``keep`` when given.

        Returns ``(changed, before, after, removed)``; ``before`` and ``after`` are ``last_good``.
        """
        changed, before, after = self.mark_good(rid, check_mode=check_mode)
        if image or image_id:
            changed = self.record_image(after, image, image_id, check_mode=check_mode) or changed
        # In check mode last_good is not written yet: the release to be marked is protected by name.
        removed = self.prune(keep, protect=(*protect, after), check_mode=check_mode) if keep is not None else []
        return changed or bool(removed), before, after, removed

    def rollback_target(self, state, named=None):
        if named:
            return named
        prev = state.get("previous")
        if not prev:
            raise ReleaseError("there is no previous release to roll back to; name one with release=<id>")
        return prev

    # -- prune ---------------------------------------------------------------
    def prune(self, keep, protect=(), check_mode=False):
        """Remove the oldest releases beyond ``keep``; current, previous, last good and ``protect`` are never removed."""
        state = self.read_state()
        protected = {
            r for r in (self.current(), state.get("previous"), self.last_good(), state["last_good"], *protect) if r
        }
        staged = state.get("releases", {})
        present = self.list_releases()
        candidates = [r for r in present if r not in protected]
        candidates.sort(key=lambda r: staged.get(r, {}).get("staged", ""), reverse=True)
        # Only the protected releases that are on the edge take room: a protected id that is not
        # staged here (a previous release pruned by hand, a name from another edge) keeps nothing.
        room = max(0, keep - len(protected.intersection(present)))
        removed = candidates[room:]
        if not check_mode and os.path.isdir(self.releases):
            # Renamed out of the release names, then deleted: a crash leaves a hidden directory, never half a release.
            left = [e for e in os.listdir(self.releases) if e.startswith(".pruning-")]
            for name in left:  # what a prune that crashed left
                shutil.rmtree(os.path.join(self.releases, name))
            for rid, hidden in ((r, os.path.join(self.releases, f".pruning-{r}-{os.getpid()}")) for r in removed):
                os.rename(self.path_of(rid), hidden)
                shutil.rmtree(hidden)
            forgotten = [*removed, *(name[len(".pruning-") :].rsplit("-", 1)[0] for name in left)]
            if forgotten:
                with self.update_state() as state:
                    for rid in forgotten:
                        state["releases"].pop(rid, None)
                    state["history"] += [{"time": now_iso(), "action": "prune", "removed": removed}] if removed else []
        return removed

    # -- lock ------------------------------------------------------------------
    def acquire(self, holder, deploy_id, stale_after, break_stale=False, check_mode=False):
        """Take the deploy lock (``DeployLock.acquire``); a stale lock broken goes into the history."""
        changed, lock, broken = self.lock.acquire(holder, deploy_id, stale_after, break_stale, check_mode)
        if broken and not check_mode:
            with self.update_state() as state:
                state["history"].append({"time": now_iso(), "action": "lock_broken", "lock": broken})
        return changed, lock, broken
