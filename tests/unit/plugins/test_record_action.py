"""edgeinfer_record: a run's records written on the controller by the action plugin, as a playbook
runs it against an edge it never connects to."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from testbed.ansible_run import run_playbook


def inventory(tmp_path: Path) -> Path:
    """An edge whose SSH port nobody listens on: the records never need a connection to it."""
    path = tmp_path / "hosts.yml"
    host = {"ansible_host": "127.0.0.1", "ansible_port": 9, "ansible_python_interpreter": sys.executable}
    path.write_text(json.dumps({"all": {"hosts": {"edge-1": host}}}))
    return path


def record_play(directory: Path, files: dict, mode: object = None, **task: object) -> list[dict]:
    args = {"dir": str(directory), "files": files, **({"mode": mode} if mode is not None else {})}
    return [
        {
            "hosts": "edge-1",
            "gather_facts": False,
            "tasks": [dict({"name": "record", "edgeinfer.deploy.edgeinfer_record": args}, **task)],
        }
    ]


def test_records_are_written_whole_on_the_controller_and_never_count_as_a_change(tmp_path: Path) -> None:
    directory = tmp_path / "records" / "edge-1"
    files = {"d1.json": '{"outcome": "deployed"}\n', "d1.md": "# Deployment log\n"}
    run = run_playbook(record_play(directory, files), inventory=inventory(tmp_path), tmp_path=tmp_path)
    result = run.task("record")
    assert run.rc == 0 and result.get("changed") is False, run.explain()
    assert result["written"] == [str(directory / "d1.json"), str(directory / "d1.md")]
    assert {p.name: p.read_text() for p in directory.iterdir()} == files  # no temporary file left beside them
    assert (directory / "d1.json").stat().st_mode & 0o777 == 0o644 and directory.stat().st_mode & 0o777 == 0o755


def test_check_mode_writes_nothing_and_says_what_it_would_write(tmp_path: Path) -> None:
    directory = tmp_path / "records"
    run = run_playbook(
        record_play(directory, {"d1.json": "{}\n"}), inventory=inventory(tmp_path), check=True, tmp_path=tmp_path
    )
    assert run.rc == 0, run.explain()
    assert run.task("record")["written"] == [str(directory / "d1.json")]
    assert not directory.exists()


def test_a_name_with_a_directory_part_is_refused_naming_the_field(tmp_path: Path) -> None:
    run = run_playbook(
        record_play(tmp_path / "records", {"../escape.json": "{}"}), inventory=inventory(tmp_path), tmp_path=tmp_path
    )
    result = run.task("record")
    assert run.rc != 0 and result.get("failed"), run.explain()
    assert "files: expected plain file names, got '../escape.json'" in result["msg"]
    assert not (tmp_path / "escape.json").exists() and not (tmp_path / "records").exists()


def test_a_mode_is_octal_text_or_the_number_yaml_reads_from_an_unquoted_0640(tmp_path: Path) -> None:
    # 0o640 is what YAML makes of an unquoted 0640: the mode it stands for, as ansible.builtin.file reads it.
    for mode in ("0640", 0o640):
        directory = tmp_path / f"records-{mode}"
        run = run_playbook(
            record_play(directory, {"d1.json": "{}\n"}, mode=mode), inventory=inventory(tmp_path), tmp_path=tmp_path
        )
        assert run.rc == 0, run.explain()
        assert (directory / "d1.json").stat().st_mode & 0o7777 == 0o640, mode
    run = run_playbook(
        record_play(tmp_path / "r", {"a": ""}, mode="17777"), inventory=inventory(tmp_path), tmp_path=tmp_path
    )
    assert run.rc != 0 and "mode: expected an octal mode from 0000 to 7777" in run.task("record")["msg"], run.explain()
    assert not (tmp_path / "r").exists()
