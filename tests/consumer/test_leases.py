"""One message, one handler at a time (issue #22): renewals that hold under ordinary weather, no
second handler for a message already in hand, no lapsed lease handed out, and a stop that does not
wait for a fetch's whole retry budget. Against Azurite, with the fault proxy holding or breaking the
requests a real network would; where a test waits for a lease to lapse on the service, against the fake
service on a frozen clock that the test moves (``fake.advance``)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import pytest

from aioqueue import QueueClient, QueueMessage, ReceivedMessage
from aioqueue.testing import DEV_KEY
from tests.faults import Fault, Gate
from tests.helpers import eventually, visible

# the fake service's time stands still: only the test's fake.advance() moves it
FROZEN = pytest.mark.fake_options(clock="frozen")


def through(proxy, queue_client, **options) -> QueueClient:
    return QueueClient(proxy.url(), queue_client.queue_name, credential=DEV_KEY, **options)


async def test_a_held_renewal_does_not_hold_up_another_message(proxy, queue_client):
    """A's renewal is applied but its answer held: B's renewal still goes out on time and B stays hidden."""
    gate = Gate()
    proxy.script(Fault("hold_after", method="PUT", gate=gate))
    async with through(proxy, queue_client) as q:
        await queue_client.send_message("A")
        stream = q.receive(visibility_timeout=4, auto_renew=True, max_batch_size=1)
        it = aiter(stream)
        a = await anext(it)
        await gate.arrived.wait()  # A's renewal is applied; its answer held from here on
        await queue_client.send_message("B")
        b = await anext(it)  # fetched now: due for renewal after A's renewal started
        first = b.pop_receipt

        async def b_renewed() -> bool:
            return b.pop_receipt != first

        await eventually(b_renewed, what="B's renewal while A's answer is held")
        assert "B" not in await visible(queue_client)
        gate.release.set()
        await b.delete()  # A's receipt died with its held renewal: A is left to return after its timeout
        await stream.aclose()
    assert a.settled is None


async def test_a_blip_on_a_renewal_does_not_end_renewals(proxy, queue_client):
    """Four connection resets in a row on one renewal (a 1-2 s blip): renewals go on while the lease stands."""
    await queue_client.send_message("held")
    async with through(proxy, queue_client) as q:
        stream = q.receive(visibility_timeout=6, auto_renew=True)
        it = aiter(stream)  # kept: a dropped generator is finalised, and that ends its renewals
        msg = await anext(it)
        proxy.script(*[Fault("reset_before", method="PUT") for _ in range(4)])
        first = msg.pop_receipt

        async def renewed() -> bool:
            return msg.pop_receipt != first

        await eventually(renewed, what="a renewal after the blip")
        assert msg.renewal_error is None and not msg.lease_lost
        assert await visible(queue_client) == []
        await msg.delete()
        await stream.aclose()
    assert [s.fault for s in proxy.seen if s.method == "PUT"][:4] == ["reset_before"] * 4


async def test_reaching_max_renewal_is_told(queue_client, caplog):
    """Renewals that stop at max_renewal say so: a log line, renewal_error, lease_lost and on_lease_lost."""
    caplog.set_level(logging.WARNING, "aioqueue")
    told: list[tuple[str, BaseException]] = []
    seen_by_handler: list[bool] = []

    async def handler(msg: ReceivedMessage) -> None:
        async def lost() -> bool:
            return msg.lease_lost

        await eventually(lost, what="the handler seeing its lease lost")
        seen_by_handler.append(msg.lease_lost)
        assert msg.renewal_error is not None

    await queue_client.send_message("capped")
    await queue_client.process(
        handler,
        max_messages=1,
        visibility_timeout=1,
        auto_renew=True,
        max_renewal=1,
        on_lease_lost=lambda m, e: told.append((m.id, e)),
    )
    assert seen_by_handler == [True]
    assert len(told) == 1 and "max_renewal" in str(told[0][1])
    assert "max_renewal" in caplog.text


@FROZEN
async def test_the_lease_lost_warning_does_not_advise_auto_renew_when_it_is_on(fake, fake_queue, caplog):
    caplog.set_level(logging.WARNING, "aioqueue")

    async def handler(msg: ReceivedMessage) -> None:
        async def lost() -> bool:
            return msg.lease_lost

        await eventually(lost, what="renewals to stop")
        fake.advance(timedelta(seconds=1))  # the last renewal's lease lapses
        # another consumer takes the message: this handler's delete must fail
        assert await fake_queue.receive_messages(visibility_timeout=60), "the message was not visible again"

    await fake_queue.send_message("stolen")
    stats = await fake_queue.process(handler, max_messages=1, visibility_timeout=1, auto_renew=True, max_renewal=1)
    assert stats.lease_lost == 1
    assert "was handled, but deleting it failed" in caplog.text
    assert "auto_renew=True" not in caplog.text


@FROZEN
async def test_a_redelivered_message_is_not_handled_twice_at_once(fake, fake_queue):
    """The handler outlives the lease (no auto_renew) and the same worker fetches the message again: no
    second handler starts; the running one gets the new receipt, so its delete succeeds."""
    running: set[str] = set()
    twice: list[str] = []
    stop = asyncio.Event()

    async def handler(msg: ReceivedMessage) -> None:
        if msg.id in running:
            twice.append(msg.id)
            return
        running.add(msg.id)
        first = msg.pop_receipt

        async def redelivered() -> bool:
            return msg.pop_receipt != first or bool(twice)

        try:
            fake.advance(timedelta(seconds=1))  # the lease lapses while the handler runs
            await eventually(redelivered, what="the message to come back to this worker")
        finally:
            running.discard(msg.id)
            stop.set()

    await fake_queue.send_message("slow")
    stats = await fake_queue.process(handler, concurrency=2, stop=stop, visibility_timeout=1, poll_interval=(0.05, 0.2))
    assert twice == []
    assert stats.processed == 1 and stats.lease_lost == 0
    assert await visible(fake_queue) == [] and await fake_queue.receive_messages() == []


async def test_receive_never_yields_a_message_whose_lease_lapsed_in_its_buffer(queue_client):
    """Five fetched at once, the first handled slower than the lease; a rival takes the other four: the
    stream must not hand them out (their receipts are dead, and the rival is handling them)."""
    await queue_client.send_messages([f"m{i}" for i in range(5)])
    stream = queue_client.receive(visibility_timeout=2, idle_timeout=1, poll_interval=0.1)
    it = aiter(stream)
    first = await anext(it)
    await first.delete()

    async def rival_took_four() -> bool:
        rival.extend(await queue_client.receive_messages(max_messages=32, visibility_timeout=60))
        return len(rival) >= 4

    rival: list[QueueMessage] = []
    await eventually(rival_took_four, what="the four prefetched messages lapsing and the rival taking them")
    handed_out = []
    async for msg in it:
        handed_out.append(msg.id)
        async with msg:
            pass
    assert set(handed_out) & {m.id for m in rival} == set()


async def test_stop_does_not_wait_for_a_fetch_that_gets_no_answer(proxy, queue_client):
    """The fetch under way gets no answer: a stop returns within about one request timeout, not after
    every retry (4 attempts of 3 s here)."""
    gate = Gate()
    proxy.script(*[Fault("hold", method="GET", gate=gate) for _ in range(6)])

    async def handler(msg: ReceivedMessage) -> None:
        raise AssertionError("no message was sent")

    async with through(proxy, queue_client, timeout=3) as q:
        worker = q.worker(handler)
        run = asyncio.create_task(worker.run())
        await gate.arrived.wait()
        started = time.monotonic()
        worker.stop()
        await asyncio.wait_for(run, 60)
        took = time.monotonic() - started
    gate.release.set()
    assert took < 8, f"the stop took {took:.1f} s"


async def test_delete_message_waits_for_a_renewal_under_way(proxy, queue_client):
    """queue.delete_message(msg) takes the message's settle turn, like msg.delete()."""
    await queue_client.send_message("x")
    gate = Gate()
    async with through(proxy, queue_client) as q:
        stream = q.receive(visibility_timeout=30)
        it = aiter(stream)
        msg = await anext(it)
        proxy.script(Fault("hold_after", method="PUT", gate=gate))
        renewal = asyncio.create_task(msg.renew())
        await gate.arrived.wait()  # applied: the receipt msg holds is dead from here on
        deletion = asyncio.create_task(q.delete_message(msg))
        for _ in range(100):  # give the delete a chance to go out (it must wait for the renewal)
            if any(s.method == "DELETE" for s in proxy.seen):
                break
            await asyncio.sleep(0.01)
        gate.release.set()
        await renewal
        await deletion
        await stream.aclose()
    assert await queue_client.receive_messages() == []


@FROZEN
@pytest.mark.filterwarnings("error")
async def test_a_retry_delay_that_raises_still_releases_and_reports(fake, fake_queue, caplog):
    failures: list[BaseException] = []

    async def handler(msg: ReceivedMessage) -> None:
        raise RuntimeError("boom")

    def overflowing(dequeue_count: int) -> float:
        return 2.0**100_000  # OverflowError, as 2.0**n does for large dequeue counts

    await fake_queue.send_message("x")
    stats = await fake_queue.process(
        handler,
        max_messages=1,
        visibility_timeout=1,
        retry_delay=overflowing,
        on_failure=lambda m, e: failures.append(e),
    )
    assert stats.failed == 1 and len(failures) == 1
    assert "retry_delay" in caplog.text
    assert await visible(fake_queue) == []  # released for visibility_timeout, as if never settled
    fake.advance(timedelta(seconds=1))
    assert await visible(fake_queue) == ["x"]


# ---- found by the review of the first change ------------------------------------------------------


async def test_a_released_message_comes_back_at_once_while_its_on_failure_hook_runs(queue_client):
    """A failed handler's message, released with retry_delay 0, is a new delivery like any other, even
    while on_failure still runs (it was left hidden for its whole visibility timeout)."""
    deliveries: list[int] = []

    async def handler(msg: ReceivedMessage) -> None:
        deliveries.append(msg.dequeue_count)
        if len(deliveries) == 1:
            raise RuntimeError("first try fails")

    async def on_failure(msg: ReceivedMessage, exc: BaseException) -> None:
        async def again() -> bool:
            return len(deliveries) >= 2

        await eventually(again, what="the second delivery while on_failure runs")

    await queue_client.send_message("retry me")
    stats = await queue_client.process(
        handler, idle_timeout=4, visibility_timeout=30, poll_interval=(0.05, 0.2), on_failure=on_failure
    )
    assert deliveries == [1, 2], f"deliveries={deliveries} stats={stats}"


@FROZEN
async def test_a_fetch_answered_during_stop_does_not_release_a_message_in_hand(fake, fake_queue):
    started, go = asyncio.Event(), asyncio.Event()

    async def handler(msg: ReceivedMessage) -> None:
        started.set()
        await go.wait()

    await fake_queue.send_message("slow")
    worker = fake_queue.worker(handler, concurrency=2, visibility_timeout=1, poll_interval=(0.05, 0.2))
    run = asyncio.create_task(worker.run())
    await started.wait()
    gate = fake.hold("get_messages")  # the next poll, held before it reaches the queue
    await gate.arrived.wait()
    fake.advance(timedelta(seconds=1))  # the handler's lease lapses
    assert await visible(fake_queue) == ["slow"]
    worker.stop()
    gate.release.set()  # the held poll now takes the message: within the stop's grace for it
    await gate.done.wait()
    await asyncio.sleep(0.5)  # room for a wrong give-back to land
    visible_while_in_hand = await visible(fake_queue)
    go.set()
    stats = await asyncio.wait_for(run, 30)
    assert visible_while_in_hand == [], "a message in hand was made visible"
    assert stats.lease_lost == 0 and stats.processed == 1, stats


@FROZEN
async def test_on_lease_lost_is_called_once_per_message(fake, fake_queue):
    told: list[str] = []
    stop = asyncio.Event()

    async def handler(msg: ReceivedMessage) -> None:
        first = msg.dequeue_count

        async def lost() -> bool:
            return msg.lease_lost

        await eventually(lost, what="renewals to stop at max_renewal")
        for n in (1, 2):  # taken over twice after renewals stopped
            fake.advance(timedelta(seconds=1))  # the lease lapses: the worker fetches the message again

            async def came_back(n: int = n) -> bool:
                return msg.dequeue_count >= first + n

            await eventually(came_back, what=f"redelivery {n} taken over by the running handler")
            if n == 1:  # room for renewals wrongly restarted by the take-over to tell it again (at 0.5 s)
                await asyncio.sleep(1.0)
        stop.set()

    await fake_queue.send_message("long")
    await fake_queue.process(
        handler,
        concurrency=2,
        stop=stop,
        visibility_timeout=1,
        auto_renew=True,
        max_renewal=1,
        poll_interval=(0.05, 0.2),
        on_lease_lost=lambda m, e: told.append(m.id),
    )
    assert len(told) == 1, told


def test_a_retry_delay_of_minus_infinity_is_no_delay():
    from datetime import datetime, timezone

    from aioqueue._options import ReceiveSettings

    now = datetime.now(timezone.utc)
    msg = QueueMessage("id", "x", "r", 3, now, now, now)
    assert ReceiveSettings.build(retry_delay=lambda n: float("-inf")).retry_delay_of(msg) == 0
    assert ReceiveSettings.build(retry_delay=lambda n: float("inf")).retry_delay_of(msg) == 7 * 24 * 3600
    assert ReceiveSettings.build(visibility_timeout=40, retry_delay=lambda n: float("nan")).retry_delay_of(msg) == 40


async def test_a_fetch_that_was_retried_still_gets_renewed(proxy, queue_client):
    """The fetch waited 3 s (Retry-After) before the attempt that leased the message: the lease is
    counted from that attempt, not from the first, so renewals start on time instead of giving up."""
    told: list[BaseException] = []
    lost_at_start: list[bool] = []
    done = asyncio.Event()

    async def handler(msg: ReceivedMessage) -> None:
        lost_at_start.append(msg.lease_lost)
        first = msg.pop_receipt

        async def renewed_twice() -> bool:
            return msg.pop_receipt != first and msg.dequeue_count == 1 and msg.lease_lost is False

        await eventually(renewed_twice, what="renewals of the message")
        done.set()

    await queue_client.send_message("x")
    proxy.script(Fault("503", method="GET", headers={"Retry-After": "3"}))
    async with through(proxy, queue_client) as q:
        stats = await q.process(
            handler, max_messages=1, visibility_timeout=2, auto_renew=True, on_lease_lost=lambda m, e: told.append(e)
        )
    assert lost_at_start == [False] and told == [], (lost_at_start, told)
    assert stats.processed == 1 and stats.lease_lost == 0, stats
