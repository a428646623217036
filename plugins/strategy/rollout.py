# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A linear strategy under which an edge lost in the middle of a serial batch is reported, not fatal.

Why a strategy plugin: ``ansible-playbook`` ends every remaining batch and every later play as
soon as all the hosts of one serial batch are failed or unreachable, and ``rescue`` never runs
for an unreachable host (ansible/ansible#13870). The deploy does not fail its hosts (the
failure budget and the summary play decide), but a canary or a 25 % batch of one edge that
drops off the network in the middle would still end the run: the budget would be bypassed, the
edges after it never reached, and the fleet summary never written. No play keyword changes
that (``ignore_unreachable`` would run every later task of the lost edge into its own SSH
timeout), so the lost edges are taken off the batch's unreachable count here, once the batch
has run, and named in facts that the playbook's budget and summary read.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: rollout
short_description: Linear execution; an edge lost mid-batch is recorded and the rollout goes on
version_added: 0.1.0
description:
  - Runs tasks exactly as P(ansible.builtin.linear#strategy) does.
  - When a host becomes unreachable during a batch (a task that does not set C(ignore_unreachable)
    could not reach it), the host leaves the play as usual, its recap still counts it unreachable,
    and it gets the facts C(edgeinfer_lost=true), C(edgeinfer_lost_task) (the task that could not
    reach it) and C(edgeinfer_lost_reason) (the connection error).
  - Such a host no longer counts as unreachable when C(ansible-playbook) decides whether the whole
    batch failed, so the next serial batches and the later plays still run. The playbook decides
    what a lost host means; C(playbooks/deploy.yml) counts it against C(edgeinfer_failure_budget)
    and reports it as C(lost) in the fleet summary.
  - The exit status of C(ansible-playbook) then comes from the later batches and plays, as it
    does for a host that failed with C(ignore_errors); a playbook that must fail when a host was
    lost says so itself (the summary play of C(playbooks/deploy.yml) does).
  - Hosts that were unreachable before the batch started are left as they were.
author: EdgeInfer deploy team (@edgeinfer)
notes:
  - Uses the linear strategy's internals (the unreachable hosts of the task queue manager, the task
    results it processes), which differ between ansible-core releases; it reads both forms that
    the supported releases have (2.19 and 2.20, then 2.21). The fault matrix of the project
    (C(tests/integration/faults)) checks it on every change, and C(make test-cores) on each supported release.
"""

from ansible.plugins.strategy.linear import StrategyModule as LinearStrategyModule  # noqa: E402
from ansible.utils.display import Display  # noqa: E402

display = Display()


class StrategyModule(LinearStrategyModule):
    def __init__(self, tqm) -> None:
        super().__init__(tqm)
        self._edgeinfer_lost: dict[str, dict[str, str]] = {}

    def _process_pending_results(self, iterator, one_pass=False, max_passes=None):
        results = super()._process_pending_results(iterator, one_pass=one_pass, max_passes=max_passes)
        for res in results:
            lost = _lost(res)
            if lost is not None:
                self._edgeinfer_lost.setdefault(res.host.name, lost)
        return results

    def run(self, iterator, play_context):
        unreachable = self._tqm._unreachable_hosts
        before = set(unreachable)
        result = super().run(iterator, play_context)
        lost = [name for name in unreachable if name not in before]
        for name in lost:
            seen = self._edgeinfer_lost.get(name, {"task": "", "msg": ""})
            # Off the batch's count (so the run goes on); still out of this play, still in the recap.
            unreachable.pop(name, None)
            self._variable_manager.set_nonpersistent_facts(
                name,  # keyed by host name, as set_fact's results are
                {"edgeinfer_lost": True, "edgeinfer_lost_task": seen["task"], "edgeinfer_lost_reason": seen["msg"]},
            )
            display.warning(f"{name} was lost at '{seen['task']}': {seen['msg']}; the rollout goes on without it")
        if lost and result == self._tqm.RUN_UNREACHABLE_HOSTS and not unreachable:
            result = self._tqm.RUN_FAILED_HOSTS
        return result


def _lost(res) -> dict[str, str] | None:
    """The task and the connection error of a result that left its host unreachable (None for
    any other result), from either form of the linear strategy's task results: ansible-core 2.21's
    HostTaskResult (the outcome in ``utr``), or 2.19's and 2.20's _RawTaskResult."""
    utr = getattr(res, "utr", None)
    if utr is not None:
        if not utr.unreachable or utr.ignore_unreachable:
            return None
        return {"task": str(res.task.name or "") or res.task.get_name(), "msg": str(utr.msg or "").strip()}
    if not res.is_unreachable() or res.task.ignore_unreachable:
        return None
    return {"task": res.task_name, "msg": str(res._return_data.get("msg", "")).strip()}
