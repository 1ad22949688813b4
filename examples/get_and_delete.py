"""Get a message, then delete it: two steps. Meanwhile it is invisible to
others for 30 s, so a crash between the steps loses nothing: the message
simply comes back."""

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
        for message in await q.receive_messages(visibility_timeout=30):
            print(f"got: {message.content}")
            await q.delete_message(message)
            print("deleted it")


if __name__ == "__main__":
    asyncio.run(main())
