# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How many edges a rollout may lose before it stops: a count, or a percentage of the fleet."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: failure_budget
short_description: The number of edges a budget allows, from a count or a percentage of the fleet
version_added: 0.2.0
description:
  - A budget given as a count (V(0), V(2)) is that count; one given as a percentage (V(10%)) is that share of
    O(fleet) edges, rounded down, so V(10%) of 9 edges allows none.
  - The rollout stops once more edges failed than the budget allows (C(playbooks/deploy.yml)).
author:
  - EdgeInfer deploy team (@edgeinfer)
positional: fleet
options:
  _input:
    description: The budget, a non-negative count or a percentage string such as V(25%).
    type: raw
    required: true
  fleet:
    description: The number of edges the run was given.
    type: int
    required: true
"""

EXAMPLES = r"""
- name: Stop the rollout once more edges failed than the budget allows
  ansible.builtin.meta: end_play
  when: failed | length > (edgeinfer_failure_budget | edgeinfer.deploy.failure_budget(ansible_play_hosts_all | length))
"""

RETURN = r"""
_value:
  description: The number of edges that may fail.
  type: int
"""


def failure_budget(budget, fleet):
    """The count a budget allows: ``budget`` itself, or ``budget`` percent of ``fleet``, rounded down."""
    text = str(budget).strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            if not 0 <= share <= 100:
                raise ValueError
            # Integer arithmetic where it is exact: 10% of 30 is 3, not 2.9999.
            return int(share * int(fleet) // 100)
        count = int(text)
        if count < 0:
            raise ValueError
        return count
    except (TypeError, ValueError):
        # A plain TypeError: Ansible reports it with the template that failed.
        raise TypeError(
            f"failure_budget: expected a count of edges such as 1, or a percentage of the fleet such as '10%', "
            f"got {budget!r}"
        ) from None


class FilterModule:
    def filters(self):
        return {"failure_budget": failure_budget}
