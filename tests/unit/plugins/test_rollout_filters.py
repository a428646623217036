"""The rollout's arithmetic (filter plugins failure_budget and fleet_summary), as Python and as
Ansible renders it in a playbook."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ansible_collections.edgeinfer.deploy.plugins.filter.failure_budget import failure_budget
from ansible_collections.edgeinfer.deploy.plugins.filter.fleet_summary import FAILED, fleet_summary
from testbed.ansible_run import run_playbook


@pytest.mark.parametrize(
    ("budget", "fleet", "allowed"),
    [
        (0, 10, 0),
        ("2", 10, 2),
        ("10%", 9, 0),
        ("10%", 10, 1),
        ("10%", 30, 3),
        ("25%", 7, 1),
        ("100%", 3, 3),
        (" 50% ", 5, 2),
    ],
)
def test_a_budget_is_a_count_or_a_share_of_the_fleet_rounded_down(budget, fleet: int, allowed: int) -> None:
    assert failure_budget(budget, fleet) == allowed


@pytest.mark.parametrize("budget", ["-1", "ten", "120%", "%", None, "1.5"])
def test_a_budget_that_is_neither_is_refused_naming_what_is_expected(budget) -> None:
    with pytest.raises(TypeError, match=r"expected a count of edges such as 1, or a percentage of the fleet"):
        failure_budget(budget, 10)


RECORD = {
    "outcome": "deployed",
    "before": {"release": None},
    "after": {"release": "v2-00000002"},
    "untrained": False,
    "signed": True,
    "key_id": "3f2a9c1d5e6b7a80",
    "failure": {},
    "backend": "onnxruntime",
    "backend_reason": "auto: /dev/hailo0 not found",
    "hef": False,
    "gates": {"golden": {"min_cosine": 0.9999}, "benchmark": {"latency_p95_ms": 4.2, "throughput_rps": 900.0}},
}


def test_each_edge_gets_its_outcome_from_what_its_play_left() -> None:
    hosts = [
        {"inventory_hostname": "a", "_edgeinfer_record": RECORD},
        {"inventory_hostname": "b", "edgeinfer_unreachable": True, "edgeinfer_unreachable_reason": "offline peer"},
        {"inventory_hostname": "c", "_edgeinfer_edge": {"unreachable": True, "msg": "ssh: connect refused"}},
        {
            "inventory_hostname": "d",
            "edgeinfer_lost": True,
            "edgeinfer_lost_task": "Stage",
            "edgeinfer_lost_reason": "x",
        },
        {"inventory_hostname": "e"},
        {
            "inventory_hostname": "f",
            "_edgeinfer_record": dict(RECORD, outcome="rolled_back", failure={"msg": "golden"}),
        },
        {"inventory_hostname": "g", "_edgeinfer_record": dict(RECORD, outcome="unhealthy", failure={"msg": "golden"})},
    ]
    s = fleet_summary(hosts)
    assert s["a"]["outcome"] == "deployed" and s["a"]["before"] == "(none)" and s["a"]["after"] == "v2-00000002"
    assert (s["a"]["golden_min_cosine"], s["a"]["p95_ms"], s["a"]["rps"]) == (0.9999, 4.2, 900.0)
    assert s["a"]["hef"] is False and s["a"]["untrained"] is False and s["a"]["key_id"] == "3f2a9c1d5e6b7a80"
    assert s["b"] == {"outcome": "unreachable", "reason": "offline peer", "budget": "unreachable"}
    assert s["c"] == {"outcome": "unreachable", "reason": "ssh: connect refused", "budget": "unreachable"}
    assert s["a"]["budget"] is None and s["d"]["budget"] == s["f"]["budget"] == "failure"
    assert (
        s["d"]["outcome"] == "lost"
        and s["d"]["reason"].startswith('lost at "Stage": x')
        and "dead-man" in s["d"]["reason"]
    )
    assert s["e"] == {"outcome": "not_reached", "budget": None}
    assert s["f"]["outcome"] in FAILED and s["f"]["reason"] == "golden"
    # An edge that serves the release already and fails its gates did not land it either.
    assert s["g"]["budget"] == "failure"


def test_the_filters_render_in_a_playbook_over_hostvars(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        "e1": {"ansible_connection": "local", "_edgeinfer_record": RECORD},
                        "e2": {"ansible_connection": "local", "edgeinfer_unreachable": True},
                        "e3": {"ansible_connection": "local"},
                    },
                    "vars": {"ansible_python_interpreter": sys.executable},
                }
            }
        )
    )
    out = tmp_path / "out.json"
    play = {
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "name": "out",
                "ansible.builtin.copy": {
                    "content": "{{ {'summary': ansible_play_hosts_all | map('extract', hostvars) | list"
                    " | edgeinfer.deploy.fleet_summary, 'budget': '50%' | edgeinfer.deploy.failure_budget(3)} | to_json }}",
                    "dest": str(out),
                },
                "run_once": True,
                "delegate_to": "localhost",
            }
        ],
    }
    run = run_playbook([play], inventory=inventory, tmp_path=tmp_path, timeout=120)
    assert out.is_file(), run.explain()
    got = json.loads(out.read_text())
    assert got["budget"] == 1
    assert [got["summary"][h]["outcome"] for h in ("e1", "e2", "e3")] == ["deployed", "unreachable", "not_reached"]


def test_an_entry_names_the_release_tried_and_what_serves_after() -> None:
    rolled = dict(
        RECORD,
        outcome="rolled_back",
        release="v2-00000002",
        before={"release": "v1-00000001"},
        after={"release": "v1-00000001"},
    )
    refused = dict(RECORD, outcome="refused", release="v2-00000002", before={}, after={"release": "v1-00000001"})
    would = dict(RECORD, release="v2-00000002", check_mode="True", after={"release": "v1-00000001"})
    s = fleet_summary(
        [
            {"inventory_hostname": "a", "_edgeinfer_record": rolled},
            {"inventory_hostname": "b", "_edgeinfer_record": refused},
            {"inventory_hostname": "c", "_edgeinfer_record": would},
        ]
    )
    assert (s["a"]["before"], s["a"]["release"], s["a"]["after"]) == ("v1-00000001", "v2-00000002", "v1-00000001")
    # A refusal changed nothing: what the edge serves after is what it served before.
    assert s["b"]["before"] == s["b"]["after"] == "v1-00000001"
    assert s["c"]["check_mode"] is True and s["a"]["check_mode"] is False
