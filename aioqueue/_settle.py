"""Settling received messages: delete on a clean exit, release on failure, renew, settle once.

A :class:`ReceivedMessage` and a :class:`MessageBatch` are their own ``async with`` contexts (the
aio-pika ``message.process()`` idea, one call shorter). Every settle runs so that a cancellation of
the caller cannot cut it off half-way.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from functools import partial
from types import TracebackType
from typing import Protocol, TypeVar, overload

from ._errors import AioQueueError, ConfigurationError, LeaseLost, MessageSettled
from ._link import QueueLink
from ._models import QueueMessage
from ._options import ReceiveSettings
from ._retry import is_weather
from ._validation import Duration, seconds

__all__ = ["Holder", "MessageBatch", "ReceivedMessage", "release_all", "release_quietly"]

log = logging.getLogger("aioqueue")

SETTLE_CONCURRENCY = 16
T = TypeVar("T")


class Holder(Protocol):
    """The stream a received message came from: its options, its queue, and its renewal list."""

    options: ReceiveSettings
    link: QueueLink

    def forget(self, message: ReceivedMessage) -> None:
        """Stop renewing ``message`` (it was settled, or renewing it failed)."""
        ...

    def claim(self, message: ReceivedMessage) -> None:
        """``message`` is in hand (in its ``async with`` block or handler): a redelivery of it while
        there is never handed out a second time."""
        ...

    def unclaim(self, message: ReceivedMessage) -> None:
        """``message`` is no longer in hand."""
        ...

    def lease_lost(self, message: ReceivedMessage, error: AioQueueError, *, tell: bool = True) -> None:
        """Renewals of ``message`` stopped before it was settled: stop them, and say so (log, callback)
        unless it was told already (``tell`` False)."""
        ...

    async def failed(self, message: ReceivedMessage, error: BaseException) -> bool:
        """The handling of ``message`` failed with ``error``: True when that poisoned it (its last allowed
        delivery), False when it is to be released."""
        ...

    async def poison(self, message: ReceivedMessage, reason: str) -> None:
        """Move ``message`` to the poison queue now (``message.poison``, in its settle turn)."""
        ...


class ReceivedMessage(QueueMessage):
    """A message from ``receive()``: ``async with msg:`` deletes it on a clean exit and, on an
    exception, makes it visible again after ``retry_delay`` and re-raises.

    Settle by hand with :meth:`delete` or :meth:`release`; a message settles once (a second settle
    raises :class:`MessageSettled`) and a settled message is skipped at exit. :meth:`renew` extends
    its visibility. With ``auto_renew`` renewals are retried until the lease they protect lapses; when
    they stop before the message is settled (``max_renewal`` reached, the lease lapsed or was taken),
    :attr:`lease_lost` turns True, the reason is kept in :attr:`renewal_error` (a :class:`LeaseLost`
    or the service's error), it is logged and the worker's ``on_lease_lost`` is called.
    """

    __slots__ = (
        "_consumer",
        "_lease_until",
        "_lost_told",
        "_pending",
        "_raw",
        "_renew_at",
        "_renew_until",
        "_settling",
        "_turns",
        "_unfetched",
        "lease_lost",
        "renewal_error",
        "settled",
    )

    _consumer: Holder
    # Settles run one at a time: asyncio.Lock's algorithm, with its uncontended path written into each
    # settle (a consumer settles every message; the Lock's calls were a sixth of a message's overhead)
    _settling: bool  # a settle of this message is under way
    _turns: deque[asyncio.Future[None]] | None  # settles waiting for theirs, first come first served
    _raw: str
    _lease_until: float  # time.monotonic() by which the lease has surely lapsed unless renewed
    _lost_told: bool  # its lost lease was told (log, on_lease_lost): once per message
    _pending: ReceivedMessage | None  # a new delivery of it that came while a request of its was under way
    _renew_at: float
    _renew_until: float | None
    _unfetched: bool  # its content is a large payload not fetched yet (fetched as it is handed over)
    lease_lost: bool  # renewals stopped before it was settled: it may be handed to someone else
    renewal_error: BaseException | None
    settled: str | None

    def _attach(self, consumer: Holder, raw: str, leased_at: float | None = None) -> ReceivedMessage:
        """``leased_at``: time.monotonic() when the Get Messages that leased it was sent (the lease is
        counted from there, so it never seems longer than the service's)."""
        self._consumer = consumer
        self._raw = raw
        self._settling = False
        self._turns = None
        self._lost_told = False
        self._pending = None
        self._unfetched = False
        now = time.monotonic() if leased_at is None else leased_at
        vis = consumer.options.visibility_timeout
        self._renew_at = now + vis / 2
        self._lease_until = now + vis
        limit = consumer.options.max_renewal
        self._renew_until = None if limit is None else now + limit
        self.lease_lost = False
        self.renewal_error = None
        self.settled = None
        return self

    def __repr__(self) -> str:
        state = f", {self.settled}" if self.settled else ""
        return f"ReceivedMessage(id={self.id!r}, dequeue_count={self.dequeue_count}{state})"

    async def __aenter__(self) -> ReceivedMessage:
        self._consumer.claim(self)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self.settled is not None:
                return
            if exc_type is None:
                await self._delete_on_exit()
            elif issubclass(exc_type, asyncio.CancelledError):
                await shielded(self.release(delay=0))
            else:
                await shielded(self._failed(exc if exc is not None else RuntimeError(exc_type.__name__)))
        finally:
            self._consumer.unclaim(self)

    async def _failed(self, error: BaseException) -> None:
        """Its handling failed: released after ``retry_delay``, or on its last allowed delivery (with
        ``max_dequeue_count``) poisoned now with that failure. When its copy reached the poison queue
        but the delete here failed, it is settled all the same: it returns after its visibility timeout,
        to be poisoned again on arrival (a second record, never a loss)."""
        if not await self._consumer.failed(self, error) and self.settled is None:
            await self.release(delay=self._consumer.options.retry_delay_of(self))

    async def _delete_on_exit(self) -> None:
        """The clean-exit delete. It runs in the caller's task (a task per message would cost more than
        the rest of the exit), so a cancellation of the caller can cut its request off; the delete is
        then finished in a task that cancellation cannot reach, and the cancellation re-raised."""
        try:
            await self.delete()
        except asyncio.CancelledError:
            await shielded(self._finish_delete())
            raise

    async def _finish_delete(self) -> None:
        """Delete again after a cut-off attempt; that attempt may have landed, so 'not found' is success."""
        await self._take_turn()
        try:
            if self.settled is None:
                self._mark_settled("deleted")
            elif self.settled != "deleted":
                return
            await self._consumer.link.delete(self, resent=True)
        finally:
            self._end_turn()

    async def delete(self) -> None:
        """Delete the message (using its newest pop receipt)."""
        if self._settling or self._turns:
            await self._take_turn()
        else:
            self._settling = True
        try:
            self._check("delete")
            self._mark_settled("deleted")
            await self._consumer.link.delete(self)
        finally:
            self._settling = False
            if self._turns:
                self._wake_next()

    async def release(self, delay: Duration = 0) -> None:
        """Make the message visible again after ``delay`` (0 s..7 d; 0 = at once) for redelivery."""
        vis = seconds(delay, "delay", low=0)
        await self._take_turn()
        try:
            self._check("release")
            self._mark_settled("released")
            await self._consumer.link.set_visibility(self, vis, why="release")
        finally:
            self._end_turn()

    async def poison(self, reason: str) -> None:
        """Move the message to the poison queue now, whatever its dequeue count, with ``reason`` in its
        poison record (and the failures seen for it in this process); it is settled ("poisoned") and not
        released or deleted again. The queue is the stream's ``poison_queue`` (default
        ``"<queue>-poison"``, also without ``max_dequeue_count``). A failure to move it is raised: the
        message is left as it was, unless only the delete after the copy failed (then it is settled,
        and returns after its visibility timeout while its record is in the poison queue)."""
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigurationError("reason must be a non-empty str")
        await self._in_turn(partial(self._consumer.poison, self, reason))

    async def renew(self, visibility_timeout: Duration | None = None) -> None:
        """Keep the message hidden for ``visibility_timeout`` more (default: the stream's)."""
        vis = seconds(
            self._consumer.options.visibility_timeout if visibility_timeout is None else visibility_timeout,
            "visibility_timeout",
            low=1,
        )
        await self._take_turn()
        try:
            self._check("renew")
            sent = time.monotonic()
            await self._consumer.link.set_visibility(self, vis, why="renew")
            self._renewed(sent, vis)
        finally:
            self._end_turn()

    def _renewed(self, sent: float, vis: float) -> None:
        """A lease was (re)taken by a request sent at ``sent`` for ``vis`` seconds."""
        self._renew_at = sent + vis / 2
        self._lease_until = sent + vis
        self.lease_lost = False
        self.renewal_error = None

    async def _in_turn(self, action: Callable[[], Awaitable[T]], settles: str | None = None) -> T:
        """Run ``action`` (a request with this message's newest receipt) in the message's settle turn,
        as :meth:`delete` and :meth:`renew` do; ``settles``: "deleted" marks it settled first."""
        await self._take_turn()
        try:
            if settles is not None:
                self._check("delete")
                self._mark_settled(settles)
            return await action()
        finally:
            self._end_turn()

    async def _take_turn(self) -> None:
        """Wait until no other settle of this message runs (asyncio.Lock.acquire, step for step)."""
        turns = self._turns
        if not self._settling and (not turns or all(turn.cancelled() for turn in turns)):
            self._settling = True
            return
        if turns is None:
            turns = self._turns = deque()
        turn = asyncio.get_running_loop().create_future()
        turns.append(turn)
        try:
            try:
                await turn
            finally:
                turns.remove(turn)
        except asyncio.CancelledError:
            if not self._settling:
                self._wake_next()
            raise
        self._settling = True

    def _end_turn(self) -> None:
        """asyncio.Lock.release (and a new delivery that came meanwhile is taken over first)."""
        self._settling = False
        if self._pending is not None:
            self._take_over(self._pending)
        self._wake_next()

    def _take_over(self, fresh: ReceivedMessage) -> None:
        """The queue handed this message out again (its lease lapsed while it was held): keep holding it
        with the new delivery's receipt and lease. When a request of this message is under way, whose
        receipt the new delivery has just made stale, that happens as soon as the request ends."""
        if self._settling:
            self._pending = fresh
            return
        self._pending = None
        if self.settled is not None:
            return
        self.pop_receipt, self.next_visible_on = fresh.pop_receipt, fresh.next_visible_on
        self.dequeue_count = fresh.dequeue_count
        self._lease_until, self._renew_at = fresh._lease_until, fresh._renew_at
        self.lease_lost = False
        self.renewal_error = None

    def _wake_next(self) -> None:
        if self._turns:
            first = self._turns[0]
            if not first.done():
                first.set_result(None)

    def _mark_settled(self, how: str) -> None:
        self.settled = how
        self._consumer.forget(self)

    def _check(self, action: str) -> None:
        if self.settled is not None:
            raise MessageSettled(f"cannot {action} message {self.id}: it was already {self.settled}")

    async def _auto_renew(self) -> bool:
        """One renewal by the stream's renewer, tried again (with back-off) after each failure that
        retrying can fix until it gets through or the lease it protects has lapsed; no wait (retries,
        ``Retry-After``) runs past that lease. False when renewals of this message end: it was settled,
        or the lease is lost (recorded, logged and told through the stream: never raised)."""
        error: AioQueueError | None = None
        tries = 0
        while self.settled is None:
            left = self._lease_until - time.monotonic()
            if left <= 0:
                self._lose(LeaseLost(f"message {self.id}'s lease lapsed before a renewal got through: {error}"))
                return False
            receipt = self.pop_receipt
            try:
                await asyncio.wait_for(self.renew(), left)
                return True
            except MessageSettled:
                return False
            except AioQueueError as exc:
                if self.pop_receipt != receipt:
                    return True  # a new delivery was taken over meanwhile: its receipt is the one to renew
                if not is_weather(exc):
                    self._lose(exc)
                    return False
                error = exc
            except asyncio.TimeoutError:
                continue  # the lease lapsed while the renewal waited: told above
            tries += 1
            pause = min(2.0, 0.1 * 2**tries)
            await asyncio.sleep(min(random.uniform(pause / 2, pause), max(0.0, self._lease_until - time.monotonic())))
        return False

    def _lose(self, error: AioQueueError) -> None:
        """Renewals stop before the message was settled: record why and tell the stream (once a message)."""
        if self.settled is not None or self.lease_lost:
            return
        self.lease_lost = True
        self.renewal_error = error
        told, self._lost_told = self._lost_told, True
        self._consumer.lease_lost(self, error, tell=not told)


async def release_quietly(message: ReceivedMessage, delay: int) -> None:
    """Release; when that fails the message still returns, after its visibility timeout (or already has,
    when the failed release may have landed)."""
    try:
        await message.release(delay=delay)
    except MessageSettled:
        pass
    except AioQueueError as exc:
        if getattr(exc, "maybe_applied", False):  # the release itself may have landed before its answer was lost
            log.warning(
                "could not confirm the release of message %s; it may already be visible again: %s", message.id, exc
            )
        else:
            log.warning("could not release message %s; it returns after its visibility timeout: %s", message.id, exc)


async def shielded(operation: Awaitable[None]) -> None:
    """Run a settle so that a cancellation of the caller does not cut it off half-way."""
    task = asyncio.ensure_future(operation)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


class MessageBatch(Sequence[ReceivedMessage]):
    """Up to 32 messages; ``async with batch:`` deletes every unsettled message on a clean exit
    (concurrently, bounded) and releases them all after ``retry_delay`` on an exception."""

    __slots__ = ("_consumer", "_messages")

    def __init__(self, messages: list[ReceivedMessage], consumer: Holder) -> None:
        self._messages = messages
        self._consumer = consumer

    @overload
    def __getitem__(self, index: int) -> ReceivedMessage: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ReceivedMessage]: ...

    def __getitem__(self, index: int | slice) -> ReceivedMessage | Sequence[ReceivedMessage]:
        return self._messages[index]

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self) -> Iterator[ReceivedMessage]:
        return iter(self._messages)

    def __repr__(self) -> str:
        return f"MessageBatch({len(self._messages)} messages)"

    async def __aenter__(self) -> MessageBatch:
        for message in self._messages:
            self._consumer.claim(message)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                await shielded(self.delete())
            elif issubclass(exc_type, asyncio.CancelledError):
                await shielded(self.release(delay=0))
            else:
                await shielded(self._failed(exc if exc is not None else RuntimeError(exc_type.__name__)))
        finally:
            for message in self._messages:
                self._consumer.unclaim(message)

    async def delete(self) -> None:
        """Delete every message not settled yet."""
        await _settle_all([m.delete for m in self._messages if m.settled is None])

    async def release(self, delay: Duration = 0) -> None:
        """Release every message not settled yet, visible again after ``delay``."""
        await release_all(self._messages, lambda m: delay)

    async def _failed(self, error: BaseException) -> None:
        """Each message not settled yet: released after ``retry_delay``, or poisoned on its last allowed
        delivery (as one message's ``async with`` does)."""
        await _settle_all([partial(m._failed, error) for m in self._messages if m.settled is None])


async def release_all(messages: Sequence[ReceivedMessage], delay: Callable[[ReceivedMessage], Duration]) -> None:
    """Release every message not settled yet, each visible again after ``delay(message)``."""
    await _settle_all([partial(m.release, delay(m)) for m in messages if m.settled is None])


async def _settle_all(operations: Sequence[Callable[[], Awaitable[None]]]) -> None:
    """Run settles at most SETTLE_CONCURRENCY at a time; raise the first failure after all ran."""
    semaphore = asyncio.Semaphore(SETTLE_CONCURRENCY)

    async def run(op: Callable[[], Awaitable[None]]) -> None:
        async with semaphore:
            await op()

    results = await asyncio.gather(*(run(op) for op in operations), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, MessageSettled):
            raise result
