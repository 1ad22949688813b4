"""Every queue and message operation against Azurite (visibility on send against the fake service, whose
clock the test moves)."""

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from aioqueue import (
    AccessPolicy,
    ConfigurationError,
    MessageEncodingError,
    MessageNotFound,
    MessageTooLarge,
    PeekedMessage,
    PopReceiptMismatch,
    QueueAlreadyExists,
    QueueClient,
    QueueLag,
    QueueMessage,
    QueueNotFound,
    SendMessagesError,
    SendReceipt,
    UpdateReceipt,
    _schedule,
)

UTC = timezone.utc
LAG_START = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)  # the frozen fake's clock, a whole second


async def test_create_exists_delete(conn_str, queue_name):
    async with QueueClient.from_connection_string(conn_str, queue_name) as q:
        assert await q.exists() is False
        assert await q.create_queue(metadata={"Team": "core"}) is True
        assert await q.exists() is True
        assert await q.create_queue(metadata={"Team": "core"}, exist_ok=True) is False
        with pytest.raises(QueueAlreadyExists):
            await q.create_queue(metadata={"Team": "core"})  # identical metadata: 204 from the service
        with pytest.raises(QueueAlreadyExists):
            await q.create_queue(metadata={"Team": "other"})  # different metadata: 409
        assert await q.delete_queue() is True
        assert await q.delete_queue(missing_ok=True) is False
        with pytest.raises(QueueNotFound) as info:
            await q.delete_queue()
        err = info.value
        assert err.status == 404 and err.error_code == "QueueNotFound" and err.request_id
        assert "QueueNotFound" in str(err)


async def test_exist_ok_leaves_an_existing_queue_and_its_other_metadata_alone(queue_client):
    await queue_client.set_queue_metadata({"Team": "core"})
    assert await queue_client.create_queue(metadata={"Team": "other"}, exist_ok=True) is False  # a 409
    assert (await queue_client.get_queue_properties()).metadata == {"Team": "core"}


async def test_properties_and_metadata(queue_client):
    props = await queue_client.get_queue_properties()
    assert props.name == queue_client.queue_name and props.metadata == {} and props.approximate_message_count == 0
    await queue_client.set_queue_metadata({"Owner": "ops", "tier": "gold"})
    await queue_client.send_messages(["a", "b", "c"])
    props = await queue_client.get_queue_properties()
    assert {k.lower(): v for k, v in props.metadata.items()} == {"owner": "ops", "tier": "gold"}
    assert props.approximate_message_count == 3
    await queue_client.set_queue_metadata(None)
    assert (await queue_client.get_queue_properties()).metadata == {}


async def test_lag_of_a_queue_on_azurite(conn_str, queue_client):
    empty = await queue_client.lag()
    assert isinstance(empty, QueueLag) and empty.oldest_message_age is None and empty.approximate_message_count == 0
    assert abs(empty.measured_on - datetime.now(UTC)) < timedelta(hours=1)  # Azurite's clock, this machine's
    await queue_client.send_message("not base64 at all: ~~")
    await queue_client.send_message("second")
    async with QueueClient.from_connection_string(conn_str, queue_client.queue_name, message_encoding="base64") as q:
        lag = await q.lag()  # nothing is decoded: content the encoding cannot read does not matter
    assert lag.approximate_message_count == 2
    assert lag.oldest_message_age is not None and timedelta(0) <= lag.oldest_message_age < timedelta(hours=1)
    assert lag.measured_on >= empty.measured_on
    assert len(await queue_client.peek_messages(max_messages=32)) == 2  # nothing hidden or received


@pytest.mark.fake_options(clock="frozen")
async def test_lag_ages_the_next_visible_message_by_the_service_s_clock(fake, fake_queue):
    """The service's clock runs 2 minutes ahead of this machine's here: an age taken with the local
    clock would be about 0 (clamped from -2 minutes), not the 120 s the service sees."""
    start = fake.now.replace(microsecond=0)
    first = await fake_queue.send_message("first")
    fake.advance(timedelta(seconds=90))
    await fake_queue.send_message("second")
    fake.advance(timedelta(seconds=30))
    lag = await fake_queue.lag()
    assert lag == QueueLag(
        oldest_message_age=timedelta(seconds=120),
        approximate_message_count=2,
        measured_on=start + timedelta(seconds=120),
    )
    [held] = await fake_queue.receive_messages(visibility_timeout=600)  # hidden: the next visible is younger
    assert held.id == first.id
    lag = await fake_queue.lag()
    assert lag.oldest_message_age == timedelta(seconds=30) and lag.approximate_message_count == 2
    await fake_queue.clear_messages()
    assert (await fake_queue.lag()).oldest_message_age is None


async def test_lag_sends_its_two_requests_at_once(fake, fake_queue):
    """The metadata is asked for while the peek is still held: concurrent, not one after the other."""
    await fake_queue.send_message("m")
    gate = fake.hold("peek_messages")
    task = asyncio.ensure_future(fake_queue.lag())
    await asyncio.wait_for(gate.arrived.wait(), 30)
    deadline = asyncio.get_running_loop().time() + 30
    while not any(r.operation == "get_queue_metadata" for r in fake.requests):
        assert asyncio.get_running_loop().time() < deadline, "no Get Queue Metadata while the peek was held"
        await asyncio.sleep(0.01)
    gate.release.set()
    lag = await asyncio.wait_for(task, 30)
    assert lag.approximate_message_count == 1 and lag.oldest_message_age is not None


@pytest.mark.fake_options(clock="frozen", start=LAG_START)
async def test_lag_counts_a_scheduled_message_from_when_it_is_due_not_from_its_insertion(fake, fake_queue, monkeypatch):
    """A message due in 8 days travels in an envelope hidden for a week; visible then only to be
    re-enqueued, it is not waiting for a handler (counted from its insertion, it would be a week-old
    message for a scaler to add replicas for): the message behind it is measured. Once due, it has
    waited since it was due."""
    monkeypatch.setattr(_schedule, "_now", lambda: fake.now)  # the sender's clock: the service's
    await fake_queue.send_message("later", delay=timedelta(days=8))
    fake.advance(timedelta(days=7, minutes=1))
    assert [m.content for m in await fake_queue.peek_messages()] == ["later"]  # visible, not due for a day
    lag = await fake_queue.lag()
    assert (lag.oldest_message_age, lag.approximate_message_count) == (None, 1)
    await fake_queue.send_message("now", time_to_live=60)  # gone (expired) before "later" is due
    fake.advance(timedelta(seconds=30))
    assert (await fake_queue.lag()).oldest_message_age == timedelta(seconds=30)  # "now", peeked past "later"
    fake.advance(timedelta(days=1))  # "later" was due 90 s ago
    lag = await fake_queue.lag()
    assert (lag.oldest_message_age, lag.approximate_message_count) == (timedelta(seconds=90), 1)


@pytest.mark.fake_options(clock="frozen", start=LAG_START)
async def test_lag_after_a_previous_measurement_does_not_count_a_delayed_message_s_hidden_hour(
    fake, fake_queue, monkeypatch
):
    """A message sent with delay=1h is hidden for the hour (the service's initial visibility), and Peek
    Messages gives only its insertion time. Measured 15 s after a measurement that found nothing
    waiting, it has waited at most those 15 s, not the hour and 5 s since its insertion."""
    monkeypatch.setattr(_schedule, "_now", lambda: fake.now)
    await fake_queue.send_message("reminder", delay=timedelta(hours=1))
    fake.advance(timedelta(minutes=59, seconds=50))
    before = await fake_queue.lag()
    assert (before.oldest_message_age, before.approximate_message_count) == (None, 1)
    fake.advance(timedelta(seconds=15))  # due 5 s ago
    after = await fake_queue.lag(previous=before)
    assert after.oldest_message_age == timedelta(seconds=15)
    assert (await fake_queue.lag()).oldest_message_age == timedelta(hours=1, seconds=5)  # alone: its insertion
    fake.advance(timedelta(seconds=15))
    assert (await fake_queue.lag(previous=after)).oldest_message_age == timedelta(seconds=30)  # still ageing
    with pytest.raises(ConfigurationError, match="previous must be a QueueLag"):
        await fake_queue.lag(previous=timedelta(0))


async def test_lag_of_a_missing_queue_is_queue_not_found(fake, queue_name):
    async with QueueClient.from_connection_string(fake.connection_string, queue_name, retry=None) as q:
        with pytest.raises(QueueNotFound):
            await q.lag()


async def test_send_peek_receive_delete(queue_client):
    receipt = await queue_client.send_message('hello <&> "world" é\n')
    assert isinstance(receipt, SendReceipt) and receipt.inserted_on.tzinfo is not None
    assert receipt.expires_on - receipt.inserted_on == timedelta(days=7)
    [peeked] = await queue_client.peek_messages(max_messages=32)
    assert isinstance(peeked, PeekedMessage)
    assert peeked.content == 'hello <&> "world" é\n' and peeked.dequeue_count == 0 and peeked.id == receipt.id
    [msg] = await queue_client.receive_messages(visibility_timeout=30)
    assert isinstance(msg, QueueMessage) and msg.dequeue_count == 1 and msg.content == peeked.content
    assert msg.next_visible_on > datetime.now(UTC) + timedelta(seconds=20)
    assert await queue_client.receive_messages() == []  # invisible meanwhile
    assert await queue_client.peek_messages() == []
    await queue_client.delete_message(msg)
    assert (await queue_client.get_queue_properties()).approximate_message_count == 0


async def test_receive_sixteen_with_five_minute_visibility(queue_client):
    await queue_client.send_messages([f"m{i}" for i in range(20)])
    batch = await queue_client.receive_messages(max_messages=16, visibility_timeout=timedelta(minutes=5))
    assert len(batch) == 16
    assert all(m.next_visible_on > datetime.now(UTC) + timedelta(minutes=4) for m in batch)
    assert len(await queue_client.receive_messages(max_messages=32)) == 4


async def test_send_messages_keeps_input_order_and_takes_async_iterables(queue_client):
    receipts = await queue_client.send_messages([f"m{i}" for i in range(40)], concurrency=8)
    assert len(receipts) == 40 and len({r.id for r in receipts}) == 40

    async def gen():
        for i in range(5):
            await asyncio.sleep(0)
            yield f"a{i}"

    more = await queue_client.send_messages(gen())
    assert len(more) == 5
    peeked = {p.id: p.content for p in await queue_client.peek_messages(max_messages=32)}
    for i, r in enumerate(receipts):
        if r.id in peeked:
            assert peeked[r.id] == f"m{i}"


async def test_send_messages_validates_everything_before_any_request(queue_client):
    with pytest.raises(MessageEncodingError):
        await queue_client.send_messages(["ok", "bad \x01"])
    assert await queue_client.peek_messages() == []


async def test_send_messages_partial_failure_reports_what_was_sent(queue_client):
    async def gen():
        yield "one"
        yield "two"
        yield b"not text"

    with pytest.raises(SendMessagesError) as info:
        await queue_client.send_messages(gen(), concurrency=1)
    assert isinstance(info.value.error, MessageEncodingError) and info.value.__cause__ is info.value.error
    assert "2 of 2 messages were sent" in str(info.value)
    receipts = info.value.receipts
    assert len(receipts) == 2 and all(isinstance(r, SendReceipt) for r in receipts)
    assert len(await queue_client.peek_messages(max_messages=32)) == 2


@pytest.mark.fake_options(clock="frozen")
async def test_visibility_and_ttl_on_send(fake, fake_queue):
    r = await fake_queue.send_message("later", visibility_timeout=3, time_to_live=60)
    assert r.expires_on - r.inserted_on == timedelta(seconds=60)
    assert await fake_queue.peek_messages() == []
    fake.advance(timedelta(seconds=2))
    assert await fake_queue.peek_messages() == []
    fake.advance(timedelta(seconds=1))  # visible after 3 s
    assert [p.content for p in await fake_queue.peek_messages()] == ["later"]
    forever = await fake_queue.send_message("forever", time_to_live=-1)
    assert forever.expires_on.year >= 9999


async def test_update_message_in_place(queue_client):
    await queue_client.send_message("original")
    [msg] = await queue_client.receive_messages()
    old_receipt = msg.pop_receipt
    result = await queue_client.update_message(msg, content="changed", visibility_timeout=0)
    assert isinstance(result, UpdateReceipt)
    assert msg.pop_receipt == result.pop_receipt != old_receipt
    assert msg.next_visible_on == result.next_visible_on
    assert [p.content for p in await queue_client.peek_messages()] == ["changed"]
    # omitting content keeps it; the refreshed object works again
    await queue_client.update_message(msg, visibility_timeout=30)
    await queue_client.update_message(msg, visibility_timeout=0)
    assert [p.content for p in await queue_client.peek_messages()] == ["changed"]
    await queue_client.update_message(msg, content="", visibility_timeout=0)
    assert [p.content for p in await queue_client.peek_messages()] == [""]
    # the old receipt is dead (Azurite: PopReceiptMismatch, Azure: MessageNotFound)
    with pytest.raises((PopReceiptMismatch, MessageNotFound)):
        await queue_client.delete_message(msg.id, old_receipt)
    await queue_client.delete_message(msg.id, msg.pop_receipt)
    assert await queue_client.peek_messages() == []


async def test_update_and_delete_by_id_need_a_receipt(queue_client):
    with pytest.raises(ConfigurationError):
        await queue_client.delete_message("some-id")
    with pytest.raises(ConfigurationError):
        await queue_client.update_message("some-id", visibility_timeout=1)


async def test_delete_with_send_receipt(queue_client):
    receipt = await queue_client.send_message("x")
    await queue_client.delete_message(receipt.id, receipt.pop_receipt)
    assert await queue_client.peek_messages() == []


async def test_delete_missing_message_is_typed(queue_client):
    r = await queue_client.send_message("x")
    await queue_client.delete_message(r.id, r.pop_receipt)
    with pytest.raises((MessageNotFound, PopReceiptMismatch)):
        await queue_client.delete_message(r.id, r.pop_receipt)


async def test_clear_messages(queue_client):
    await queue_client.send_messages(["a"] * 10)
    await queue_client.clear_messages()
    assert await queue_client.peek_messages(max_messages=32) == []


async def test_message_size_limit(queue_client):
    await queue_client.send_message("x" * 65536)
    [m] = await queue_client.receive_messages()
    assert len(m.content) == 65536
    with pytest.raises(MessageTooLarge):
        await queue_client.send_message("x" * 65537)


@pytest.mark.parametrize(
    ("encoding", "content"),
    [("text", "plain"), ("base64", "bäse64 \x01 ok"), ("binary", bytes(range(256))), ("json", {"n": [1, 2.5, None]})],
)
async def test_encodings_round_trip_through_the_service(conn_str, queue_client, encoding, content):
    async with QueueClient.from_connection_string(conn_str, queue_client.queue_name, message_encoding=encoding) as q:
        await q.send_message(content)
        [peeked] = await q.peek_messages()
        assert peeked.content == content
        [msg] = await q.receive_messages()
        assert msg.content == content
        await q.update_message(msg, content=content, visibility_timeout=0)
        assert (await q.peek_messages())[0].content == content


async def test_access_policies(queue_client):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    policies = {
        "readers": AccessPolicy("r", start, start + timedelta(days=365)),
        "workers": AccessPolicy("raup", None, start + timedelta(days=30)),
    }
    await queue_client.set_queue_access_policy(policies)
    assert await queue_client.get_queue_access_policy() == policies
    await queue_client.set_queue_access_policy({})
    assert await queue_client.get_queue_access_policy() == {}
    with pytest.raises(ConfigurationError, match="at most 5"):
        await queue_client.set_queue_access_policy({f"p{i}": None for i in range(6)})


async def test_a_stored_policy_may_leave_out_its_start_expiry_or_permission(queue_client):
    """A SAS naming the policy supplies what it leaves out; reading the policies back invents nothing."""
    start = datetime(2030, 1, 1, tzinfo=UTC)
    policies = {
        "readers": AccessPolicy(permission="r"),
        "from-2030": AccessPolicy(start=start),
        "until-2030": AccessPolicy(expiry=start),
    }
    await queue_client.set_queue_access_policy(policies)
    assert await queue_client.get_queue_access_policy() == policies


@pytest.mark.parametrize(
    "call",
    [
        lambda q: q.receive_messages(max_messages=33),
        lambda q: q.receive_messages(max_messages=0),
        lambda q: q.peek_messages(max_messages=40),
        lambda q: q.receive_messages(visibility_timeout=0),
        lambda q: q.send_message("x", visibility_timeout=8 * 24 * 3600),
        lambda q: q.send_message("x", visibility_timeout=60, time_to_live=30),
        lambda q: q.send_message("x", time_to_live=0),
        lambda q: q.send_message(b"bytes in text mode"),
        lambda q: q.create_queue(metadata={"bad-name": "x"}),
        lambda q: q.update_message("id", "receipt", visibility_timeout=-5),
    ],
)
async def test_bad_arguments_fail_before_any_request(call):
    # the URL points nowhere: any request would fail with TransportError, not the validation error
    async with QueueClient("http://127.0.0.1:9/devstoreaccount1", "jobs", retry=None) as q:
        with pytest.raises((ConfigurationError, MessageEncodingError)):
            await call(q)
