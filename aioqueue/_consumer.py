"""The consumer: message and batch streams that settle on context exit, renewal, poison, a worker.

Delivery is at-least-once: a message is deleted only when its ``async with`` block (or handler) ends
cleanly, or by hand. Everything else makes it visible again: at once when it was fetched but never
yielded, after ``retry_delay`` when its handler failed, after its visibility timeout when it was
never settled. Duplicates are therefore possible; handlers should be idempotent.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, overload

from ._errors import AioQueueError, ConfigurationError, MessageEncodingError, ServerBusy, TransportError
from ._models import ProcessStats, QueueMessage
from ._validation import (
    MAX_SECONDS,
    Duration,
    message_count,
    nonnegative_seconds,
    positive_int,
    queue_name,
    seconds,
)

if TYPE_CHECKING:
    from ._client import QueueClient

log = logging.getLogger("aioqueue")

RetryDelay = int | float | timedelta | Callable[[int], float]
SETTLE_CONCURRENCY = 16


class MessageSettled(AioQueueError, RuntimeError):
    """The message was already deleted or released; it can be settled (or renewed) only once."""


@dataclass(frozen=True)
class ReceiveOptions:
    """Validated options shared by ``receive``, ``receive_batches`` and ``process``."""

    max_batch_size: int = 32
    visibility_timeout: int = 30
    max_messages: int | None = None
    idle_timeout: float | None = None
    poll_interval: tuple[float, float] = (0.1, 10.0)
    auto_renew: bool = False
    max_renewal: float | None = 300.0
    max_dequeue_count: int | None = None
    poison_queue: str | None = None
    retry_delay: RetryDelay = 0

    @classmethod
    def build(
        cls,
        *,
        max_batch_size: int = 32,
        visibility_timeout: Duration = 30,
        max_messages: int | None = None,
        idle_timeout: Duration | None = None,
        poll_interval: tuple[float, float] | float = (0.1, 10.0),
        auto_renew: bool = False,
        max_renewal: Duration | None = 300.0,
        max_dequeue_count: int | None = None,
        poison_queue: str | None = None,
        retry_delay: RetryDelay = 0,
    ) -> ReceiveOptions:
        message_count(max_batch_size, "max_batch_size")
        vis = seconds(visibility_timeout, "visibility_timeout", low=1)
        if max_messages is not None:
            positive_int(max_messages, "max_messages")
        idle = None if idle_timeout is None else nonnegative_seconds(idle_timeout, "idle_timeout")
        if isinstance(poll_interval, (int, float)) and not isinstance(poll_interval, bool):
            poll = (float(poll_interval), float(poll_interval))
        elif isinstance(poll_interval, tuple) and len(poll_interval) == 2:
            poll = (
                nonnegative_seconds(poll_interval[0], "poll_interval"),
                nonnegative_seconds(poll_interval[1], "poll_interval"),
            )
        else:
            raise ConfigurationError("poll_interval must be seconds or a (min, max) pair of seconds")
        if poll[0] > poll[1] or poll[1] <= 0:
            raise ConfigurationError("poll_interval must be (min, max) with 0 <= min <= max and max > 0")
        renewal = None if max_renewal is None else nonnegative_seconds(max_renewal, "max_renewal")
        if max_dequeue_count is not None:
            positive_int(max_dequeue_count, "max_dequeue_count")
        if poison_queue is not None:
            queue_name(poison_queue)
        if not callable(retry_delay):
            seconds(retry_delay, "retry_delay", low=0)
        if not isinstance(auto_renew, bool):
            raise ConfigurationError("auto_renew must be True or False")
        return cls(
            max_batch_size, vis, max_messages, idle, poll, auto_renew, renewal, max_dequeue_count, poison_queue,
            retry_delay,
        )

    def retry_delay_of(self, message: QueueMessage) -> int:
        """Seconds a failed message stays invisible (0..7 days), from its dequeue count."""
        value = self.retry_delay(message.dequeue_count) if callable(self.retry_delay) else self.retry_delay
        raw = value.total_seconds() if isinstance(value, timedelta) else float(value)
        return max(0, min(MAX_SECONDS, math.ceil(raw)))

    @property
    def poisons(self) -> bool:
        return self.max_dequeue_count is not None


class ReceivedMessage(QueueMessage):
    """A message from ``receive()``: ``async with msg:`` deletes it on a clean exit and, on an
    exception, makes it visible again after ``retry_delay`` and re-raises.

    Settle by hand with :meth:`delete` or :meth:`release`; a message settles once (a second settle
    raises :class:`MessageSettled`) and a settled message is skipped at exit. :meth:`renew` extends
    its visibility. With ``auto_renew`` a failed renewal is kept in :attr:`renewal_error` (and logged).
    """

    __slots__ = ("_consumer", "_lock", "_raw", "_renew_at", "_renew_until", "renewal_error", "settled")

    _consumer: Consumer
    _lock: asyncio.Lock
    _raw: str
    _renew_at: float
    _renew_until: float | None
    renewal_error: BaseException | None
    settled: str | None

    def _attach(self, consumer: Consumer, raw: str) -> ReceivedMessage:
        self._consumer = consumer
        self._raw = raw
        self._lock = asyncio.Lock()
        now = time.monotonic()
        vis = consumer.options.visibility_timeout
        self._renew_at = now + vis / 2
        limit = consumer.options.max_renewal
        self._renew_until = None if limit is None else now + limit
        self.renewal_error = None
        self.settled = None
        return self

    def __repr__(self) -> str:
        state = f", {self.settled}" if self.settled else ""
        return f"ReceivedMessage(id={self.id!r}, dequeue_count={self.dequeue_count}{state})"

    async def __aenter__(self) -> ReceivedMessage:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.settled is not None:
            return
        if exc_type is None:
            await self._delete_on_exit()
        elif issubclass(exc_type, asyncio.CancelledError):
            await _shielded(self.release(delay=0))
        else:
            await _shielded(self.release(delay=self._consumer.options.retry_delay_of(self)))

    async def _delete_on_exit(self) -> None:
        """The clean-exit delete. It runs in the caller's task (a task per message would cost more than
        the rest of the exit), so a cancellation of the caller can cut its request off; the delete is
        then finished in a task that cancellation cannot reach, and the cancellation re-raised."""
        try:
            await self.delete()
        except asyncio.CancelledError:
            await _shielded(self._finish_delete())
            raise

    async def _finish_delete(self) -> None:
        """Delete again after a cut-off attempt; that attempt may have landed, so 'not found' is success."""
        async with self._lock:
            if self.settled is None:
                self._mark_settled("deleted")
            elif self.settled != "deleted":
                return
            await self._consumer.queue._delete(self.id, self.pop_receipt, resent=True)

    async def delete(self) -> None:
        """Delete the message (using its newest pop receipt)."""
        async with self._lock:
            self._check("delete")
            self._mark_settled("deleted")
            await self._consumer.queue.delete_message(self)

    async def release(self, delay: Duration = 0) -> None:
        """Make the message visible again after ``delay`` (0 s..7 d; 0 = at once) for redelivery."""
        vis = seconds(delay, "delay", low=0)
        async with self._lock:
            self._check("release")
            self._mark_settled("released")
            await self._consumer.queue.update_message(self, visibility_timeout=vis)

    async def renew(self, visibility_timeout: Duration | None = None) -> None:
        """Keep the message hidden for ``visibility_timeout`` more (default: the stream's)."""
        vis = seconds(
            self._consumer.options.visibility_timeout if visibility_timeout is None else visibility_timeout,
            "visibility_timeout",
            low=1,
        )
        async with self._lock:
            self._check("renew")
            await self._consumer.queue.update_message(self, visibility_timeout=vis)
            self._renew_at = time.monotonic() + vis / 2

    def _mark_settled(self, how: str) -> None:
        self.settled = how
        self._consumer.forget(self)

    def _check(self, action: str) -> None:
        if self.settled is not None:
            raise MessageSettled(f"cannot {action} message {self.id}: it was already {self.settled}")

    async def _auto_renew(self) -> None:
        """One renewal by the stream's renewer; failures are recorded, never raised."""
        if self._lock.locked() or self.settled is not None:
            return
        try:
            await self.renew()
        except MessageSettled:
            return
        except Exception as exc:  # recorded on the message and logged; renewals for it stop
            self.renewal_error = exc
            self._consumer.forget(self)
            log.warning("renewing message %s failed; it may be redelivered: %s", self.id, exc)


async def _shielded(operation: Awaitable[None]) -> None:
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

    def __init__(self, messages: list[ReceivedMessage], consumer: Consumer) -> None:
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
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            await _shielded(self.delete())
        elif issubclass(exc_type, asyncio.CancelledError):
            await _shielded(self.release(delay=0))
        else:
            await _shielded(self._release_each_after_retry_delay())

    async def delete(self) -> None:
        """Delete every message not settled yet."""
        await _settle_all([m.delete for m in self._messages if m.settled is None])

    async def release(self, delay: Duration = 0) -> None:
        """Release every message not settled yet, visible again after ``delay``."""
        await _release_all(self._messages, lambda m: delay)

    async def _release_each_after_retry_delay(self) -> None:
        await _release_all(self._messages, self._consumer.options.retry_delay_of)


async def _release_all(
    messages: Sequence[ReceivedMessage], delay: Callable[[ReceivedMessage], Duration]
) -> None:
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


class Consumer:
    """Fetching, poison handling, renewal and clean-up for one stream."""

    def __init__(self, queue: QueueClient, options: ReceiveOptions) -> None:
        self.queue = queue
        self.options = options
        self.buffer: collections.deque[ReceivedMessage] = collections.deque()
        self.held: dict[int, ReceivedMessage] = {}  # by id(): fetched, not settled, renewal wanted
        self.yielded = 0
        self.poisoned = 0
        self.closed = False
        self._fetch: asyncio.Task[list[dict[str, Any]]] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._empty_polls = 0
        self._last_message = time.monotonic()
        self._poison_ready = False
        queue._conn.consumers.add(self)
        self.owner = queue

    # ---- fetching --------------------------------------------------------------------------

    def _remaining(self) -> int | None:
        if self.options.max_messages is None:
            return None
        return self.options.max_messages - self.yielded

    async def next_batch(self, limit: int) -> list[ReceivedMessage] | None:
        """The next non-empty batch of up to ``limit`` messages; None when the stream has ended."""
        options = self.options
        while not self.closed:
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                return None
            want = min(limit, options.max_batch_size, remaining if remaining is not None else 32)
            fetch = self._fetch = asyncio.ensure_future(
                self.queue._receive_entries(want, options.visibility_timeout)
            )
            try:
                # shielded: if the caller is cancelled, the fetch completes and aclose gives back
                # whatever it got, instead of leaving those messages hidden for the visibility timeout
                entries = await asyncio.shield(fetch)
            except Exception:
                self._fetch = None
                raise
            self._fetch = None
            messages, undecodable = self._adopt_all(entries)
            if self.closed:  # closed while fetching: give them straight back
                await _release_all(messages + undecodable, lambda m: 0)
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
                        self.held[id(m)] = m
                    self._ensure_renewer()
                return messages
            if not entries and not await self._idle_wait():
                return None
        return None

    def _adopt_all(self, entries: list[dict[str, Any]]) -> tuple[list[ReceivedMessage], list[ReceivedMessage]]:
        """(decoded messages, messages whose content the encoding could not decode: content None)."""
        good: list[ReceivedMessage] = []
        bad: list[ReceivedMessage] = []
        for entry in entries:
            raw = entry.get("MessageText", "")
            try:
                good.append(self.queue._message(entry, ReceivedMessage)._attach(self, raw))
            except MessageEncodingError:
                bad.append(self.queue._message(entry, ReceivedMessage, decode=False)._attach(self, raw))
        return good, bad

    async def _divert_undecodable(self, good: list[ReceivedMessage], bad: list[ReceivedMessage]) -> None:
        """Content the encoding cannot decode goes to the poison queue when poisoning is on; otherwise
        it is released for redelivery after ``retry_delay`` and the stream raises MessageEncodingError."""
        if self.options.poisons:
            for m in bad:
                await self._move_to_poison(m)
            return
        await _release_all(bad, self.options.retry_delay_of)
        self.buffer.extend(good)  # handed back at once by aclose when the error ends the stream
        raise MessageEncodingError(
            f"message {bad[0].id} does not decode with this client's message_encoding; it was released "
            "for redelivery (set max_dequeue_count to move such messages to a poison queue)"
        )

    async def _idle_wait(self) -> bool:
        """Sleep before the next poll (randomised exponential back-off); False once idle too long."""
        low, high = self.options.poll_interval
        delay = min(high, low * (2**self._empty_polls)) if low > 0 else high
        self._empty_polls += 1
        delay = random.uniform(delay / 2, delay)
        idle = self.options.idle_timeout
        if idle is not None:
            left = self._last_message + idle - time.monotonic()
            if left <= 0:
                return False
            delay = min(delay, left)
        await asyncio.sleep(delay)
        return True

    async def _divert_poison(self, messages: list[ReceivedMessage]) -> list[ReceivedMessage]:
        limit = self.options.max_dequeue_count
        keep: list[ReceivedMessage] = []
        for m in messages:
            if limit is not None and m.dequeue_count > limit:
                await self._move_to_poison(m)
            else:
                keep.append(m)
        return keep

    def _poison_client(self) -> QueueClient:
        name = self.options.poison_queue or f"{self.queue.queue_name}-poison"
        if len(name) > 63:
            raise ConfigurationError(f"the default poison queue name {name!r} is too long; pass poison_queue=")
        return self.queue._sibling(name)

    async def _move_to_poison(self, message: ReceivedMessage) -> None:
        """Copy to the poison queue (never expiring), then delete from this one."""
        poison = self._poison_client()
        if not self._poison_ready:
            await poison.create_queue(exist_ok=True)
            self._poison_ready = True
        await poison._send_encoded(message._raw, {"messagettl": "-1"})  # the exact text, never expiring
        message.settled = "poisoned"
        await self.queue.delete_message(message)
        self.poisoned += 1
        log.warning(
            "message %s was received %d times; moved to queue %s", message.id, message.dequeue_count, poison.queue_name
        )

    # ---- renewal ---------------------------------------------------------------------------

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.ensure_future(self._renew_loop())
        self._wake.set()

    def forget(self, message: ReceivedMessage) -> None:
        self.held.pop(id(message), None)

    async def _renew_loop(self) -> None:
        while True:
            now = time.monotonic()
            for m in list(self.held.values()):
                if m.settled is not None or (m._renew_until is not None and now >= m._renew_until):
                    self.forget(m)
            if not self.held:
                if self.closed:
                    return  # lingering after close until the last held message settled
                self._wake.clear()
                await self._wake.wait()
                continue
            due = [m for m in self.held.values() if m._renew_at <= now]
            if due:
                await asyncio.gather(*(m._auto_renew() for m in due))
                continue
            next_at = min(m._renew_at for m in self.held.values())
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, next_at - now))

    # ---- closing ---------------------------------------------------------------------------

    async def stop_renewals(self) -> None:
        renewer, self._renewer = self._renewer, None
        self.held.clear()
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def aclose(self, *, keep_renewing: bool = False) -> None:
        """Stop fetching and make fetched-but-not-yielded messages visible again at once; stop
        renewals too, unless ``keep_renewing`` (the worker's handlers may still hold messages: their
        renewals go on until they settle or :meth:`stop_renewals`)."""
        if not keep_renewing:
            self.queue._conn.consumers.discard(self)
            await self.stop_renewals()
        if self.closed:
            return
        self.closed = True
        for m in self.buffer:
            self.forget(m)
        self._wake.set()
        pending: list[ReceivedMessage] = list(self.buffer)
        self.buffer.clear()
        fetch, self._fetch = self._fetch, None
        if fetch is not None:  # a fetch was under way: whatever it got goes back too
            try:
                good, bad = self._adopt_all(await fetch)
                pending += good + bad
            except Exception as exc:  # nothing fetched, nothing to give back
                log.debug("the fetch under way at close failed: %r", exc)
        if pending and not self.queue.closed:
            try:
                await _release_all(pending, lambda m: 0)
            except AioQueueError as exc:
                log.warning("could not release %d prefetched messages; they return after their "
                            "visibility timeout: %s", len(pending), exc)


class _Stream:
    """Shared shape of the two streams: async iterable, async context manager, ``aclose``."""

    def __init__(self, queue: QueueClient, options: ReceiveOptions, *, linger: bool = False) -> None:
        self._queue = queue
        self._options = options
        self._consumer: Consumer | None = None
        self._linger = linger  # keep renewing yielded messages after the stream ends (the worker)

    def _get_consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(self._queue, self._options)
        return self._consumer

    @property
    def poisoned(self) -> int:
        """Messages moved to the poison queue so far."""
        return self._consumer.poisoned if self._consumer else 0

    async def aclose(self) -> None:
        """Stop: renewals end and messages fetched but not yet yielded become visible at once."""
        if self._consumer is not None:
            await self._consumer.aclose()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await _shielded(self.aclose())


class MessageStream(_Stream):
    """``async for msg in queue.receive(...)``: messages fetched up to 32 at a time, one at a time."""

    async def __aenter__(self) -> MessageStream:
        return self

    def __aiter__(self) -> AsyncIterator[ReceivedMessage]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ReceivedMessage]:
        consumer = self._get_consumer()
        try:
            while True:
                if not consumer.buffer:
                    batch = await consumer.next_batch(32)
                    if batch is None:
                        return
                    consumer.buffer.extend(batch)
                message = consumer.buffer.popleft()
                consumer.yielded += 1
                yield message
        finally:
            # break, an exception, cancellation or the end: give back what was never yielded
            await _shielded(consumer.aclose(keep_renewing=self._linger))


class BatchStream(_Stream):
    """``async for batch in queue.receive_batches(...)``: a :class:`MessageBatch` per fetch."""

    async def __aenter__(self) -> BatchStream:
        return self

    def __aiter__(self) -> AsyncIterator[MessageBatch]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[MessageBatch]:
        consumer = self._get_consumer()
        try:
            while True:
                batch = await consumer.next_batch(self._options.max_batch_size)
                if batch is None:
                    return
                consumer.yielded += len(batch)
                yield MessageBatch(batch, consumer)
        finally:
            await _shielded(consumer.aclose())


Handler = Callable[[ReceivedMessage], Awaitable[Any]]


async def process(
    queue: QueueClient,
    handler: Handler,
    *,
    concurrency: int,
    options: ReceiveOptions,
    stop: asyncio.Event | None,
) -> ProcessStats:
    """The supervised worker loop behind ``QueueClient.process``."""
    positive_int(concurrency, "concurrency")
    if not callable(handler):
        raise ConfigurationError("handler must be an async function taking the message")
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()
    counts = {"processed": 0, "failed": 0}
    remaining = options.max_messages
    consumers: list[Consumer] = []

    async def run(message: ReceivedMessage) -> None:
        try:
            try:
                async with message:
                    await handler(message)
            except Exception as exc:
                counts["failed"] += 1
                log.error("handler failed for message %s (dequeue count %d): %r",
                          message.id, message.dequeue_count, exc, exc_info=exc)
            else:
                counts["processed"] += 1
        finally:
            slots.release()

    try:
        while remaining is None or remaining > 0:
            if stop is not None and stop.is_set():
                break
            stream = MessageStream(queue, replace(options, max_messages=remaining), linger=True)
            consumers.append(stream._get_consumer())
            messages = stream.__aiter__()
            try:
                while True:
                    # take a handler slot first, so a cancellation never catches a message in between
                    await slots.acquire()
                    try:
                        message = await messages.__anext__()
                    except BaseException:
                        slots.release()
                        raise
                    if remaining is not None:
                        remaining -= 1
                    task = asyncio.ensure_future(run(message))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    if stop is not None and stop.is_set():
                        break
            except StopAsyncIteration:
                break  # max_messages reached or idle_timeout passed
            except (TransportError, ServerBusy) as exc:
                log.warning("receiving failed, trying again shortly: %s", exc)
                await asyncio.sleep(options.poll_interval[1])
            finally:
                await messages.aclose()  # type: ignore[attr-defined]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()  # each handler's message is released at once by its 'async with'
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        raise
    finally:
        for consumer in consumers:
            await consumer.aclose()
    poisoned = sum(consumer.poisoned for consumer in consumers)
    return ProcessStats(processed=counts["processed"], failed=counts["failed"], poisoned=poisoned)


__all__ = ["BatchStream", "MessageBatch", "MessageSettled", "MessageStream", "ReceiveOptions", "ReceivedMessage"]
