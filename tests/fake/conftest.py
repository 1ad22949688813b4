"""The fake queue service's own tests: a fresh :class:`~aioqueue.testing.FakeQueueService` per test
(``fake``), and a queue on it through the real client (``fake_queue``). No Azurite: the unit tier."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from aioqueue import QueueClient, RetryPolicy
from aioqueue.testing import FakeQueueService

# retries that wait milliseconds, not the default's tenths of seconds
FAST_RETRY = RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.05)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeQueueService]:
    async with FakeQueueService() as service:
        yield service


@pytest_asyncio.fixture
async def fake_queue(fake: FakeQueueService, queue_name: str) -> AsyncIterator[QueueClient]:
    async with QueueClient.from_connection_string(fake.connection_string, queue_name, retry=FAST_RETRY) as queue:
        await queue.create_queue()
        yield queue
