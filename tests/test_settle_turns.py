"""A received message's settles run one at a time, in arrival order (issue #16 replaced the asyncio.Lock
per message by the same algorithm written into the settles). A fake link that holds each answer until
the test lets it go shows the exact order; the service itself is not needed for that."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from aioqueue import MessageSettled
from aioqueue._settle import ReceivedMessage

WHEN = datetime(2026, 11, 27, tzinfo=timezone.utc)


class HeldLink:
    """Each call records itself, then waits until the test releases it; set_visibility renews the receipt."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.gates: list[asyncio.Event] = []
        self.started = asyncio.Event()

    async def _hold(self, what: str, message: ReceivedMessage) -> None:
        self.calls.append((what, message.pop_receipt))
        gate = asyncio.Event()
        self.gates.append(gate)
        self.started.set()
        await gate.wait()

    async def delete(self, message: ReceivedMessage, *, resent: bool = False) -> None:
        await self._hold("delete", message)

    async def set_visibility(self, message: ReceivedMessage, visibility_timeout: int, *, why: str = "update") -> None:
        await self._hold(why, message)
        message.pop_receipt = f"{message.pop_receipt}+"  # the service answers a new receipt


class Holder:
    def __init__(self) -> None:
        self.link = HeldLink()
        self.options = SimpleNamespace(visibility_timeout=30, max_renewal=None, retry_delay_of=lambda m: 0)
        self.forgotten: list[ReceivedMessage] = []

    def forget(self, message: ReceivedMessage) -> None:
        self.forgotten.append(message)


def received(holder: Holder) -> ReceivedMessage:
    message = ReceivedMessage("id-1", "x", "r0", 1, WHEN, WHEN, WHEN)
    return message._attach(holder, "x")  # type: ignore[arg-type]


async def started(link: HeldLink, calls: int) -> None:
    """Until the link has been called ``calls`` times (each call waits at its gate)."""
    while len(link.calls) < calls:
        link.started.clear()
        await asyncio.wait_for(link.started.wait(), 30)


async def settled(*tasks: asyncio.Task[Any]) -> list[Any]:
    return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)


async def test_a_delete_waits_for_a_renewal_under_way_and_uses_its_new_receipt():
    holder = Holder()
    message = received(holder)
    renew = asyncio.create_task(message.renew())
    await started(holder.link, 1)
    delete = asyncio.create_task(message.delete())
    for _ in range(5):  # the delete stays queued however often the loop turns
        await asyncio.sleep(0)
    assert holder.link.calls == [("renew", "r0")] and not delete.done()
    holder.link.gates[0].set()
    await started(holder.link, 2)
    assert holder.link.calls == [("renew", "r0"), ("delete", "r0+")]
    holder.link.gates[1].set()
    assert await settled(renew, delete) == [None, None]
    assert message.settled == "deleted" and holder.forgotten == [message]
    assert not message._settling and not message._turns


async def test_queued_settles_go_in_arrival_order_and_only_one_settles():
    holder = Holder()
    message = received(holder)
    renew = asyncio.create_task(message.renew())
    await started(holder.link, 1)
    release = asyncio.create_task(message.release())
    await asyncio.sleep(0)
    delete = asyncio.create_task(message.delete())
    await asyncio.sleep(0)
    holder.link.gates[0].set()
    await started(holder.link, 2)
    assert holder.link.calls[1] == ("release", "r0+")  # the release came first
    holder.link.gates[1].set()
    renewed, released, deleted = await settled(renew, release, delete)
    assert renewed is None and released is None and isinstance(deleted, MessageSettled)
    assert len(holder.link.calls) == 2 and message.settled == "released"


async def test_a_settle_cancelled_while_it_waits_does_not_block_the_next():
    holder = Holder()
    message = received(holder)
    renew = asyncio.create_task(message.renew())
    await started(holder.link, 1)
    cancelled = asyncio.create_task(message.release())
    await asyncio.sleep(0)
    delete = asyncio.create_task(message.delete())
    await asyncio.sleep(0)
    cancelled.cancel()
    holder.link.gates[0].set()
    await started(holder.link, 2)
    assert holder.link.calls[1] == ("delete", "r0+")  # the cancelled release never ran
    holder.link.gates[1].set()
    renewed, gone, deleted = await settled(renew, cancelled, delete)
    assert renewed is None and isinstance(gone, asyncio.CancelledError) and deleted is None
    assert message.settled == "deleted" and not message._settling and not message._turns


async def test_the_settle_under_way_cancelled_hands_the_turn_on():
    holder = Holder()
    message = received(holder)
    renew = asyncio.create_task(message.renew())
    await started(holder.link, 1)
    delete = asyncio.create_task(message.delete())
    await asyncio.sleep(0)
    renew.cancel()
    await started(holder.link, 2)
    assert holder.link.calls == [("renew", "r0"), ("delete", "r0")]  # the cut-off renewal changed nothing
    holder.link.gates[1].set()
    renewed, deleted = await settled(renew, delete)
    assert isinstance(renewed, asyncio.CancelledError) and deleted is None


async def test_auto_renewal_skips_a_message_being_settled():
    holder = Holder()
    message = received(holder)
    delete = asyncio.create_task(message.delete())
    await started(holder.link, 1)
    await asyncio.wait_for(message._auto_renew(), 30)  # returns at once: a settle is under way
    assert holder.link.calls == [("delete", "r0")]
    holder.link.gates[0].set()
    assert await settled(delete) == [None]
    with pytest.raises(MessageSettled):
        await message.delete()


async def test_a_settle_cancelled_after_it_was_handed_the_turn_hands_it_on():
    holder = Holder()
    message = received(holder)
    renew = asyncio.create_task(message.renew())
    await started(holder.link, 1)
    release = asyncio.create_task(message.release())
    await asyncio.sleep(0)
    delete = asyncio.create_task(message.delete())
    await asyncio.sleep(0)
    holder.link.gates[0].set()
    # the renewal ends and hands the turn to the release, which has not run yet (a done callback or an
    # event would run after the release: only polling the loop stops right between the two)
    while not renew.done():  # noqa: ASYNC110
        await asyncio.sleep(0)
    release.cancel()  # cancelled holding the turn it never used: the delete must get it
    await started(holder.link, 2)
    assert holder.link.calls[1] == ("delete", "r0+")
    holder.link.gates[1].set()
    renewed, released, deleted = await settled(renew, release, delete)
    assert renewed is None and isinstance(released, asyncio.CancelledError) and deleted is None
    assert not message._settling and not message._turns
