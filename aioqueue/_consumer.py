"""The fetcher behind both streams (``receive()``, ``receive_batches()``) and the worker: :class:`Consumer`.

Delivery is at-least-once: a message is deleted only when its ``async with`` block (or handler) ends
cleanly, or by hand. Everything else makes it visible again: at once when it was fetched but never
yielded, after ``retry_delay`` when its handler failed, after its visibility timeout when it was
never settled. Duplicates are therefore possible; handlers should be idempotent.

But never two at once from one stream or worker: a message in hand (inside its ``async with`` block,
or in the worker's handler) that the queue hands out again is not handed out a second time; the one
in hand takes its new pop receipt and lease instead. A prefetched message whose lease lapsed (or is
about to) while it waited in the stream's buffer is given back, never yielded.

A large payload's message is fetched as it is handed over (:meth:`Consumer.fetch_payload`), never with
its whole batch: prefetched messages hold only their references, and its lease is renewed while its
payload downloads.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from . import _link
from ._errors import AioQueueError, LeaseLost, MessageEncodingError, redact_text
from ._link import QueueLink
from ._messages import RawMessage, decoded_messages, received_message
from ._options import ReceiveSettings, poison_queue_for
from ._poison import Failures, new_record, record_text, without_content
from ._retry import is_weather
from ._schedule import due_only
from ._settle import ReceivedMessage, release_all, release_quietly, shielded
from ._telemetry import current_trace_ids

__all__ = ["FETCH_GRACE_ON_STOP", "Consumer", "call_hook"]

log = logging.getLogger("aioqueue")

# A receive under way when the stream stops gets this long (at most one request timeout) to answer and
# re-enqueue what it got that is not due, so that the rest is given back at once; after that it is
# abandoned, and whatever it got returns after its visibility timeout. A stop never waits for a fetch's
# retries.
FETCH_GRACE_ON_STOP = 5.0

Fetched = tuple[list[RawMessage], float, int]
"""What one fetch got to hand over, time.monotonic() when it was leased, and how many it re-enqueued."""


class Consumer:
    """Fetching, poison handling, renewal and clean-up for one stream."""

    def __init__(
        self,
        link: QueueLink,
        options: ReceiveSettings,
        *,
        poison_queue: str | None,
        raise_undecodable: bool = True,
        on_poison: Callable[[ReceivedMessage, str], object] | None = None,
        on_lease_lost: Callable[[ReceivedMessage, BaseException], object] | None = None,
    ) -> None:
        self.link = link
        self.on_poison = on_poison  # called (or awaited) with each message moved to the poison queue
        self.on_lease_lost = on_lease_lost  # called (or awaited) when a held message's renewals stop
        self.options = options
        self.poison_queue = poison_queue  # checked by the caller; None when poisoning is off
        self.raise_undecodable = raise_undecodable  # streams raise; the worker counts and goes on
        self.buffer: collections.deque[ReceivedMessage] = collections.deque()
        self.active: dict[str, ReceivedMessage] = {}  # by message id: in hand (see claim)
        self.pace: float | None = None  # seconds a yielded message keeps the stream's caller (smoothed)
        self.yielded = 0
        self.unhanded = 0  # messages of the last answer not yet handed on (the worker's "prefetched")
        self.last_answer: float | None = None  # time.monotonic() of the last fetch the queue answered
        self.poisoned = 0
        self.undecodable = 0  # released for redelivery (poisoning off)
        self.rescheduled = 0  # scheduled messages not due yet, re-enqueued (never handed out)
        self.failures = Failures()  # handlers' failures by message id, for the poison records
        self._why: dict[str, MessageEncodingError] = {}  # the last fetch's undecodable ones' particular errors
        self.closed = False
        self.halted = False  # no more fetching: stopped or closed
        self._wakers: set[Callable[..., None]] = set()
        self._fetch: asyncio.Task[Fetched] | None = None
        self._renewals: dict[int, asyncio.Task[None]] = {}  # by id(message): one renewer each
        self._background: set[asyncio.Task[None]] = set()  # on_lease_lost calls, deletes of handled copies
        self._empty_polls = 0
        self._last_message = time.monotonic()
        link.track(self)

    # ---- fetching --------------------------------------------------------------------------

    def _remaining(self) -> int | None:
        if self.options.max_messages is None:
            return None
        return self.options.max_messages - self.yielded

    def halt(self) -> None:
        """Fetch no more: a wait between polls, or for a fetch under way, ends at once (what that
        fetch gets is given back by :meth:`aclose`)."""
        self.halted = True
        for wake in list(self._wakers):
            wake()

    async def pause(self, delay: float | None, until: asyncio.Future[Any] | None = None) -> None:
        """Wait ``delay`` seconds (None: no limit), until ``until`` is done, or until halted."""
        if self.halted:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def wake(*_: object) -> None:
            if not waiter.done():
                waiter.set_result(None)

        timer = loop.call_later(delay, wake) if delay is not None else None
        if until is not None:
            until.add_done_callback(wake)
        self._wakers.add(wake)
        try:
            await waiter
        finally:
            self._wakers.discard(wake)
            if timer is not None:
                timer.cancel()
            if until is not None:
                until.remove_done_callback(wake)

    async def next_batch(self, limit: int) -> list[ReceivedMessage] | None:
        """The next non-empty batch of up to ``limit`` messages; None when the stream has ended."""
        options = self.options
        while not self.halted:
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                return None
            want = min(limit, options.max_batch_size, remaining if remaining is not None else 32)
            fetch = self._fetch = asyncio.ensure_future(self._receive(want))
            # the fetch (and the re-enqueueing of scheduled messages not due) runs in its own task: if
            # the caller is cancelled or the stream halted, it completes and aclose gives back whatever
            # it got, instead of leaving those messages hidden for the visibility timeout (or a hop
            # half done: sent again, not deleted)
            await self.pause(None, until=fetch)
            if not fetch.done():
                return None  # halted while fetching
            self._fetch = None
            entries, leased_at, hops = fetch.result()
            self.unhanded = len(entries)
            messages, undecodable = self._adopt_all(entries, leased_at)
            self.last_answer = time.monotonic()  # an answer it could read
            if self.active:
                messages = self._not_in_hand(messages)
            if self.halted:  # stopped or closed while fetching: give them straight back
                await release_all(messages + undecodable, lambda m: 0)
                return None
            if undecodable:
                await self._divert_undecodable(messages, undecodable)
            if options.poisons:
                messages = await self._divert_poison(messages)
            if messages:
                self._empty_polls = 0
                self._last_message = time.monotonic()
                if options.auto_renew:
                    for m in messages:
                        self._renew_while_held(m)
                return messages
            # nothing to hand out from an empty queue, or from messages given straight back (undecodable
            # with poisoning off: after retry_delay, by default at once): wait as on an empty queue, rather
            # than asking for them again at once, and let idle_timeout end it (not after re-enqueueing)
            given_back = bool(undecodable) and self.poison_queue is None
            if ((not entries and not hops) or given_back) and not await self._idle_wait():
                return None
        return None

    async def _receive(self, want: int) -> Fetched:
        """Get Messages, then delivery at a time: the messages to hand over (a scheduled message not
        due re-enqueued and left out), when they were leased, and how many were re-enqueued."""
        visibility = self.options.visibility_timeout
        entries, leased_at = await self.link.fetch(want, visibility)
        entries, hops = await due_only(self.link, entries, visibility)
        self.rescheduled += hops
        return entries, leased_at, hops

    def _adopt_all(
        self, entries: list[RawMessage], leased_at: float
    ) -> tuple[list[ReceivedMessage], list[ReceivedMessage]]:
        """(decoded messages, messages whose content the encoding could not decode: content None). A
        large payload's message is adopted unfetched (content None until :meth:`fetch_payload`)."""
        unfetched = self.link.unfetched(entries) if entries else ()
        if not unfetched:
            return self._adopt_decoded(entries, leased_at)
        good, undecodable = self._adopt_decoded([raw for raw in entries if raw.id not in unfetched], leased_at)
        for raw in entries:
            if raw.id in unfetched:
                message = received_message(raw, None, ReceivedMessage)._attach(self, raw.text or "", leased_at)
                message._unfetched = True
                good.append(message)
        order = {raw.id: i for i, raw in enumerate(entries)}
        good.sort(key=lambda m: order[m.id])  # as the queue handed them out
        return good, undecodable

    def _adopt_decoded(
        self, entries: list[RawMessage], leased_at: float
    ) -> tuple[list[ReceivedMessage], list[ReceivedMessage]]:
        good, failed = decoded_messages(entries, self.link.decode, ReceivedMessage)
        decoded = [raw for raw in entries if all(raw is not bad for bad, _ in failed)] if failed else entries
        for message, raw in zip(good, decoded, strict=True):
            message._attach(self, raw.text or "", leased_at)
        undecodable = [received_message(raw, None, ReceivedMessage) for raw, _ in failed]
        # a subclass (a large payload missing or not matching) says why: the poison reason, the error raised
        self._why = {raw.id: exc for raw, exc in failed if type(exc) is not MessageEncodingError}
        return good, [
            m._attach(self, raw.text or "", leased_at) for m, (raw, _) in zip(undecodable, failed, strict=True)
        ]

    # ---- large payloads, fetched as each message is handed over ------------------------------

    async def fetch_payload(self, message: ReceivedMessage, *, renewing: bool = False) -> bool:
        """Fetch the large payload of a message being handed over (one message's at a time: a batch's
        payloads are never all fetched before its first message is handed over), its lease renewed
        meanwhile: by its ``auto_renew`` renewer, else by one for the download (unless ``renewing``:
        the caller runs it). True when its content is in, or it had no payload to fetch.

        False when the message is not handed over: its payload is the message's failure (poisoned,
        or released and, from a stream, raised), or it could not be fetched for now (visible again
        after PAYLOAD_RETRY_SECONDS). A failure no retry fixes (a SAS without ``r``: 403) makes it
        visible again at once and is raised: it ends the stream or the worker, as the queue's own
        403 does."""
        if not message._unfetched:
            return True
        own = not renewing and not self.options.auto_renew
        if own:
            self._renew_while_held(message)
        try:
            message.content = await self.link.payload(message.id, message._raw)
        except MessageEncodingError as exc:  # missing, not matching, not decoding: the message's failure
            await self._stop_renewing(message)
            self._why = {message.id: exc}
            await self._divert_undecodable([], [message])
            return False
        except AioQueueError as exc:
            await self._stop_renewing(message)
            await self._payload_failed(message, exc)
            return False
        except asyncio.CancelledError:  # (stopping): visible again at once
            await shielded(release_quietly(message, 0))
            raise
        message._unfetched = False
        if own:
            await self._stop_renewing(message)
        return True

    async def fetch_payloads(self, messages: list[ReceivedMessage]) -> list[ReceivedMessage]:
        """:meth:`fetch_payload` for a batch's messages, one after the other, every lease of the batch
        renewed meanwhile; those handed over. When one raises, the rest are given back (at close)."""
        if not any(m._unfetched for m in messages):
            return messages
        own = [] if self.options.auto_renew else list(messages)
        for m in own:
            self._renew_while_held(m)
        out: list[ReceivedMessage] = []
        try:
            for i, m in enumerate(messages):
                try:
                    if await self.fetch_payload(m, renewing=True):
                        out.append(m)
                except BaseException:
                    self.buffer.extend(out + messages[i + 1 :])  # given back at once by aclose
                    raise
        finally:
            for m in own:
                if m.settled is None:
                    await shielded(self._stop_renewing(m))
        return out

    async def _stop_renewing(self, message: ReceivedMessage) -> None:
        """Stop renewing ``message``, in its settle turn: a renewal under way is never cut off half-way
        (its new pop receipt would be lost)."""
        await message._take_turn()
        try:
            self.forget(message)
        finally:
            message._end_turn()

    async def _payload_failed(self, message: ReceivedMessage, error: AioQueueError) -> None:
        """Fetching a message's payload failed: for now (visible again after PAYLOAD_RETRY_SECONDS),
        or for good (a 403: visible again at once, and raised)."""
        if is_weather(error):
            delay = _link.PAYLOAD_RETRY_SECONDS
            log.warning(
                "message %s: fetching its payload failed; it is visible again in %d s: %s", message.id, delay, error
            )
            await release_quietly(message, delay)
            return
        log.error(
            "message %s: fetching its payload failed, and trying again will not help (%s; a SAS needs the "
            "Blob service and r); the message is visible again at once, and receiving stops: %s",
            message.id, type(error).__name__, error,
        )  # fmt: skip
        await release_quietly(message, 0)
        raise error

    # ---- the stream's buffer ---------------------------------------------------------------

    def took(self, seconds: float) -> None:
        """A yielded message kept the stream's caller ``seconds`` (smoothed into :attr:`pace`)."""
        self.pace = seconds if self.pace is None else 0.75 * self.pace + 0.25 * seconds

    def prefetch(self) -> int:
        """How many to fetch for ``receive()``: no more than can start within half their lease at the
        pace the caller has taken messages so far (32 until that is known)."""
        pace = self.pace
        if pace is None or pace <= 0 or self.options.auto_renew:
            return 32
        return max(1, min(32, int(self.options.visibility_timeout / 2 / pace)))

    def lapsing(self, message: ReceivedMessage) -> bool:
        """Has the lease of a buffered message lapsed, or will it before the caller is likely done
        with it (its pace, at most half the visibility timeout)? A renewed one only when renewing failed."""
        if message.lease_lost:
            return True
        left = message._lease_until - time.monotonic()
        if self.options.auto_renew:
            return left <= 0
        return left <= min(self.pace or 0.0, self.options.visibility_timeout / 2)

    async def give_back_lapsing(self) -> None:
        """Give back (visible at once) every buffered message whose lease lapsed or soon will: its receipt
        may already be dead and another consumer may hold it, so it is never yielded."""
        lapsing = [m for m in self.buffer if self.lapsing(m)]
        for m in lapsing:
            self.buffer.remove(m)
            self.forget(m)
        log.info("%d prefetched messages lapsed before the stream got to them; given back", len(lapsing))
        try:
            await release_all(lapsing, lambda m: 0)
        except AioQueueError as exc:  # taken by another consumer already, or visible again anyway
            log.warning("giving back lapsed messages failed; they return after their visibility timeout: %s", exc)

    # ---- messages in hand ------------------------------------------------------------------

    def claim(self, message: ReceivedMessage) -> None:
        """``message`` is in hand: inside its ``async with`` block, or given to the worker's handler."""
        if message.settled is None:
            self.active[message.id] = message

    def unclaim(self, message: ReceivedMessage) -> None:
        if self.active.get(message.id) is message:
            del self.active[message.id]

    def _not_in_hand(self, messages: list[ReceivedMessage]) -> list[ReceivedMessage]:
        """The fetched messages not already in hand. One still in hand came back (its lease lapsed while
        its handler ran): the one in hand takes over the new receipt and lease, so no second handler
        starts and its settle works. One whose handler failed and released it is a new delivery like any
        other. One whose handler succeeded (its delete, with the receipt this delivery made stale, fails
        or failed) is deleted with the new receipt."""
        fresh: list[ReceivedMessage] = []
        for m in messages:
            held = self.active.get(m.id)
            if held is None or held.settled == "released":
                fresh.append(m)
                if held is not None:
                    self.unclaim(held)
            elif held.settled is None:
                held._take_over(m)
                log.info("message %s came back while its handler still runs; that handler keeps it", m.id)
                limit = held._renew_until
                renew = self.options.auto_renew and (limit is None or time.monotonic() < limit)
                if renew and id(held) not in self._renewals:
                    self._renew_while_held(held)
            else:
                self._in_background(self._delete_handled_copy(m))
        return fresh

    async def _delete_handled_copy(self, message: ReceivedMessage) -> None:
        try:
            await self.link.delete(message)
            log.info("message %s came back after it was handled; deleted", message.id)
        except AioQueueError as exc:
            log.warning("message %s came back after it was handled, and deleting it failed: %s", message.id, exc)

    def _in_background(self, work: Awaitable[None]) -> None:
        """Run ``work`` beside the stream; it is awaited when the stream closes."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _divert_undecodable(self, good: list[ReceivedMessage], bad: list[ReceivedMessage]) -> None:
        """Content the encoding cannot decode goes to the poison queue when poisoning is on; otherwise
        it is released for redelivery after ``retry_delay``, and a stream raises MessageEncodingError
        (after the rest of the batch is handed back at once) while the worker counts it and goes on."""
        if self.poison_queue is not None:
            for m in bad:
                why = self._why.get(m.id)
                if why is not None:
                    self.failures.add(m.id, why)
                reason = f"failed: {why}" if why else "does not decode with this client's message_encoding"
                await self._move_to_poison(m, reason, "undecodable")
            return
        self.undecodable += len(bad)
        for m in bad:
            self.link.count("undecodable")
            log.warning(
                "message %s does not decode with this client's message_encoding; released for redelivery "
                "(set max_dequeue_count to move such messages to a poison queue)",
                m.id,
            )
        try:
            await release_all(bad, self.options.retry_delay_of)
        except AioQueueError as exc:
            log.warning("could not release undecodable messages; they return after their visibility timeout: %s", exc)
        if self.raise_undecodable:
            self.buffer.extend(good)  # handed back at once by aclose when the error ends the stream
            why = self._why.get(bad[0].id)
            if why is not None:
                raise why
            raise MessageEncodingError(
                f"message {bad[0].id} does not decode with this client's message_encoding; it was released "
                "for redelivery (set max_dequeue_count to move such messages to a poison queue)"
            )

    async def _idle_wait(self) -> bool:
        """Sleep before the next poll (randomised exponential back-off); False once idle too long."""
        delay = self.options.poll_delay(self._empty_polls)
        self._empty_polls += 1
        idle = self.options.idle_timeout
        if idle is not None:
            left = self._last_message + idle - time.monotonic()
            if left <= 0:
                return False
            delay = min(delay, left)
        await self.pause(delay)
        return not self.halted

    async def _divert_poison(self, messages: list[ReceivedMessage]) -> list[ReceivedMessage]:
        limit = self.options.max_dequeue_count
        keep: list[ReceivedMessage] = []
        for m in messages:
            if limit is not None and m.dequeue_count > limit:
                # over the count on arrival (a crash, a lost lease): no failure of its last delivery to tell
                reason = f"received {m.dequeue_count} times (max_dequeue_count={limit})"
                await self._move_to_poison(m, f"was received {m.dequeue_count} times", "max_dequeue_count", reason)
            else:
                keep.append(m)
        return keep

    async def failed(self, message: ReceivedMessage, error: BaseException) -> bool:
        """A handler failed on ``message`` with ``error`` (kept for its poison record). On its last allowed
        delivery (dequeue count >= max_dequeue_count) the message is poisoned now, with its failures,
        rather than released for one more receive that would only poison it: True when it was."""
        limit = self.options.max_dequeue_count
        if limit is None or self.poison_queue is None:
            return False
        self.failures.add(message.id, error)
        if message.dequeue_count < limit:
            return False
        why = f"failed on its last allowed delivery ({message.dequeue_count} of max_dequeue_count={limit})"
        reason = f"{why}: {type(error).__name__}"
        move = partial(self._move_to_poison, message, why, "max_dequeue_count", reason)
        return await message._in_turn(move)

    async def poison(self, message: ReceivedMessage, reason: str) -> None:
        """``message.poison(reason)``, in the message's settle turn: moved now, whatever its dequeue count,
        to the poison queue (``poison_queue``, or ``<queue>-poison`` also when poisoning is off); a failure
        to move it is raised (see :meth:`ReceivedMessage.poison`)."""
        message._check("poison")
        reason = redact_text(reason)  # it goes into the log, the span and on_poison's text as well
        queue = self.poison_queue or poison_queue_for(self.options, self.link.queue_name, explicit=True)
        await self._move_to_poison(message, f"was poisoned by its handler: {reason}", "explicit", reason, queue=queue)

    async def _move_to_poison(
        self, message: ReceivedMessage, why: str, kind: str, reason: str | None = None, *, queue: str | None = None
    ) -> bool:
        """Copy to the poison queue (its poison record, or with ``poison_format="body"`` its exact text;
        never expiring), then delete from this one: True once done. When that fails the message is left
        alone: it returns after its visibility timeout and is tried again (given ``queue``, by
        ``message.poison``, the failure is raised). Its telemetry is a ``poison`` span marked failed with
        ``error.type`` ``kind``; ``why`` ends the log line "message <id> ...", ``reason`` (default ``why``)
        goes into the record."""
        poison = queue or self.poison_queue
        assert poison is not None  # only called with poisoning on, or a queue
        if message.settled is not None:  # settled by its handler meanwhile
            return False
        try:
            with self.link.operation("poison", message) as rec:
                rec.set("aioqueue.poison_queue", poison)
                text = self._poison_text(message, reason or why, kind)
                await self.link.copy_text(poison, text, message._raw)
                message._mark_settled("poisoned")
                await self.link.delete(message)
                rec.fail(kind, f"message {message.id} {why}; moved to queue {poison}")
        except AioQueueError as exc:
            if queue is not None:
                raise
            log.warning(
                "message %s %s, but moving it to queue %s failed; it will be tried again: %s",
                message.id,
                why,
                poison,
                exc,
            )
            return False
        self.failures.forget(message.id)
        self.poisoned += 1
        self.link.count("poisoned")
        log.warning("message %s %s; moved to queue %s", message.id, why, poison)
        if self.on_poison is not None:
            await call_hook(self.on_poison, "on_poison", message, why)
        return True

    def _poison_text(self, message: ReceivedMessage, reason: str, kind: str) -> str:
        """What the poison queue gets: the message's poison record; its exact text with
        ``poison_format="body"``, or when its text is too big to fit in a record (then the record,
        less the content, is logged)."""
        if self.options.poison_format == "body":
            return message._raw
        trace = current_trace_ids()  # the poison span's, when tracing
        record = new_record(
            message._raw,
            source_queue=self.link.queue_name,
            message_id=message.id,
            inserted_on=message.inserted_on,
            expires_on=message.expires_on,
            dequeue_count=message.dequeue_count,
            kind=kind,
            reason=reason,
            failures=self.failures.of(message.id),
            trace_id=trace[0] if trace else None,
        )
        text = record_text(record)
        if text is None:
            log.warning(
                "message %s is too big for a poison record, so its poison copy is its bare text; its record "
                "(without the content): %s",
                message.id,
                without_content(record),
            )
            return message._raw
        return text

    # ---- renewal ---------------------------------------------------------------------------

    def _renew_while_held(self, message: ReceivedMessage) -> None:
        """Each message has its own renewer, so a slow or failing renewal never holds up another's."""
        self._renewals[id(message)] = asyncio.ensure_future(self._renew(message))

    def forget(self, message: ReceivedMessage) -> None:
        """Stop renewing ``message`` (it is settled or given back)."""
        task = self._renewals.pop(id(message), None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _renew(self, message: ReceivedMessage) -> None:
        me = asyncio.current_task()
        try:
            # after every wait: still this message's renewer? (a cancellation can be lost in wait_for)
            while message.settled is None and self._renewals.get(id(message)) is me:
                wait = message._renew_at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue  # look again: a renewal by hand may have moved the time
                if self._limit_reached(message) or not await message._auto_renew():
                    return
        except Exception as exc:  # never a task exception nobody retrieves: the lease is told lost
            error = LeaseLost(f"renewing message {message.id} failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            message._lose(error)
        finally:
            if self._renewals.get(id(message)) is me:
                del self._renewals[id(message)]

    def _limit_reached(self, message: ReceivedMessage) -> bool:
        """At ``max_renewal``: renewals stop, and that is told (the lease lapses soon after)."""
        limit = message._renew_until
        if limit is None or time.monotonic() < limit:
            return False
        left = max(0.0, message._lease_until - time.monotonic())
        message._lose(
            LeaseLost(
                f"renewals of message {message.id} stopped: max_renewal={self.options.max_renewal:g}s "
                f"reached; its lease lapses in {left:.1f}s"
            )
        )
        return True

    def lease_lost(self, message: ReceivedMessage, error: AioQueueError, *, tell: bool = True) -> None:
        """Renewals of a held message stopped before it was settled: logged, and ``on_lease_lost`` (once
        a message: ``tell`` is False when it was told before)."""
        self.forget(message)
        if not tell:
            log.info("renewing message %s stopped again: %s", message.id, error)
            return
        log.warning(
            "renewing message %s stopped before it was settled (message.lease_lost is now True); it may be "
            "delivered again while it is handled: %s",
            message.id,
            error,
        )
        if self.on_lease_lost is not None:
            self._in_background(call_hook(self.on_lease_lost, "on_lease_lost", message, error))

    # ---- closing ---------------------------------------------------------------------------

    async def stop_renewals(self) -> None:
        renewals = list(self._renewals.values())
        self._renewals.clear()
        for task in renewals:
            task.cancel()
        await asyncio.gather(*renewals, *self._background, return_exceptions=True)

    async def _end_fetch(self, fetch: asyncio.Task[Fetched]) -> list[ReceivedMessage]:
        """What the fetch under way at close got, if it answers within FETCH_GRACE_ON_STOP; it is not
        waited for longer (nor retried)."""
        done, _ = await asyncio.wait({fetch}, timeout=FETCH_GRACE_ON_STOP)
        if not done:
            fetch.cancel()
            await asyncio.gather(fetch, return_exceptions=True)
            log.info(
                "the receive under way at close got no answer within %gs and was abandoned; whatever it got "
                "returns after its visibility timeout",
                FETCH_GRACE_ON_STOP,
            )
            return []
        try:
            entries, leased_at, _ = fetch.result()
            good, bad = self._adopt_all(entries, leased_at)
        except Exception as exc:  # nothing fetched, nothing to give back
            log.debug("the fetch under way at close failed: %r", exc)
            return []
        if self.active:  # a handler may still hold one of them: it keeps it (never given back under it)
            good = self._not_in_hand(good)
        return good + bad

    async def aclose(self, *, keep_renewing: bool = False) -> None:
        """Stop fetching and make fetched-but-not-yielded messages visible again at once; stop
        renewals too, unless ``keep_renewing`` (the worker's handlers may still hold messages: their
        renewals go on until they settle or :meth:`stop_renewals`)."""
        if not keep_renewing:
            self.link.untrack(self)
            await self.stop_renewals()
        if self.closed:
            return
        self.closed = True
        self.halt()
        for m in self.buffer:
            self.forget(m)
        pending: list[ReceivedMessage] = list(self.buffer)
        self.buffer.clear()
        fetch, self._fetch = self._fetch, None
        if fetch is not None:  # a fetch was under way: whatever it got goes back too
            pending += await self._end_fetch(fetch)
        if pending and not self.link.closed:
            try:
                await release_all(pending, lambda m: 0)
            except AioQueueError as exc:
                log.warning(
                    "could not release %d prefetched messages; they return after their visibility timeout: %s",
                    len(pending),
                    exc,
                )
        if not keep_renewing:
            await asyncio.gather(*self._background, return_exceptions=True)


async def call_hook(hook: Callable[..., object], name: str, *args: object) -> None:
    """Call (or await) an application's callback; its failure is logged, never raised into the loop."""
    try:
        result = hook(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("the %s callback raised; the worker goes on", name)
