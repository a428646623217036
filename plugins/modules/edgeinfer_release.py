#!/usr/bin/python
# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: edgeinfer_release
short_description: Manage versioned model releases on an EdgeInfer edge
version_added: 0.1.0
description:
  - Stages a release directory written by C(model_tools) into C(<root>/models/releases/<version>-<sha8>/),
    verifying the manifest's ed25519 signature against the trusted keys (O(trusted_keys), else the keys
    provisioned under C(<root>/trust/)), then every artifact's size and sha256 against C(manifest.json).
    A symbolic link among the listed files is refused, as C(model_tools verify) refuses it.
    The copy is verified again before it is renamed into place.
  - A release is staged only when a trusted key signed it, unless O(allow_unsigned=true). The public keys
    come from the caller (the inventory), never from the release; the signature file is kept in the release
    only when it was checked.
  - A release staged already is not copied again. When the build staged now has another manifest of the same
    content (model version and every file's entry), signed by a trusted key, the staged files are verified against it and its
    manifest and signature replace the staged ones (RV(resigned)), so that a release staged under a key no longer trusted
    then serves again under the same id. Any other manifest for a staged release id is refused.
  - Provisions the trusted keys on the edge (O(action=trust)) as C(<root>/trust/<key id>.pub), where a key id
    is the first 16 hex digits of the sha256 of the raw public key.
  - Switches C(<root>/models/current) to a release with an atomic rename of a relative symlink,
    so the sidecar (which mounts C(<root>/models) read-only) sees either the old or the new model, never a mix.
  - Records the last release that passed its gates (O(action=commit)) as C(<root>/models/last_good), a relative
    symlink switched the same way as C(current), and as C(last_good) in the state file. The sidecar serves it
    when C(current) fails to load or fails its golden self-check at start.
  - Keeps a JSON state file C(<root>/state.json) with the current, previous and last good release and a history,
    and for each release the image (tag and id) it was committed on (O(image), O(image_id)), which a rollback to it
    restores by id.
  - Holds a deploy lock C(<root>/deploy.lock) so that two deploys never overlap on one edge; a second deploy
    fails fast naming the holder and its start time. A stale lock can be broken explicitly, unless the dead-man
    watcher of its deploy still runs (M(edgeinfer.deploy.edgeinfer_deadman)). A lock held by a deploy whose
    watcher is gone, past its timeout, is released by making that watcher's revert; the lock action then fails,
    since the edge changed under the run, and the next run starts from the reverted edge.
  - Serializes the updates of the state file between the processes on the edge (the modules and the dead-man's
    watcher) with C(flock) on C(<root>/.state.mutex).
  - Prunes old releases, keeping O(keep) and never removing the current, the previous (rollback target),
    the last good release, or any release named in O(protect). Each is renamed out of the release names before it
    is deleted, so a crash leaves a hidden C(.pruning-*) directory, which the next prune deletes, never half a release.
author:
  - EdgeInfer deploy team (@edgeinfer)
extends_documentation_fragment:
  - edgeinfer.deploy.attributes
  - edgeinfer.deploy.attributes.actiongroup_release_store
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing under O(root) is written; C(changed) says what would change.
  diff_mode:
    support: partial
    details:
      - O(action=switch) and O(action=rollback) return the C(current) link before and after, and with O(compose_dir)
        C(.env) before and after.
      - O(action=commit) returns the C(last_good) link before and after.
      - O(action=trust) returns the trusted key ids before and after.
  idempotent:
    support: full
    details:
      - Staging the same manifest again, switching to the release that is already current (with the same compose files), committing the release
        that is already the last good one (on the same image, with nothing to prune), or provisioning the keys that are already
        trusted, reports C(changed=false).
options:
  root:
    description: The edge's install root, for example C(/opt/edgeinfer).
    type: path
    required: true
  action:
    description:
      - V(info) reports the state and changes nothing.
      - V(stage) verifies O(source) and stages it as a release.
      - V(switch) makes O(release) current.
      - V(rollback) makes the previous release (or O(release)) current.
      - V(prune) removes old releases beyond O(keep).
      - V(commit) records that O(release) (default the current release) passed its gates. C(<root>/models/last_good)
        is switched to it and C(state.json) names it C(last_good), with the image it served on (O(image), O(image_id))
        when given; then, when O(keep) is given, it prunes as V(prune) does.
      - V(lock) and V(unlock) take and release the deploy lock. V(lock) with O(trusted_keys) then provisions them as
        V(trust) does, under the lock; V(unlock) with O(record) leaves this run's record on the edge.
      - V(trust) makes C(<root>/trust/) hold the keys of O(trusted_keys) and no others.
    type: str
    choices: [info, stage, switch, rollback, prune, commit, lock, unlock, trust]
    default: info
  source:
    description: Directory on the edge that holds the transferred release (with C(manifest.json)). Needed by O(action=stage).
    type: path
  release:
    description:
      - Release id (C(<version>-<sha8>)) for O(action=switch); for O(action=rollback), a named target instead of the previous release.
      - For O(action=commit), the release that passed its gates; the current release when omitted.
      - With O(action=info), the result says whether this release is staged.
    type: str
  trusted_keys:
    description:
      - With O(action=lock), the keys O(action=trust) would provision, provisioned under the lock.
      - ed25519 public keys in PEM form (each the whole C(<key>.pub) that C(model_tools keygen) wrote) whose
        signature of C(manifest.json) O(action=stage) accepts. More than one while a key is rotated.
      - With O(action=stage), when omitted, the keys provisioned under C(<root>/trust/) by O(action=trust).
      - Needed by O(action=trust); an empty list trusts no key.
      - A release signed by a key outside a non-empty list is refused, whatever O(allow_unsigned) says; the
        refusal names the key id the manifest declares (C(signing_key_id)) and the trusted ids.
    type: list
    elements: str
  allow_unsigned:
    description:
      - With O(action=stage), stage unchecked a release that no trusted key can check, that is one without
        C(manifest.json.sig), or a signed one when no key is trusted (its signature is then not kept).
      - Without it such a release is refused, naming the fix. For test setups only.
    type: bool
    default: false
  remove_source:
    description:
      - With O(action=stage), remove O(source) when the action ends, whether the release was staged, was staged
        already, or was refused, so that a refused transfer leaves nothing on the edge. Nothing is removed in check mode.
      - O(source) must then be a directory directly under C(<root>/staging/), where the deploy transfers releases.
    type: bool
    default: false
  exclude_roles:
    description:
      - Manifest roles that O(action=stage) neither requires nor copies, for files that stay on GPUSRV
        (the calibration set). Every other file of the manifest must be present and match.
    type: list
    elements: str
    default: []
  keep:
    description:
      - How many releases O(action=prune) keeps, the current, previous and last good included; 3 when omitted.
      - O(action=commit) prunes only when it is given.
      - At least 2.
    type: int
  protect:
    description: Release ids O(action=prune) and O(action=commit) must never remove, in addition to the current, previous and last good.
    type: list
    elements: str
    default: []
  previous:
    description:
      - With O(action=switch), the rollback target to record instead of the release being replaced;
        a revert after a failed deploy passes the target the edge had before it. An empty string clears it.
    type: str
  image:
    description:
      - With O(action=commit), the image tag the release served on, kept in C(state.json) beside the release.
    type: str
  image_id:
    description:
      - With O(action=commit), the id (C(sha256:...)) of the image the release served on, kept in C(state.json)
        beside the release; a rollback to the release restores this image by id, re-tagging it when its tag
        names another image by then.
    type: str
  reason:
    description: Word recorded in the history for a switch, for example C(deploy), C(rollback) or C(revert).
    type: str
    default: deploy
  lock_holder:
    description: Who takes the lock (user@controller), recorded in the lock file and shown to a second deploy.
    type: str
  deploy_id:
    description:
      - Identifies one deploy run; taking the lock again with the same id succeeds, with another id it fails.
      - Required by V(lock) and V(unlock); V(unlock) releases only the lock of this deploy, never another's
        (a lock left by a controller that is gone is broken by the next V(lock), with O(lock_break_stale)).
    type: str
  lock_stale_after:
    description: Seconds after which a held lock counts as stale (its holder is presumed gone).
    type: int
    default: 1800
  lock_break_stale:
    description: Break a stale lock instead of failing. A fresh lock is never broken, nor one whose deploy's dead-man
      watcher still runs (M(edgeinfer.deploy.edgeinfer_deadman)).
    type: bool
    default: false
  compose_dir:
    description:
      - With O(action=switch) and O(action=rollback), the sidecar's compose directory, whose files are written with
        the switch (before C(current) moves), O(compose_file) as C(compose.yaml); O(env) as C(.env) and as
        C(env/<release>.env), the env that release serves with; without O(env), the release's own
        C(env/<release>.env) when there is one (a revert restores the env its release served with). The C(.env)
        being replaced is kept as the env of the release it served, and the hot-reload token C(admin_token)
        (40 random letters and digits, mode 0400, owned by the sidecar user) is made when missing.
      - Each file is written under a temporary name and renamed into place.
    type: path
  env:
    description: With O(compose_dir), the content of C(.env) for the release (rendered by the caller).
    type: str
  compose_file:
    description: With O(compose_dir), the content of C(compose.yaml).
    type: str
  record:
    description:
      - With O(action=unlock), this run's record, written as C(<root>/records/<deploy_id>.json) with C(after)
        (the release current after the run, with the image it was committed on) filled in from the edge's state,
        then returned as RV(record). The edge keeps its own history, whatever the controller keeps.
    type: dict
notes:
  - Runs on the edge with its own Python and the standard library; signature checks need the C(cryptography) package there.
seealso:
  - module: edgeinfer.deploy.edgeinfer_probe
"""

EXAMPLES = r"""
- name: Take the deploy lock
  edgeinfer.deploy.edgeinfer_release:
    root: /opt/edgeinfer
    action: lock
    lock_holder: "{{ lookup('env', 'USER') }}@{{ inventory_hostname }}"
    deploy_id: "{{ edgeinfer_deploy_id }}"

- name: Provision the keys this edge trusts (from the inventory, never from a release)
  edgeinfer.deploy.edgeinfer_release:
    root: /opt/edgeinfer
    action: trust
    trusted_keys: "{{ edgeinfer_trusted_keys }}"

- name: Stage the transferred release, checking its signature against them; remove the transfer either way
  edgeinfer.deploy.edgeinfer_release:
    root: /opt/edgeinfer
    action: stage
    source: /opt/edgeinfer/staging/incoming
    trusted_keys: "{{ edgeinfer_trusted_keys }}"
    remove_source: true
  register: staged

- name: Say which key signed it
  ansible.builtin.debug:
    msg: "{{ staged.release }} signed by key {{ staged.key_id }}"

- name: Switch current to it
  edgeinfer.deploy.edgeinfer_release:
    root: /opt/edgeinfer
    action: switch
    release: "{{ staged.release }}"

- name: Its gates passed, so make it the last good release and keep three releases
  edgeinfer.deploy.edgeinfer_release:
    root: /opt/edgeinfer
    action: commit
    release: "{{ staged.release }}"
    keep: 3

- name: Its gates passed on this image; a rollback to it restores the image by id
  edgeinfer.deploy.edgeinfer_release:
    root: /opt/edgeinfer
    action: commit
    release: "{{ staged.release }}"
    image: edgeinfer/sidecar:0.1.0-4cbe6cb3fa3b
    image_id: "{{ image_inspect.stdout }}"

- name: Roll back to the previous release
  edgeinfer.deploy.edgeinfer_release:
    root: /opt/edgeinfer
    action: rollback
    reason: rollback
"""

RETURN = r"""
release:
  description: The release acted on (staged, switched to, or rolled back to).
  returned: when an action names a release
  type: str
  sample: v72pct-3f2a9c1d
model_version:
  description: The staged release's model version, from its manifest.
  returned: action=stage
  type: str
digest:
  description: sha256 of the release's primary model.
  returned: action=stage
  type: str
path:
  description: The release directory.
  returned: action=stage
  type: str
signed:
  description: Whether a trusted key verified the manifest's signature; false for a release staged unchecked under O(allow_unsigned).
  returned: action=stage
  type: bool
key_id:
  description:
    - With O(action=stage), the id of the trusted key that verified the signature; null when the release was staged unchecked.
    - On a refused signed release, the key id the manifest declares (null when it names none).
  returned: action=stage, and a refused signed release
  type: str
  sample: 3f2a9c1d5e6b7a80
resigned:
  description:
    - With O(action=stage), when the staged copy of the release took this build's manifest and signature (see the
      description), the id of the key that had signed it (C(key_id), null when it was staged unchecked).
  returned: action=stage, when the staged copy was re-signed
  type: dict
  sample: {key_id: 3f2a9c1d5e6b7a80}
trusted_key_ids:
  description: The ids of the trusted keys (with O(action=trust), after the action).
  returned: action=stage, action=trust, action=lock with trusted_keys, and a refused release
  type: list
  elements: str
written:
  description: Key ids whose C(<root>/trust/<key id>.pub) was (or in check mode would be) written.
  returned: action=trust, and action=lock with trusted_keys
  type: list
  elements: str
trust_changed:
  description: Whether O(action=lock) with O(trusted_keys) changed (or would change) the keys under C(<root>/trust/).
  returned: action=lock with trusted_keys
  type: bool
files_changed:
  description: Whether the compose files under O(compose_dir) were (or would be) written.
  returned: action=switch or action=rollback with compose_dir
  type: bool
files_written:
  description: The files under O(compose_dir) written (or that would be).
  returned: action=switch or action=rollback with compose_dir
  type: list
  elements: str
  sample: [compose.yaml, .env, env/v2-3f2a9c1d.env]
env_changed:
  description: Whether C(.env) changed.
  returned: action=switch or action=rollback with compose_dir
  type: bool
compose_changed:
  description: Whether C(compose.yaml) changed.
  returned: action=switch or action=rollback with compose_dir
  type: bool
env_changed_keys:
  description: The C(.env) keys whose value changed.
  returned: action=switch or action=rollback with compose_dir
  type: list
  elements: str
needs_compose:
  description:
    - Whether the change needs compose up to reach the sidecar, that is C(compose.yaml) or an C(.env) key other than
      the deployment guide's C(MODEL_VERSION), C(MODEL_ACCURACY) and C(HEF_PATH) (which compose does not pass to the
      container) changed.
  returned: action=switch or action=rollback with compose_dir
  type: bool
record:
  description: The record written under C(<root>/records/), with C(after) filled in.
  returned: action=unlock with record
  type: dict
present:
  description: Whether O(release) is staged.
  returned: action=info with release
  type: bool
current:
  description: The current release after the action.
  returned: always
  type: str
previous:
  description: The previous release (the rollback target) after the action.
  returned: always
  type: str
last_good:
  description: The last release that passed its gates (C(<root>/models/last_good)) after the action; null when none did.
  returned: always
  type: str
before:
  description:
    - The current release before the action.
    - With O(action=commit), the last good release before the action.
  returned: action=switch, action=rollback or action=commit
  type: str
releases:
  description: Release ids staged on the edge after the action.
  returned: always
  type: list
  elements: str
known:
  description:
    - For each staged release, its model version, digest, staging time, whether a trusted key signed it and which,
      and the image (C(image), C(image_id)) it was last committed on.
    - C(signed) and C(key_id) are missing for releases staged before they were recorded; C(image) and C(image_id)
      for releases never committed with them.
  returned: always
  type: dict
  sample:
    v2-3f2a9c1d:
      model_version: v2
      digest: 3f2a9c1d...
      staged: "2026-12-01T18:00:00Z"
      signed: true
      key_id: 3f2a9c1d5e6b7a80
      image: edgeinfer/sidecar:0.1.0-4cbe6cb3fa3b
      image_id: sha256:1e9ec7d9d1ee6d31c446a4bf950bf1f828ad872543ed2964742ed3880d34f6f4
removed:
  description: Release ids pruned; with O(action=trust) or O(action=lock) with trusted_keys, the key ids no longer
    trusted.
  returned: action=prune, action=commit, action=trust, action=lock with trusted_keys
  type: list
  elements: str
lock:
  description: The lock taken, released, or held by someone else.
  returned: action=lock, action=unlock, or a refused lock
  type: dict
stale:
  description: Whether the lock held by someone else is older than O(lock_stale_after) (then O(lock_break_stale) breaks it).
  returned: a refused lock
  type: bool
broken_lock:
  description: The stale lock that was broken.
  returned: action=lock when a stale lock was broken
  type: dict
deadman_recovered:
  description:
    - The dead-man watcher's state after the revert that O(action=lock) made for it. The lock was held by a deploy
      whose watcher is gone (the edge rebooted, or the process was killed) and whose timeout has passed.
    - The lock action then fails (C(changed=true)), so that the run stops and the next one starts from the
      reverted edge.
    - In check mode the revert is not made, and the state says so (C(check_mode)).
  returned: a failed action=lock that made such a revert, or would in check mode
  type: dict
deadman:
  description:
    - The state of the dead-man watcher of the deploy that holds the lock, when O(lock_break_stale) would have
      broken it but the watcher still runs; it confirms or reverts the edge and releases the lock by itself.
  returned: a failed action=lock whose holder's watcher still runs
  type: dict
field:
  description: The field of the release that was refused (for example C(model_version), C(release)).
  returned: a failure that names one
  type: str
problems:
  description: One line per artifact that differs from the manifest.
  returned: failure of action=stage on a mismatch
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.edgeinfer.deploy.plugins.module_utils._release import ReleaseStore
from ansible_collections.edgeinfer.deploy.plugins.module_utils._release_actions import run
from ansible_collections.edgeinfer.deploy.plugins.module_utils._store import ReleaseError


def main():
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "action": {
                "type": "str",
                "default": "info",
                "choices": ["info", "stage", "switch", "rollback", "prune", "commit", "lock", "unlock", "trust"],
            },
            "source": {"type": "path"},
            "release": {"type": "str"},
            "trusted_keys": {"type": "list", "elements": "str", "no_log": False},
            "allow_unsigned": {"type": "bool", "default": False},
            "remove_source": {"type": "bool", "default": False},
            "exclude_roles": {"type": "list", "elements": "str", "default": []},
            "keep": {"type": "int"},
            "protect": {"type": "list", "elements": "str", "default": []},
            "image": {"type": "str"},
            "image_id": {"type": "str"},
            "reason": {"type": "str", "default": "deploy"},
            "previous": {"type": "str"},
            "lock_holder": {"type": "str"},
            "deploy_id": {"type": "str"},
            "lock_stale_after": {"type": "int", "default": 1800},
            "lock_break_stale": {"type": "bool", "default": False},
            "compose_dir": {"type": "path"},
            "env": {"type": "str"},
            "compose_file": {"type": "str"},
            "record": {"type": "dict"},
        },
        required_if=[
            ("action", "stage", ("source",)),
            ("action", "switch", ("release",)),
            ("action", "lock", ("deploy_id",)),
            ("action", "unlock", ("deploy_id",)),
            ("action", "trust", ("trusted_keys",)),
        ],
        supports_check_mode=True,
    )
    if module.params["keep"] is not None and module.params["keep"] < 2:
        module.fail_json(
            msg=f"keep={module.params['keep']}: keep at least 2 releases, the current and its rollback target"
        )
    store = ReleaseStore(module.params["root"])
    try:
        result = run(module, store)
    except ReleaseError as exc:
        module.fail_json(msg=str(exc), action=module.params["action"], root=store.root, **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
