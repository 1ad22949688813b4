"""Messages per second of `aioqueue worker --processes 1` and `--processes 2` on this machine.

    python benchmarks/worker_scaling.py [--messages 3000] [--rounds 2] [--concurrency 16]

Each measured run gets a fresh Azurite (its once-a-minute sweep of deleted messages stalls it after a few
thousand deletions), a queue filled beforehand, and a worker process that drains it with a handler doing
no work of its own; the time is from starting the worker to the queue reading empty. Rounds interleave
the two settings, so a noisy moment hits both.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aioqueue import QueueClient
from aioqueue.testing import Azurite

SCRIPT = Path(sys.executable).parent / "aioqueue"
HANDLER = "async def handle(msg):\n    return None\n"


async def fill(conn_str: str, count: int) -> None:
    async with QueueClient.from_connection_string(conn_str, "scaling") as q:
        await q.create_queue()
        await q.send_messages((f"job {i}" for i in range(count)), concurrency=32)


async def wait_empty(conn_str: str) -> None:
    async with QueueClient.from_connection_string(conn_str, "scaling") as q:
        while (await q.get_queue_properties()).approximate_message_count:  # noqa: ASYNC110 - polls the service
            await asyncio.sleep(0.05)


def measure(processes: int, messages: int, concurrency: int, folder: str) -> float:
    with Azurite() as emulator:
        conn_str = emulator.connection_string
        asyncio.run(fill(conn_str, messages))
        env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": conn_str}
        started = time.perf_counter()
        proc = subprocess.Popen(
            [
                str(SCRIPT),
                "worker",
                "scaling",
                "noop:handle",
                "--processes",
                str(processes),
                "--concurrency",
                str(concurrency),
                "--log-level",
                "WARNING",
            ],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        try:
            asyncio.run(wait_empty(conn_str))
            elapsed = time.perf_counter() - started
        finally:
            proc.terminate()
            proc.wait(60)
    return messages / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    results: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "noop.py").write_text(HANDLER)
        for _ in range(args.rounds):
            for processes in (1, 2):
                rate = measure(processes, args.messages, args.concurrency, folder)
                results[processes].append(rate)
                print(f"--processes {processes}: {rate:,.0f} msgs/s", flush=True)
    one, two = statistics.median(results[1]), statistics.median(results[2])
    print(
        f"median of {args.rounds} rounds, {args.messages} messages, concurrency {args.concurrency} per process, "
        f"{os.cpu_count()} cores: 1 process {one:,.0f} msgs/s, 2 processes {two:,.0f} msgs/s ({two / one:.2f}x)"
    )


if __name__ == "__main__":
    main()
