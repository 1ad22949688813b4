"""``process()``: the supervised worker loop.

One fetcher (a :class:`Consumer`) for the worker's whole life feeds up to ``concurrency`` handler
tasks. What the worker promises:

- **Shutdown**: ``stop`` wakes it at once, also between empty polls; after it nothing more is
  fetched and no new handler starts; prefetched messages are released at once; handlers under way
  finish (or, after ``shutdown_timeout``, are cancelled and their messages released).
- **Outages are weather**: a fetch that fails with a retryable status (408, 429, 500, 502, 503,
  504), a connection error, a timeout or a garbled answer is logged once per streak and tried again
  with jittered back-off up to ``poll_interval``'s maximum. Anything else (authentication, a missing
  queue, configuration) ends the worker, and then, like on every exit, no handler outlives it.
- **Bad messages never stop it**: undecodable content is poisoned (with ``max_dequeue_count``) or
  released, logged and counted.
- **Honest outcomes**: a handler that succeeded but whose message could not be deleted is counted
  as ``lease_lost``, not ``failed``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ._errors import AioQueueError, MalformedResponse, MessageSettled, ServiceError, TransportError
from ._link import QueueLink
from ._models import ProcessStats
from ._options import ReceiveSettings, poison_queue_for
from ._retry import RETRY_STATUSES
from ._settle import ReceivedMessage, shielded
from ._streams import Consumer
from ._validation import nonnegative_seconds, positive_int, positive_number

__all__ = ["Handler", "check_handler", "process"]

log = logging.getLogger("aioqueue")

Handler = Callable[[ReceivedMessage], Awaitable[Any]]
"""An ``async def handler(message)``; its return value is ignored."""


def check_handler(handler: object) -> None:
    """A handler must be an async function (or an object with an ``async def __call__``)."""
    call = getattr(type(handler), "__call__", None)  # noqa: B004 - the class's, not the instance's
    if not (inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)):
        what = getattr(handler, "__name__", type(handler).__name__)
        raise TypeError(
            f"handler {what!r} must be an async function (async def handler(message): ...); a plain "
            "function would run its side effects and then fail, and its message would be retried"
        )


def is_weather(exc: BaseException) -> bool:
    """Would trying the fetch again later help? (Retryable status, connection error, garbled answer.)"""
    if isinstance(exc, (TransportError, MalformedResponse)):
        return True
    return isinstance(exc, ServiceError) and exc.status in RETRY_STATUSES


async def process(
    link: QueueLink,
    handler: Handler,
    *,
    concurrency: int,
    options: ReceiveSettings,
    stop: asyncio.Event | None,
    handler_timeout: float | None = None,
    shutdown_timeout: float | None = None,
) -> ProcessStats:
    """The worker loop behind ``QueueClient.process``; every argument is checked before any request."""
    check_handler(handler)
    positive_int(concurrency, "concurrency")
    if handler_timeout is not None:
        handler_timeout = positive_number(handler_timeout, "handler_timeout")
    if shutdown_timeout is not None:
        shutdown_timeout = nonnegative_seconds(shutdown_timeout, "shutdown_timeout")
    if stop is not None and not isinstance(stop, asyncio.Event):
        raise TypeError("stop must be an asyncio.Event")
    worker = _Worker(link, handler, concurrency, options, handler_timeout)
    return await worker.run(stop if stop is not None else asyncio.Event(), shutdown_timeout)


class _Worker:
    def __init__(
        self,
        link: QueueLink,
        handler: Handler,
        concurrency: int,
        options: ReceiveSettings,
        handler_timeout: float | None,
    ) -> None:
        self.handler = handler
        self.concurrency = concurrency
        self.options = options
        self.handler_timeout = handler_timeout
        self.consumer = Consumer(
            link, options, poison_queue=poison_queue_for(options, link.queue_name), raise_undecodable=False
        )
        self.tasks: set[asyncio.Task[None]] = set()  # one per message, until it is settled
        self.running = 0  # of those, how many are still in their handler
        self.changed = asyncio.Event()  # a handler returned, a task ended, or stop was set
        self.processed = self.failed = self.lease_lost = 0

    async def run(self, stop: asyncio.Event, shutdown_timeout: float | None) -> ProcessStats:
        consumer = self.consumer
        watcher = asyncio.ensure_future(self._watch(stop))
        try:
            await self._loop(stop)
            await consumer.aclose(keep_renewing=True)  # prefetched messages go back at once
            await self._drain(shutdown_timeout)
        except BaseException:
            # an error retrying cannot fix, or cancellation: no handler outlives process()
            await shielded(self._cancel_handlers())
            raise
        finally:
            watcher.cancel()
            await shielded(consumer.aclose())  # renewals end; anything still fetched goes back
        return ProcessStats(
            processed=self.processed,
            failed=self.failed,
            poisoned=consumer.poisoned,
            lease_lost=self.lease_lost,
            undecodable=consumer.undecodable,
        )

    async def _watch(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.consumer.halt()
        self.changed.set()

    async def _loop(self, stop: asyncio.Event) -> None:
        consumer = self.consumer
        buffer = consumer.buffer
        streak = 0
        streak_started = 0.0
        while not stop.is_set():
            while (free := self._free()) <= 0:  # every handler slot busy: wait for one, or for stop
                self.changed.clear()
                await self.changed.wait()
                if stop.is_set():
                    return
            if not buffer:
                try:
                    # fetch no more than can start now: prefetched messages would sit hidden, their
                    # visibility timeout running, while every handler slot is busy
                    batch = await consumer.next_batch(free)
                except Exception as exc:
                    if not is_weather(exc):
                        raise
                    streak += 1
                    if streak == 1:
                        streak_started = time.monotonic()
                        log.warning("receiving failed; the worker keeps trying with back-off: %s", exc)
                    else:
                        log.debug("receiving failed again (%d in a row): %s", streak, exc)
                    await consumer.pause(self.options.poll_delay(streak - 1))
                    continue
                if streak:
                    log.warning(
                        "receiving works again after %d failed attempts over %.1f s",
                        streak,
                        time.monotonic() - streak_started,
                    )
                    streak = 0
                if batch is None:
                    return  # max_messages reached, idle_timeout passed, or stopped
                buffer.extend(batch)
            if stop.is_set():
                return  # what is in the buffer is released by aclose
            message = buffer.popleft()
            consumer.yielded += 1
            self.running += 1
            task = asyncio.ensure_future(self._handle(message))
            self.tasks.add(task)
            task.add_done_callback(self._done)

    def _free(self) -> int:
        """Messages that may start now: a free handler slot each, while deletes and releases of
        finished handlers (at most ``concurrency`` more) are still under way."""
        return min(self.concurrency - self.running, 2 * self.concurrency - len(self.tasks))

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.changed.set()

    def _returned(self) -> None:
        """The handler is done (whatever its outcome); settling the message does not hold its slot."""
        self.running -= 1
        self.changed.set()

    async def _drain(self, shutdown_timeout: float | None) -> None:
        """Let handlers under way finish; after ``shutdown_timeout`` cancel the rest."""
        if not self.tasks:
            return
        _, pending = await asyncio.wait(set(self.tasks), timeout=shutdown_timeout)
        if pending:
            log.warning("%d handlers still running after shutdown_timeout; cancelling them", len(pending))
            await self._cancel_handlers()

    async def _cancel_handlers(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()  # each releases its message at once
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ---- one message ---------------------------------------------------------------------------

    async def _handle(self, message: ReceivedMessage) -> None:
        try:
            succeeded = await self._call(message)
        except asyncio.CancelledError:
            self._returned()
            if message.settled is None:
                await shielded(_release_quietly(message, 0))
            raise
        self._returned()
        if not succeeded:
            self.failed += 1
            if message.settled is None:
                await shielded(_release_quietly(message, self.options.retry_delay_of(message)))
            return
        if message.settled is None:
            try:
                await message._delete_on_exit()
            except MessageSettled:
                pass  # settled by the handler's own code meanwhile
            except AioQueueError as exc:
                self.lease_lost += 1
                log.warning(
                    "message %s was handled, but deleting it failed, so it will be delivered again "
                    "(lease lost: its visibility timeout lapsed or another consumer took it over): %s; "
                    "use auto_renew=True for long handlers and keep handlers idempotent",
                    message.id,
                    exc,
                )
                return
        self.processed += 1

    async def _call(self, message: ReceivedMessage) -> bool:
        """Run the handler (within ``handler_timeout``); True when it returned."""
        timeout = self.handler_timeout
        timer = None
        expired = False
        if timeout is not None:
            task = asyncio.current_task()
            assert task is not None

            def expire() -> None:
                nonlocal expired
                expired = True
                task.cancel()

            timer = asyncio.get_running_loop().call_later(timeout, expire)
        try:
            await self.handler(message)
        except asyncio.CancelledError:
            if not expired:
                raise
            uncancel = getattr(asyncio.current_task(), "uncancel", None)
            if uncancel is not None:  # Python >= 3.11: this cancellation was ours, and is handled
                uncancel()
            log.error("handler for message %s ran over handler_timeout=%ss and was cancelled", message.id, timeout)
            return False
        except Exception as exc:
            log.error(
                "handler failed for message %s (dequeue count %d): %r",
                message.id,
                message.dequeue_count,
                exc,
                exc_info=exc,
            )
            return False
        finally:
            if timer is not None:
                timer.cancel()
        return True


async def _release_quietly(message: ReceivedMessage, delay: int) -> None:
    """Release; when that fails the message still returns, after its visibility timeout."""
    try:
        await message.release(delay=delay)
    except MessageSettled:
        pass
    except AioQueueError as exc:
        log.warning("could not release message %s; it returns after its visibility timeout: %s", message.id, exc)
