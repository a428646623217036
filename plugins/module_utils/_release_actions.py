# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The actions of the edgeinfer_release module on an edge's release store, one function each.

Each action takes the module (its options, check mode, diff mode and warnings) and the
``ReleaseStore``, and returns its own part of the result; ``run`` adds what every action
reports (current, previous, last good, the staged releases) and, in check mode, where the
links would point had the action run. The store raises ``ReleaseError`` for a refusal.
Standard library only: it runs on the edge's own Python.
"""

from __future__ import annotations

import os

from ansible_collections.edgeinfer.deploy.plugins.module_utils._compose import ComposeFiles, needs_compose
from ansible_collections.edgeinfer.deploy.plugins.module_utils._deadman import recover_orphan, running_watcher
from ansible_collections.edgeinfer.deploy.plugins.module_utils._store import ReleaseError, write_json_atomic
from ansible_collections.edgeinfer.deploy.plugins.module_utils._trust import provision

DEFAULT_KEEP = 3


def _stage(module, store):
    """Verify the transferred release and stage it; the store's note (an unsigned release) is a warning."""
    p = module.params
    changed, info = store.stage(
        p["source"],
        trusted_keys=p["trusted_keys"],
        allow_unsigned=p["allow_unsigned"],
        exclude_roles=p["exclude_roles"],
        remove_source=p["remove_source"],
        check_mode=module.check_mode,
    )
    note = info.pop("note", None)
    if note:
        module.warn(note)
    return dict(info, changed=changed)


def _trust(module, store):
    """Make ``<root>/trust/`` hold the given keys and no others; the diff lists the key files."""
    before = store.trust.files()
    changed, info = provision(store, module.params["trusted_keys"], check_mode=module.check_mode)
    out = dict(info, changed=changed or "untrusted_last_good" in info)
    if module._diff:
        out["diff"] = {
            "before": "".join(f"trust/{k}.pub\n" for k in before),
            "after": "".join(f"trust/{k}.pub\n" for k in info["trusted_key_ids"]),
        }
    return out


def _compose(module, store, target):
    """Write the compose files for the release the switch serves (see the compose_dir option).

    They are written before ``current`` moves, so a release that is not staged is refused first
    (in check mode the store's switch refuses it instead).
    """
    p = module.params
    if not store.exists(target) and not module.check_mode:
        raise ReleaseError(f"release {target} is not staged under {store.releases}; available: {store.list_releases()}")
    before = store.current()
    files = ComposeFiles(p["compose_dir"])
    return files.write(target, env=p["env"], compose=p["compose_file"], before=before, check_mode=module.check_mode)


def _compose_fields(files):
    """What the switch reports of the compose files it wrote."""
    return {
        "files_changed": files["changed"],
        "files_written": files["written"],
        "env_changed": files["env_changed"],
        "compose_changed": files["compose_changed"],
        "env_changed_keys": files["env_changed_keys"],
        "needs_compose": needs_compose(files),
    }


def _switch(module, store):
    """Make ``release`` (switch) or the rollback target (rollback) current, with its compose files."""
    p = module.params
    action = p["action"]
    state = store.read_state()
    target = p["release"] if action == "switch" else store.rollback_target(state, p["release"])
    reason = p["reason"] if action == "switch" or p["reason"] != "deploy" else "rollback"
    files = _compose(module, store, target) if p["compose_dir"] else None
    changed, before, after = store.switch(target, reason=reason, previous=p["previous"], check_mode=module.check_mode)
    out = {"changed": changed, "release": after, "before": before}
    diff = [{"before_header": "models/current", "before": f"current -> {before}\n", "after": f"current -> {after}\n"}]
    if files is not None:
        out.update(changed=changed or files["changed"], **_compose_fields(files))
        diff.append(dict(files["diff"], before_header=".env", after_header=".env"))
    if module._diff:
        out["diff"] = diff if files is not None else diff[0]
    return out


def _prune(module, store):
    """Remove the releases beyond ``keep``, never the current, previous, last good or protected ones."""
    p = module.params
    keep = DEFAULT_KEEP if p["keep"] is None else p["keep"]
    removed = store.prune(keep, protect=p["protect"], check_mode=module.check_mode)
    return {"changed": bool(removed), "removed": removed}


def _commit(module, store):
    """Record the release that passed its gates as last good (with its image), then prune when asked."""
    p = module.params
    changed, before, after, removed = store.commit(
        p["release"],
        keep=p["keep"],
        protect=p["protect"],
        image=p["image"],
        image_id=p["image_id"],
        check_mode=module.check_mode,
    )
    out = {"changed": changed, "release": after, "before": before, "removed": removed}
    if module._diff:
        out["diff"] = {"before": f"last_good -> {before}\n", "after": f"last_good -> {after}\n"}
    return out


def _lock(module, store):
    """Take the deploy lock (breaking a stale one when asked), then provision the trusted keys under it.

    A lock held by a deploy whose dead-man watcher is gone, past its timeout, is that watcher's to
    release: its revert is made (``recover_orphan``), and this run stops there, refused, since the
    edge it read before the lock is not the edge any more; the next run starts from the reverted
    one. A lock whose watcher still runs is never broken: the watcher's revert and this run would
    overlap."""
    p = module.params
    holder = (store.lock.read() or {}).get("deploy_id")
    holder = holder if holder != p["deploy_id"] else None
    watching = running_watcher(store, holder) if holder and p["lock_break_stale"] else None
    if watching:  # breaking the lock would let this run and the watcher's revert overlap
        raise ReleaseError(
            f"the lock of deploy {holder} is not broken: its dead-man watcher still runs (pid {watching.get('pid')}, "
            f"{watching['state']} since {watching.get('armed')}); it confirms or reverts the edge and releases the "
            f"lock by itself {watching.get('timeout')} s after arming: wait for it",
            deadman=watching,
        )
    recovered = recover_orphan(store, holder, module.check_mode) if holder else None
    if recovered:
        to = recovered.get("revert_to") or "nothing (the sidecar is stopped)"
        done = "a real run makes" if module.check_mode else f"made ({recovered.get('outcome')})"
        raise ReleaseError(
            f"deploy {holder} left the edge locked and its dead-man watcher is gone (the edge rebooted, or the "
            f"watcher was killed): {done} its revert to {to} and releases the lock; this run stops there, "
            "since the edge changed under it: run it again",
            deadman_recovered=recovered,
            changed=not module.check_mode,
        )
    changed, lock, broken = store.acquire(
        p["lock_holder"] or "unknown",
        p["deploy_id"],
        p["lock_stale_after"],
        break_stale=p["lock_break_stale"],
        check_mode=module.check_mode,
    )
    out = {"changed": changed, "lock": lock}
    if broken:
        out["broken_lock"] = broken
    if p["trusted_keys"] is not None:
        trust_changed, info = provision(store, p["trusted_keys"], check_mode=module.check_mode)
        out.update(info, trust_changed=trust_changed or "untrusted_last_good" in info)
    return out


def _record(module, store, record):
    """Fill in what the edge serves after the run, and keep the record under <root>/records/."""
    state = store.read_state()
    current = store.current()
    known = state["releases"].get(current, {}) if current else {}
    record = dict(record, after={"release": current, "image": known.get("image"), "image_id": known.get("image_id")})
    deploy_id = module.params["deploy_id"] or record.get("deploy_id") or "run"
    if not module.check_mode:
        records = os.path.join(store.root, "records")
        os.makedirs(records, mode=0o755, exist_ok=True)
        write_json_atomic(os.path.join(records, f"{os.path.basename(deploy_id)}.json"), record)
    return record


def _unlock(module, store):
    """Release the deploy lock, and leave this run's record on the edge when one is given."""
    p = module.params
    changed, lock = store.lock.release(p["deploy_id"], check_mode=module.check_mode)
    out = {"changed": changed, "lock": lock}
    if p["record"] is not None:
        out["record"] = _record(module, store, p["record"])
    return out


def _info(module, store):
    """Change nothing; say whether ``release``, when named, is staged."""
    release = module.params["release"]
    return {"present": store.exists(release), "release": release} if release else {}


ACTIONS = {
    "stage": _stage,
    "trust": _trust,
    "switch": _switch,
    "rollback": _switch,
    "prune": _prune,
    "commit": _commit,
    "lock": _lock,
    "unlock": _unlock,
    "info": _info,
}


def _store_fields(store):
    """What every action reports: the links and the staged releases after it, with what state.json knows of them."""
    state = store.read_state() if os.path.isdir(store.root) else {"current": None, "previous": None, "releases": {}}
    fields = {
        "current": store.current(),
        "previous": state.get("previous"),
        "last_good": store.last_good(),
        "releases": store.list_releases(),
    }
    fields["known"] = {r: state["releases"][r] for r in fields["releases"] if r in state.get("releases", {})}
    return fields


def _as_if_run(action, result):
    """In check mode the links did not move: report them where the action would have put them."""
    if action in ("switch", "rollback") and result["before"] != result["release"]:
        result.update(current=result["release"], previous=result["before"])
    if action == "commit":
        result["last_good"] = result["release"]
    return result


def run(module, store):
    """The module's result for its action on ``store``; ReleaseError when the store refuses it."""
    action = module.params["action"]
    result = {"changed": False}
    result.update(ACTIONS[action](module, store))
    result.update(_store_fields(store))
    return _as_if_run(action, result) if module.check_mode else result
