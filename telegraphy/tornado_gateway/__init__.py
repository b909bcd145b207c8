"""The Telegraphy gateway: Tornado serving WAMP v2 over WebSocket, the HTTP publish API, health and metrics.

Start it with ``python -m telegraphy.tornado_gateway`` (``--help`` lists the
settings). The protocol logic lives in :mod:`telegraphy.wamp`; the modules here
are thin adapters.
"""
