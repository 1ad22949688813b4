"""A received message's settles run one at a time, in arrival order (issue #16 replaced the asyncio.Lock
per message by the same algorithm written into the settles). A fake link that holds each answer until
the test lets it go shows the exact order; the service itself is not needed for that. The last tests
hold the inlined turn to its reference: any schedule of settles, answers and cancellations gives what
an asyncio.Lock gives."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# ---- the turn against asyncio.Lock, its model ---------------------------------------------------
#
# A message's settles take turns by asyncio.Lock's algorithm written into ReceivedMessage (_take_turn,
# _end_turn, _wake_next, and delete's own uncontended path). The same schedule (settles started, link
# calls let go, settles cancelled, the loop turned a given number of times) is driven through a real
# message and through a model whose turn is an asyncio.Lock; after every step both must show the same
# link calls in the same order, the turn held or free alike, and every settle in the same state.


class TurnLink:
    """Records which settle (by its task) reached the link, then holds it until the test opens its gate."""

    def __init__(self) -> None:
        self.names: dict[asyncio.Task[Any], int] = {}
        self.calls: list[tuple[int, str]] = []
        self.gates: list[asyncio.Event] = []

    async def hold(self, what: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.calls.append((self.names[task], what))
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()

    async def delete(self, message: object, *, resent: bool = False) -> None:
        await self.hold("delete")

    async def set_visibility(self, message: object, visibility_timeout: int, *, why: str = "update") -> None:
        await self.hold(why)


class LockModel:
    """What a message's settles do, with an asyncio.Lock as their turn."""

    def __init__(self, link: TurnLink) -> None:
        self.link = link
        self.lock = asyncio.Lock()
        self.settled: str | None = None

    async def _settle(self, what: str, settles: str | None, *, check: bool = True) -> None:
        async with self.lock:
            if check and self.settled is not None:
                raise MessageSettled(what)
            if settles is not None:
                self.settled = settles
            await self.link.hold(what)

    def start(self, kind: str) -> Any:
        settles = {"delete": "deleted", "release": "released"}.get(kind)
        return self._settle(kind, settles, check=kind != "turn")

    def locked(self) -> bool:
        return self.lock.locked()


class MessageUnderTest:
    """The same settles on a real ReceivedMessage."""

    def __init__(self, link: TurnLink) -> None:
        holder = Holder()
        holder.link = link  # type: ignore[assignment]
        self.message = received(holder)

    def start(self, kind: str) -> Any:
        message = self.message
        if kind == "turn":  # the client's update_message and delete_message take the turn this way
            return message._in_turn(partial(message._consumer.link.hold, "turn"))  # type: ignore[attr-defined]
        return {"delete": message.delete, "release": message.release, "renew": message.renew}[kind]()

    def locked(self) -> bool:
        return self.message._settling


def state(task: asyncio.Task[Any]) -> str:
    if not task.done():
        return "waiting"
    if task.cancelled():
        return "cancelled"
    error = task.exception()
    return "done" if error is None else type(error).__name__


Step = tuple[str, Any]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("start"), st.sampled_from(["delete", "release", "renew", "turn"])),
        st.tuples(st.just("open"), st.none()),  # the settle at the link gets its answer
        st.tuples(st.just("cancel"), st.integers(0, 3)),  # the n-th settle started
        st.tuples(st.just("spin"), st.integers(1, 3)),  # the loop turns that often
    ),
    max_size=24,
)


async def _step(what: str, arg: Any, subject: Any, link: TurnLink, tasks: list[asyncio.Task[Any]]) -> None:
    """One step of a schedule: start a settle, answer every held call, cancel a settle, or turn the loop."""
    if what == "start":
        task = asyncio.ensure_future(subject.start(arg))
        link.names[task] = len(tasks)
        tasks.append(task)
    elif what == "open":
        for gate in link.gates:
            gate.set()
    elif what == "cancel" and tasks:
        tasks[arg % len(tasks)].cancel()
    elif what == "spin":
        for _ in range(arg):
            await asyncio.sleep(0)


def run_schedule(make: Callable[[TurnLink], LockModel | MessageUnderTest], schedule: list[Step]) -> list[Any]:
    async def main() -> list[Any]:
        link = TurnLink()
        subject = make(link)
        tasks: list[asyncio.Task[Any]] = []
        trace: list[Any] = []

        def snapshot() -> None:
            trace.append((tuple(link.calls), subject.locked(), tuple(map(state, tasks))))

        for what, arg in schedule:
            await _step(what, arg, subject, link, tasks)
            snapshot()
        for _ in range(1000):  # then every settle gets its answer, until all are done
            if all(task.done() for task in tasks):
                break
            await _step("open", None, subject, link, tasks)
            await asyncio.sleep(0)
        snapshot()
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved
        return trace

    return asyncio.run(main())


@settings(max_examples=1000, deadline=None)
@given(steps)
def test_the_settle_turn_hands_over_as_asyncio_lock_does(schedule):
    expected = run_schedule(LockModel, schedule)
    assert run_schedule(MessageUnderTest, schedule) == expected
    _, locked, states = expected[-1]
    assert not locked and "waiting" not in states


def plan(text: str) -> list[Step]:
    """A schedule written out: 'start renew; spin 1; open; cancel 1'."""
    out: list[Step] = []
    for step in text.split(";"):
        what, _, arg = step.strip().partition(" ")
        out.append((what, int(arg) if arg.isdigit() else arg or None))
    return out


@pytest.mark.parametrize(
    "schedule",
    [
        # a delete starting while the turn is handed on to a release that has not run yet: it queues behind
        "start renew; spin 1; start release; spin 1; open; start delete; spin 3",
        # the settle handed the turn is cancelled before it ran: the next one gets the turn
        "start renew; spin 1; start turn; start delete; spin 1; open; spin 1; cancel 1; spin 3",
        # a waiting settle cancelled before it was woken, then the one under way ends
        "start renew; spin 1; start release; start turn; spin 1; cancel 1; spin 1; open; spin 3",
        # the turn ends while its only waiter is cancelled but still queued: a delete takes it at once
        "start renew; spin 1; start release; spin 1; open; start delete; cancel 1; spin 1; spin 3",
    ],
    ids=["delete-while-handed-on", "woken-then-cancelled", "cancelled-while-waiting", "delete-past-a-cancelled"],
)
def test_the_settle_turn_hands_over_as_asyncio_lock_does_in_the_tight_spots(schedule):
    """The interleavings the property test must reach, written out."""
    expected = run_schedule(LockModel, plan(schedule))
    assert run_schedule(MessageUnderTest, plan(schedule)) == expected
    assert expected[-1][0]  # the link was reached
