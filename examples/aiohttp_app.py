"""An aiohttp web app that enqueues work: one QueueClient for the app's
lifetime, shared by its requests.

python examples/aiohttp_app.py          # serves on http://127.0.0.1:8080
curl -X POST localhost:8080/jobs -d '{"resize": "cat.png"}'
curl localhost:8080/jobs                # queue length
"""

import json
import os
from collections.abc import AsyncIterator

from aiohttp import web

from aioqueue import MessageEncodingError, QueueClient
from aioqueue.testing import local_connection_string

QUEUE = web.AppKey("queue", QueueClient)


async def enqueue(request: web.Request) -> web.Response:
    try:
        job = await request.json()
    except json.JSONDecodeError:
        raise web.HTTPBadRequest(text="send a JSON body") from None
    try:
        receipt = await request.app[QUEUE].send_message(job)
    except MessageEncodingError as exc:  # e.g. over 64 KiB
        raise web.HTTPRequestEntityTooLarge(
            max_size=64 * 1024,
            actual_size=len(await request.read()),
            text=str(exc),
        ) from None
    return web.json_response({"id": receipt.id}, status=202)


async def length(request: web.Request) -> web.Response:
    properties = await request.app[QUEUE].get_queue_properties()
    count = properties.approximate_message_count
    return web.json_response({"approximate_length": count})


def make_app(conn_str: str, queue_name: str = "web-jobs") -> web.Application:
    async def queue_client(app: web.Application) -> AsyncIterator[None]:
        async with QueueClient.from_connection_string(
            conn_str, queue_name, message_encoding="json"
        ) as queue:
            await queue.create_queue(exist_ok=True)
            app[QUEUE] = queue
            yield  # the client (and its pool) lives as long as the app

    app = web.Application()
    app.cleanup_ctx.append(queue_client)
    app.router.add_post("/jobs", enqueue)
    app.router.add_get("/jobs", length)
    return app


async def serve() -> web.Application:
    stack = local_connection_string()
    conn_str = await stack.__aenter__()
    app = make_app(conn_str)

    async def stop_emulator(app: web.Application) -> None:
        await stack.__aexit__(None, None, None)

    app.on_cleanup.append(stop_emulator)
    return app


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    web.run_app(serve(), host="127.0.0.1", port=port)
