#!/usr/bin/python
# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: edgeinfer_deadman
short_description: Revert an EdgeInfer edge by itself unless the controller confirms the deploy
version_added: 0.1.0
description:
  - O(action=arm) writes the watcher's state (armed, with the time); run it before the switch.
  - O(action=watch) waits on an armed watcher (arming it if needed). Run it as an async task (C(async), C(poll=0));
    it then runs detached on the edge and outlives the controller's connection.
    Unless O(action=confirm) comes within O(timeout) seconds, it switches C(current) back to O(revert_to),
    restores that release's compose env, reloads or restarts the sidecar, checks its health, writes
    C(<root>/records/<deploy_id>.deadman.json), and releases the deploy's lock.
    With no O(revert_to) (a first deploy), it stops the sidecar instead of serving an unconfirmed model.
    When O(release) was never switched to (the controller vanished earlier, during the transfer say),
    it only releases the lock and records that.
  - O(action=confirm) tells the watcher the deploy passed its gates; O(action=cancel) tells it the controller
    is reverting by itself. Both wait until the watcher has seen the word.
  - A watcher that is gone while armed (the edge rebooted since it was armed, or its process was killed) never
    sees the word. O(action=confirm) then fails at once, so that the controller reverts by itself;
    O(action=cancel) records the watcher as cancelled. When the controller is gone too, the next
    M(edgeinfer.deploy.edgeinfer_release) O(action=lock) that finds the edge locked by that deploy makes the
    watcher's revert, once its timeout has passed, and fails that run, which starts again from the reverted edge.
  - A watcher counts as gone when the edge booted since the arm (the kernel's boot id), when its process is dead
    or another process has its pid, or when its watch has not started 120 s after the arm.
  - O(action=status) reports the watcher's state.
author:
  - EdgeInfer deploy team (@edgeinfer)
extends_documentation_fragment:
  - edgeinfer.deploy.attributes
  - edgeinfer.deploy.attributes.actiongroup_release_store
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is armed, confirmed or cancelled; C(changed) says whether the real run would change
        the watcher (V(watch) decides only later, so it predicts no change).
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - Arming the watcher of a deploy that is armed already for the same release, or confirming or cancelling a
        watcher that has already decided, changes nothing.
options:
  root:
    description: The edge's install root.
    type: path
    required: true
  deploy_id:
    description: The deploy this watcher belongs to.
    type: str
    required: true
  action:
    description: What to do.
    type: str
    choices: [arm, watch, confirm, cancel, status]
    default: status
  release:
    description: The release being deployed (the watcher reverts only while it is current).
    type: str
  revert_to:
    description: The release to go back to; empty for a first deploy.
    type: str
    default: ""
  previous:
    description: The rollback target to record after a revert (the one the edge had before the deploy).
    type: str
  timeout:
    description: Seconds the controller has to confirm.
    type: float
    default: 300
  compose_project:
    description: Compose project of the sidecar, for a restart.
    type: str
    default: edgeinfer
seealso:
  - module: edgeinfer.deploy.edgeinfer_release
"""

EXAMPLES = r"""
- name: Arm the dead-man revert before the switch
  edgeinfer.deploy.edgeinfer_deadman:
    root: /opt/edgeinfer
    deploy_id: "{{ edgeinfer_deploy_id }}"
    action: arm
    release: v2-3f2a9c1d
    revert_to: v1-0b1c2d3e
    timeout: 300

- name: Watch, detached from the controller
  edgeinfer.deploy.edgeinfer_deadman:
    root: /opt/edgeinfer
    deploy_id: "{{ edgeinfer_deploy_id }}"
    action: watch
    release: v2-3f2a9c1d
    revert_to: v1-0b1c2d3e
    timeout: 300
  async: 600
  poll: 0

- name: Confirm after the gates passed
  edgeinfer.deploy.edgeinfer_deadman:
    root: /opt/edgeinfer
    deploy_id: "{{ edgeinfer_deploy_id }}"
    action: confirm
"""

RETURN = r"""
watcher:
  description: The watcher's state file (state armed, confirmed, cancelled, reverting while its revert runs, or
    revert, with what it did), with the boot it was armed in (C(boot_id)) and the watching process (C(pid)).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.edgeinfer.deploy.plugins.module_utils._deadman import (
    Watcher,
    read_state,
    signal_watcher,
    watcher_gone,
)
from ansible_collections.edgeinfer.deploy.plugins.module_utils._release import ReleaseStore


def main():
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "deploy_id": {"type": "str", "required": True},
            "action": {"type": "str", "choices": ["arm", "watch", "confirm", "cancel", "status"], "default": "status"},
            "release": {"type": "str"},
            "revert_to": {"type": "str", "default": ""},
            "previous": {"type": "str"},
            "timeout": {"type": "float", "default": 300},
            "compose_project": {"type": "str", "default": "edgeinfer"},
        },
        required_if=[("action", "watch", ("release",)), ("action", "arm", ("release",))],
        supports_check_mode=True,
    )
    p = module.params
    store = ReleaseStore(p["root"])
    before = read_state(store, p["deploy_id"])
    armed = (before or {}).get("state") == "armed"
    # Arming the watcher this deploy armed already, for the same release, changes nothing: its clock
    # keeps running from the first arm.
    armed_alike = armed and (before or {}).get("release") == p["release"]
    if p["action"] == "status":
        module.exit_json(changed=False, watcher=before or {})
    gone = armed and watcher_gone(before)
    if p["action"] == "confirm" and gone:  # in check mode too: the real run fails the same way
        module.fail_json(
            msg=f"the watcher of deploy {p['deploy_id']} is gone (the edge rebooted since it was armed, or its "
            f"process {before.get('pid')} was killed): it cannot revert, so the controller must; the deploy is not confirmed",
            watcher=before,
        )
    if p["action"] in ("arm", "watch") and p["timeout"] <= 0:  # in check mode too: the real run fails the same way
        module.fail_json(msg=f"timeout={p['timeout']}: give the controller a positive number of seconds")
    if module.check_mode:
        # What the real run would report: arm changes unless armed alike; confirm and cancel change
        # an armed watcher; watch decides only later, when its word or its timeout comes.
        would = {"arm": not armed_alike, "confirm": armed, "cancel": armed}.get(p["action"], False)
        module.exit_json(changed=would, watcher=before or {})
    if p["action"] in ("arm", "watch"):
        w = Watcher(
            p["root"], p["deploy_id"], p["release"], p["revert_to"], p["previous"], p["timeout"], p["compose_project"]
        )
        if p["action"] == "arm":
            if armed_alike:
                module.exit_json(changed=False, watcher=before)
            module.exit_json(changed=True, watcher=w.arm())
        state = w.watch()
        module.exit_json(changed=state["state"] == "revert", watcher=state)
    state = signal_watcher(store, p["deploy_id"], p["action"])
    if state is None:
        module.exit_json(changed=False, watcher={}, msg=f"no watcher was armed for deploy {p['deploy_id']}")
    if state.get("state") == "armed":
        module.fail_json(
            msg=f"the watcher of deploy {p['deploy_id']} did not answer {p['action']} (pid {state.get('pid')}); "
            f"it may have died: check {store.root}/deadman/",
            watcher=state,
        )
    module.exit_json(changed=(before or {}).get("state") == "armed", watcher=state)


if __name__ == "__main__":
    main()
