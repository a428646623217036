# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The refusal of an image of another architecture than the edge runs, as edgeinfer_preflight words it."""

from __future__ import annotations

from ansible_collections.edgeinfer.deploy.plugins.module_utils._preflight import arch_mismatch

DOCUMENTATION = r"""
---
name: arch_mismatch
short_description: The refusal of an image of another architecture than the edge runs, with its fix
version_added: 0.2.0
description:
  - The message M(edgeinfer.deploy.edgeinfer_preflight) refuses an edge with when the image it would serve is of
    another architecture, with the fix for the way the image reaches the edge (O(delivery)).
  - The role's image check uses it for an image found only once its content tag is known, on the edge or on the
    controller that ships or pushes it, so both refusals read the same.
author:
  - EdgeInfer deploy team (@edgeinfer)
positional: image_arch, where, host, edge_arch, declared, delivery
options:
  _input:
    description: The image reference.
    type: str
    required: true
  image_arch:
    description: The image's architecture, in Docker's names (V(amd64), V(arm64)).
    type: str
    required: true
  where:
    description: Where the image was found, such as V(on the edge).
    type: str
    required: true
  host:
    description: The edge's inventory name.
    type: str
    required: true
  edge_arch:
    description: The architecture of the images the edge runs.
    type: str
    required: true
  declared:
    description: Whether the inventory names the edge's architecture (C(edgeinfer_edge_architecture)) rather than
      C(docker info).
    type: bool
    required: true
  delivery:
    description: How the image reaches the edge (C(edgeinfer_image_delivery)).
    type: str
    choices: [present, build, load, pull]
    required: true
"""

EXAMPLES = r"""
- name: The image is of the architecture the edge runs
  ansible.builtin.assert:
    that: image_arch == edge_arch
    fail_msg: >-
      {{ edgeinfer_image | edgeinfer.deploy.arch_mismatch(image_arch, 'on the edge', inventory_hostname,
         edge_arch, false, 'load') }}
"""

RETURN = r"""
_value:
  description: The refusal, naming the image, both architectures and the fix.
  type: str
"""


class FilterModule:
    def filters(self):
        return {"arch_mismatch": arch_mismatch}
