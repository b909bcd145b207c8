"""Fan-out benchmark: N WebSocket subscribers, M events published over HTTP.

Starts a real gateway process on 127.0.0.1, opens the subscribers from
separate load-generator processes, publishes through ``POST /publish`` and
prints deliveries/s, lost deliveries, publish→receive latency (p50/p99) and
the gateway's memory per connection. Nothing here asserts; it prints numbers.

Examples::

    python bench/fanout.py                                  # 1,000 subscribers, throughput
    python bench/fanout.py --batch 1 --publishers 4         # one event per POST
    python bench/fanout.py --rate 20 --events 400           # latency at 20 events/s
    python bench/fanout.py --idle 10000                     # memory per idle connection
    python bench/fanout.py --nodes 2                        # subscribers spread over 2 nodes (Redis bus)
    python bench/fanout.py --nodes 2 --transport sockjs-xhr-streaming
        # every SockJS session lives on one node and streams from the other (forwarded over the bus)

With ``--nodes N`` the gateways share a SQLite store in a temporary
directory and a Redis bus (``--bus``); events are published to the first
node; WebSocket subscribers connect to the nodes in turn; a SockJS
xhr-streaming session is created (by one poll) on one node and then
streamed, and sent to, through the next, so that every frame crosses the bus.

Each run is bounded: it stops after ``--timeout`` seconds whatever happens.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wsclient import CONNECT, Receiver, connect_sockjs_xhr_streaming  # noqa: E402

from telegraphy.tokens import mint_publish_token  # noqa: E402

TOPIC = "bench.Item"


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


CPUS = sorted(os.sched_getaffinity(0))
PIN = os.environ.get("BENCH_PIN", "0") == "1" and len(CPUS) >= 2


def pin(role: str) -> None:
    """Keep the gateway on the first CPU and the load generator on the others."""
    if PIN:
        os.sched_setaffinity(0, {CPUS[0]} if role == "gateway" else set(CPUS[1:]))


def gateway_preexec() -> None:
    raise_nofile()
    pin("gateway")


def start_gateway(secret: str, extra: list[str]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        # Every subscriber connects from 127.0.0.1: no per-IP connection rate (unless --gateway-arg sets one).
        [sys.executable, "-m", "telegraphy.tornado_gateway", "--port", "0", f"--secret={secret}", "--log-level", "warning",
         "--connection-rate", "0", *extra],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=gateway_preexec,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("Telegraphy gateway listening on"):
        proc.kill()
        raise SystemExit(f"gateway did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def receiver(ports: list[int], count: int, sample_every: int, args_nice: int, transport: str, conn: mp.connection.Connection) -> None:
    """Load-generator process: open ``count`` subscribers, then count events until told the total."""
    raise_nofile()
    pin("load")
    # The load generator yields the CPU to the gateway it measures.
    os.nice(args_nice)
    connect = CONNECT[transport]
    subs = []
    for i in range(count):
        sample = sample_every > 0 and i % sample_every == 0
        if len(ports) > 1 and transport == "sockjs-xhr-streaming":
            subs.append(connect_sockjs_xhr_streaming("127.0.0.1", ports[(i + 1) % len(ports)], TOPIC, sample, session_port=ports[i % len(ports)]))
        else:
            subs.append(connect("127.0.0.1", ports[i % len(ports)], TOPIC, sample))
    recv = Receiver(subs)
    conn.send(("ready", len(subs)))
    expected, deadline = conn.recv()
    recv.run(expected, deadline)
    conn.send(("done", recv.total(), recv.latencies))
    recv.close()


def publisher(port: int, secret: str, events: int, batch: int, rate: float, pad: int, out: list[float]) -> None:
    """Publish ``events`` events in POSTs of ``batch``; at ``rate`` events/s when rate > 0."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    token = mint_publish_token(secret, ttl=3600)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    start = time.monotonic()
    sent = 0
    while sent < events:
        if rate > 0:
            due = start + sent / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        n = min(batch, events - sent)
        now = time.time()
        body = json.dumps(
            # Each event carries its own meta.id, as telegraphy.publisher sends it (the gateway dedups by it).
            [
                {"name": TOPIC, "meta": {"event_type": "update", "id": uuid.uuid4().hex}, "data": {"t": now, "n": sent + i, "pad": "x" * pad}}
                for i in range(n)
            ]
        )
        conn.request("POST", "/publish", body, headers)
        response = conn.getresponse()
        response.read()
        if response.status != 202:
            raise SystemExit(f"publish failed: {response.status}")
        sent += n
    out.append(time.monotonic() - start)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(args: argparse.Namespace) -> None:
    secret = secrets.token_urlsafe(32)
    extra = list(args.gateway_arg)
    if args.transport == "sockjs-xhr-streaming":
        # One long streaming response for the whole run (the default 128K makes clients reopen).
        extra += ["--sockjs-response-limit", "1G"]
    workdir = Path(tempfile.mkdtemp(prefix="telegraphy-bench-"))
    if args.nodes > 1:
        extra += [f"--store=sqlite:///{workdir / 'shared.sqlite3'}", f"--bus={args.bus}?channel=telegraphy-bench-{secrets.token_hex(4)}"]
    gateways = [start_gateway(secret, extra) for _ in range(args.nodes)]
    gateway, port = gateways[0]
    ports = [p for _, p in gateways]
    pin("load")
    stop_at = time.monotonic() + args.timeout
    procs: list[mp.Process] = []
    try:
        base_rss = sum(rss_kib(g.pid) for g, _ in gateways)
        subscribers = args.idle or args.subscribers
        per_proc = [subscribers // args.procs + (1 if i < subscribers % args.procs else 0) for i in range(args.procs)]
        sample_every = 1 if args.rate else args.sample_every
        pipes = []
        for count in per_proc:
            parent, child = mp.Pipe()
            p = mp.Process(target=receiver, args=(ports, count, sample_every, args.nice, args.transport, child), daemon=True)
            p.start()
            pipes.append(parent)
            procs.append(p)
        opened = 0
        for pipe in pipes:
            if not pipe.poll(max(1.0, stop_at - time.monotonic())):
                raise SystemExit("subscribers did not connect in time")
            opened += pipe.recv()[1]
        time.sleep(0.5)  # let the gateway's allocator settle before reading RSS
        loaded_rss = sum(rss_kib(g.pid) for g, _ in gateways)
        per_conn = (loaded_rss - base_rss) * 1024 / opened
        nodes = f" on {args.nodes} nodes" if args.nodes > 1 else ""
        print(f"subscribers: {opened} over {args.transport}{nodes} in {args.procs} processes; gateway RSS {base_rss / 1024:.1f} MiB -> {loaded_rss / 1024:.1f} MiB, "
              f"{per_conn / 1024:.2f} KiB per connection")
        if args.idle:
            for pipe in pipes:
                pipe.send((0, time.monotonic()))
            return
        deadline = stop_at
        for pipe in pipes:
            pipe.send((args.events, deadline))
        durations: list[float] = []
        per_publisher = [args.events // args.publishers + (1 if i < args.events % args.publishers else 0) for i in range(args.publishers)]
        rate = args.rate / args.publishers if args.rate else 0
        threads = [
            threading.Thread(target=publisher, args=(port, secret, n, args.batch, rate, args.pad, durations)) for n in per_publisher if n
        ]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        received = 0
        samples: list[tuple[float, float]] = []
        for pipe in pipes:
            if pipe.poll(max(1.0, stop_at - time.monotonic() + 5)):
                _, n, lat = pipe.recv()
                received += n
                samples += lat
        latencies = [k for k, _ in samples]
        user_latencies = [u for _, u in samples]
        elapsed = time.monotonic() - t0
        expected = args.events * opened
        # Deliveries/s over the time to the last delivery is approximated by
        # the time until every receiver reported.
        print(f"events: {args.events} in POSTs of {args.batch} from {args.publishers} publishers"
              + (f" at {args.rate:g} events/s" if args.rate else "") + f"; event size ~{args.pad + 90} bytes")
        print(f"deliveries: {received} of {expected} ({expected - received} lost) in {elapsed:.2f} s = {received / elapsed:,.0f} deliveries/s")
        print(f"publish time: {max(durations):.2f} s = {args.events / max(durations):,.0f} events/s accepted")
        print(f"latency publish->subscriber socket ({len(latencies)} samples): p50 {percentile(latencies, 50) * 1000:.2f} ms, "
              f"p99 {percentile(latencies, 99) * 1000:.2f} ms, max {max(latencies, default=float('nan')) * 1000:.2f} ms")
        print(f"latency publish->load generator read: p50 {percentile(user_latencies, 50) * 1000:.2f} ms, "
              f"p99 {percentile(user_latencies, 99) * 1000:.2f} ms")
    finally:
        for node, _ in gateways:
            node.terminate()
        for node, _ in gateways:
            try:
                node.wait(10)
            except subprocess.TimeoutExpired:
                node.kill()
        for p in procs:
            p.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1000, help="events to publish (each goes to every subscriber)")
    parser.add_argument("--batch", type=int, default=10, help="events per POST")
    parser.add_argument("--publishers", type=int, default=2, help="concurrent publishing connections")
    parser.add_argument("--rate", type=float, default=0, help="events/s across publishers (0 = as fast as possible)")
    parser.add_argument("--pad", type=int, default=110, help="padding bytes in data (110 gives ~200-byte events)")
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--sample-every", type=int, default=50, help="measure latency on one connection in this many")
    parser.add_argument("--idle", type=int, default=0, help="only open this many idle subscribers and report memory")
    parser.add_argument("--nice", type=int, default=0, help="niceness of the load-generator processes (0 = same as the gateway)")
    parser.add_argument("--transport", choices=sorted(CONNECT), default="websocket", help="how subscribers connect")
    parser.add_argument("--nodes", type=int, default=1, help="gateway nodes sharing a store and a Redis bus")
    parser.add_argument("--bus", default="redis://127.0.0.1:6379/0", help="the Redis bus of --nodes > 1")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--gateway-arg", action="append", default=[], help="extra gateway argument (repeatable)")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
