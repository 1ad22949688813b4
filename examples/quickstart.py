"""The classic Azure Queue walkthrough, end to end, with aioqueue.

Runs against $AZURE_STORAGE_CONNECTION_STRING when set; otherwise against the
local Azurite emulator on 127.0.0.1:10001, which is started (and stopped again)
when none is running. Its first line says which. From a checkout:
`./dev quickstart`
"""

import asyncio
import uuid

from aioqueue import QueueClient
from aioqueue.testing import local_connection_string


async def main() -> None:
    # report=print: the first line says what it talks to
    async with local_connection_string(report=print) as conn_str:
        queue_name = f"quickstart-{uuid.uuid4().hex[:8]}"
        async with QueueClient.from_connection_string(
            conn_str, queue_name
        ) as queue:
            # Create a queue.
            await queue.create_queue()
            print(f"created queue {queue.queue_name}")

            # Insert a message.
            await queue.send_message("Hello, World")

            # Peek at the next message without changing it.
            [peeked] = await queue.peek_messages()
            print(f"peeked: {peeked.content}")

            # Change a message's content in place (and make it visible again).
            [message] = await queue.receive_messages()
            await queue.update_message(
                message, content="Updated contents", visibility_timeout=0
            )
            print("updated the message's content")

            # Get a message, then delete it: two steps; it is invisible for 30 s
            # in between.
            [message] = await queue.receive_messages(visibility_timeout=30)
            print(f"got: {message.content}")
            await queue.delete_message(message)

            # Get up to 16 messages at once, hidden for 5 minutes while we work
            # on them.
            await queue.send_messages([f"message {i}" for i in range(20)])
            batch = await queue.receive_messages(
                max_messages=16, visibility_timeout=5 * 60
            )
            for message in batch:
                await queue.delete_message(message)
            print(f"processed a batch of {len(batch)}")

            # Read the approximate queue length.
            properties = await queue.get_queue_properties()
            print(f"approximate length: {properties.approximate_message_count}")

            # Delete the queue.
            await queue.delete_queue()
            print("deleted the queue")


if __name__ == "__main__":
    asyncio.run(main())
