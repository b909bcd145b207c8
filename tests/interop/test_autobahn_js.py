"""Autobahn|JS (the npm ``autobahn`` package, under Node) as a third-party WAMP client of a real gateway.

The Node scripts in ``tests/interop/autobahn_js`` drive Autobahn|JS; each
takes its configuration as one JSON argument and prints JSON lines. Their
dependencies are installed by ``scripts/test`` (``npm ci`` there). Without
them the tests are skipped, or fail when ``TELEGRAPHY_REQUIRE_INTEROP=1``
(as in CI).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import urllib.request
from pathlib import Path
from collections.abc import Callable
from typing import Any

import pytest
from gateway_helpers import GatewayProcess

from telegraphy.tokens import mint_connect_token, wampcra_key

NODE_DIR = Path(__file__).resolve().parent / "autobahn_js"
#: Seconds any one Node script may run (each also stops itself after 8 s).
SCRIPT_TIMEOUT = 15.0
#: Clients publish nowhere and only backend sessions register by default:
#: the pub/sub and RPC scenarios declare com.example.* for them.
CHANNELS = json.dumps(
    [
        {"topic": "com.example.", "match": "prefix", "publish": "authenticated"},
        {"procedure": "com.example.", "match": "prefix", "call": "public"},
    ]
)


def _interop_unavailable(reason: str) -> None:
    if os.environ.get("TELEGRAPHY_REQUIRE_INTEROP") == "1":
        pytest.fail(f"{reason}, and TELEGRAPHY_REQUIRE_INTEROP=1 requires the interop tests", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module", autouse=True)
def autobahn_js() -> str:
    """Skip (or fail, with TELEGRAPHY_REQUIRE_INTEROP=1) unless Node and the pinned Autobahn|JS are installed; return its version."""
    if shutil.which("node") is None:
        _interop_unavailable("node is not installed")
    pinned = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["autobahn"]
    installed_file = NODE_DIR / "node_modules" / "autobahn" / "package.json"
    if not installed_file.exists():
        _interop_unavailable(f"Autobahn|JS is not installed: run `npm ci --no-audit --no-fund` in {NODE_DIR} (scripts/test does)")
    installed = json.loads(installed_file.read_text())["version"]
    if installed != pinned:
        _interop_unavailable(f"Autobahn|JS {installed} is installed, package.json pins {pinned}: run `npm ci` in {NODE_DIR}")
    return str(installed)


class NodeScript:
    """One running Node script; read its JSON lines with :meth:`line`."""

    def __init__(self, script: str, config: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            ["node", script, json.dumps(config)],
            cwd=NODE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self._lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self._stderr.append), daemon=True).start()

    @staticmethod
    def _pump(stream: Any, sink: Any) -> None:
        for line in stream:
            sink(line)
        sink(None)

    def _report(self) -> str:
        return f"node {self.proc.args[1]} stderr:\n" + "".join(line for line in self._stderr if line)

    def line(self, timeout: float = SCRIPT_TIMEOUT) -> dict[str, Any]:
        """Return the next JSON line the script prints; fail on exit, an ``error`` line or timeout."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            pytest.fail(f"node {self.proc.args[1]} printed nothing within {timeout} s\n{self._report()}", pytrace=False)
        if line is None:
            self.proc.wait(5)
            pytest.fail(f"node {self.proc.args[1]} exited with status {self.proc.returncode}\n{self._report()}", pytrace=False)
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            self.kill()
            pytest.fail(f"node {self.proc.args[1]}: {message}\n{self._report()}", pytrace=False)
        return message

    def finish(self, timeout: float = SCRIPT_TIMEOUT) -> None:
        """Wait for the script to exit with status 0."""
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"node {self.proc.args[1]} did not exit within {timeout} s\n{self._report()}", pytrace=False)
        assert status == 0, f"node {self.proc.args[1]} exited with status {status}\n{self._report()}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


def run(script: str, **config: Any) -> dict[str, Any]:
    """Run a script that prints one result line; return it."""
    node = NodeScript(script, config)
    try:
        result = node.line()
        node.finish()
        return result
    finally:
        node.kill()


def publish(gw: GatewayProcess, event: dict[str, Any]) -> dict[str, Any]:
    """POST one event to the gateway's /publish with a fresh publish token; return the JSON reply."""
    request = urllib.request.Request(
        f"{gw.url}/publish",
        data=json.dumps(event).encode(),
        headers={"Authorization": f"Bearer {gw.publish_token()}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        body: dict[str, Any] = json.loads(response.read())
    return body


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_anonymous_subscriber_receives_http_published_event(gateway: GatewayProcess, serializer: str) -> None:
    """An anonymous Autobahn|JS subscriber (JSON or msgpack) gets a /publish event with its stream position."""
    node = NodeScript("subscribe.mjs", {"url": gateway.ws_url, "serializer": serializer, "topic": "demo.Item"})
    try:
        ready = node.line()
        assert (ready["ready"], ready["authid"], ready["authrole"]) == (True, "anonymous", "anonymous")
        assert ready["protocol"] == f"wamp.2.{serializer}"  # the subprotocol negotiated
        sent = {"name": "demo.Item", "meta": {"event_type": "create"}, "data": {"pk": 7, "title": "caf\u00e9 \u2615", "price": 2.5, "tags": ["a", None]}}
        published = publish(gateway, sent)
        assert published["published"] == 1
        got = node.line()
        node.finish()
    finally:
        node.kill()
    event = got["event"]
    assert event["name"] == "demo.Item"
    assert event["meta"]["event_type"] == "create"
    assert event["meta"]["id"] == published["ids"][0]
    assert event["data"] == sent["data"]
    assert got["args"] == [event] and got["kwargs"] == {}
    assert got["details"]["topic"] == "demo.Item"
    assert isinstance(got["details"]["publication"], int)
    raw = got["raw_details"]
    assert raw["offset"] == event["meta"]["offset"] and isinstance(raw["offset"], int)
    assert raw["epoch"] == event["meta"]["epoch"] and raw["epoch"]


def test_ticket_auth_with_connect_token(gateway: GatewayProcess) -> None:
    """A connect token as Autobahn|JS's ticket opens a session whose authid is the token's sub."""
    joined = run("join.mjs", url=gateway.ws_url, authmethods=["ticket"], ticket=gateway.connect_token("alice", authrole="editor"))
    assert joined["joined"] is True
    assert (joined["authid"], joined["authrole"], joined["authmethod"]) == ("alice", "editor", "ticket")
    assert isinstance(joined["session"], int)


def test_forged_ticket_is_refused(gateway: GatewayProcess) -> None:
    """A ticket signed with another secret closes Autobahn|JS's connection with wamp.error.authentication_failed."""
    forged = mint_connect_token("not-the-gateway-secret-" + "x" * 16, "alice")
    closed = run("join.mjs", url=gateway.ws_url, authmethods=["ticket"], ticket=forged)
    assert closed["closed"] is True
    assert closed["details"]["reason"] == "wamp.error.authentication_failed"
    assert closed["details"]["message"] == "ticket refused: token signature is invalid"
    assert closed["details"]["will_retry"] is False


def test_wampcra_with_autobahn_sign(gateway: GatewayProcess) -> None:
    """WAMP-CRA answered by autobahn.auth_cra.sign with wampcra_key(secret, authid) joins as that authid."""
    assert gateway.secret is not None
    joined = run("join.mjs", url=gateway.ws_url, authmethods=["wampcra"], authid="bob", wampcra_key=wampcra_key(gateway.secret, "bob"))
    assert joined["joined"] is True
    assert (joined["authid"], joined["authrole"], joined["authmethod"]) == ("bob", "user", "wampcra")


def test_wampcra_wrong_key_is_refused(gateway: GatewayProcess) -> None:
    """WAMP-CRA signed with another authid's key is refused with wamp.error.authentication_failed."""
    assert gateway.secret is not None
    closed = run("join.mjs", url=gateway.ws_url, authmethods=["wampcra"], authid="bob", wampcra_key=wampcra_key(gateway.secret, "mallory"))
    assert closed["closed"] is True
    assert closed["details"]["reason"] == "wamp.error.authentication_failed"
    assert closed["details"]["message"] == "wampcra signature is invalid"


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_rpc_between_two_autobahn_sessions(gateway_process: Callable[..., GatewayProcess], serializer: str) -> None:
    """A backend session registers com.example.add2, an anonymous one calls it (2 + 3 = 5); anonymous register is refused."""
    gateway = gateway_process("--channels", CHANNELS)
    result = run("rpc.mjs", url=gateway.ws_url, serializer=serializer, ticket=gateway.connect_token("callee", authrole="backend"))
    assert result["result"] == 5
    assert result["invocation"]["procedure"] == "com.example.add2"
    assert result["invocation"]["caller"] == result["caller_session"]  # disclose_me honoured
    assert result["anonymous_register_error"]["error"] == "wamp.error.not_authorized"
    assert result["call_error"]["error"] == "wamp.error.no_such_procedure"


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_pubsub_between_two_autobahn_sessions(gateway_process: Callable[..., GatewayProcess], serializer: str) -> None:
    """Acknowledged publishes on a declared channel reach the other session naming their publisher; the publisher gets its own only with exclude_me: false."""
    gateway = gateway_process("--channels", CHANNELS)
    result = run("pubsub.mjs", url=gateway.ws_url, serializer=serializer, ticket=gateway.connect_token("writer"), topic="com.example.chat")
    first, second = result["publications"]
    assert isinstance(first["id"], int) and isinstance(second["id"], int) and first["id"] != second["id"]
    subscriber = result["subscriber"]
    assert [(e["args"], e["kwargs"]) for e in subscriber] == [(["hello"], {"n": 1}), (["again"], {"n": 2})]
    assert [e["details"]["publication"] for e in subscriber] == [first["id"], second["id"]]
    assert [e["raw_details"]["offset"] for e in subscriber] == [1, 2]
    assert {(e["raw_details"]["publisher_authid"], e["raw_details"]["publisher_authrole"]) for e in subscriber} == {("writer", "user")}
    publisher = result["publisher"]
    assert [(e["args"], e["details"]["publication"]) for e in publisher] == [(["again"], second["id"])]


def test_module_runs_under_a_pinned_autobahn_js(autobahn_js: str) -> None:
    """The installed Autobahn|JS is the version package.json pins (and reports itself so)."""
    out = subprocess.run(
        ["node", "--input-type=module", "-e", "import a from 'autobahn'; console.log(a.version)"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == autobahn_js

