"""Insert a message."""

import asyncio

from aioqueue import QueueClient
from aioqueue.testing import local_connection_string


async def main() -> None:
    async with (
        local_connection_string() as conn_str,
        QueueClient.from_connection_string(conn_str, "walkthrough") as q,
    ):
        await q.create_queue(exist_ok=True)
        receipt = await q.send_message("Hello, World")
        expires = f"{receipt.expires_on:%Y-%m-%d %H:%M} UTC"
        print(f"inserted {receipt.id}, expires {expires}")


if __name__ == "__main__":
    asyncio.run(main())
