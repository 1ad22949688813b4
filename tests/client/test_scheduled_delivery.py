"""Delivery at a time (issue #28): ``send_message(..., deliver_at=...)`` / ``delay=...``. Up to 7 days
ahead the service's initial visibility; beyond, an envelope that the consumer re-enqueues a week at a
time and hands over, as it was sent, when due. On the fake service with a frozen clock (20 days in
milliseconds), the sender's clock stood on the service's; the <= 7-day path once against Azurite too."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
import pytest_asyncio

from aioqueue import (
    ConfigurationError,
    MessageTooLarge,
    PoisonRecord,
    ProcessStats,
    QueueClient,
    ReceivedMessage,
    ServiceError,
    _runner,
    _schedule,
)
from aioqueue._encoding import encode_message, get_encoding
from aioqueue._payloads import Reference
from aioqueue.cli import _arguments
from aioqueue.testing import Azurite, FakeQueueService
from tests.client.payloads import blobs, large_queue
from tests.faults import FaultProxy
from tests.helpers import FAST_RETRY

UTC = timezone.utc
START = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)  # the fake service's clock: a whole second, frozen
# the fake service's time stands still at START (only fake.advance moves it), and the sender reads it
FROZEN = (pytest.mark.fake_options(clock="frozen", start=START), pytest.mark.usefixtures("sender_clock"))
WEEK = timedelta(days=7)
SECOND = timedelta(seconds=1)

CONTENTS = [
    ("text", 'héllo <&> "quoted"\n\ttabbed \\ {"aioqueue_scheduled":1,'),
    ("base64", "héllo, wörld ✓"),
    ("binary", bytes(range(256)) * 3),
    ("json", {"a": [1, 2.5, None, True], "é": "x\ny", "nested": {"k": "v"}}),
    ("base64-json", ["a", {"b": 2}]),
]


@pytest.fixture
def sender_clock(fake: FakeQueueService, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sender reads the service's (frozen) clock: exact arithmetic, whatever the machine's speed."""
    monkeypatch.setattr(_schedule, "_now", lambda: fake.now)


@pytest_asyncio.fixture
async def queue(fake: FakeQueueService, queue_name: str) -> AsyncIterator[QueueClient]:
    async with QueueClient.from_connection_string(fake.connection_string, queue_name, retry=FAST_RETRY) as q:
        await q.create_queue()
        yield q


def stored(fake: FakeQueueService, queue: QueueClient) -> list[Any]:
    return list(fake.queues[queue.queue_name].messages)


async def run_worker(queue: QueueClient, got: list[ReceivedMessage], **options: Any) -> ProcessStats:
    """A worker that handles what is due now, then ends once the queue is empty (a short idle)."""

    async def handle(message: ReceivedMessage) -> None:
        got.append(message)

    return await queue.process(handle, idle_timeout=0.2, poll_interval=(0.01, 0.02), **options)


# ---- beyond 7 days: an envelope, re-enqueued each week, handed over when due ----------------------


@FROZEN[0]
@FROZEN[1]
@pytest.mark.parametrize(("encoding", "content"), CONTENTS, ids=[e for e, _ in CONTENTS])
async def test_a_message_20_days_ahead_hops_each_week_and_is_handed_over_when_due(
    fake: FakeQueueService, queue_name: str, encoding: str, content: Any
) -> None:
    direct = encode_message(get_encoding(encoding), content)  # what a send without a schedule stores
    due = START + timedelta(days=20)
    got: list[ReceivedMessage] = []
    async with QueueClient.from_connection_string(
        fake.connection_string, queue_name, message_encoding=encoding, retry=FAST_RETRY
    ) as queue:
        await queue.create_queue()
        receipt = await queue.send_message(content, deliver_at=due)
        assert receipt.next_visible_on == START + WEEK and receipt.expires_on == due + WEEK
        for week in (1, 2):
            [held] = stored(fake, queue)
            assert json.loads(held.content) == {
                "aioqueue_scheduled": 1,
                "due": "2027-01-24T09:00:00Z",
                "ttl": 7 * 86400,
                "text": direct,
            }
            assert not held.visible and held.next_visible_on == START + week * WEEK
            assert held.expires_on == due + WEEK  # it lives its 7 days after it is due, whatever the hops
            fake.advance(WEEK)  # visible: a consumer re-enqueues it, never hands it over
            assert await run_worker(queue, got) == ProcessStats(rescheduled=1)
            assert got == []
        [last] = stored(fake, queue)  # due within 7 days: the message itself, hidden until due
        assert last.content == direct
        assert not last.visible and last.next_visible_on == due and last.expires_on == due + WEEK
        fake.advance(due - SECOND - fake.now)
        assert await run_worker(queue, got) == ProcessStats()
        assert got == []
        fake.advance(SECOND)
        assert await run_worker(queue, got) == ProcessStats(processed=1)
    [message] = got
    assert message.content == content and type(message.content) is type(content)
    assert message.dequeue_count == 1 and message.expires_on == due + WEEK
    assert stored(fake, queue) == []


@FROZEN[0]
@FROZEN[1]
@pytest.mark.parametrize(("encoding", "content"), CONTENTS, ids=[e for e, _ in CONTENTS])
async def test_an_envelope_received_after_it_is_due_is_handed_over_as_sent(
    fake: FakeQueueService, queue_name: str, encoding: str, content: Any
) -> None:
    """No consumer ran at its hops: the envelope itself, received late, is the message as it was sent
    (its id the envelope's), through receive() as through the worker."""
    async with QueueClient.from_connection_string(
        fake.connection_string, queue_name, message_encoding=encoding, retry=FAST_RETRY
    ) as queue:
        await queue.create_queue()
        await queue.send_message(content, delay=timedelta(days=10), time_to_live=-1)
        [envelope] = stored(fake, queue)
        assert json.loads(envelope.content)["ttl"] == -1 and envelope.expires_on.year == 9999
        fake.advance(timedelta(days=12))
        async with queue.receive(idle_timeout=0.2, poll_interval=0.01) as stream:
            async for message in stream:
                async with message:
                    assert message.id == envelope.id
                    assert message.content == content and type(message.content) is type(content)
                    assert message.expires_on.year == 9999
        assert stored(fake, queue) == []


@FROZEN[0]
@FROZEN[1]
async def test_receive_and_receive_batches_reschedule_without_yielding(
    fake: FakeQueueService, queue: QueueClient
) -> None:
    await queue.send_message("later", delay=timedelta(days=9))
    fake.advance(WEEK)
    async with queue.receive(idle_timeout=0.2, poll_interval=0.01) as stream:
        assert [m async for m in stream] == []
    [hop] = stored(fake, queue)
    assert hop.content == "later" and hop.next_visible_on == START + timedelta(days=9)  # due within 7 days
    await queue.clear_messages()
    await queue.send_message("much later", delay=timedelta(days=30))
    fake.advance(WEEK)
    async with queue.receive_batches(idle_timeout=0.2, poll_interval=0.01) as batches:
        assert [b async for b in batches] == []
    [hop] = stored(fake, queue)
    assert json.loads(hop.content)["text"] == "much later" and hop.next_visible_on == START + 3 * WEEK


@FROZEN[0]
@FROZEN[1]
async def test_receive_messages_reschedules_and_peek_shows_what_will_be_delivered(
    fake: FakeQueueService, queue: QueueClient
) -> None:
    await queue.send_message("ahead", delay=timedelta(days=15))
    fake.advance(WEEK)
    [peeked] = await queue.peek_messages()
    assert peeked.content == "ahead"  # as it will be delivered, though not due
    [raw] = await queue.peek_messages(resolve=False)
    assert json.loads(raw.content)["text"] == "ahead"
    assert await queue.receive_messages(max_messages=32, visibility_timeout=60) == []
    [hop] = stored(fake, queue)
    assert json.loads(hop.content)["text"] == "ahead" and hop.next_visible_on == START + 2 * WEEK
    assert await queue.receive_message() is None  # hidden: nothing to receive, nothing re-enqueued
    fake.advance(timedelta(days=8))
    [message] = await queue.receive_messages()  # due: the envelope received late is the message
    assert message.content == "ahead" and message.id == hop.id


@FROZEN[0]
@FROZEN[1]
async def test_peek_shows_a_scheduled_message_in_any_encoding(fake: FakeQueueService, queue_name: str) -> None:
    async with QueueClient.from_connection_string(
        fake.connection_string, queue_name, message_encoding="binary", retry=FAST_RETRY
    ) as queue:
        await queue.create_queue()
        await queue.send_message(b"\x00\xff", delay=timedelta(days=9))
        fake.advance(WEEK)
        [peeked] = await queue.peek_messages()
        assert peeked.content == b"\x00\xff"
        [raw] = await queue.peek_messages(resolve=False)  # the envelope's text, which base64 cannot decode
        assert json.loads(raw.content) == {
            "aioqueue_scheduled": 1,
            "due": "2027-01-13T09:00:00Z",
            "ttl": 604800,
            "text": "AP8=",
        }


@FROZEN[0]
@FROZEN[1]
async def test_send_messages_schedules_every_message(fake: FakeQueueService, queue: QueueClient) -> None:
    async def contents() -> AsyncIterator[str]:
        for i in range(3):
            yield f"m{i}"

    await queue.send_messages(["a", "b"], deliver_at=START + timedelta(days=3))
    await queue.send_messages(contents(), delay=timedelta(days=8), time_to_live=60)
    held = stored(fake, queue)
    direct = sorted(m.content for m in held if m.next_visible_on == START + timedelta(days=3))
    assert direct == ["a", "b"]
    envelopes = [json.loads(m.content) for m in held if m.next_visible_on == START + WEEK]
    assert sorted(e["text"] for e in envelopes) == ["m0", "m1", "m2"] and {e["ttl"] for e in envelopes} == {60}
    fake.advance(timedelta(days=8))
    got: list[ReceivedMessage] = []
    assert await run_worker(queue, got) == ProcessStats(processed=5)
    assert sorted(m.content for m in got) == ["a", "b", "m0", "m1", "m2"]


# ---- up to 7 days: the service's visibility, no envelope -----------------------------------------


@FROZEN[0]
@FROZEN[1]
@pytest.mark.parametrize(
    ("when", "ttl", "visible_at", "expires_at"),
    [
        ({"deliver_at": START + timedelta(days=3)}, None, START + timedelta(days=3), START + timedelta(days=10)),
        ({"delay": timedelta(days=7)}, 60, START + WEEK, START + WEEK + timedelta(seconds=60)),
        ({"delay": 90.5}, timedelta(hours=1), START + timedelta(seconds=91), START + timedelta(seconds=3691)),
        ({"deliver_at": START - timedelta(days=2)}, None, START, START + WEEK),  # in the past: due now
        ({"delay": 0}, -1, START, None),
        ({"deliver_at": (START + timedelta(hours=5)).astimezone(timezone(timedelta(hours=-8)))}, 10, None, None),
    ],
)
async def test_up_to_7_days_ahead_is_the_services_visibility(
    fake: FakeQueueService,
    queue: QueueClient,
    when: dict[str, Any],
    ttl: Any,
    visible_at: datetime | None,
    expires_at: datetime | None,
) -> None:
    visible_at = visible_at or START + timedelta(hours=5)
    receipt = await queue.send_message("soon", time_to_live=ttl, **when)
    [message] = stored(fake, queue)
    assert message.content == "soon"  # the text itself: no envelope
    assert message.next_visible_on == receipt.next_visible_on == visible_at
    assert message.visible == (visible_at == START)
    if ttl == -1:
        assert message.expires_on.year == 9999
    else:
        assert message.expires_on == (expires_at or visible_at + timedelta(seconds=ttl))


async def test_up_to_7_days_ahead_on_azurite(queue_client: QueueClient) -> None:
    now = datetime.now(UTC)
    receipt = await queue_client.send_message("in two days", deliver_at=now + timedelta(days=2), time_to_live=3600)
    assert abs(receipt.next_visible_on - (now + timedelta(days=2))) < timedelta(seconds=30)
    assert receipt.expires_on - receipt.next_visible_on == timedelta(seconds=3600)
    assert await queue_client.peek_messages() == []  # hidden
    await queue_client.send_message("now", deliver_at=now - timedelta(hours=1))
    [message] = await queue_client.receive_messages()
    assert message.content == "now"
    assert message.expires_on - message.inserted_on == WEEK


# ---- bad arguments: a clear error before any request ---------------------------------------------


BAD = [
    ({"deliver_at": START + WEEK, "delay": 5}, "not both"),
    ({"delay": 5, "visibility_timeout": 5}, "leave visibility_timeout out"),
    ({"deliver_at": START, "visibility_timeout": 0}, "leave visibility_timeout out"),
    ({"deliver_at": datetime(2027, 2, 1, 9, 0)}, "aware"),
    ({"deliver_at": "2027-02-01T09:00:00Z"}, "aware datetime, not str"),
    ({"deliver_at": date(2027, 2, 1)}, "aware datetime, not date"),
    ({"deliver_at": 1_800_000_000}, "aware datetime, not int"),
    ({"delay": "1d"}, "delay must be seconds"),
    ({"delay": True}, "delay must be seconds"),
    ({"delay": -1}, "delay must be"),
    ({"delay": timedelta(seconds=-5)}, "delay must be"),
    ({"delay": math.nan}, "finite"),
    ({"delay": 10**400}, "delay must be"),
    ({"delay": 5, "time_to_live": 10**400}, "time_to_live must be"),
    ({"delay": timedelta(days=1), "time_to_live": 0}, "time_to_live"),
    ({"delay": timedelta(days=1), "time_to_live": "7d"}, "time_to_live"),
    ({"deliver_at": START + timedelta(days=365 * 70)}, "68 years"),
    ({"delay": timedelta(days=365 * 60), "time_to_live": timedelta(days=365 * 10)}, "68 years"),
]


@FROZEN[0]
@FROZEN[1]
@pytest.mark.parametrize(("arguments", "says"), BAD)
async def test_bad_schedules_are_refused_before_any_request(
    fake: FakeQueueService, queue: QueueClient, arguments: dict[str, Any], says: str
) -> None:
    before = len(fake.requests)
    with pytest.raises(ConfigurationError, match=says):
        await queue.send_message("x", **arguments)
    with pytest.raises(ConfigurationError, match=says):
        await queue.send_messages(["x", "y"], **arguments)
    assert len(fake.requests) == before and stored(fake, queue) == []


@FROZEN[0]
@FROZEN[1]
async def test_an_envelope_over_64_kib_is_refused_before_any_request(
    fake: FakeQueueService, queue: QueueClient
) -> None:
    """64 KiB of text fits a message, not an envelope (JSON escapes each newline to two characters)."""
    before = len(fake.requests)
    await queue.send_message("\n" * 40_000, delay=timedelta(days=2))  # no envelope: fits
    with pytest.raises(MessageTooLarge, match="envelope"):
        await queue.send_message("\n" * 40_000, delay=timedelta(days=8))
    assert len(fake.requests) == before + 1 and len(stored(fake, queue)) == 1


# ---- what only looks like an envelope is an ordinary message --------------------------------------


LOOKALIKES = [
    '{"aioqueue_scheduled":1,',
    '{"aioqueue_scheduled":1,"due":"tomorrow","ttl":60,"text":"x"}',
    '{"aioqueue_scheduled":1,"due":"2027-01-01T00:00:00Z","ttl":0,"text":"x"}',
    '{"aioqueue_scheduled":1,"due":"2027-01-01T00:00:00Z","ttl":true,"text":"x"}',
    '{"aioqueue_scheduled":1,"due":"2027-01-01T00:00:00Z","ttl":60,"text":7}',
    '{"aioqueue_scheduled":1,"due":"2027-01-01T00:00:00Z","ttl":60}',
    '{"aioqueue_scheduled":1,"due":"2027-01-01T00:00:00Z","ttl":60,"text":"x","aioqueue_scheduled":2}',
    '{"aioqueue_scheduled":1,"due":"2027-13-01T00:00:00Z","ttl":60,"text":"x"}',
    '{"aioqueue_scheduled":1,"x":' + "[" * 100_000 + "]" * 100_000 + "}",
]


@FROZEN[0]
@FROZEN[1]
async def test_a_lookalike_envelope_is_an_ordinary_message(fake: FakeQueueService, queue: QueueClient) -> None:
    texts = [*LOOKALIKES[:-1], LOOKALIKES[-1][:60_000]]
    for text in texts:
        await queue.send_message(text)
    got: list[ReceivedMessage] = []
    assert await run_worker(queue, got) == ProcessStats(processed=len(texts))
    assert sorted(m.content for m in got) == sorted(texts)


def test_a_deeply_nested_lookalike_does_not_parse_as_an_envelope() -> None:
    assert _schedule.Envelope.parse(LOOKALIKES[-1]) is None


# what no sender makes: re-enqueueing it could never succeed (refused by the client or the service)
UNSENDABLE = {
    # a text XML cannot carry, due within 7 days: the last hop would send it as it is
    "lone-surrogate": '{"aioqueue_scheduled":1,"due":"2027-01-05T09:00:00Z","ttl":60,"text":"\\ud800"}',
    "control-character": '{"aioqueue_scheduled":1,"due":"2027-01-05T09:00:00Z","ttl":60,"text":"a\\u0001"}',
    # due past the longest time to live (2**31-1 s), its time to live included: every hop refused
    "due-in-9999": '{"aioqueue_scheduled":1,"due":"9999-12-31T23:59:59Z","ttl":60,"text":"x"}',
    "due-in-9999-never-expiring": '{"aioqueue_scheduled":1,"due":"9999-12-31T23:59:59Z","ttl":-1,"text":"x"}',
    "ttl-past-the-limit": '{"aioqueue_scheduled":1,"due":"2027-01-20T09:00:00Z","ttl":2147483647,"text":"x"}',
}


@FROZEN[0]
@FROZEN[1]
@pytest.mark.parametrize("text", UNSENDABLE.values(), ids=UNSENDABLE.keys())
async def test_an_envelope_no_sender_makes_is_an_ordinary_message(
    fake: FakeQueueService, queue: QueueClient, text: str
) -> None:
    """Valid JSON with every field, but out of range: it is handed over as it is, never an error that
    ends every consumer, nor a message re-received and refused again forever."""
    await queue.send_message(text)
    got: list[ReceivedMessage] = []
    assert await run_worker(queue, got) == ProcessStats(processed=1)
    assert [m.content for m in got] == [text] and stored(fake, queue) == []
    await queue.send_message(text)
    [peeked] = await queue.peek_messages()  # what a receive hands over
    assert peeked.content == text
    [message] = await queue.receive_messages()
    assert message.content == text


@FROZEN[0]
@FROZEN[1]
async def test_a_lookalike_the_encoding_cannot_decode_is_undecodable_as_any_other(
    fake: FakeQueueService, queue: QueueClient
) -> None:
    await queue.send_message('{"aioqueue_scheduled":1,"due":"soon"}')
    b64 = QueueClient.from_connection_string(
        fake.connection_string, queue.queue_name, message_encoding="base64", retry=FAST_RETRY
    )
    async with b64:
        got: list[ReceivedMessage] = []
        stats = await run_worker(b64, got, retry_delay=60)  # released for a minute the clock never reaches
    assert stats == ProcessStats(undecodable=1) and got == []


# ---- faults at a hop: a duplicate at worst, never a loss -----------------------------------------


@FROZEN[0]
@FROZEN[1]
@pytest.mark.parametrize(
    ("fault", "copies", "hops", "warning"),
    [
        # the delete's retry finds the old envelope gone: done, one copy
        (lambda fake: fake.lose_answer("delete_message"), 1, 1, None),
        # the delete never lands: the old envelope returns and is re-enqueued again
        (
            lambda fake: fake.fail("delete_message", status=500, code="InternalError", times=4),
            2,
            2,
            "was re-enqueued, but deleting it failed; it comes back and is re-enqueued again",
        ),
        # the send's retry sends the next hop twice
        (lambda fake: fake.lose_answer("put_message"), 2, 1, None),
        # the send never lands: the old envelope is left, returns and is re-enqueued then
        (
            lambda fake: fake.fail("put_message", status=500, code="InternalError", times=4),
            1,
            1,
            "re-enqueueing it failed; it is tried again when it is visible again",
        ),
    ],
    ids=["delete-answer-lost", "delete-failed", "send-answer-lost", "send-failed"],
)
async def test_a_fault_at_a_hop_duplicates_at_worst_never_loses(
    fake: FakeQueueService,
    queue: QueueClient,
    caplog: pytest.LogCaptureFixture,
    fault: Any,
    copies: int,
    hops: int,
    warning: str | None,
) -> None:
    due = START + timedelta(days=10)
    await queue.send_message("payload", deliver_at=due)
    fake.advance(WEEK)
    fault(fake)
    got: list[ReceivedMessage] = []
    first = await run_worker(queue, got)
    fake.advance(timedelta(seconds=31))  # the worker's 30 s lease on a left or undeleted envelope lapses
    second = await run_worker(queue, got)
    assert got == [] and first.rescheduled + second.rescheduled == hops
    said = [
        r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "scheduled message" in r.getMessage()
    ]
    assert [warning is not None and warning in text for text in said] == ([True] if warning else [])
    waiting = stored(fake, queue)
    assert len(waiting) == copies and {m.content for m in waiting} == {"payload"}
    assert {m.next_visible_on for m in waiting} == {due}
    fake.advance(due - fake.now)
    assert await run_worker(queue, got) == ProcessStats(processed=copies)
    assert [m.content for m in got] == ["payload"] * copies


@FROZEN[0]
@FROZEN[1]
async def test_a_receive_cancelled_during_a_hop_finishes_it_and_gives_the_rest_back(
    fake: FakeQueueService, queue: QueueClient
) -> None:
    """receive()'s caller is cancelled while a hop's send is held: the hop still completes (the next
    message sent, the envelope deleted: no duplicate though no answer was lost), and the message
    fetched with it is given back at once, not left hidden for the visibility timeout."""
    due = START + timedelta(days=10)
    await queue.send_message("later", deliver_at=due)
    fake.advance(WEEK)
    await queue.send_message("now")  # one Get Messages takes both: the envelope first
    gate = fake.hold("put_message")
    got: list[ReceivedMessage] = []

    async def consume() -> None:
        async with queue.receive(poll_interval=0.01) as stream:
            async for message in stream:
                got.append(message)

    task = asyncio.create_task(consume())
    await gate.arrived.wait()
    task.cancel()
    gate.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert got == []
    waiting = stored(fake, queue)
    assert sorted((m.content, m.visible) for m in waiting) == [("later", False), ("now", True)]
    assert [m.next_visible_on for m in waiting if m.content == "later"] == [due]


# ---- large payloads: the envelope carries the reference, the blob outlives the wait --------------


@FROZEN[0]
@FROZEN[1]
async def test_a_large_payload_travels_by_reference_and_its_blob_outlives_the_wait(
    fake: FakeQueueService, azurite_blob: Azurite
) -> None:
    large = os.urandom(100_000)  # over 64 KiB: a blob
    # 65,468 base64 characters fit a message, not an envelope (76 more): a blob too, its reference enveloped
    snug = os.urandom(49_100)
    before = int(time.time())
    async with large_queue(f"{fake.connection_string};BlobEndpoint={azurite_blob.url}", "sched") as queue:
        await queue.send_message(large, delay=timedelta(days=20))
        await queue.send_message(snug, delay=timedelta(days=20))
        await queue.send_message(large, delay=timedelta(days=10), time_to_live=-1)
        envelopes = [json.loads(m.content) for m in stored(fake, queue)]
        refs = [Reference.parse(e["text"]) for e in envelopes]
        assert sorted(r.size for r in refs if r is not None) == [49_100, 100_000, 100_000]
        page, _ = await blobs(queue).list_blobs(prefix=f"{queue.queue_name}/")
        expiries = sorted(item.metadata["aioqueue_expires"] for item in page)
        assert expiries[2] == "never"  # its message never expires
        for expiry in expiries[:2]:  # kept until its message can expire: the wait, its time to live, the grace
            assert int(expiry) >= before + (20 + 7 + 1) * 86400
        fake.advance(WEEK)
        got: list[ReceivedMessage] = []
        assert await run_worker(queue, got) == ProcessStats(rescheduled=3)
        assert sum(Reference.parse(m.content) is not None for m in stored(fake, queue)) == 1  # due within 7 days
        fake.advance(timedelta(days=14))  # past due: the two envelopes are received late, the reference on time
        assert await run_worker(queue, got) == ProcessStats(processed=3)
        assert sorted(m.content for m in got) == sorted([large, snug, large])
        assert await blobs(queue).list_blobs(prefix=f"{queue.queue_name}/") == ([], None)  # gone with them


@FROZEN[0]
@FROZEN[1]
async def test_a_due_message_poisoned_is_recorded_as_sent_and_redriven_as_an_ordinary_message(
    fake: FakeQueueService, queue: QueueClient
) -> None:
    """The poison record holds the message's original text, not its envelope: redriven, it is
    delivered at once."""
    receipt = await queue.send_message("charge 42", delay=timedelta(days=10))
    fake.advance(timedelta(days=14))  # received past due

    async def fail(message: ReceivedMessage) -> None:
        raise ValueError("card declined")

    stats = await queue.process(fail, max_dequeue_count=1, idle_timeout=0.2, poll_interval=(0.01, 0.02))
    assert (stats.failed, stats.poisoned) == (1, 1)
    poison = queue._sibling(f"{queue.queue_name}-poison")
    [record] = [PoisonRecord.parse(m.content) for m in stored(fake, poison)]
    assert record.is_record and record.content == "charge 42" and record.message_id == receipt.id
    assert (await poison.redrive()).moved == 1
    got: list[ReceivedMessage] = []
    assert await run_worker(queue, got) == ProcessStats(processed=1)
    assert [m.content for m in got] == ["charge 42"]


def downloads(blob_proxy: FaultProxy) -> int:
    return sum(1 for seen in blob_proxy.seen if seen.method == "GET" and "comp=list" not in seen.path)


@FROZEN[0]
@FROZEN[1]
async def test_a_due_large_payload_is_fetched_as_its_message_is_handed_over(
    fake: FakeQueueService, blob_proxy: FaultProxy
) -> None:
    """Three due envelopes carrying references come in one Get Messages: each payload is fetched only
    as its message is handed over, as any large message's (never the whole batch's at once)."""
    sent = [os.urandom(100_000) for _ in range(3)]
    async with large_queue(f"{fake.connection_string};BlobEndpoint={blob_proxy.url()}", "schedhand") as queue:
        for data in sent:
            await queue.send_message(data, delay=timedelta(days=10))
        fake.advance(timedelta(days=14))  # visible, and past due: received due
        before = downloads(blob_proxy)
        handed: list[tuple[bytes, int]] = []
        async with queue.receive(max_batch_size=3, max_messages=3, idle_timeout=0.2) as stream:
            async for msg in stream:
                async with msg:
                    handed.append((msg.content, downloads(blob_proxy) - before))
        assert sorted(content for content, _ in handed) == sorted(sent)
        assert [fetched for _, fetched in handed] == [1, 2, 3]
        assert stored(fake, queue) == []
        assert await blobs(queue).list_blobs(prefix=f"{queue.queue_name}/") == ([], None)  # gone with them


@FROZEN[0]
@FROZEN[1]
async def test_receive_messages_and_peek_fetch_a_due_large_payload(
    fake: FakeQueueService, azurite_blob: Azurite
) -> None:
    """receive_messages and peek_messages fetch an envelope's payload as a large message's; its blob
    stays while its message lives and goes once it is deleted."""
    data = os.urandom(100_000)
    async with large_queue(f"{fake.connection_string};BlobEndpoint={azurite_blob.url}", "schedlist") as queue:
        await queue.send_message(data, delay=timedelta(days=10))
        fake.advance(timedelta(days=14))
        [peeked] = await queue.peek_messages()
        assert peeked.content == data
        [raw] = await queue.peek_messages(resolve=False)  # the envelope, carrying the reference
        ref = Reference.parse(json.loads(raw.content)["text"])
        assert ref is not None and ref.size == 100_000
        [message] = await queue.receive_messages(visibility_timeout=60)
        assert message.content == data
        page, _ = await blobs(queue).list_blobs(prefix=f"{queue.queue_name}/")
        assert [item.name for item in page] == [ref.blob]  # kept while its message lives
        await queue.delete_message(message)
        assert await blobs(queue).list_blobs(prefix=f"{queue.queue_name}/") == ([], None)


@FROZEN[0]
@FROZEN[1]
async def test_a_failed_send_after_the_upload_removes_the_blob(fake: FakeQueueService, azurite_blob: Azurite) -> None:
    async with large_queue(f"{fake.connection_string};BlobEndpoint={azurite_blob.url}", "schedfail") as queue:
        fake.fail("put_message", status=400, code="InvalidQueryParameterValue")
        with pytest.raises(ServiceError):
            await queue.send_message(os.urandom(100_000), delay=timedelta(days=9))
        assert await blobs(queue).list_blobs(prefix=f"{queue.queue_name}/") == ([], None)
        assert stored(fake, queue) == []


@FROZEN[0]
@FROZEN[1]
async def test_a_due_time_with_a_fraction_of_a_second_is_never_early(
    fake: FakeQueueService, queue: QueueClient
) -> None:
    """The service counts whole seconds: the envelope's due time is rounded up, never down."""
    await queue.send_message("on time", deliver_at=START + timedelta(days=8, milliseconds=250))
    [envelope] = stored(fake, queue)
    assert json.loads(envelope.content)["due"] == "2027-01-12T09:00:01Z"
    fake.advance(timedelta(days=8))
    got: list[ReceivedMessage] = []
    assert await run_worker(queue, got) == ProcessStats(rescheduled=1)
    [last] = stored(fake, queue)
    assert last.content == "on time" and last.next_visible_on == START + timedelta(days=8, seconds=1)


@FROZEN[0]
@FROZEN[1]
async def test_the_worker_commands_end_of_run_line_counts_the_hops(
    fake: FakeQueueService, queue: QueueClient, caplog: pytest.LogCaptureFixture
) -> None:
    """``aioqueue worker`` says at the end what became of the messages, the hops included."""
    await queue.send_message("later", delay=timedelta(days=10))
    fake.advance(WEEK)
    args = _arguments(["worker", queue.queue_name, "jobs:handle", "--idle-timeout", "0.2s"])

    async def handle(message: ReceivedMessage) -> None:
        raise AssertionError("not due: never handed over")

    caplog.set_level(logging.INFO, logger="aioqueue")
    loop = asyncio.get_running_loop()
    try:  # as the command runs it, in this process (its signals taken over by this loop meanwhile)
        assert await _runner._work(args, fake.connection_string, handle, _runner._StopRequests()) == 0
    finally:
        for sig in _runner._SIGNALS:
            loop.remove_signal_handler(sig)
    [done] = [r.getMessage() for r in caplog.records if " done: " in r.getMessage()]
    assert done.endswith(" processed=0 failed=0 poisoned=0 lease_lost=0 undecodable=0 delete_failed=0 rescheduled=1")
