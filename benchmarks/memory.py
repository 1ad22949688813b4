"""Client memory per 1,000 messages in flight: a worker whose handlers all hold their message.

    python benchmarks/memory.py [--in-flight 1000] [--size 256] [--auto-renew]

A worker with concurrency N takes N messages and parks each handler on an event; once all N are in
their handlers, the Python allocations the process holds (tracemalloc) and its resident set are read
and compared with the same process before the worker started. What is counted: the messages, their
models, their handler tasks, the worker's bookkeeping and the pool's buffers, but not the emulator.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sys
import tracemalloc

from aioqueue import QueueClient, ReceivedMessage
from aioqueue.testing import Azurite


def rss_kib() -> int:
    """The current resident set (from /proc; the peak elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def measure(conn_str: str, in_flight: int, size: int, auto_renew: bool) -> dict[str, float]:
    async with QueueClient.from_connection_string(conn_str, "memory") as queue:
        await queue.create_queue()
        await queue.send_messages([f"{i:08d}".ljust(size, "x") for i in range(in_flight)], concurrency=32)
        await queue.peek_messages()  # the pool is open and warm before the baseline
        gc.collect()
        base_py, base_rss = tracemalloc.get_traced_memory()[0], rss_kib()
        entered = 0
        all_in = asyncio.Event()
        release = asyncio.Event()

        async def handler(msg: ReceivedMessage) -> None:
            nonlocal entered
            entered += 1
            if entered == in_flight:
                all_in.set()
            await release.wait()

        worker = queue.worker(
            handler, concurrency=in_flight, max_messages=in_flight, visibility_timeout=300, auto_renew=auto_renew
        )
        task = asyncio.ensure_future(worker.run())
        await asyncio.wait_for(all_in.wait(), 600)
        gc.collect()
        held_py, held_rss = tracemalloc.get_traced_memory()[0], rss_kib()
        release.set()
        stats = await task
        assert stats.processed == in_flight, stats
    return {"python_bytes": held_py - base_py, "rss_kib": held_rss - base_rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--in-flight", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256, help="bytes of message text")
    parser.add_argument("--auto-renew", action="store_true")
    args = parser.parse_args()
    tracemalloc.start()
    with Azurite() as emulator:
        result = asyncio.run(measure(emulator.connection_string, args.in_flight, args.size, args.auto_renew))
    per_1000 = 1000 / args.in_flight
    print(
        f"{args.in_flight} messages of {args.size} B in flight{' (auto_renew)' if args.auto_renew else ''}: "
        f"{result['python_bytes'] * per_1000 / 1024:,.0f} KiB of Python allocations and "
        f"{result['rss_kib'] * per_1000:,.0f} KiB of RSS per 1,000 messages "
        f"({result['python_bytes'] / args.in_flight:,.0f} B each); Python {sys.version.split()[0]}"
    )


if __name__ == "__main__":
    main()
