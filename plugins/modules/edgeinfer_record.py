#!/usr/bin/python
# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The work is done on the controller by the action plugin of the same name
# (plugins/action/edgeinfer_record.py); this file holds its documentation.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: edgeinfer_record
short_description: Keep a run's records on the controller, each file written whole or not at all
version_added: 0.2.0
description:
  - Writes each entry of O(files) as C(<dir>/<name>), creating O(dir) (and its parents, mode C(0755)) when it is
    missing. Each file is written to a temporary file beside it, synced, then renamed over the name, so a reader
    never sees half of a record.
  - Runs on the controller itself, whatever host the task names, in the process that runs the task, so a deploy's
    records (C(records/<edge>/<deploy id>.json), the deployment log, the fleet summary) cost no module transfer.
  - A record changes nothing that an edge serves, so the result is never C(changed); RV(written) lists the files.
author:
  - EdgeInfer deploy team (@edgeinfer)
extends_documentation_fragment:
  - edgeinfer.deploy.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is written; RV(written) lists the files that would be.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - Writing the same contents again leaves the files as they are.
options:
  dir:
    description: The directory on the controller that keeps the files.
    type: path
    required: true
  files:
    description:
      - Each file's name (no directory part), mapped to its contents as text.
    type: dict
    required: true
  mode:
    description:
      - The files' permissions, as an octal string such as V('0644'), or an integer (an unquoted C(0644) in YAML
        reads as that octal number, as M(ansible.builtin.file) takes it). At most V('7777').
    type: raw
    default: "0644"
seealso:
  - module: edgeinfer.deploy.edgeinfer_release
    description: The edge's own copy of a deploy's record (C(action=unlock) with C(record)).
"""

EXAMPLES = r"""
- name: Keep this edge's record and deployment log on the controller
  edgeinfer.deploy.edgeinfer_record:
    dir: "{{ edgeinfer_records_dir }}/{{ inventory_hostname }}"
    files:
      "{{ _deploy_id }}.json": "{{ _record | to_nice_json }}\n"
      "{{ _deploy_id }}.md": "{{ lookup('ansible.builtin.template', 'deployment_log.md.j2') }}"
"""

RETURN = r"""
written:
  description: The paths of O(files), in their order, each written or already holding that content (in check
    mode, the same paths).
  returned: always
  type: list
  elements: str
  sample: [/srv/records/edge-1/20261205T101500Z-abc123.json]
"""
