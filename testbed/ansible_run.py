"""Run real ansible-playbook from the repository root and read its results (json callback).

The controller is this environment's ansible-core (the dev set's), unless EDGEINFER_CONTROLLER
names another: a command that runs a tool of another ansible-core given its name and arguments
(`make test-cores` sets it to `scripts/controller.sh 2.21`, that release in the controller image).
The hosts that the tests declare as this machine (``ansible_connection: local``) then run their
modules with EDGEINFER_LOCAL_PYTHON, which reaches this machine's Python from that controller.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def ansible_command(tool: str) -> list[str]:
    """The command line that runs an ansible-core tool (ansible-playbook, ansible-doc) as the controller."""
    controller = os.environ.get("EDGEINFER_CONTROLLER", "").strip()
    return [*shlex.split(controller), tool] if controller else [str(BIN / tool)]


def local_python() -> str:
    """The ansible_python_interpreter of a host that is this machine (ansible_connection: local):
    this Python, with whatever packages the tests have (model_tools for GPUSRV's build)."""
    return os.environ.get("EDGEINFER_LOCAL_PYTHON", "").strip() or sys.executable


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    data: dict[str, Any]

    def results(self, host: str) -> dict[str, dict[str, Any]]:
        """Task name -> that host's result, for the last play that ran the task."""
        out: dict[str, dict[str, Any]] = {}
        for play in self.data.get("plays", []):
            for task in play["tasks"]:
                if host in task["hosts"]:
                    out[task["task"]["name"]] = task["hosts"][host]
        return out

    def task(self, name: str) -> dict[str, Any]:
        """The result of the last task of that name, from the host that ran it (a run_once task
        runs on one host of its play, whichever is first)."""
        found: dict[str, Any] = {}
        for play in self.data.get("plays", []):
            for task in play["tasks"]:
                if task["task"]["name"] == name:
                    ran = [r for r in task["hosts"].values() if not r.get("skipped")]
                    found = ran[0] if ran else found
        return found

    def edge_tasks(
        self, host: str, plays: tuple[str, ...] = ("Deploy to the edges", "Roll back the edges")
    ) -> list[str]:
        """The task executions of one edge in the run's per-edge play (ok, changed or skipped, as
        the recap counts them), by name; the once-per-run tasks of the other plays are not the edge's."""
        return [
            task["task"]["name"]
            for play in self.data.get("plays", [])
            if play["play"]["name"] in plays
            for task in play["tasks"]
            if host in task["hosts"]
        ]

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return self.data.get("stats", {})

    def explain(self) -> str:
        return f"rc={self.rc}\nstdout:\n{self.stdout[-6000:]}\nstderr:\n{self.stderr[-3000:]}"


def playbook_command(
    playbook: Path | str | list[dict[str, Any]],
    inventory: Path | str | None = None,
    extra_vars: dict[str, Any] | None = None,
    check: bool = False,
    tmp_path: Path | None = None,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The ansible-playbook command line and environment, for run_playbook or a Popen of one's own."""
    if isinstance(playbook, list):
        assert tmp_path is not None, "an inline playbook needs tmp_path"
        path = tmp_path / f"play-{os.urandom(3).hex()}.yml"
        path.write_text(yaml.safe_dump(playbook, sort_keys=False))
        playbook = path
    cmd = [*ansible_command("ansible-playbook"), str(playbook)]
    if inventory:
        cmd += ["-i", str(inventory)]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if check:
        cmd += ["--check", "--diff"]
    cmd += args or []
    full_env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    full_env["PATH"] = f"{BIN}:{full_env.get('PATH', '')}"
    full_env.update(env or {})
    return cmd, full_env


def run_playbook(
    playbook: Path | str | list[dict[str, Any]],
    inventory: Path | str | None = None,
    extra_vars: dict[str, Any] | None = None,
    check: bool = False,
    tmp_path: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 900,
    args: list[str] | None = None,
) -> PlaybookRun:
    cmd, full_env = playbook_command(playbook, inventory, extra_vars, check, tmp_path, env, args)
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=full_env, timeout=timeout)
    try:
        data = json.loads(proc.stdout[proc.stdout.index("{") :]) if "{" in proc.stdout else {}
    except json.JSONDecodeError:
        data = {}
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, data)
