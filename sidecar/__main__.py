"""``python -m sidecar``: read the environment, serve with uvicorn on EDGEINFER_HOST:EDGEINFER_PORT."""

from __future__ import annotations

import logging
import sys

from .config import ConfigError, Settings


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"edgeinfer-sidecar: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from .app import create_app
    from .server import serve

    try:
        app = create_app(settings)
    except ConfigError as exc:
        print(f"edgeinfer-sidecar: configuration error: {exc}", file=sys.stderr)
        return 2
    serve(app, settings, app.metrics.connections_closed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
