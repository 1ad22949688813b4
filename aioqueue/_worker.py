"""``process()``: the supervised worker loop over a message stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from ._errors import ConfigurationError, ServerBusy, TransportError
from ._link import QueueLink
from ._models import ProcessStats
from ._options import ReceiveSettings
from ._settle import ReceivedMessage
from ._streams import Consumer, MessageStream
from ._validation import positive_int

__all__ = ["Handler", "process"]

log = logging.getLogger("aioqueue")

Handler = Callable[[ReceivedMessage], Awaitable[Any]]


async def process(
    link: QueueLink,
    handler: Handler,
    *,
    concurrency: int,
    options: ReceiveSettings,
    stop: asyncio.Event | None,
) -> ProcessStats:
    """The supervised worker loop behind ``QueueClient.process``."""
    positive_int(concurrency, "concurrency")
    if not callable(handler):
        raise ConfigurationError("handler must be an async function taking the message")
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()
    counts = {"processed": 0, "failed": 0}
    remaining = options.max_messages
    consumers: list[Consumer] = []

    async def run(message: ReceivedMessage) -> None:
        try:
            try:
                async with message:
                    await handler(message)
            except Exception as exc:
                counts["failed"] += 1
                log.error(
                    "handler failed for message %s (dequeue count %d): %r",
                    message.id,
                    message.dequeue_count,
                    exc,
                    exc_info=exc,
                )
            else:
                counts["processed"] += 1
        finally:
            slots.release()

    try:
        while remaining is None or remaining > 0:
            if stop is not None and stop.is_set():
                break
            stream = MessageStream(link, replace(options, max_messages=remaining), linger=True)
            consumers.append(stream._get_consumer())
            messages = stream.__aiter__()
            try:
                while True:
                    # take a handler slot first, so a cancellation never catches a message in between
                    await slots.acquire()
                    try:
                        message = await messages.__anext__()
                    except BaseException:
                        slots.release()
                        raise
                    if remaining is not None:
                        remaining -= 1
                    task = asyncio.ensure_future(run(message))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    if stop is not None and stop.is_set():
                        break
            except StopAsyncIteration:
                break  # max_messages reached or idle_timeout passed
            except (TransportError, ServerBusy) as exc:
                log.warning("receiving failed, trying again shortly: %s", exc)
                await asyncio.sleep(options.poll_interval[1])
            finally:
                await messages.aclose()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()  # each handler's message is released at once by its 'async with'
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        raise
    finally:
        for consumer in consumers:
            await consumer.aclose()
    poisoned = sum(consumer.poisoned for consumer in consumers)
    return ProcessStats(processed=counts["processed"], failed=counts["failed"], poisoned=poisoned)
