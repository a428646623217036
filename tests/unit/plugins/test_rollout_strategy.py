"""The rollout strategy: an edge lost in a serial batch of its own is recorded, and the run goes on.

Real ansible-playbook, real SSH client: the lost host points at a loopback port where nothing
listens, so its first task that connects is unreachable. The same playbook under
ansible.builtin.linear shows what the strategy exists for (the run ends at that batch).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from testbed.ansible_run import ansible_command, local_python

ROOT = Path(__file__).resolve().parents[3]

PLAYBOOK = """
- name: Batches of one
  hosts: fleet
  gather_facts: false
  serial: 1
  strategy: {strategy}
  tasks:
    - name: Reach it
      ansible.builtin.ping:
    - name: Mark it done
      ansible.builtin.set_fact:
        done: true

- name: After the rollout
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write what every host ended with
      ansible.builtin.copy:
        dest: "{out}"
        content: >-
          {{{{ groups.fleet | map('extract', hostvars)
              | map('dict2items') | map('selectattr', 'key', 'in', ['done', 'edgeinfer_lost',
                'edgeinfer_lost_task', 'edgeinfer_lost_reason']) | map('items2dict')
              | zip(groups.fleet) | map('reverse') | community.general.dict | to_json }}}}
        mode: "0644"
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


def run(tmp_path: Path, strategy: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    out = tmp_path / f"{strategy.replace('.', '_')}.json"
    play = tmp_path / f"{strategy.replace('.', '_')}.yml"
    play.write_text(PLAYBOOK.format(strategy=strategy, out=out))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        json.dumps(
            {
                "fleet": {
                    "hosts": {
                        "edge-a": {"ansible_connection": "local", "ansible_python_interpreter": local_python()},
                        "edge-b": {
                            "ansible_connection": "ssh",
                            "ansible_host": "127.0.0.1",
                            "ansible_port": closed_port(),
                            "ansible_user": "nobody",
                        },
                        "edge-c": {"ansible_connection": "local", "ansible_python_interpreter": local_python()},
                    }
                }
            }
        )
    )
    env = dict(os.environ, ANSIBLE_TIMEOUT="5", ANSIBLE_HOST_KEY_CHECKING="False")
    proc = subprocess.run(
        [*ansible_command("ansible-playbook"), "-i", str(inventory), str(play)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return proc, (json.loads(out.read_text()) if out.exists() else None)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rollout")


def test_a_host_lost_alone_in_its_batch_is_recorded_and_the_run_goes_on(tmp: Path) -> None:
    proc, hosts = run(tmp, "edgeinfer.deploy.rollout")
    assert hosts is not None, proc.stdout + proc.stderr
    assert hosts["edge-a"] == {"done": True}
    assert hosts["edge-c"] == {"done": True}, "the batch after the lost host did not run"
    lost = hosts["edge-b"]
    assert lost["edgeinfer_lost"] is True and "done" not in lost, lost
    assert lost["edgeinfer_lost_task"] == "Reach it", lost
    assert lost["edgeinfer_lost_reason"], lost
    assert "edge-b was lost at 'Reach it'" in proc.stderr + proc.stdout
    # The recap still counts it unreachable; the exit status is the later plays' to decide
    # (deploy.yml's summary play fails the run), and here they passed.
    assert "unreachable=1" in proc.stdout.split("PLAY RECAP")[-1].split("edge-b")[1].splitlines()[0]
    assert proc.returncode == 0, proc.stdout


def test_under_linear_the_same_loss_ends_the_run(tmp: Path) -> None:
    """What the strategy is for: linear stops at the lost host's batch and runs no later play."""
    proc, hosts = run(tmp, "ansible.builtin.linear")
    assert hosts is None, hosts
    assert "edge-c" not in proc.stdout.split("PLAY RECAP")[0], proc.stdout
    assert proc.returncode != 0


def test_the_strategy_documents_itself_for_ansible_doc() -> None:
    proc = subprocess.run(
        [*ansible_command("ansible-doc"), "-t", "strategy", "--json", "edgeinfer.deploy.rollout"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)["edgeinfer.deploy.rollout"]["doc"]
    assert doc["name"] == "rollout" and doc["short_description"]
    assert any("edgeinfer_lost" in line for line in doc["description"]), doc["description"]
