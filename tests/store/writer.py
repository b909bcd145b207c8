"""Append numbered events to one topic from a process of its own.

Used by ``test_contract.py`` to show that writers in separate OS processes
never get the same offset::

    python writer.py URL PREFIX TOPIC TAG COUNT

Opens the store, prints ``ready``, waits for a line on stdin (so that every
writer starts at once), appends ``TAG:0`` ... ``TAG:<COUNT-1>`` (alternating
``append`` and ``append_many`` of two), then prints ``done`` and exits 0.
"""

from __future__ import annotations

import asyncio
import sys
import time

from telegraphy.store import open_store


async def main(url: str, prefix: str, topic: str, tag: str, count: int) -> None:
    """Append the events, in order."""
    store = open_store(url, prefix=prefix)
    await store.open()
    try:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        index = 0
        while index < count:
            if index % 3 == 0 and index + 1 < count:
                batch = [(topic, f"{tag}:{index}".encode()), (topic, f"{tag}:{index + 1}".encode())]
                await store.append_many(batch, now=time.time())
                index += 2
            else:
                await store.append(topic, f"{tag}:{index}".encode(), now=time.time())
                index += 1
        print("done", flush=True)
    finally:
        await store.close()


if __name__ == "__main__":
    url, prefix, topic, tag, count = sys.argv[1:6]
    asyncio.run(main(url, prefix, topic, tag, int(count)))
