"""Azure's weather on the fake service: injected error answers (retried by the client), answers lost
after the work is done, held and slow answers, and throttling above a rate."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import aiohttp
import pytest

from aioqueue import MessageNotFound, QueueClient, RetryPolicy, ServerBusy, ServiceError, TransportError
from aioqueue.testing import FakeQueueService
from tests.fake.conftest import FAST_RETRY
from tests.fake.rawhttp import send


def _statuses(fake: FakeQueueService, operation: str) -> list[int | None]:
    return [r.status for r in fake.requests if r.operation == operation]


async def test_a_503_then_success_is_retried_by_the_client(fake_queue: QueueClient, fake: FakeQueueService):
    await fake_queue.send_message("x")
    fake.fail("get_messages")
    [message] = await fake_queue.receive_messages()
    assert message.content == "x"
    assert _statuses(fake, "get_messages") == [503, 200]
    assert [r.error_code for r in fake.requests if r.operation == "get_messages"] == ["ServerBusy", None]


async def test_failures_beyond_the_retries_reach_the_caller(fake_queue: QueueClient, fake: FakeQueueService):
    fake.fail("peek_messages", status=500, code="InternalError", times=5)
    with pytest.raises(ServiceError) as info:
        await fake_queue.peek_messages()
    assert (info.value.status, info.value.error_code) == (500, "InternalError")
    assert _statuses(fake, "peek_messages") == [500] * FAST_RETRY.max_attempts
    assert await fake_queue.peek_messages() == []  # the fifth failure, then a retry
    assert _statuses(fake, "peek_messages")[-2:] == [500, 200]
    fake.fail("peek_messages", times=3)
    fake.clear_faults()
    assert await fake_queue.peek_messages() == []
    assert _statuses(fake, "peek_messages")[-1:] == [200]


async def test_an_injected_failure_names_its_code_and_retry_after(fake_queue: QueueClient, fake: FakeQueueService):
    fake.fail(status=429, code="TooManyRequests", message="Slow down.", retry_after=2)  # any operation
    answer = await send(fake, "GET", "/", query={"comp": "list"})
    assert (answer.status, answer.code, answer.headers["Retry-After"]) == (429, "TooManyRequests", "2")
    assert answer.error["Message"].startswith("Slow down.\nRequestId:")
    assert (await send(fake, "GET", "/", query={"comp": "list"})).status == 200


async def test_a_lost_put_answer_leaves_a_duplicate(fake_queue: QueueClient, fake: FakeQueueService):
    """Put Message is not idempotent: the client retries a lost answer and the message is stored twice
    (docs/guide/errors-and-retries.md)."""
    fake.lose_answer("put_message")
    receipt = await fake_queue.send_message("once")
    assert _statuses(fake, "put_message") == [None, 201]
    contents = [m.content for m in fake.queues[fake_queue.queue_name].messages]
    assert contents == ["once", "once"] and receipt.id in {m.id for m in fake.queues[fake_queue.queue_name].messages}


async def test_a_lost_delete_answer_is_still_a_delete(fake_queue: QueueClient, fake: FakeQueueService):
    await fake_queue.send_message("x")
    [message] = await fake_queue.receive_messages()
    fake.lose_answer("delete_message")
    await fake_queue.delete_message(message)  # the retry's 404 means done
    assert _statuses(fake, "delete_message") == [None, 404]
    assert fake.queues[fake_queue.queue_name].messages == ()


async def test_a_lost_update_answer_says_it_may_have_been_applied(fake_queue: QueueClient, fake: FakeQueueService):
    await fake_queue.send_message("x")
    [message] = await fake_queue.receive_messages()
    fake.lose_answer("update_message")
    with pytest.raises(MessageNotFound) as info:
        await fake_queue.update_message(message, visibility_timeout=0)
    assert info.value.maybe_applied  # it was: the lost attempt spent the receipt
    assert fake.queues[fake_queue.queue_name].messages[0].visible


async def test_a_held_request_waits_for_the_test(fake_queue: QueueClient, fake: FakeQueueService):
    await fake_queue.send_message("x")
    [message] = await fake_queue.receive_messages()
    gate = fake.hold("delete_message")
    task = asyncio.create_task(fake_queue.delete_message(message))
    await gate.arrived.wait()
    assert len(fake.queues[fake_queue.queue_name].messages) == 1 and not task.done()
    gate.release.set()
    await gate.done.wait()
    await task
    assert fake.queues[fake_queue.queue_name].messages == ()


async def test_a_slow_answer_takes_at_least_its_delay(fake_queue: QueueClient, fake: FakeQueueService):
    fake.slow("peek_messages", 0.2)
    started = time.monotonic()
    assert await fake_queue.peek_messages() == []
    assert time.monotonic() - started >= 0.2


async def test_throttling_answers_server_busy_above_the_rate(queue_name: str):
    async with (
        FakeQueueService(clock="frozen") as frozen,
        QueueClient.from_connection_string(frozen.connection_string, queue_name, retry=None) as queue,
    ):
        await queue.create_queue()
        frozen.throttle(5)
        for i in range(3):
            await queue.send_message(str(i))
        await queue.peek_messages(max_messages=2)  # counts 2: five in this second
        with pytest.raises(ServerBusy):
            await queue.send_message("sixth")
        frozen.advance(timedelta(seconds=1))
        await queue.send_message("next second")
        frozen.throttle(None)
        for i in range(10):
            await queue.send_message(str(i))
    assert [r.status for r in frozen.requests if r.status == 503] == [503]


async def test_faults_are_checked_when_asked_for(fake: FakeQueueService):
    with pytest.raises(ValueError, match="unknown operation"):
        fake.fail("get_message")
    with pytest.raises(ValueError, match="times"):
        fake.lose_answer("put_message", times=0)
    with pytest.raises(ValueError, match="status"):
        fake.fail(status=200)
    with pytest.raises(ValueError, match="delay"):
        fake.slow("put_message", -1)
    with pytest.raises(ValueError, match="messages_per_second"):
        fake.throttle(0)


async def test_retries_with_backoff_reach_the_fake(fake: FakeQueueService, queue_name: str):
    """The default policy's waits are real; a policy with short ones keeps a test fast."""
    policy = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.02)
    async with QueueClient.from_connection_string(fake.connection_string, queue_name, retry=policy) as queue:
        fake.fail("create_queue", times=2)
        assert await queue.create_queue() is True
    assert _statuses(fake, "create_queue") == [503, 503, 201]


async def test_closing_the_service_ends_a_request_it_still_holds(queue_name: str):
    fake = await FakeQueueService().start()
    async with QueueClient.from_connection_string(fake.connection_string, queue_name, retry=None) as queue:
        gate = fake.hold("create_queue")
        task = asyncio.create_task(queue.create_queue())
        await gate.arrived.wait()
        await asyncio.wait_for(fake.close(), timeout=30)  # never released: cancelled at close
        with pytest.raises(TransportError):
            await task
    assert queue_name not in fake.queues


async def test_a_lost_answer_to_a_refused_request_is_lost_too(fake: FakeQueueService):
    fake.lose_answer("put_message")
    body = b"<QueueMessage><MessageText>x</MessageText></QueueMessage>"
    with pytest.raises(aiohttp.ClientError):  # a POST: aiohttp retries only idempotent methods by itself
        await send(fake, "POST", "/nosuchqueue/messages", body=body)  # 404 QueueNotFound, never heard
    assert [r.status for r in fake.requests if r.operation == "put_message"] == [None]


async def test_a_dropped_put_is_not_stored_and_the_retry_stores_it_once(
    fake_queue: QueueClient, fake: FakeQueueService
):
    """The proxy's reset_before: the connection drops before the work, so the retry leaves no duplicate."""
    fake.drop("put_message")
    await fake_queue.send_message("once")
    assert _statuses(fake, "put_message") == [None, 201]
    assert [m.content for m in fake.queues[fake_queue.queue_name].messages] == ["once"]


async def test_a_truncated_answer_is_a_lost_answer_after_the_work(fake_queue: QueueClient, fake: FakeQueueService):
    """The proxy's truncate: the put is stored, its answer stops half-way, the client retries: two copies."""
    fake.truncate("put_message")
    await fake_queue.send_message("twice")
    assert _statuses(fake, "put_message") == [201, 201]
    assert [m.content for m in fake.queues[fake_queue.queue_name].messages] == ["twice", "twice"]
    fake.truncate("delete_queue")  # no body: cut before its headers; the retry's 404 means done
    await fake_queue.delete_queue()
    assert fake_queue.queue_name not in fake.queues


async def test_a_hold_after_the_work_keeps_the_answer_until_released(fake_queue: QueueClient, fake: FakeQueueService):
    await fake_queue.send_message("x")
    [message] = await fake_queue.receive_messages()
    gate = fake.hold("delete_message", after=True)
    task = asyncio.create_task(fake_queue.delete_message(message))
    await gate.arrived.wait()
    assert fake.queues[fake_queue.queue_name].messages == () and not task.done()  # done, not yet answered
    gate.release.set()
    await task
    await gate.done.wait()
    assert _statuses(fake, "delete_message") == [204]
