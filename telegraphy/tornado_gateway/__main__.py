"""Command line entry point: ``python -m telegraphy.tornado_gateway`` or ``telegraphy-gateway``.

Logs go to stderr; stdout carries only the line ``Telegraphy gateway
listening on http://HOST:PORT``, so a supervisor (or a test) can read the
port chosen by ``--port 0``.

Exit status: 0 after a clean shutdown (SIGTERM, SIGINT), 1 when the address
cannot be bound, 2 on invalid settings or when no secret is configured.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from telegraphy.tornado_gateway.app import serve
from telegraphy.tornado_gateway.config import Config, ConfigError

__all__ = ["main"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the settings, then run the gateway until it is told to stop.

    Args:
        argv: the arguments without the program name; ``None`` means
            ``sys.argv[1:]``.

    Returns:
        The exit status.
    """
    config = Config.from_args(argv, os.environ)  # exits 2 on invalid values
    logging.basicConfig(stream=sys.stderr, level=config.log_level.upper(), format=LOG_FORMAT)
    try:
        config.check()
    except ConfigError as exc:
        print(f"telegraphy-gateway: error: {exc}", file=sys.stderr)
        return 2
    from telegraphy.bus import BusError
    from telegraphy.store import StoreError

    try:
        asyncio.run(serve(config))
    except (StoreError, BusError) as exc:
        print(f"telegraphy-gateway: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        # bind_sockets: address in use, no such interface, permission denied.
        print(f"telegraphy-gateway: error: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
