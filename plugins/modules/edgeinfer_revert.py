#!/usr/bin/python
# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: edgeinfer_revert
short_description: Serve a staged release again on an EdgeInfer edge, with its compose env and its image
version_added: 0.2.0
description:
  - The one revert of the collection, which the edge's dead-man runs too when the controller does not confirm a deploy.
  - Switches C(<root>/models/current) back to O(release) (the rollback target recorded is O(previous) when given);
    restores the compose env that release served with (C(compose/env/<release>.env), when there is one); makes
    the image tag the release was committed on name the image id it was committed on again (C(state.json)).
  - Then recreates the sidecar with C(docker compose up --wait) when C(compose.yaml) or an C(.env) key the container
    reads changed, when it runs another image, or when it does not run; a sidecar compose kept is hot-reloaded
    (C(POST /admin/reload) with the token under O(compose_dir)). A sidecar that serves another model while
    C(current) names O(release) already (an earlier revert whose reload failed) is hot-reloaded too.
  - Fails unless C(/healthz) then names the release's model version and sha256 within O(timeout), as
    C(state.json) records them, else as the release's C(manifest.json) does.
author:
  - EdgeInfer deploy team (@edgeinfer)
extends_documentation_fragment:
  - edgeinfer.deploy.attributes
  - edgeinfer.deploy.attributes.actiongroup_release_store
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is written, tagged or restarted; C(changed) and RV(applied) say what would happen.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - Reverting to the release that serves already, with its env and image, reports C(changed=false).
options:
  root:
    description: The edge's install root, for example C(/opt/edgeinfer).
    type: path
    required: true
  release:
    description: The staged release to serve (C(<version>-<sha8>)).
    type: str
    required: true
  previous:
    description: The rollback target to record after the revert; an empty string clears it.
    type: str
  reason:
    description: Word recorded in the history of C(state.json).
    type: str
    default: revert
  url:
    description: The sidecar's base URL on the edge; by default C(http://127.0.0.1:<EDGEINFER_PORT of the restored env>).
    type: str
  compose_dir:
    description: The sidecar's compose directory; C(<root>/compose) when omitted.
    type: path
  timeout:
    description: Seconds that compose and the health check may take, each.
    type: float
    default: 90
seealso:
  - module: edgeinfer.deploy.edgeinfer_release
  - module: edgeinfer.deploy.edgeinfer_deadman
"""

EXAMPLES = r"""
- name: Serve the previous release again
  edgeinfer.deploy.edgeinfer_revert:
    root: /opt/edgeinfer
    release: v71pct-1a2b3c4d
  register: reverted
"""

RETURN = r"""
before:
  description: The current release before the revert.
  returned: success
  type: str
actions:
  description: What the revert did, one line each.
  returned: always
  type: list
  elements: str
applied:
  description: How the sidecar took the release, V(restart) (compose recreated it), V(reload) or V(none).
  returned: always
  type: str
image:
  description: V(kept) or V(retagged) (the tag names the release's image id again), V(missing) (that image is gone), or null.
  returned: always
  type: str
reload:
  description: The sidecar's answer to the hot reload; null when none was sent.
  returned: always
  type: dict
expected:
  description:
    - C(model_version) and C(digest) that C(/healthz) must name for the restored release, from the edge's
      C(state.json), else from the release's manifest; the gates after a revert check the same.
  returned: success
  type: dict
health:
  description: C(ok), C(reason) and C(duration) of the health check of the restored release; null in check mode.
  returned: always
  type: dict
compose:
  description: C(rc) and the end of C(stderr) of C(docker compose up) when the sidecar was recreated.
  returned: when the sidecar was recreated
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.edgeinfer.deploy.plugins.module_utils._release import ReleaseStore
from ansible_collections.edgeinfer.deploy.plugins.module_utils._revert import revert
from ansible_collections.edgeinfer.deploy.plugins.module_utils._store import ReleaseError


def main():
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "release": {"type": "str", "required": True},
            "previous": {"type": "str"},
            "reason": {"type": "str", "default": "revert"},
            "url": {"type": "str"},
            "compose_dir": {"type": "path"},
            "timeout": {"type": "float", "default": 90},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        out = revert(
            module.run_command,
            ReleaseStore(p["root"]),
            p["release"],
            url=p["url"],
            compose_dir=p["compose_dir"],
            previous=p["previous"],
            reason=p["reason"],
            timeout=p["timeout"],
            check_mode=module.check_mode,
        )
    except ReleaseError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    health = out.get("health")
    if health is not None and not health["ok"]:
        reload = out.get("reload") or {}
        why = (
            f"; the hot reload answered {reload.get('status')}: {reload.get('body')}"
            if reload and not reload.get("ok")
            else ""
        )
        module.fail_json(msg=f"{p['release']} does not serve after the revert: {health['reason']}{why}", **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
