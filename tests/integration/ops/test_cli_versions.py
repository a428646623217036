"""Every command-line tool of the project answers --version and exits 0."""

from __future__ import annotations

import subprocess

import pytest

from testbed.ansible_run import BIN


@pytest.mark.parametrize("tool", ["model-tools", "edgeinfer-validate", "edgeinfer-sidecar"])
def test_version(tool: str) -> None:
    r = subprocess.run([str(BIN / tool), "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    name, version = r.stdout.split()
    assert version.count(".") == 2 and version.replace(".", "").isdigit(), r.stdout


def test_every_validator_option_says_what_it_does() -> None:
    from edgeinfer_validate.cli import build_parser

    quiet = [a.option_strings for a in build_parser()._actions if a.option_strings and not a.help]
    assert quiet == [], quiet
