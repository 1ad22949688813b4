"""Read the approximate queue length (it may lag behind the true count)."""

import asyncio

from aioqueue import QueueClient
from aioqueue.testing import local_connection_string


async def main() -> None:
    async with (
        local_connection_string() as conn_str,
        QueueClient.from_connection_string(conn_str, "walkthrough") as q,
    ):
        await q.create_queue(exist_ok=True)
        properties = await q.get_queue_properties()
        print(f"approximate length: {properties.approximate_message_count}")


if __name__ == "__main__":
    asyncio.run(main())
