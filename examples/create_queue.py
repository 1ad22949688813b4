"""Create a queue (and say whether it was already there)."""

import asyncio

from aioqueue import QueueClient
from aioqueue.testing import local_connection_string


async def main() -> None:
    async with (
        local_connection_string() as conn_str,
        QueueClient.from_connection_string(conn_str, "walkthrough") as q,
    ):
        created = await q.create_queue(exist_ok=True)
        print("created" if created else "already exists", q.queue_name)


if __name__ == "__main__":
    asyncio.run(main())
