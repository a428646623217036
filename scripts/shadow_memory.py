"""Memory of a sidecar serving one model, then with a shadow beside it (docs/sidecar.md, The shadow).

    .venv/bin/python scripts/shadow_memory.py --root MODELS --serving releases/A --shadow releases/B [--windows 2000]

Starts ``python -m sidecar`` on 127.0.0.1 with ``EDGEINFER_MODEL_DIR=MODELS/<serving>``, sends
random-walk windows to ``/encode``, reads the process's VmRSS and VmHWM (peak) from /proc; then
loads the shadow, mirrors every window (``EDGEINFER_SHADOW_SHARE=1``) until the report holds
``--windows`` pairs, computes the report, and reads them again. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

REPO = Path(__file__).resolve().parents[1]


def memory(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)  # kB -> MiB
    return {"rss_mib": fields["VmRSS"], "peak_rss_mib": fields["VmHWM"]}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True, help="the models directory (EDGEINFER_SHADOW_ROOT)")
    ap.add_argument("--serving", required=True, help="the serving release, relative to --root")
    ap.add_argument("--shadow", required=True, help="the shadow release, relative to --root")
    ap.add_argument("--onnx-file", default="auto", help="the shadow's ONNX file (onnx_file of POST /admin/shadow)")
    ap.add_argument("--windows", type=int, default=2000)
    ap.add_argument("--threads", default="1", help="EDGEINFER_THREADS of the serving model")
    return ap.parse_args()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sidecar_env(args: argparse.Namespace, port: int, token: Path) -> dict[str, str]:
    """This environment without its EDGEINFER_ settings, then the sidecar's: every window mirrored to the
    shadow, a queue that never drops one, and a report capped at ``--windows`` pairs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEINFER_")}
    env.update(
        PYTHONPATH=str(REPO),
        EDGEINFER_MODEL_DIR=str(args.root / args.serving),
        EDGEINFER_SHADOW_ROOT=str(args.root),
        EDGEINFER_SHADOW_SHARE="1",
        EDGEINFER_SHADOW_QUEUE_WINDOWS="100000",
        EDGEINFER_SHADOW_MAX_WINDOWS=str(args.windows),
        EDGEINFER_HOST="127.0.0.1",
        EDGEINFER_PORT=str(port),
        EDGEINFER_ADMIN_TOKEN_FILE=str(token),
        EDGEINFER_BACKEND="onnxruntime",
        EDGEINFER_THREADS=args.threads,
        EDGEINFER_LOG_LEVEL="warning",
    )
    return env


def wait_healthy(url: str) -> None:
    """Up to about 30 s for /healthz to answer 200."""
    for _ in range(300):
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.1)


def traffic(url: str, rng: np.random.Generator, n: int) -> None:
    """``n`` normalized windows that drift like a sensor trace, to /encode in batches of 25."""
    walk = np.cumsum(0.2 * rng.standard_normal((n, 100, 9)), axis=1).astype("<f4")
    for i in range(0, n, 25):
        r = requests.post(
            url + "/encode?normalized=1",
            data=walk[i : i + 25].tobytes(),
            headers={"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"},
            timeout=30,
        )
        r.raise_for_status()


def paired_report(url: str, auth: dict[str, str], windows: int) -> dict[str, Any]:
    """The shadow's report once it holds ``windows`` pairs (or after 5 minutes)."""
    deadline = time.monotonic() + 300
    report = requests.get(url + "/admin/shadow/report", headers=auth, timeout=60).json()
    while report["paired_windows_total"] < windows and time.monotonic() < deadline:
        time.sleep(2)
        report = requests.get(url + "/admin/shadow/report", headers=auth, timeout=60).json()
    return report


def measure(url: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    """The memory serving alone after ``--windows`` windows, with the shadow just loaded, and after as
    many windows again mirrored and the report computed; with the releases and the report's scores."""
    auth = {"Authorization": "Bearer measure"}
    wait_healthy(url)
    cfg = requests.get(url + "/healthz", timeout=5).json()
    rng = np.random.default_rng(0)
    traffic(url, rng, args.windows)
    alone = memory(pid)
    r = requests.post(
        url + "/admin/shadow",
        headers=auth,
        json={"release": args.shadow, "onnx_file": args.onnx_file},
        timeout=120,
    )
    r.raise_for_status()
    loaded = memory(pid)
    traffic(url, rng, args.windows)
    report = paired_report(url, auth, args.windows)
    both = memory(pid)
    return {
        "serving": cfg["model_version"],
        "serving_file": cfg["served_file"],
        "shadow": r.json()["shadow"]["model_version"],
        "shadow_file": r.json()["shadow"]["served_file"],
        "windows": report["windows"],
        "serving_alone": alone,
        "shadow_loaded": loaded,
        "both_after_traffic_and_report": both,
        "linear_cka": report["linear_cka"],
        "knn_jaccard": report["knn_jaccard"],
    }


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        token = Path(tmp) / "token"
        token.write_text("measure\n")
        proc = subprocess.Popen([sys.executable, "-m", "sidecar"], cwd=REPO, env=sidecar_env(args, port, token))
        try:
            print(json.dumps(measure(f"http://127.0.0.1:{port}", proc.pid, args), indent=1))
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
