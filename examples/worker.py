"""A supervised worker: `queue.process()`, stopped gracefully by SIGTERM or
Ctrl-C.

    python examples/worker.py            # 50 demo jobs, until the queue is
                                         # empty for 3 s
    python examples/worker.py --forever  # until SIGTERM or Ctrl-C

On SIGTERM the worker stops fetching, gives prefetched messages back at once,
lets the handlers under way finish (each deletes its message only on success)
and prints what it did.
"""

import asyncio
import logging
import signal
import sys

from aioqueue import QueueClient, ReceivedMessage
from aioqueue.testing import local_connection_string


async def handle(msg: ReceivedMessage) -> None:
    await asyncio.sleep(0.01)  # the real work; raise to have it retried
    if msg.content == "job 13":
        raise ValueError("job 13 fails; after 3 tries it goes to jobs-poison")


async def main(forever: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(message)s"
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async with (
        local_connection_string() as conn_str,
        QueueClient.from_connection_string(conn_str, "jobs") as queue,
    ):
        await queue.create_queue(exist_ok=True)
        await queue.send_messages(f"job {i}" for i in range(50))
        print("worker started", flush=True)
        stats = await queue.process(
            handle,
            concurrency=16,
            stop=stop,
            idle_timeout=None if forever else 3,
            visibility_timeout=30,
            auto_renew=True,  # long handlers keep their messages hidden
            max_dequeue_count=3,  # then the message moves to jobs-poison
            retry_delay=lambda dequeue_count: 0.5 * dequeue_count,
        )
        counts = f"failed={stats.failed} poisoned={stats.poisoned}"
        print(f"processed={stats.processed} {counts}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(forever="--forever" in sys.argv))
