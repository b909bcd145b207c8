"""Shared fixtures: real gateway processes (see ``tests/gateway_helpers.py``).

``gateway``
    A gateway with default settings on a free port, stopped after the test::

        def test_health(gateway):
            urllib.request.urlopen(f"{gateway.url}/health")

``gateway_process``
    A factory for gateways with your own flags and environment; every one
    started is stopped after the test::

        def test_limit(gateway_process):
            gw = gateway_process("--max-batch", "2", env={"TELEGRAPHY_REALM": "r"})
            gw.url, gw.ws_url, gw.secret, gw.proc, gw.publish_token()

    It takes the keyword arguments of :func:`gateway_helpers.start_gateway`
    (``secret=None`` to pass no ``--secret``, ``port=None`` to pass no
    ``--port``, ``ws_path=`` when you change ``--ws-path``).

Teardown sends SIGTERM, waits 5 s, kills if needed, and fails the test with
the gateway's stderr if it had crashed, hung or exited non-zero.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway_helpers import GatewayCrashed, GatewayProcess, start_gateway  # noqa: E402


@pytest.fixture
def gateway_process() -> Iterator[Callable[..., GatewayProcess]]:
    """Start real gateway processes on demand; stop them all after the test."""
    started: list[GatewayProcess] = []

    def start(*args: str, **kwargs: Any) -> GatewayProcess:
        gateway = start_gateway(*args, **kwargs)
        started.append(gateway)
        return gateway

    yield start
    failures = []
    for gateway in started:
        try:
            gateway.stop()
        except GatewayCrashed as exc:
            failures.append(str(exc))
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


@pytest.fixture
def gateway(gateway_process: Callable[..., GatewayProcess]) -> GatewayProcess:
    """One real gateway with default settings and a random secret."""
    return gateway_process()
