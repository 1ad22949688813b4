"""Delete the queue and every message in it."""

import asyncio

from aioqueue import QueueClient
from aioqueue.testing import local_connection_string


async def main() -> None:
    async with (
        local_connection_string() as conn_str,
        QueueClient.from_connection_string(conn_str, "walkthrough") as q,
    ):
        deleted = await q.delete_queue(missing_ok=True)
        print("deleted" if deleted else "there was no queue", q.queue_name)


if __name__ == "__main__":
    asyncio.run(main())
