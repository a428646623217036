#!/usr/bin/python
# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: edgeinfer_preflight
short_description: Read an EdgeInfer edge's state once and refuse a deploy that cannot land there
version_added: 0.2.0
description:
  - One read of everything a deploy decides from, in one module call. The Docker engine and compose plugin
    versions, the architecture the edge runs images of (C(docker info), or O(edge_architecture) with its
    binfmt_misc emulator entry), the image O(image) on the edge (id and architecture), the sidecar container
    (running, image id), who publishes O(port), the Hailo device node, free disk under O(root), the release
    store (current, previous, last good release, the releases staged, the deploy lock, the trusted key ids)
    and the sha256 of the compose files under O(compose_dir).
  - Refuses (fails, naming every reason and its fix) a deploy that cannot land; nothing on the edge changes,
    whatever the outcome. With O(refuse=false) the reasons are returned in RV(refusals) instead.
  - Says whether the edge already serves exactly what the deploy would make it serve (RV(noop)); that is, the release
    is current and last good, the compose files have the given sha256 (O(env_sha256), O(compose_sha256)), the
    sidecar runs on O(image), the trusted keys are O(trusted_keys), and no deploy holds the lock.
author:
  - EdgeInfer deploy team (@edgeinfer)
extends_documentation_fragment:
  - edgeinfer.deploy.attributes
  - edgeinfer.deploy.attributes.actiongroup_release_store
attributes:
  check_mode:
    support: full
    details:
      - The module only reads; it runs in check mode too and never reports C(changed).
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  root:
    description: The edge's install root, for example C(/opt/edgeinfer).
    type: path
    required: true
  release:
    description: The release id the deploy serves (C(<version>-<sha8>)); RV(staged) says whether it is staged.
    type: str
  release_size:
    description: Bytes the release takes on the edge; with O(disk_factor), the free disk it needs unless staged.
    type: int
    default: 0
  release_files:
    description:
      - The files of the build of O(release), as its manifest lists them (C(name), C(role), C(size), C(sha256)), as the
        build describes the release. When the staged copy of O(release) may not serve under O(trusted_keys)
        (RV(staged_untrusted)), a build that lists other files cannot take it over (RV(restage_refused)), and the
        deploy is refused before anything changes. Empty, staging judges it.
    type: list
    elements: dict
    default: []
  disk_factor:
    description: How many times O(release_size) must be free under O(root) (transfer, staging and the release).
    type: int
    default: 3
  trusted_keys:
    description: The ed25519 public keys (PEM) the edge will trust; each must parse.
    type: list
    elements: str
    default: []
  allow_unsigned:
    description: Whether an edge that trusts no key may stage unsigned releases; else no key is a refusal.
    type: bool
    default: false
  compose_dir:
    description: Where the sidecar's C(compose.yaml) and C(.env) live; C(<root>/compose) when omitted.
    type: path
  container:
    description: The sidecar's container name.
    type: str
    default: edgeinfer-sidecar
  port:
    description: The sidecar's published port; another container publishing it, or another process listening on it, is a refusal.
    type: int
  probe_host:
    description: The address the port is checked on.
    type: str
    default: 127.0.0.1
  backend:
    description: The backend the deploy asks for; V(hailo) needs O(hailo_device).
    type: str
    choices: [auto, hailo, onnxruntime]
    default: auto
  require_hailo:
    description: Refuse an edge without O(hailo_device) when O(backend) is V(auto) or V(hailo); with
      O(backend=onnxruntime) it is a contradiction, refused on every edge.
    type: bool
    default: false
  hailo_device:
    description: The Hailo-8 device node.
    type: path
    default: /dev/hailo0
  image:
    description: The sidecar image the deploy serves (a tag); RV(image) says whether the edge has it and of which architecture.
    type: str
    default: ""
  image_delivery:
    description: How the image reaches the edge; with V(present) an image missing from the edge is a refusal.
    type: str
    choices: [present, build, load, pull]
    default: present
  base_image:
    description: A base image whose id RV(base_image_id) returns (an image built on the edge is tagged by it).
    type: str
    default: ""
  edge_architecture:
    description:
      - The architecture the edge runs images of, when it is not the one C(docker info) reports (an emulated one,
        whose binfmt_misc entry must then be enabled with flag F).
    type: str
    default: ""
  env_sha256:
    description: The sha256 of the C(.env) the deploy would write; compared for RV(noop).
    type: str
  compose_sha256:
    description: The sha256 of the C(compose.yaml) the deploy would write; compared for RV(noop).
    type: str
  name:
    description: What the messages call the edge (its inventory name).
    type: str
    default: the edge
  refuse:
    description: Fail when there are RV(refusals); with V(false) return them.
    type: bool
    default: true
seealso:
  - module: edgeinfer.deploy.edgeinfer_release
  - name: The deploy path, step by step
    description: docs/deploy.md, The lean path.
    link: https://github.com/edgeinfer/deploy/blob/main/docs/deploy.md
"""

EXAMPLES = r"""
- name: Preflight the edge before the deploy lock
  edgeinfer.deploy.edgeinfer_preflight:
    root: /opt/edgeinfer
    release: v72pct-3f2a9c1d
    release_size: 1048576
    trusted_keys: "{{ edgeinfer_trusted_keys }}"
    port: 9000
    image: edgeinfer/sidecar:1a2b3c4d5e6f
  register: edge

- name: Read the edge's state without refusing
  edgeinfer.deploy.edgeinfer_preflight:
    root: /opt/edgeinfer
    refuse: false
  register: edge
"""

RETURN = r"""
refusals:
  description: Why the deploy cannot land, each naming its fix; empty when it can.
  returned: always
  type: list
  elements: str
noop:
  description: Whether the edge already serves exactly what the deploy would make it serve (see the description).
  returned: always
  type: bool
differs:
  description:
    - What differs from what the deploy would make the edge serve, among V(release), V(lock), V(env), V(compose),
      V(admin_token), V(container), V(image) and V(trusted_keys); empty for a no-op.
  returned: always
  type: list
  elements: str
staged:
  description:
    - Whether O(release) is staged on the edge, in a copy that serves under O(trusted_keys) and O(allow_unsigned).
      A deploy transfers and stages a release that is not.
  returned: always
  type: bool
staged_untrusted:
  description:
    - Why the staged copy of O(release) may not serve under O(trusted_keys) and O(allow_unsigned) (it is signed by
      a key they do not trust), or null. RV(staged) is then false, and RV(differs) names V(release). Staging the
      release again (M(edgeinfer.deploy.edgeinfer_release), O(edgeinfer.deploy.edgeinfer_release#module:action=stage))
      replaces the staged manifest and signature with those of a build of the same content that a trusted key signed.
  returned: always
  type: str
restage_refused:
  description:
    - Why the build (O(release_files)) cannot take over the untrusted staged copy of O(release) (it lists other
      files), or null; the reason is in RV(refusals) too.
  returned: always
  type: str
docker:
  description: The engine's version (null when it does not answer) and its error.
  returned: always
  type: dict
compose:
  description: The compose plugin's version (null when missing) and its error.
  returned: always
  type: dict
arch:
  description: The kernel's architecture (C(docker info)), the one the edge runs images of, the declared one, and its emulator entry.
  returned: always
  type: dict
image:
  description: O(image) on the edge (C(ref), C(id), C(arch)); null when the edge lacks it.
  returned: always
  type: dict
base_image_id:
  description: The id of O(base_image) on the edge; null when it lacks it.
  returned: always
  type: str
container:
  description: Whether the sidecar container runs, and its image id.
  returned: always
  type: dict
port:
  description: The containers that publish O(port), and whether another process listens on it.
  returned: always
  type: dict
hailo:
  description: Whether O(hailo_device) exists, and its group id.
  returned: always
  type: dict
disk:
  description: Free bytes under O(root) (or its nearest existing parent).
  returned: always
  type: dict
files:
  description: The sha256 of C(.env) and C(compose.yaml) under O(compose_dir) (null when absent), and whether the admin token exists.
  returned: always
  type: dict
state:
  description: The release store (C(current), C(previous), C(last_good), C(releases), C(known)), the deploy C(lock) and the C(trusted_key_ids).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.edgeinfer.deploy.plugins.module_utils._preflight import differs, refusals, survey
from ansible_collections.edgeinfer.deploy.plugins.module_utils._store import ReleaseError


def main():
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "release": {"type": "str"},
            "release_size": {"type": "int", "default": 0},
            "release_files": {"type": "list", "elements": "dict", "default": []},
            "disk_factor": {"type": "int", "default": 3},
            "trusted_keys": {"type": "list", "elements": "str", "default": [], "no_log": False},
            "allow_unsigned": {"type": "bool", "default": False},
            "compose_dir": {"type": "path"},
            "container": {"type": "str", "default": "edgeinfer-sidecar"},
            "port": {"type": "int"},
            "probe_host": {"type": "str", "default": "127.0.0.1"},
            "backend": {"type": "str", "choices": ["auto", "hailo", "onnxruntime"], "default": "auto"},
            "require_hailo": {"type": "bool", "default": False},
            "hailo_device": {"type": "path", "default": "/dev/hailo0"},
            "image": {"type": "str", "default": ""},
            "image_delivery": {"type": "str", "choices": ["present", "build", "load", "pull"], "default": "present"},
            "base_image": {"type": "str", "default": ""},
            "edge_architecture": {"type": "str", "default": ""},
            "env_sha256": {"type": "str"},
            "compose_sha256": {"type": "str"},
            "name": {"type": "str", "default": "the edge"},
            "refuse": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params

    def run(argv):
        return module.run_command(argv)

    try:
        facts = survey(run, p)
    except ReleaseError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    reasons = refusals(facts, p, host=p["name"])
    diff = differs(facts, p)
    result = dict(facts, changed=False, refusals=reasons, differs=diff, noop=not reasons and not diff)
    if reasons and p["refuse"]:
        module.fail_json(msg="; ".join(reasons), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
