"""The interpreter the sidecar's host rows run on (bench_sidecar.py).

The sidecar image and Raspberry Pi OS bookworm run Debian's python3.11, an optimized build
(profile-guided, link-time). A development venv may sit on another build: pyenv's default
build has neither optimization and runs the same pure-Python work slower, which would be
charged to the sidecar.
So the host rows run Debian's interpreter, in a venv of the image's pins (sidecar/requirements.txt,
plus FastAPI for the naive peer), made once under .bench/edge-venv and remade when the pins change.
Where Debian's python3.11 is missing, the bench's own interpreter runs them, and the report says so.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEBIAN_PYTHON = Path("/usr/bin/python3.11")
REQUIREMENTS = REPO / "sidecar" / "requirements.txt"
CONSTRAINTS = REPO / "constraints.txt"
EXTRA = ["fastapi"]  # the naive peer


def _version(python: str) -> str:
    return subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True
    ).stdout.strip()


def edge_python(venv: Path = REPO / ".bench" / "edge-venv") -> tuple[str, str]:
    """The interpreter for the sidecar's host rows, and what it is, in words."""
    if not DEBIAN_PYTHON.exists():
        return sys.executable, f"this bench's own python {platform.python_version()} ({DEBIAN_PYTHON} is missing)"
    want = hashlib.sha256(REQUIREMENTS.read_bytes() + CONSTRAINTS.read_bytes() + " ".join(EXTRA).encode()).hexdigest()
    python, stamp = venv / "bin" / "python", venv / "pins.sha256"
    if not (python.exists() and stamp.exists() and stamp.read_text() == want):
        shutil.rmtree(venv, ignore_errors=True)
        try:
            subprocess.run([str(DEBIAN_PYTHON), "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", str(CONSTRAINTS),
                 "-r", str(REQUIREMENTS), *EXTRA],
                check=True,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(venv, ignore_errors=True)
            why = f"making a venv of {DEBIAN_PYTHON} failed: {' '.join(map(str, exc.cmd[:4]))} ... exited {exc.returncode}"
            return sys.executable, f"this bench's own python {platform.python_version()} ({why})"
        stamp.write_text(want)
    return str(python), f"Debian's python {_version(str(python))} ({DEBIAN_PYTHON}), the sidecar image's interpreter"
