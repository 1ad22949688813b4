"""Change a message's content in place (and when it becomes visible again)."""

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
        [message] = await q.receive_messages()
        await q.update_message(
            message, content="Updated contents", visibility_timeout=0
        )
        print(f"updated: {(await q.peek_messages())[0].content}")


if __name__ == "__main__":
    asyncio.run(main())
