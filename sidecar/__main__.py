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

    import uvicorn

    from .app import create_app

    try:
        app = create_app(settings)
    except ConfigError as exc:
        print(f"edgeinfer-sidecar: configuration error: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
        server_header=False,
        # No proxy in front of the sidecar: skip the middleware that rewrites the client address.
        proxy_headers=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
