"""``edgeinfer-sidecar --help`` and ``--version`` answer and exit; they never start a server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar import __version__
from sidecar.config import VARIABLES, Settings
from testbed.sidecar import REPO

SCRIPT = Path(sys.executable).with_name("edgeinfer-sidecar")  # the console script of pyproject.toml


def run(*args: str) -> subprocess.CompletedProcess[str]:
    # EDGEINFER_MODEL_DIR points nowhere: a server that started anyway would not pass for a help text.
    env = {**os.environ, "PYTHONPATH": str(REPO), "EDGEINFER_MODEL_DIR": "/nonexistent", "EDGEINFER_PORT": "1"}
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [[sys.executable, "-m", "sidecar"], [str(SCRIPT)]], ids=["python -m", "script"])
def test_help_prints_usage_with_every_variable_and_its_default_then_exits_0(command):
    p = run(*command, "--help")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("usage: edgeinfer-sidecar")
    for name, (default, _) in VARIABLES.items():
        line = next((ln for ln in p.stdout.splitlines() if ln.split()[:1] == [name]), None)
        assert line is not None, name
        assert f"(default: {default})" in line
    assert "BATCH_SIZE = EDGEINFER_MAX_BATCH" in p.stdout
    assert "Uvicorn" not in p.stderr and "serving" not in p.stderr


@pytest.mark.parametrize("command", [[sys.executable, "-m", "sidecar"], [str(SCRIPT)]], ids=["python -m", "script"])
def test_version_prints_the_package_version_then_exits_0(command):
    p = run(*command, "--version")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"edgeinfer-sidecar {__version__}"


def test_an_unknown_argument_is_a_usage_error():
    p = run(sys.executable, "-m", "sidecar", "--port", "9000")
    assert p.returncode == 2
    assert "unrecognized arguments: --port" in p.stderr


def test_the_defaults_shown_are_the_ones_used():
    settings = Settings.from_env({})
    for name, (default, _) in VARIABLES.items():
        value = getattr(settings, name.removeprefix("EDGEINFER_").lower())
        if value is None:
            assert default.startswith("unset") or " " in default, name  # e.g. "manifest's model_version"
        elif isinstance(value, (int, float)) and re.fullmatch(r"[0-9.]+", default):
            assert value == float(default), name
        elif " " not in default:  # not a description such as "min(cpus, 4)"
            assert str(value) == default, name


def test_docs_list_every_variable_with_its_default():
    doc = (REPO / "docs" / "sidecar.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(EDGEINFER_\w+)`[^|]*\| ([^|]*) \|", doc, re.M)}
    rows["EDGEINFER_PORT"] = rows.get("EDGEINFER_HOST", "")  # one row: `EDGEINFER_HOST` / `EDGEINFER_PORT`
    for name in VARIABLES:
        assert name in rows, f"docs/sidecar.md has no row for {name}"
    for name in (
        "MAX_CONNECTIONS",
        "MAX_HEADER_BYTES",
        "MAX_HEADERS",
        "HEADER_TIMEOUT_S",
        "BODY_TIMEOUT_S",
        "KEEPALIVE_TIMEOUT_S",
    ):
        assert f"`{VARIABLES[f'EDGEINFER_{name}'][0]}`" in rows[f"EDGEINFER_{name}"], name
