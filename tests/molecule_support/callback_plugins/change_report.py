"""Ansible callback: write every task that reported a change to a JSON file, as the run goes.

A play at the end of the same run can then read which tasks changed what. The molecule
scenarios use it to make ``molecule check`` fail when a ``--check`` converge reports a
change (molecule itself only checks that the check run succeeds).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ansible import context
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: change_report
type: aggregate
short_description: Write the tasks that reported a change, per host, to a JSON file
description:
  - Rewrites the file after every changed task result, so a later play of the same run can read it.
  - "The file holds C(check_mode) (whether the run is C(--check)), C(playbook) and C(changed): a list of
    C({host, task, action}), one per changed task result."
options:
  path:
    description: The JSON file to write. Nothing is written when it is not set.
    env:
      - name: EDGEINFER_CHANGE_REPORT
    ini:
      - section: callback_change_report
        key: path
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "change_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path: Path | None = None
        self._report: dict[str, Any] = {"check_mode": False, "playbook": "", "changed": []}

    def set_options(self, task_keys: Any = None, var_options: Any = None, direct: Any = None) -> None:
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        path = self.get_option("path")
        self._path = Path(path) if path else None

    def _write(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(self._report, indent=2) + "\n")
        tmp.replace(self._path)

    def v2_playbook_on_start(self, playbook: Any) -> None:
        self._report = {
            "check_mode": bool(context.CLIARGS.get("check", False)),
            "playbook": str(getattr(playbook, "_file_name", "")),
            "changed": [],
        }
        self._write()

    def v2_runner_on_ok(self, result: Any) -> None:
        if not result._result.get("changed", False):
            return
        self._report["changed"].append(
            {"host": result._host.get_name(), "task": result.task_name, "action": result._task.action}
        )
        self._write()
