"""Get 16 messages at a time, each hidden for 5 minutes while it is handled."""

import asyncio
from datetime import timedelta

from aioqueue import QueueClient
from aioqueue.testing import local_connection_string


async def main() -> None:
    async with (
        local_connection_string() as conn_str,
        QueueClient.from_connection_string(conn_str, "walkthrough") as q,
    ):
        await q.create_queue(exist_ok=True)
        await q.send_messages([f"task {i}" for i in range(20)])
        batch = await q.receive_messages(
            max_messages=16, visibility_timeout=timedelta(minutes=5)
        )
        for message in batch:
            await q.delete_message(message)  # after the work is done
        print(f"handled {len(batch)} messages in one batch")


if __name__ == "__main__":
    asyncio.run(main())
