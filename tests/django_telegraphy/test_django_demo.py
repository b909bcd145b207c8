"""The demo project, run as a user runs it (run_demo.py), seen by a real WAMP client."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import tornado.httpclient
import tornado.websocket

REPO = Path(__file__).resolve().parents[2]
RUN_DEMO = REPO / "demo_project" / "run_demo.py"
READY_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def demo(tmp_path):
    """run_demo.py on free ports with a fresh database; yields (django_url, ws_url, process)."""
    port, gateway_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAPHY_", "DJANGO_", "DEMO_"))}
    env.update(DEMO_DATABASE=str(tmp_path / "demo.sqlite3"), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, str(RUN_DEMO), "--port", str(port), "--gateway-port", str(gateway_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []

    def read() -> None:
        for line in process.stdout:
            output.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = ""
        if line is None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("run_demo.py did not start:\n" + "".join(output))
        if "Telegraphy demo running" in line:
            break
    try:
        yield f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{gateway_port}/ws", process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


async def receive_one_event(ws_url: str, origin: str, act) -> list:
    """Join the realm, subscribe to demo.MyModel, run ``act`` in a thread, return the first EVENT."""
    request = tornado.httpclient.HTTPRequest(ws_url, headers={"Origin": origin})
    ws = await tornado.websocket.websocket_connect(request, subprotocols=["wamp.2.json"])
    try:
        await ws.write_message(json.dumps([1, "telegraphy", {"roles": {"subscriber": {}}}]))
        assert json.loads(await ws.read_message())[0] == 2  # WELCOME
        await ws.write_message(json.dumps([32, 1, {}, "demo.MyModel"]))
        assert json.loads(await ws.read_message())[0] == 33  # SUBSCRIBED
        await asyncio.get_running_loop().run_in_executor(None, act)
        return json.loads(await asyncio.wait_for(ws.read_message(), 10))
    finally:
        ws.close()


def test_demo_pages_and_live_event(demo):
    """run_demo.py serves the pages; creating an item reaches a subscribed WAMP client as a create event."""
    url, ws_url, process = demo
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(url + "/").read().decode()
    assert 'id="telegraphy-status"' in page
    assert len(re.findall(r'id="item-\d+"', page)) == 3  # the sample items
    assert "window.TELEGRAPHY_CONFIG" in page and "/static/telegraphy/telegraphy.js" in page
    assert 'id="tracker-entries"' in opener.open(url + "/tracker/").read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    def create() -> None:
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": csrf, "title": "from a test", "count": 4}).encode()
        request = urllib.request.Request(
            url + "/items/create/", data=body, headers={"X-Requested-With": "fetch", "Referer": url + "/"}
        )
        assert json.loads(opener.open(request).read())["pk"]

    message = asyncio.run(receive_one_event(ws_url, url, create))
    assert message[0] == 36  # EVENT
    event = message[4][0]
    assert event["name"] == "demo.MyModel"
    assert event["meta"]["event_type"] == "create"
    assert event["data"]["title"] == "from a test" and event["data"]["count"] == 4


def test_demo_stops_both_servers_on_sigterm(demo):
    """SIGTERM to run_demo.py stops the gateway and Django, and it exits 0."""
    url, _ws_url, process = demo
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/", timeout=2)
