"""Recovery benchmark: how fast do many clients resume and catch up, and what does the store cost?

1. ``resume``: N clients (default 1,000) join, subscribe and disconnect; M
   events (default 100) are published while they are away; all N reconnect
   with their resume token and offsets. Prints the time until every client
   has received all M missed events, and checks none is missing or doubled.
2. ``fanout``: runs ``bench/fanout.py`` with the store off (``none``), on
   SQLite and on Redis, and prints deliveries/s and latency for each.

    python bench/recovery.py                 # both
    python bench/recovery.py resume --clients 1000 --missed 100 --store sqlite
    python bench/recovery.py fanout --events 2000

Bounded: every wait has a deadline; it stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from tornado.websocket import websocket_connect

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from telegraphy.tokens import mint_publish_token  # noqa: E402

TOPIC = "bench.Recovery"
STORES = {
    "none": "none",
    "memory": "memory://",
    "sqlite": "sqlite:///{tmp}/bench-recovery.sqlite3",
    "redis": "redis://127.0.0.1:6379/14",
}


def start_gateway(secret: str, store: str) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "TELEGRAPHY_STORE": store}
    proc = subprocess.Popen(
        # Every client connects from 127.0.0.1: no per-IP connection rate.
        [sys.executable, "-m", "telegraphy.tornado_gateway", "--port", "0", f"--secret={secret}", "--log-level", "warning",
         "--connection-rate", "0"],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("Telegraphy gateway listening on"):
        proc.kill()
        raise SystemExit(f"gateway did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1])


def publish(port: int, secret: str, count: int) -> None:
    body = json.dumps([{"name": TOPIC, "meta": {"event_type": "update"}, "data": {"n": n}} for n in range(count)]).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/publish", data=body,
        headers={"Authorization": f"Bearer {mint_publish_token(secret)}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 202


async def join(port: int, **details: Any) -> tuple[Any, dict[str, Any]]:
    conn = await websocket_connect(f"ws://127.0.0.1:{port}/ws", subprotocols=["wamp.2.json"])
    await conn.write_message(json.dumps([1, "telegraphy", {"roles": {"subscriber": {}}, **details}]))
    welcome = json.loads(await conn.read_message())
    assert welcome[0] == 2, welcome
    return conn, welcome[2]


async def resume_bench(args: argparse.Namespace) -> None:
    secret = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as tmp:
        store = STORES[args.store].format(tmp=tmp)
        proc, port = start_gateway(secret, store)
        try:
            publish(port, secret, 1)  # the stream exists
            sessions = []
            for start in range(0, args.clients, 100):
                batch = await asyncio.gather(*(join(port) for _ in range(start, min(args.clients, start + 100))))
                for conn, welcome in batch:
                    await conn.write_message(json.dumps([32, 1, {}, TOPIC]))
                    assert json.loads(await conn.read_message())[0] == 33
                    sessions.append(welcome["resume_token"])
                    conn.close()
            await asyncio.sleep(0.5)  # the gateway notices the closes
            publish(port, secret, args.missed)
            t0 = time.perf_counter()

            async def resume(token: str) -> int:
                conn, welcome = await join(port, resume_token=token)
                assert welcome.get("resumed") is True and welcome["recovered"] == {TOPIC: True}, welcome
                received = 0
                while received < args.missed:
                    message = json.loads(await asyncio.wait_for(conn.read_message(), 30))
                    if message[0] == 36:
                        received += 1
                conn.close()
                return received

            counts = []
            for start in range(0, len(sessions), args.concurrency):
                counts += await asyncio.gather(*(resume(t) for t in sessions[start : start + args.concurrency]))
            elapsed = time.perf_counter() - t0
            assert all(c == args.missed for c in counts)
            print(f"resume ({args.store}): {len(sessions)} clients each missing {args.missed} events caught up in "
                  f"{elapsed:.2f} s ({len(sessions) / elapsed:,.0f} resumes/s, "
                  f"{len(sessions) * args.missed / elapsed:,.0f} replayed events/s)")
        finally:
            proc.terminate()
            proc.wait(15)


def fanout_bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("none", "sqlite", "redis"):
            store = STORES[name].format(tmp=tmp)
            result = subprocess.run(
                [sys.executable, str(HERE / "fanout.py"), "--events", str(args.events), "--batch", str(args.batch),
                 # Joined with "=": argparse would read a separate "--store=…" as an option of its own, not as the value.
                 "--publishers", "4", f"--gateway-arg=--store={store}"],
                capture_output=True, text=True, timeout=300,
            )
            lines = [l for l in result.stdout.splitlines() if l.startswith(("deliveries", "latency publish->subscriber"))]
            print(f"fanout, store {name}: " + " | ".join(lines) if lines else f"fanout, store {name}: failed\n{result.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", choices=["resume", "fanout", "both"], default="both")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--missed", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=200, help="clients resuming at once")
    parser.add_argument("--store", choices=["memory", "sqlite", "redis"], default="sqlite")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    if args.mode in ("resume", "both"):
        asyncio.run(resume_bench(args))
    if args.mode in ("fanout", "both"):
        fanout_bench(args)


if __name__ == "__main__":
    main()
