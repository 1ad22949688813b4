"""Peek at the next message without hiding it or counting a dequeue."""

import asyncio

from aioqueue import QueueClient
from aioqueue.testing import local_connection_string


async def main() -> None:
    async with (
        local_connection_string() as conn_str,
        QueueClient.from_connection_string(conn_str, "walkthrough") as q,
    ):
        await q.create_queue(exist_ok=True)
        await q.send_message("Hello, World")
        for message in await q.peek_messages():
            times = message.dequeue_count
            print(f"peeked: {message.content} (dequeued {times} times)")


if __name__ == "__main__":
    asyncio.run(main())
