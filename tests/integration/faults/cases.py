"""The fault matrix's case table: every fault, how it is injected, and the end state it must reach.

One row per case, in the order the cases run; `test_matrix_bad_releases.py` and
`test_matrix_fleet_faults.py` hold one test per row, named ``test_<NN>_<name>``, in this order
(`test_case_table.py` checks that). A test injects its fault, then `expect` judges the run's
exit and each edge's outcome in the fleet summary from its row; what is particular to a case
(the record's failing task, the deployment log, the dead-man's state) the test asserts itself.

Outcomes are the fleet summary's (plugins/filter/fleet_summary.py): deployed, unchanged,
rolled_back, refused, unreachable, lost, not_reached. ``CANARY_CAUGHT`` is the end state of a
bad release stopped on the canary: edge-1 rolled back to v1, the later batches never reached.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CANARY_CAUGHT = {"edge-1": "rolled_back", "edge-2": "not_reached", "edge-3": "not_reached"}


@dataclass(frozen=True)
class Case:
    number: int
    name: str
    module: str  # the test module that runs it: bad_releases or fleet_faults
    fault: str  # what goes wrong, and how the test makes it happen
    outcomes: Mapping[str, str] = field(default_factory=dict)  # edge -> its outcome in the fleet summary
    caught_by: str = ""  # what the failing edge's record names
    run_fails: bool = True  # whether ansible-playbook exits non-zero

    @property
    def test_name(self) -> str:
        return f"test_{self.number:02d}_{self.name}"


CASES: tuple[Case, ...] = (
    Case(
        1,
        "artifact_corrupted_in_transit_on_one_host",
        "bad_releases",
        "edge-2 gets a release whose model.onnx changed after signing",
        {"edge-1": "unchanged", "edge-2": "rolled_back", "edge-3": "unchanged"},
        "model.onnx: sha256",
    ),
    Case(2, "model_that_fails_to_load", "bad_releases", "every ONNX file is garbage", CANARY_CAUGHT, "422"),
    Case(
        3,
        "model_that_returns_nan_for_part_of_the_inputs_misses_the_golden_gate",
        "bad_releases",
        "the graph adds NaN to the embedding of about half the golden windows",
        CANARY_CAUGHT,
        "self-check failed: min cosine -1.000000",
    ),
    Case(
        4,
        "model_that_misses_the_benchmark_thresholds",
        "bad_releases",
        "a p95 threshold no model meets (0.001 ms)",
        CANARY_CAUGHT,
        "latency",
    ),
    Case(
        5,
        "sidecar_that_fails_to_start_after_an_image_change",
        "bad_releases",
        "edgeinfer_image is the bare base image, which has no sidecar",
        CANARY_CAUGHT,
        "Start the sidecar, or recreate it",
    ),
    Case(
        6,
        "model_whose_outputs_drifted_misses_the_golden_gate",
        "bad_releases",
        "golden references at cosine about 0.9, the sidecar's self-check loosened to 0.5",
        CANARY_CAUGHT,
        "golden gate missed",
    ),
    Case(
        7,
        "golden_references_of_another_model_fail_the_sidecar_self_check",
        "bad_releases",
        "the golden embeddings negated",
        CANARY_CAUGHT,
        "422",
    ),
    Case(
        8,
        "edge_disk_too_full_for_the_new_release_is_refused",
        "bad_releases",
        "edge-3's tmpfs filled to twice the release's size (preflight asks 3 x)",
        {"edge-3": "refused"},
        "MiB free",
    ),
    Case(
        9,
        "failure_budget_exceeded_in_the_canary_batch_leaves_later_batches_untouched",
        "bad_releases",
        "the canary alone gets a p95 threshold no model meets; the budget is 0",
        CANARY_CAUGHT,
        "latency",
    ),
    Case(
        10,
        "controller_killed_after_the_switch_is_reverted_by_the_dead_man",
        "fleet_faults",
        "ansible-playbook killed (SIGKILL) once the canary switched",
        caught_by="did not confirm",
    ),
    Case(
        11,
        "sidecar_killed_during_the_reload",
        "fleet_faults",
        "docker kill of the canary's sidecar once its reload began (it lands or rolls back)",
    ),
    Case(
        12,
        "one_host_unreachable_from_the_start",
        "fleet_faults",
        "the canary's sshd stopped before the run",
        {"edge-1": "unreachable", "edge-2": "deployed", "edge-3": "deployed"},
    ),
    Case(
        13,
        "ssh_drops_mid_transfer_end_state",
        "fleet_faults",
        "edge-2's sshd stopped once its staging directory appears; failure budget 1",
        caught_by="did not confirm within",
    ),
    Case(
        14,
        "ssh_drop_within_the_budget_goes_on_and_reports_the_lost_edge",
        "fleet_faults",
        "the same run as case 13, judged on the fleet summary",
        {"edge-1": "deployed", "edge-2": "lost", "edge-3": "deployed"},
    ),
    Case(
        15,
        "two_deploys_at_once_the_second_is_refused",
        "fleet_faults",
        "deploy B starts while deploy A holds edge-1's lock",
        {"edge-1": "refused", "edge-2": "not_reached", "edge-3": "not_reached"},
        "Take the deploy lock",
    ),
    Case(
        16,
        "watcher_gone_after_the_switch_the_next_deploy_reverts_first",
        "fleet_faults",
        "ansible-playbook and the canary's dead-man watcher killed (SIGKILL) once it switched; the deploy rerun "
        "after the dead-man's timeout (its lock makes the watcher's revert and stops it), then run again",
        {"edge-1": "refused"},
        "its dead-man watcher is gone",
    ),
)

BY_NUMBER = {c.number: c for c in CASES}


def expect(number: int, rc: int, summary: Mapping[str, Any], explain: str = "") -> Case:
    """The run's exit and each edge's outcome, judged against case ``number``'s row; its row."""
    case = BY_NUMBER[number]
    assert (rc != 0) == case.run_fails, f"case {number}: rc {rc}, the table says run_fails={case.run_fails}\n{explain}"
    got = {edge: summary[edge]["outcome"] for edge in case.outcomes if edge in summary}
    assert got == dict(case.outcomes), f"case {number} ({case.name}): outcomes {got}, expected {dict(case.outcomes)}"
    return case
