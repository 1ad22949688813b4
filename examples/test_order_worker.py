"""A user's tests of a queue worker on the fake Queue service: a poison
message and a message that expires, each in well under a second, no Node.js.

    pip install 'aioqueue-azure[testing]'
    pytest examples/test_order_worker.py   # with asyncio_mode = "auto"

The fake's clock stands in for the minute a failed order waits and for the
hours an order may wait: `service.advance()` moves it, nothing sleeps.
"""

import asyncio
import json
from datetime import timedelta

from aioqueue import PoisonRecord, QueueClient, ReceivedMessage
from aioqueue.testing import FakeQueueService


class OrderWorker:
    """The code under test: it charges each order (JSON: an id, an amount)."""

    def __init__(self) -> None:
        self.charged: list[int] = []

    async def handle(self, msg: ReceivedMessage) -> None:
        order = json.loads(msg.content)  # a malformed order raises
        self.charged.append(order["id"])


async def test_a_malformed_order_ends_in_the_poison_queue(
    fake_queue_service: FakeQueueService,
) -> None:
    service = fake_queue_service
    worker = OrderWorker()
    failed: asyncio.Queue[int] = asyncio.Queue()
    poisoned = asyncio.Event()
    stop = asyncio.Event()
    async with QueueClient.from_connection_string(
        service.connection_string, "orders"
    ) as queue:
        await queue.create_queue()
        await queue.send_message("{not json")
        running = asyncio.create_task(
            queue.process(
                worker.handle,
                max_dequeue_count=3,  # the 3rd failure: to orders-poison
                retry_delay=60,  # a failed order waits a minute
                poll_interval=0.05,  # an empty queue is asked again soon
                stop=stop,
                on_failure=lambda msg, error: failed.put_nowait(
                    msg.dequeue_count
                ),
                on_poison=lambda msg, why: poisoned.set(),
            )
        )
        for delivery in (1, 2):
            assert await failed.get() == delivery  # failed, released
            service.advance(timedelta(seconds=61))  # its minute is over
        assert await failed.get() == 3  # its last allowed delivery failed:
        await poisoned.wait()  # moved then, with the reason
        stop.set()
        stats = await running
    assert (stats.processed, stats.failed, stats.poisoned) == (0, 3, 1)
    poison = service.queues["orders-poison"]
    (record,) = [PoisonRecord.parse(m.content) for m in poison.messages]
    assert record.content == "{not json"  # the order, exactly
    assert record.failures[-1].type == "json.decoder.JSONDecodeError"
    assert service.queues["orders"].messages == ()


async def test_an_order_nobody_takes_within_its_hour_expires(
    fake_queue_service: FakeQueueService,
) -> None:
    service = fake_queue_service
    worker = OrderWorker()
    async with QueueClient.from_connection_string(
        service.connection_string, "orders"
    ) as queue:
        await queue.create_queue()
        await queue.send_message(
            '{"id": 1, "amount": 5}', time_to_live=timedelta(hours=1)
        )
        await queue.send_message('{"id": 2, "amount": 7}')  # 7 days
        service.advance(timedelta(hours=2))  # the worker was down
        stats = await queue.process(worker.handle, max_messages=1)
    assert stats.processed == 1 and worker.charged == [2]  # 1 was gone
    assert service.queues["orders"].messages == ()  # 2 handled, deleted
