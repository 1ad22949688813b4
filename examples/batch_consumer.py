"""A batch consumer: handle up to 32 messages at a time, all deleted together
on success.

python examples/batch_consumer.py
"""

import asyncio
import json

from aioqueue import QueueClient
from aioqueue.testing import local_connection_string


async def store_rows(rows: list[dict[str, int]]) -> None:
    await asyncio.sleep(0.01)  # e.g. one bulk INSERT instead of 32 single ones


async def main() -> None:
    async with (
        local_connection_string() as conn_str,
        QueueClient.from_connection_string(
            conn_str, "events", message_encoding="json"
        ) as queue,
    ):
        await queue.create_queue(exist_ok=True)
        await queue.send_messages({"event": i} for i in range(100))

        total = 0
        async with queue.receive_batches(
            max_batch_size=32, idle_timeout=2
        ) as batches:
            async for batch in batches:
                # every message is deleted when the block ends cleanly, and
                # released if it raises
                async with batch:
                    await store_rows([m.content for m in batch])
                total += len(batch)
                print(f"stored a batch of {len(batch)}")
        print(json.dumps({"stored": total}))
        await queue.delete_queue()


if __name__ == "__main__":
    asyncio.run(main())
