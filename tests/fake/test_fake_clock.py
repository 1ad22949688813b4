"""The fake service's clock: advance() makes hidden messages visible and expires them, -1 never
expires, a frozen clock gives exact times, and what clients date with their own clocks stays valid."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest

from aioqueue import MessageNotFound, QueueClient
from aioqueue.testing import FakeQueueService
from tests.fake.rawhttp import send

T0 = datetime(2030, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
NEVER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)


async def test_a_received_message_is_hidden_until_its_visibility_timeout_lapses(fake_queue: QueueClient, fake):
    await fake_queue.send_message("job")
    [message] = await fake_queue.receive_messages(visibility_timeout=30)
    assert await fake_queue.receive_messages() == []
    assert not fake.queues[fake_queue.queue_name].messages[0].visible
    fake.advance(timedelta(seconds=31))
    [again] = await fake_queue.receive_messages()
    assert (again.id, again.dequeue_count) == (message.id, 2)


async def test_a_message_sent_hidden_appears_after_its_delay(fake_queue: QueueClient, fake):
    await fake_queue.send_message("later", visibility_timeout=3600)
    assert await fake_queue.peek_messages() == []
    fake.advance(timedelta(minutes=59))
    assert await fake_queue.peek_messages() == []
    fake.advance(timedelta(minutes=2))
    assert [p.content for p in await fake_queue.peek_messages()] == ["later"]


async def test_a_message_expires_when_its_time_to_live_runs_out(fake_queue: QueueClient, fake):
    await fake_queue.send_message("short", time_to_live=60)
    await fake_queue.send_message("default")  # 7 days
    [message] = await fake_queue.receive_messages(visibility_timeout=10)
    fake.advance(timedelta(seconds=61))
    assert [p.content for p in await fake_queue.peek_messages(max_messages=32)] == ["default"]
    with pytest.raises(MessageNotFound):
        await fake_queue.delete_message(message)
    fake.advance(timedelta(days=7))
    assert await fake_queue.peek_messages() == []
    assert (await fake_queue.get_queue_properties()).approximate_message_count == 0


async def test_a_message_sent_with_ttl_minus_one_never_expires(fake_queue: QueueClient, fake):
    receipt = await fake_queue.send_message("forever", time_to_live=-1)
    assert receipt.expires_on == NEVER  # Azure's "never": the last second of 9999
    fake.advance(timedelta(days=3650))
    [peeked] = await fake_queue.peek_messages()
    assert (peeked.content, peeked.expires_on) == ("forever", NEVER)


async def test_a_frozen_clock_gives_exact_times(queue_name: str):
    async with (
        FakeQueueService(clock="frozen", start=T0) as fake,
        QueueClient.from_connection_string(fake.connection_string, queue_name) as queue,
    ):
        await queue.create_queue()
        sent = await queue.send_message("x", time_to_live=90)
        assert (sent.inserted_on, sent.expires_on, sent.next_visible_on) == (T0, T0 + timedelta(seconds=90), T0)
        [message] = await queue.receive_messages(visibility_timeout=30)
        assert message.next_visible_on == T0 + timedelta(seconds=30)
        fake.advance(timedelta(seconds=29))
        assert await queue.receive_messages() == []
        fake.advance(timedelta(seconds=1))  # visible at exactly its time
        [again] = await queue.receive_messages(visibility_timeout=30)
        assert again.dequeue_count == 2
        fake.advance(timedelta(seconds=59))  # T0 + 89 s: visible again, not yet expired
        assert [p.dequeue_count for p in await queue.peek_messages()] == [2]
        fake.advance(timedelta(seconds=1))  # T0 + 90 s: expired at exactly its time
        assert await queue.peek_messages() == [] and fake.now == T0 + timedelta(seconds=90)


async def test_the_answers_date_is_the_services_time(queue_name: str):
    async with FakeQueueService(clock="frozen", start=T0) as fake:
        fake.advance(timedelta(days=1))
        answer = await send(fake, "GET", "/", query={"comp": "list"})
        assert parsedate_to_datetime(answer.headers["Date"]) == T0 + timedelta(days=1)


async def test_advance_never_makes_a_clients_requests_stale(fake_queue: QueueClient, fake):
    """Shared Key's 15-minute check compares x-ms-date with the real time, which the client's clock shares."""
    fake.advance(timedelta(days=8))
    await fake_queue.send_message("after a week")
    assert len(await fake_queue.peek_messages()) == 1


async def test_a_service_started_in_the_future_still_serves_todays_clients(queue_name: str):
    async with FakeQueueService(start=T0) as fake:
        assert abs(fake.now - T0) < timedelta(minutes=1)
        async with QueueClient.from_connection_string(fake.connection_string, queue_name) as queue:
            await queue.create_queue()
            sent = await queue.send_message("x")
            assert abs(sent.inserted_on - T0) < timedelta(minutes=1)


def test_the_clock_never_goes_back_and_starts_aware():
    fake = FakeQueueService()
    with pytest.raises(ValueError, match="never goes back"):
        fake.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="aware"):
        FakeQueueService(start=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="'real' or 'frozen'"):
        FakeQueueService(clock="fast")  # type: ignore[arg-type]
