# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the attributes of the collection's modules mean; each module states its support and details."""

from __future__ import annotations


class ModuleDocFragment:
    # Every module: the meaning of check_mode, diff_mode and idempotent.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled/queried by the module has not changed in a relevant way.
"""

    # Modules that act on the release store under root (meta/runtime.yml, action_groups).
    ACTIONGROUP_RELEASE_STORE = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/edgeinfer.deploy.release_store) in C(module_defaults) to set defaults for this module, such as O(root).
    support: full
    membership:
      - edgeinfer.deploy.release_store
"""

    # Modules that talk to the sidecar's HTTP API at url (meta/runtime.yml, action_groups).
    ACTIONGROUP_SIDECAR_HTTP = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/edgeinfer.deploy.sidecar_http) in C(module_defaults) to set defaults for this module, such as O(url).
    support: full
    membership:
      - edgeinfer.deploy.sidecar_http
"""
