"""edgeinfer-validate refuses bad options before any request: exit 2, the option named, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgeinfer_validate import cli


def validate(*args: str, port: int = 19699) -> subprocess.CompletedProcess:
    """The CLI against a port nothing listens on: a usage error must stop it before any connection."""
    cmd = [sys.executable, "-m", "edgeinfer_validate", "--port", str(port), "--no-progress", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--min-cosine", "nan"], "--min-cosine must be a cosine from -1 to 1"),  # passed every golden window
        (["--min-cosine", "-2"], "--min-cosine must be a cosine from -1 to 1"),
        (["--min-cosine", "1.01"], "--min-cosine must be"),
        (["--duration", "nan"], "--duration must be a number of seconds above 0"),  # loaded the server forever
        (["--duration", "inf"], "--duration must be"),
        (["--warmup", "nan"], "--warmup must be"),
        (["--rate", "inf"], "--rate must be 0 (no open loop) or requests/s"),  # OverflowError traceback
        (["--rate", "nan"], "--rate must be"),
        (["--rate", "-1"], "--rate must be"),
        (["--timeout", "nan"], "--timeout must be a number of seconds above 0"),  # "Invalid value NaN"
        (["--timeout", "1e300"], "--timeout must be"),  # OverflowError in settimeout
        (["--wait", "-5"], "--wait must be a number of seconds from 0"),
        (["--wait", "inf"], "--wait must be"),
        (["--p95-ms", "-1"], "--p95-ms must be a number of milliseconds above 0"),
        (["--p95-ms", "nan"], "--p95-ms must be"),
        (["--min-rps", "-5"], "--min-rps must be a number of requests/s"),  # was an error about --rate
        (["--min-rps", "1e9"], "--rate defaults to --min-rps"),  # a schedule of billions of requests
        (["--max-memory-mb", "nan"], "--max-memory-mb must be"),
        (["--min-success", "nan"], "--min-success is a fraction in (0, 1)"),
        (["--open-concurrency", "0"], "--open-concurrency must be at least 1"),
        (["--concurrency", "10000000"], "--concurrency 10000000 needs"),  # "Too many open files" traceback
        (["--golden-limit", "0"], "--golden-limit must be at least 1"),
    ],
)
def test_numeric_options_out_of_range_are_usage_errors_naming_the_option(args, said):
    proc = validate(*args)
    assert proc.returncode == cli.EXIT_USAGE, proc.stdout + proc.stderr
    assert said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    # one complaint: a bad value is not also blamed on another option
    assert error.count(" must be ") + error.count(" needs ") + error.count("defaults to") == 1, error


def test_a_negative_min_rps_is_not_blamed_on_rate():
    proc = validate("--min-rps", "-5")
    error = proc.stderr.strip().splitlines()[-1]
    assert "--min-rps" in error and "--rate" not in error, error


@pytest.mark.parametrize("option", ["--json", "--report"])
def test_an_output_path_under_a_file_is_refused_before_the_run(server, tmp_path, option):
    """It was a traceback after the whole load run, and the run's measurements were lost."""
    (tmp_path / "file.pth").write_text("a regular file\n")
    path = tmp_path / "file.pth" / "out"
    proc = validate("--skip-memory", option, str(path), port=server.target.port)
    assert proc.returncode == cli.EXIT_USAGE, proc.stdout + proc.stderr
    assert f"{option} {path} cannot be created: {tmp_path / 'file.pth'} is a file" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert server.stats()["requests"] == 0  # refused before any load


def test_output_paths_that_are_the_wrong_kind_are_refused(tmp_path):
    (tmp_path / "a-file").write_text("")
    proc = validate("--json", str(tmp_path), "--report", str(tmp_path / "a-file"))
    assert proc.returncode == cli.EXIT_USAGE
    assert f"--json {tmp_path} is a directory" in proc.stderr
    assert f"--report {tmp_path / 'a-file'} is a file, not a directory" in proc.stderr
