"""The consumer streams and worker, against Azurite with short visibility timeouts; where a test waits
for the service's clock (a visibility timeout or a retry delay to lapse, renewals to outlast a lease),
against the fake service on a frozen clock that the test moves (``fake.advance``)."""

import asyncio
import time
from datetime import timedelta

import pytest

from aioqueue import (
    ConfigurationError,
    MessageBatch,
    MessageEncodingError,
    MessageSettled,
    PoisonRecord,
    ProcessStats,
    QueueClient,
    ReceivedMessage,
)
from aioqueue._fake import Gate as FakeGate
from aioqueue.testing import DEV_KEY, FakeQueueService
from tests.faults import Fault, Gate
from tests.helpers import count, eventually, eventually_visible, visible

# the fake service's time stands still: only the test's fake.advance() moves it
FROZEN = pytest.mark.fake_options(clock="frozen")
BOUND = 15.0  # generous: a renewal that never comes hits it, a slow machine does not


async def renewals_keep_it_hidden(fake: FakeQueueService, queue: QueueClient, renewals: list[FakeGate]) -> None:
    """On a frozen clock, with ``visibility_timeout=2``: each renewal, held on its way in, is let through
    1.5 s into the lease it replaces; then the clock moves 1 s on, past that lease: a message that was
    not renewed (or renewed for less) would be visible now. The client's renewer keeps its own (real) time."""
    into_lease = 0.0  # the service's seconds since the current lease began
    for gate in renewals:
        await asyncio.wait_for(gate.arrived.wait(), BOUND)
        fake.advance(timedelta(seconds=1.5 - into_lease))
        gate.release.set()
        await gate.done.wait()  # renewed: hidden for 2 s from now
        fake.advance(timedelta(seconds=1))
        into_lease = 1.0
        assert await visible(queue) == [], "visible again after its lease lapsed: not renewed"


async def test_clean_exit_deletes(queue_client):
    await queue_client.send_messages([f"m{i}" for i in range(40)])
    seen = []
    async for msg in queue_client.receive(max_messages=35):
        assert isinstance(msg, ReceivedMessage)
        async with msg:
            seen.append(msg.content)
    assert len(seen) == 35 and len(set(seen)) == 35
    assert await count(queue_client) == 5


async def test_exception_brings_the_message_back_and_reraises(queue_client):
    await queue_client.send_message("fragile")
    with pytest.raises(RuntimeError, match="handler broke"):
        async for msg in queue_client.receive(visibility_timeout=60):
            async with msg:
                raise RuntimeError("handler broke")
    [again] = await queue_client.receive_messages()
    assert again.content == "fragile" and again.dequeue_count == 2


@FROZEN
async def test_retry_delay_keeps_a_failed_message_hidden(fake, fake_queue):
    await fake_queue.send_message("later")
    async for msg in fake_queue.receive(retry_delay=lambda n: 3 * n, visibility_timeout=300):
        with pytest.raises(ValueError):
            async with msg:
                raise ValueError
        break
    assert await visible(fake_queue) == []
    fake.advance(timedelta(seconds=2))
    assert await visible(fake_queue) == []  # hidden for the 3 s delay...
    fake.advance(timedelta(seconds=1))
    assert await visible(fake_queue) == ["later"]  # ...then visible: not after the 300 s visibility timeout


@FROZEN
async def test_a_never_settled_message_is_not_deleted(fake, fake_queue):
    await fake_queue.send_message("unsettled")
    async for msg in fake_queue.receive(visibility_timeout=1, max_messages=1):
        assert msg.content == "unsettled"  # neither 'async with' nor a manual settle
    fake.advance(timedelta(seconds=1))  # its 1 s visibility timeout is over
    await eventually_visible(fake_queue, 1)
    [back] = await fake_queue.receive_messages()
    assert back.content == "unsettled" and back.dequeue_count == 2


async def test_after_break_the_prefetched_messages_return_at_once(queue_client):
    await queue_client.send_messages([f"m{i}" for i in range(10)])
    async for msg in queue_client.receive(visibility_timeout=300):
        async with msg:
            pass
        break
    await eventually_visible(queue_client, 9)


async def test_stream_as_context_manager_releases_on_exit(queue_client):
    await queue_client.send_messages([f"m{i}" for i in range(5)])
    async with queue_client.receive(visibility_timeout=300) as stream:
        async for msg in stream:
            async with msg:
                pass
            break
    assert len(await visible(queue_client)) == 4


async def test_manual_settling(queue_client):
    await queue_client.send_messages(["a", "b", "c"])
    async for msg in queue_client.receive(visibility_timeout=60, max_messages=3):
        async with msg:
            if msg.content == "a":
                await msg.delete()
                with pytest.raises(MessageSettled):
                    await msg.delete()
                with pytest.raises(MessageSettled):
                    await msg.release()
            elif msg.content == "b":
                await msg.release(delay=0)
            else:
                old = msg.pop_receipt
                await msg.renew(120)
                assert msg.pop_receipt != old
    # a deleted, b released (visible), c deleted at exit with its newest receipt
    assert await visible(queue_client) == ["b"]
    assert await count(queue_client) == 1


async def test_deleting_through_the_client_counts_as_settling(queue_client):
    await queue_client.send_message("x")
    async for msg in queue_client.receive(max_messages=1):
        async with msg:
            await queue_client.delete_message(msg)
    assert msg.settled == "deleted" and await count(queue_client) == 0


@FROZEN
async def test_auto_renew_keeps_a_message_hidden_past_its_timeout(fake, fake_queue):
    await fake_queue.send_message("long job")
    renewals = [fake.hold("update_message") for _ in range(2)]
    async for msg in fake_queue.receive(visibility_timeout=2, auto_renew=True):
        async with msg:
            first_receipt = msg.pop_receipt
            await renewals_keep_it_hidden(fake, fake_queue, renewals)  # 4.5 s on: past the 2 s timeout
            assert msg.pop_receipt != first_receipt and msg.renewal_error is None
        break
    assert await count(fake_queue) == 0  # deleted with the newest receipt


async def test_auto_renew_stops_after_max_renewal(queue_client):
    await queue_client.send_message("capped")
    async for _msg in queue_client.receive(visibility_timeout=1, auto_renew=True, max_renewal=1):
        await eventually_visible(queue_client, 1)  # renewals stop after 1 s: visible again while still held
        assert await visible(queue_client) == ["capped"]
        break


async def test_a_renewal_failure_is_recorded(queue_client, caplog):
    await queue_client.send_message("doomed")
    async for msg in queue_client.receive(visibility_timeout=2, auto_renew=True):
        await queue_client.clear_messages()  # the message vanishes behind the consumer's back

        async def recorded(msg: ReceivedMessage = msg) -> bool:
            return msg.renewal_error is not None

        await eventually(recorded, what="a renewal error")
        break
    assert "renewing message" in caplog.text


async def test_poison_messages_are_moved_after_too_many_receives(queue_client):
    await queue_client.send_message("poison pill")
    await queue_client.send_message("fine")
    handled = []
    for _ in range(3):
        async for msg in queue_client.receive(max_dequeue_count=2, idle_timeout=0.5, poll_interval=0.1):
            try:
                async with msg:
                    if msg.content == "poison pill":
                        raise ValueError("cannot handle")
                    handled.append(msg.content)
            except ValueError:
                pass
    poison = queue_client._sibling(f"{queue_client.queue_name}-poison")
    try:
        assert handled == ["fine"]
        assert [PoisonRecord.parse(text).content for text in await visible(poison)] == ["poison pill"]
        assert await count(queue_client) == 0
    finally:
        await poison.delete_queue()


async def test_custom_poison_queue_and_undecodable_content(conn_str, queue_client):
    await queue_client.send_message("not json {")
    async with QueueClient.from_connection_string(conn_str, queue_client.queue_name, message_encoding="json") as q:
        await q.send_message({"ok": True})
        with pytest.raises(MessageEncodingError):
            async for _ in q.receive():
                pass
        # the undecodable message was released, not lost
        assert sorted(await visible(queue_client)) == ["not json {", '{"ok":true}']
        poison_name = f"{queue_client.queue_name}-bad"
        got = [m.content async for m in q.receive(idle_timeout=0.3, max_dequeue_count=5, poison_queue=poison_name)]
        assert got == [{"ok": True}]
        poison = q._ops.sibling(poison_name)
        [peeked] = await poison.peek_messages(1)
        assert poison.decode(peeked)["content"] == "not json {"  # a poison record is JSON, even to this client
    async with QueueClient.from_connection_string(conn_str, poison_name) as raw:
        (record,) = [PoisonRecord.parse(text) for text in await visible(raw)]
        assert record.content == "not json {"  # the exact text
        await raw.delete_queue()


async def test_batches_delete_on_clean_exit_and_release_on_error(queue_client):
    await queue_client.send_messages([f"m{i}" for i in range(40)])
    sizes = []
    async for batch in queue_client.receive_batches(max_batch_size=16, max_messages=20, visibility_timeout=60):
        assert isinstance(batch, MessageBatch)
        async with batch:
            sizes.append(len(batch))
            assert all(isinstance(m.content, str) for m in batch)
    assert sizes == [16, 4]
    assert await count(queue_client) == 20
    with pytest.raises(KeyError):
        async for batch in queue_client.receive_batches(max_batch_size=10, visibility_timeout=60):
            async with batch:
                await batch[0].delete()  # settled by hand: skipped at exit
                raise KeyError("whole batch failed")
    assert len(await visible(queue_client)) == 19


async def test_idle_timeout_and_poll_backoff(proxy, queue_client):
    async with QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY) as q:
        started = time.monotonic()
        got = [m async for m in q.receive(idle_timeout=2.0, poll_interval=(0.05, 0.8))]
        elapsed = time.monotonic() - started
    polls = [s for s in proxy.seen if s.method == "GET"]
    assert got == [] and 1.9 <= elapsed < 10  # ends at the idle timeout; the upper bound is generous
    # exponential back-off: far fewer polls than a fixed 50 ms interval (40) would make
    assert 3 <= len(polls) <= 12


async def test_a_message_resets_the_idle_clock(queue_client):
    async def late_send():
        await asyncio.sleep(1.0)  # well inside the idle timeout
        await queue_client.send_message("late")

    sender = asyncio.create_task(late_send())
    got = []
    async for m in queue_client.receive(idle_timeout=3.0, poll_interval=(0.05, 0.2)):
        got.append(m.content)
        arrived = time.monotonic()
    ended = time.monotonic()
    await sender
    assert got == ["late"]
    assert ended - arrived >= 2.9  # a whole idle timeout after the message, not after the start


async def test_closing_the_client_stops_the_stream(conn_str, queue_client):
    await queue_client.send_messages([f"m{i}" for i in range(10)])
    q = QueueClient.from_connection_string(conn_str, queue_client.queue_name)
    stream = q.receive(visibility_timeout=300)
    iterator = stream.__aiter__()
    first = await iterator.__anext__()
    await q.close()
    assert len(await visible(queue_client)) == 9  # the 9 prefetched ones are back at once
    assert first.settled is None
    await iterator.aclose()


async def test_no_tasks_or_streams_leak(queue_client):
    await queue_client.send_messages([f"m{i}" for i in range(10)])
    before = asyncio.all_tasks()
    async for msg in queue_client.receive(auto_renew=True, visibility_timeout=10, max_messages=5):
        async with msg:
            pass
    async for batch in queue_client.receive_batches(auto_renew=True, idle_timeout=0.2):
        async with batch:
            pass
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == before
    assert len(queue_client._pool.streams) == 0


async def test_process_counts_and_keeps_going(queue_client):
    await queue_client.send_messages([f"m{i}" for i in range(30)])
    seen = []

    async def handler(msg):
        seen.append(msg.content)
        await asyncio.sleep(0.01)
        if msg.content in ("m3", "m7"):
            raise RuntimeError("bad message")

    stats = await queue_client.process(
        handler, concurrency=8, idle_timeout=1.0, poll_interval=(0.05, 0.2), max_dequeue_count=2
    )
    assert isinstance(stats, ProcessStats)
    assert stats == ProcessStats(processed=28, failed=4, poisoned=2)
    assert await count(queue_client) == 0
    poison = queue_client._sibling(f"{queue_client.queue_name}-poison")
    assert sorted(PoisonRecord.parse(text).content for text in await visible(poison)) == ["m3", "m7"]
    await poison.delete_queue()


async def test_process_runs_handlers_concurrently(queue_client):
    await queue_client.send_messages([f"m{i}" for i in range(16)])
    running = 0
    peak = 0
    eight_at_once = asyncio.Event()

    async def handler(msg):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 8:
            eight_at_once.set()
        await asyncio.wait_for(eight_at_once.wait(), 30)  # the first handlers wait for the eighth
        running -= 1

    stats = await queue_client.process(handler, concurrency=8, max_messages=16)
    assert stats.processed == 16 and peak == 8


async def test_cancelling_process_loses_nothing(queue_client):
    await queue_client.send_messages([f"m{i}" for i in range(20)])
    started = asyncio.Event()
    finished = []

    async def slow(msg):
        started.set()
        await asyncio.sleep(30)
        finished.append(msg.content)

    worker = asyncio.create_task(queue_client.process(slow, concurrency=4, visibility_timeout=300))
    await started.wait()
    await asyncio.sleep(0.1)
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    assert finished == []
    # nothing deleted, and everything (in-flight and prefetched) is visible again at once
    assert len(await visible(queue_client)) == 20


async def test_stop_event_lets_handlers_finish(queue_client):
    await queue_client.send_messages([f"m{i}" for i in range(10)])
    stop = asyncio.Event()

    async def handler(msg):
        stop.set()
        await asyncio.sleep(0.3)

    stats = await queue_client.process(handler, concurrency=2, stop=stop, visibility_timeout=300)
    assert 1 <= stats.processed <= 3 and stats.failed == 0
    assert await count(queue_client) == 10 - stats.processed
    assert len(await visible(queue_client)) == 10 - stats.processed  # the rest were released at once


async def test_cancelling_a_consumer_mid_poll_loses_nothing(proxy, queue_client):
    """Cancelled while its Get Messages is in flight: the service has already hidden the messages
    for 300 s; the answer that arrives after the cancellation must still give them back."""
    await queue_client.send_messages(["x", "y"])
    gate = Gate()
    proxy.script(Fault("hold_after", method="GET", gate=gate))

    async def consume():
        async with QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY) as q:
            async for msg in q.receive(visibility_timeout=300):
                async with msg:
                    await asyncio.sleep(30)

    task = asyncio.create_task(consume())
    await gate.arrived.wait()  # the service has handed both messages out; the answer is held
    assert await visible(queue_client) == []
    task.cancel()
    gate.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually_visible(queue_client, 2)
    assert sorted(await visible(queue_client)) == ["x", "y"]


async def test_cancelling_inside_async_with_stream_releases_before_exit(queue_client):
    handling = asyncio.Event()

    async def consume():
        async with queue_client.receive(visibility_timeout=300) as stream:
            async for msg in stream:
                async with msg:
                    handling.set()
                    await asyncio.sleep(30)

    await queue_client.send_messages(["x", "y", "z"])
    task = asyncio.create_task(consume())
    await handling.wait()  # one message in a handler, the others prefetched
    assert await visible(queue_client) == []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(await visible(queue_client)) == ["x", "y", "z"]  # no waiting needed


@pytest.mark.parametrize(
    "options",
    [
        {"max_batch_size": 33},
        {"max_batch_size": 0},
        {"visibility_timeout": 0},
        {"max_messages": 0},
        {"idle_timeout": -1},
        {"poll_interval": (2, 1)},
        {"poll_interval": "fast"},
        {"max_dequeue_count": 0},
        {"poison_queue": "Bad Name"},
        {"retry_delay": -3},
        {"auto_renew": "yes"},
    ],
)
def test_bad_options_fail_at_once(queue_client, options):
    with pytest.raises(ConfigurationError):
        queue_client.receive(**options)
    with pytest.raises(ConfigurationError):
        queue_client.receive_batches(**options)


@FROZEN
async def test_process_keeps_renewing_while_handlers_run(fake, fake_queue):
    await fake_queue.send_message("slow job")
    renewals = [fake.hold("update_message") for _ in range(2)]

    async def slow(msg):
        # twice the visibility timeout on the service's clock, after the stream itself has ended
        await renewals_keep_it_hidden(fake, fake_queue, renewals)

    stats = await fake_queue.process(slow, max_messages=1, visibility_timeout=2, auto_renew=True)
    assert stats == ProcessStats(processed=1, failed=0, poisoned=0)
    assert await count(fake_queue) == 0
    assert len(fake_queue._pool.streams) == 0
