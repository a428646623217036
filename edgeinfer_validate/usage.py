"""The options checked before any request is sent: each problem names its option and what it takes.

argparse only parses: ``--duration nan`` is a float to it. Here every number must be
finite and in its range, every count at least 1 and within the open-file limit, and the
report's paths writable, since a run that cannot write its report loses its measurements.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

from edgeinfer_load import MAX_RATE, MAX_SECONDS, MAX_TIMEOUT_S, within

# Descriptors the run needs besides the load's connections: stdio, the Docker socket, the golden replay.
SPARE_FILES = 32


def _number_problem(option: str, value: float, low: float, high: float, low_open: bool, what: str) -> str | None:
    """The complaint about ``value`` unless finite, at most ``high``, above ``low`` (or at it, unless ``low_open``)."""
    return None if within(value, low, high, low_open) else f"{option} must be {what}, not {value:g}"


def _number_problems(a: argparse.Namespace, s: dict[str, Any]) -> list[str]:
    """Every numeric option: finite (argparse takes nan and inf for floats) and within its range."""
    checks = [
        ("--duration", s["duration_s"], 0, MAX_SECONDS, True, f"a number of seconds above 0, at most {MAX_SECONDS:g}"),
        ("--warmup", s["warmup_s"], 0, MAX_SECONDS, False, f"a number of seconds from 0 to {MAX_SECONDS:g}"),
        ("--wait", a.wait, 0, MAX_SECONDS, False, f"a number of seconds from 0 to {MAX_SECONDS:g}"),
        ("--timeout", a.timeout, 0, MAX_TIMEOUT_S, True, f"a number of seconds above 0, at most {MAX_TIMEOUT_S:g}"),
        ("--p95-ms", a.p95_ms, 0, math.inf, True, "a number of milliseconds above 0"),
        ("--min-rps", a.min_rps, 0, math.inf, False, "a number of requests/s, 0 or more"),
        ("--max-memory-mb", a.max_memory_mb, 0, math.inf, True, "a number of MiB above 0"),
        ("--min-cosine", a.min_cosine, -1, 1, False, "a cosine from -1 to 1 (0.99 is the default)"),
    ]
    if a.rate is not None:
        checks.append(("--rate", a.rate, 0, MAX_RATE, False, f"0 (no open loop) or requests/s up to {MAX_RATE:g}"))
    out = [m for m in (_number_problem(*c) for c in checks) if m]
    if a.rate is None and math.isfinite(a.min_rps) and a.min_rps > MAX_RATE:
        out.append(
            f"--rate defaults to --min-rps ({a.min_rps:g} req/s), more than the open loop can send "
            f"(at most {MAX_RATE:g}); give --rate (0 for no open loop)"
        )
    if not 0 < a.min_success < 1:  # False for NaN too
        out.append(
            f"--min-success is a fraction in (0, 1), the success rate must be above it, not {a.min_success} "
            "(99 % is 0.99)"
        )
    return out


def _open_files() -> int:
    """This process's limit on open files (ulimit -n); -1 when there is none to read."""
    try:
        import resource
    except ImportError:  # not a Unix
        return -1
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return -1 if soft == resource.RLIM_INFINITY else soft


def _count_problems(a: argparse.Namespace) -> list[str]:
    """Connections (each an open file), the golden limit and the port."""
    out = []
    files = _open_files()
    for option, n in (("--concurrency", a.concurrency), ("--open-concurrency", a.open_concurrency)):
        if n < 1:
            out.append(f"{option} must be at least 1, not {n}")
        elif 0 < files < n + SPARE_FILES:
            out.append(f"{option} {n} needs {n + SPARE_FILES} open files, this process may open {files} (ulimit -n)")
    if a.golden_limit is not None and a.golden_limit < 1:
        out.append(f"--golden-limit must be at least 1 window, not {a.golden_limit}")
    if not 0 < a.port < 65536:
        out.append(f"--port {a.port} is not a TCP port")
    return out


def _unwritable(path: Path, directory: bool) -> str | None:
    """Why ``path`` (a file, or a ``directory``) could not be written after the run, or None."""
    if path.exists():
        if directory and not path.is_dir():
            return "is a file, not a directory"
        if not directory and path.is_dir():
            return "is a directory; give a file path"
        return None if os.access(path, os.W_OK) else "is not writable"
    above = path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        return f"cannot be created: {above} is a file, not a directory"
    if not os.access(above, os.W_OK | os.X_OK):
        return f"cannot be created: {above} is not writable"
    return None


def usage_problems(a: argparse.Namespace, s: dict[str, Any]) -> list[str]:
    """Every problem with the options, found before any request is sent, each naming its option."""
    out = _number_problems(a, s) + _count_problems(a)
    # Checked now: a report that cannot be written would lose the whole run's measurements.
    for option, value, directory in (("--json", a.json, False), ("--report", a.report, True)):
        why = _unwritable(Path(value), directory) if value else None
        if why:
            out.append(f"{option} {value} {why}")
    return out
