# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One line of a deploy's fleet summary per edge, from what each edge's play left in its host vars."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: fleet_summary
short_description: Each edge's outcome of a deploy run, from the edges' host variables
version_added: 0.2.0
description:
  - Reads, for each edge, what the edgeinfer role and deploy.yml leave in its host variables, and returns one entry
    per edge, keyed by its inventory name.
  - C(outcome) is V(unreachable) (left out by Tailscale's status, C(edgeinfer_unreachable), or not answering SSH at
    preflight), V(lost) (unreachable in the middle of its deploy; the rollout strategy sets C(edgeinfer_lost)), the
    outcome of its record (V(deployed), V(unchanged), V(rolled_back), V(rollback_failed), V(refused), V(unhealthy), V(failed)),
    or V(not_reached) when its batch never ran.
  - C(budget) says which budget of the rollout the edge counts against, V(failure) (a deploy that did not land, or an
    edge lost mid-deploy), V(unreachable), or null.
  - With a record, the entry has the release the edge served before and after the run, the C(release) the run
    deployed or tried to (a rolled-back deploy's failed release), whether it ran in check mode, the backend and
    why, whether the release has a HEF, whether a trusted key signed it and which, the golden minimum cosine and the
    benchmark's p95 and throughput of that release's gates, and the reason of a failure.
author:
  - EdgeInfer deploy team (@edgeinfer)
options:
  _input:
    description: The edges' host variables, for example C(_edges | map('extract', hostvars) | list).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: One line per edge
  ansible.builtin.debug:
    msg: "{{ item.key }}: {{ item.value.outcome }}"
  loop: "{{ groups['edges'] | map('extract', hostvars) | list | edgeinfer.deploy.fleet_summary | dict2items }}"
"""

RETURN = r"""
_value:
  description: Each edge's entry, by inventory name.
  type: dict
"""

# Outcomes that count against a rollout's failure budget (an unreachable edge has its own budget).
FAILED = ("rolled_back", "failed", "rollback_failed", "refused", "unhealthy", "lost")


def _get(d, *path, default=None):
    for key in path:
        if not hasattr(d, "get"):
            return default
        d = d.get(key)
        if d is None:
            return default
    return d


def _true(value):
    """A record's flag: a boolean, or the text a template made of one."""
    return bool(value) and str(value).lower() not in ("false", "0")


def _entry(hv):
    edge = _get(hv, "_edgeinfer_edge", default={})
    if hv.get("edgeinfer_unreachable"):
        return {"outcome": "unreachable", "reason": hv.get("edgeinfer_unreachable_reason") or ""}
    if _get(edge, "unreachable", default=False):
        return {"outcome": "unreachable", "reason": _get(edge, "msg", default="")}
    if hv.get("edgeinfer_lost"):
        return {
            "outcome": "lost",
            "reason": f'lost at "{hv.get("edgeinfer_lost_task")}": {hv.get("edgeinfer_lost_reason")}; the edge '
            "reverts by itself unless it was confirmed (see its dead-man record)",
        }
    rec = hv.get("_edgeinfer_record")
    if not hasattr(rec, "get"):
        return {"outcome": "not_reached"}
    after = _get(rec, "after", "release")
    before = _get(rec, "before", "release")
    if before is None and rec.get("outcome") in ("refused", "unhealthy"):
        before = after  # nothing changed; the edge said what it serves when it kept the record
    return {
        "outcome": rec.get("outcome"),
        "check_mode": _true(rec.get("check_mode")),
        "before": before or "(none)",
        # The release this run deployed, or tried to (a rolled-back deploy's failed release).
        "release": rec.get("release"),
        "untrained": _true(rec.get("untrained")),
        "signed": rec.get("signed"),
        "key_id": rec.get("key_id"),
        "after": after,
        "reason": _get(rec, "failure", "msg", default=""),
        "backend": rec.get("backend") or "",
        "backend_reason": rec.get("backend_reason") or "",
        "hef": rec.get("hef"),
        "golden_min_cosine": _get(rec, "gates", "golden", "min_cosine"),
        "p95_ms": _get(rec, "gates", "benchmark", "latency_p95_ms"),
        "rps": _get(rec, "gates", "benchmark", "throughput_rps"),
    }


def fleet_summary(hosts):
    if not isinstance(hosts, (list, tuple)):
        # A plain TypeError: Ansible reports it with the template that failed.
        raise TypeError(
            "fleet_summary: expected a list of the edges' host variables, such as "
            f"edges | map('extract', hostvars) | list; got {type(hosts).__name__}"
        )
    out = {}
    for hv in hosts:
        entry = _entry(hv)
        # Which budget of the rollout the edge counts against, if any (deploy.yml stops the rollout
        # once more edges count against one than it allows).
        entry["budget"] = (
            "failure" if entry["outcome"] in FAILED else "unreachable" if entry["outcome"] == "unreachable" else None
        )
        out[hv.get("inventory_hostname")] = entry
    return out


class FilterModule:
    def filters(self):
        return {"fleet_summary": fleet_summary}
