"""How many events per second one web-app process gets accepted by the gateway.

Starts a real gateway subprocess on a free port, then publishes from this
process through :class:`telegraphy.publisher.Publisher`, the way the Django
app does:

- ``unbatched``: one ``publish()`` per event (one HTTP request each; what a
  save in autocommit mode costs);
- ``batch N``: ``N`` events per ``batch()`` block (one request per
  transaction of ``N`` changes);
- optionally the same from several threads sharing one publisher (a
  threaded gunicorn worker).

Prints events/s and requests/s per mode; numbers, not pass/fail::

    python bench/publish.py                    # 3 s per mode
    python bench/publish.py --seconds 10 --threads 4
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from telegraphy.event import make_event  # noqa: E402
from telegraphy.publisher import Publisher  # noqa: E402

LISTENING = "Telegraphy gateway listening on "


def start_gateway(secret: str) -> tuple[subprocess.Popen[str], str]:
    """Start a gateway on a free port; return the process and its base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAPHY_")}
    env.update(TELEGRAPHY_SECRET=secret, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "telegraphy.tornado_gateway", "--port", "0", "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(LISTENING):
        process.kill()
        raise SystemExit(f"the gateway did not start: {line!r}")
    port = line.strip().rsplit(":", 1)[1]
    return process, f"http://127.0.0.1:{port}"


def run(publisher: Publisher, batch_size: int, seconds: float, threads: int) -> tuple[int, int, float]:
    """Publish for ``seconds`` from ``threads`` threads; return (events, requests, elapsed)."""
    counts = [0] * threads
    requests = [0] * threads
    deadline = time.perf_counter() + seconds
    event = make_event("bench.Item", {"pk": 1, "title": "benchmark", "count": 42}, "update")

    def work(index: int) -> None:
        while time.perf_counter() < deadline:
            if batch_size == 1:
                publisher.publish(event)
                counts[index] += 1
            else:
                with publisher.batch():
                    for _ in range(batch_size):
                        publisher.publish(event)
                counts[index] += batch_size
            requests[index] += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts), sum(requests), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each mode (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="also run each mode with this many threads")
    parser.add_argument("--batch-sizes", default="10,100", help="comma-separated batch sizes (default 10,100)")
    args = parser.parse_args()

    secret = secrets.token_urlsafe(48)
    gateway, url = start_gateway(secret)
    try:
        publisher = Publisher(url, secret)
        publisher.publish(make_event("bench.Item", {"warm": "up"}))  # connect and mint before timing
        sizes = [1] + [int(size) for size in args.batch_sizes.split(",") if size]
        thread_counts = sorted({1, args.threads})
        print(f"gateway {url}, Python {sys.version.split()[0]}, {args.seconds:g} s per mode")
        print(f"{'mode':<14}{'threads':>8}{'events/s':>12}{'requests/s':>12}{'ms/request':>12}")
        for threads in thread_counts:
            for size in sizes:
                events, requests, elapsed = run(publisher, size, args.seconds, threads)
                mode = "unbatched" if size == 1 else f"batch {size}"
                per_request = elapsed * 1000 * threads / requests if requests else float("nan")
                print(f"{mode:<14}{threads:>8}{events / elapsed:>12,.0f}{requests / elapsed:>12,.0f}{per_request:>12.2f}")
        publisher.close()
    finally:
        gateway.terminate()
        gateway.wait(10)


if __name__ == "__main__":
    main()
