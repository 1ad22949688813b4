"""The two streams, ``receive()`` and ``receive_batches()``: async iterables over a :class:`Consumer`
(``_consumer.py``: the fetching, renewal, poison handling and clean-up behind both, and the worker)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from types import TracebackType

from ._consumer import Consumer
from ._link import QueueLink
from ._options import ReceiveSettings, poison_queue_for
from ._settle import MessageBatch, ReceivedMessage, shielded

__all__ = ["BatchStream", "MessageStream"]


class _Stream:
    """Shared shape of the two streams: async iterable, async context manager, ``aclose``."""

    def __init__(self, link: QueueLink, options: ReceiveSettings) -> None:
        self._link = link
        self._options = options
        self._poison_queue = poison_queue_for(options, link.queue_name)  # checked now, before any request
        self._consumer: Consumer | None = None

    def _get_consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(self._link, self._options, poison_queue=self._poison_queue)
        return self._consumer

    @property
    def poisoned(self) -> int:
        """Messages moved to the poison queue so far."""
        return self._consumer.poisoned if self._consumer else 0

    async def aclose(self) -> None:
        """Stop: renewals end and messages fetched but not yet yielded become visible at once."""
        if self._consumer is not None:
            await self._consumer.aclose()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await shielded(self.aclose())


class MessageStream(_Stream):
    """``async for msg in queue.receive(...)``: messages fetched up to 32 at a time, one at a time."""

    async def __aenter__(self) -> MessageStream:
        return self

    def __aiter__(self) -> AsyncGenerator[ReceivedMessage, None]:
        return self._iterate()

    async def _iterate(self) -> AsyncGenerator[ReceivedMessage, None]:
        consumer = self._get_consumer()
        buffer = consumer.buffer
        try:
            while True:
                if not buffer:
                    batch = await consumer.next_batch(consumer.prefetch())
                    if batch is None:
                        return
                    buffer.extend(batch)
                    continue
                if consumer.lapsing(buffer[0]):
                    await consumer.give_back_lapsing()
                    continue
                message = buffer.popleft()
                handed = time.monotonic()  # its pace counts its payload's download too
                if not await consumer.fetch_payload(message):
                    continue
                if message.lease_lost:  # renewing it failed while its payload downloaded: given back
                    buffer.appendleft(message)
                    continue
                consumer.yielded += 1
                yield message
                consumer.took(time.monotonic() - handed)
        finally:
            # break, an exception, cancellation or the end: give back what was never yielded
            await shielded(consumer.aclose())


class BatchStream(_Stream):
    """``async for batch in queue.receive_batches(...)``: a :class:`MessageBatch` per fetch."""

    async def __aenter__(self) -> BatchStream:
        return self

    def __aiter__(self) -> AsyncGenerator[MessageBatch, None]:
        return self._iterate()

    async def _iterate(self) -> AsyncGenerator[MessageBatch, None]:
        consumer = self._get_consumer()
        try:
            while True:
                batch = await consumer.next_batch(self._options.max_batch_size)
                if batch is None:
                    return
                batch = await consumer.fetch_payloads(batch)
                if not batch:
                    continue
                consumer.yielded += len(batch)
                yield MessageBatch(batch, consumer)
        finally:
            await shielded(consumer.aclose())
