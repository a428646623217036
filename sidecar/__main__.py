"""``python -m sidecar``: read the environment, serve with uvicorn on EDGEINFER_HOST:EDGEINFER_PORT."""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from .config import ALIASES, VARIABLES, ConfigError, Settings


def parser() -> argparse.ArgumentParser:
    aliases = {v: k for k, v in ALIASES.items()}
    width = max(map(len, VARIABLES))
    lines = [f"  {name:<{width}}  {text} (default: {default})" for name, (default, text) in VARIABLES.items()]
    return argparse.ArgumentParser(
        prog="edgeinfer-sidecar",
        description="Serve a released TCN-VAE encoder over HTTP: POST /encode, /infer; GET /healthz, /metrics, "
        "/openapi.json; the KServe v2 routes under /v2; the admin API under /admin (docs/api.md).",
        epilog="Configured by the environment only; an invalid value stops the process with exit code 2.\n\n"
        + "environment variables:\n"
        + "\n".join(lines)
        + f"\naliases: {', '.join(f'{a} = {n}' for a, n in aliases.items())}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: list[str] | None = None) -> int:
    p = parser()
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"edgeinfer-sidecar: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from .server import schedule, serve

    # Before numpy (its BLAS threads), the event loop and the inference thread exist: they inherit it.
    schedule(settings.sched_policy)
    from .app import create_app

    try:
        app = create_app(settings)
    except ConfigError as exc:
        print(f"edgeinfer-sidecar: configuration error: {exc}", file=sys.stderr)
        return 2
    serve(app, settings, app.metrics.connections_closed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
