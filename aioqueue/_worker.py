"""The :class:`Worker`: one fetcher (a :class:`Consumer`) for its whole life feeds up to
``concurrency`` handler tasks; ``QueueClient.process()`` is its one-call form (its promises are
in the class's docstring)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Mapping
from typing import Any

from ._consumer import Consumer, call_hook
from ._errors import (
    AioQueueError,
    MessageNotFound,
    MessageSettled,
    PopReceiptMismatch,
    RequestTimeout,
    ServiceError,
    TransportError,
)
from ._link import QueueLink
from ._models import ProcessStats
from ._options import ReceiveSettings, poison_queue_for
from ._retry import is_weather
from ._settle import ReceivedMessage, release_quietly, shielded
from ._telemetry import error_type
from ._worker_options import (
    WORKER_NAMES,
    FailureHook,
    Handler,
    PoisonHook,
    ProcessOptions,
    WorkerOptions,
    WorkerSettings,
)

__all__ = [
    "FailureHook",
    "Handler",
    "PoisonHook",
    "ProcessOptions",
    "Worker",
    "WorkerOptions",
    "WorkerSettings",
    "check_handler",
]

log = logging.getLogger("aioqueue")


def check_handler(handler: object) -> None:
    """A handler must be an async function (or an object with an ``async def __call__``)."""
    call = getattr(type(handler), "__call__", None)  # noqa: B004 - the class's, not the instance's
    if not (inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)):
        what = getattr(handler, "__name__", type(handler).__name__)
        raise TypeError(
            f"handler {what!r} must be an async function (async def handler(message): ...); a plain "
            "function would run its side effects and then fail, and its message would be retried"
        )


class Worker:
    """A supervised worker over one queue: :meth:`QueueClient.worker` makes it, :meth:`run` runs it.

    ``stats``, ``received``, ``in_flight``, ``prefetched``, ``state`` and ``last_answer`` can be read while
    it runs (a health endpoint, a dashboard, a test); :meth:`stop` ends it gracefully from anywhere in its
    event loop.
    ``on_failure(message, error)``, ``on_poison(message, why)`` and ``on_lease_lost(message, error)``
    are called (or awaited) as those happen, so an application can alert without reading logs; a
    callback that raises is logged and the worker goes on.

    What it promises:

    - **Shutdown**: ``stop`` wakes it at once, also between empty polls; after it nothing more is
      fetched and no new handler starts; prefetched messages (and those whose large payload is still
      downloading) are released at once; handlers under way finish (or, after ``shutdown_timeout``,
      are cancelled and their messages released).
    - **Outages are weather**: a fetch that fails with a retryable status (408, 429, 500, 502, 503,
      504), a connection error, a timeout or a garbled answer is logged once per streak and tried
      again with jittered back-off up to ``poll_interval``'s maximum. Anything else (authentication,
      a missing queue, configuration) ends the worker, and then, like on every exit, no handler
      outlives it. Fetching a large payload likewise: a failure for now releases that message for
      a few seconds; a 403 (a SAS without ``r`` on the Blob service) ends the worker, its message
      visible again at once.
    - **Bad messages never stop it**: undecodable content is poisoned (with ``max_dequeue_count``)
      or released, logged and counted.
    - **Honest outcomes**: a handler that succeeded but whose message could not be deleted is never
      counted as ``failed``: it is ``lease_lost`` when the service refused the message's pop receipt
      (``on_lease_lost`` is called), ``delete_failed`` when the delete failed for another reason (the
      service unreachable during an outage, say); either way the message will be delivered again.
    """

    def __init__(self, link: QueueLink, handler: Handler, settings: WorkerSettings, options: ReceiveSettings) -> None:
        check_handler(handler)
        self._link = link
        self._handler = handler
        self._options = options
        self._concurrency = settings.concurrency
        self._handler_timeout = settings.handler_timeout
        self._shutdown_timeout = settings.shutdown_timeout
        self._on_failure: FailureHook | None = settings.on_failure
        self._on_lease_lost: FailureHook | None = settings.on_lease_lost
        self._stop = settings.stop
        self._poison_queue = poison_queue_for(options, link.queue_name)  # checked now, before any request
        self._on_poison: PoisonHook | None = settings.on_poison
        self._state = "new"
        self._consumer: Consumer | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # one per message, until it is settled
        self._running = 0  # of those, how many are still in their handler
        self._changed = asyncio.Event()  # a handler returned, a task ended, or stop was set
        self._processed = self._failed = self._lease_lost = self._undeleted = 0
        self._failing_since: float | None = None
        self._downloading = 0  # handler slots fetching their message's large payload
        self._fetching: set[asyncio.Task[None]] = set()  # of those, the tasks in the download: a stop cancels them
        self._fatal: Exception | None = None  # fetching a payload failed for good (a 403): the worker stops

    @classmethod
    def build(cls, link: QueueLink, handler: Handler, options: Mapping[str, Any]) -> Worker:
        """A worker from ``worker()``'s and ``process()``'s keywords (:class:`ProcessOptions`), every one
        checked now, before any request."""
        worker_options = {k: v for k, v in options.items() if k in WORKER_NAMES}
        receive_options = {k: v for k, v in options.items() if k not in WORKER_NAMES}
        try:
            receive = ReceiveSettings.build(**receive_options)
        except TypeError as exc:  # a misspelt option: name both kinds
            raise TypeError(f"{exc}; worker options: {', '.join(sorted(WORKER_NAMES))}") from None
        check_handler(handler)
        return cls(link, handler, WorkerSettings.build(worker_options), receive)

    # ---- what can be read while it runs -------------------------------------------------------

    @property
    def state(self) -> str:
        """ "new", "running", "stopping" (stop was asked; handlers under way finish) or "stopped"."""
        if self._state == "running" and self._stop is not None and self._stop.is_set():
            return "stopping"
        return self._state

    @property
    def stats(self) -> ProcessStats:
        """The counts so far (a snapshot; the final one is what :meth:`run` returns)."""
        consumer = self._consumer
        return ProcessStats(
            processed=self._processed,
            failed=self._failed,
            poisoned=consumer.poisoned if consumer else 0,
            lease_lost=self._lease_lost,
            undecodable=consumer.undecodable if consumer else 0,
            delete_failed=self._undeleted,
            rescheduled=consumer.rescheduled if consumer else 0,
        )

    @property
    def received(self) -> int:
        """Messages handed to the handler so far (poisoned and undecodable ones never are)."""
        return self._consumer.yielded if self._consumer else 0

    @property
    def last_answer(self) -> float | None:
        """``time.monotonic()`` when the queue last answered a receive (None before its first answer)."""
        return self._consumer.last_answer if self._consumer else None

    @property
    def failing_since(self) -> float | None:
        """``time.monotonic()`` when receiving started failing; None while it works."""
        failing, answer = self._failing_since, self.last_answer
        return None if failing is None or (answer is not None and answer > failing) else failing

    @property
    def in_flight(self) -> int:
        """Handlers running now."""
        return self._running

    @property
    def prefetched(self) -> int:
        """Messages fetched (hidden from other consumers) and not yet handed to a handler: a batch while
        its poison messages are moved, say. The worker fetches no more than its free handler slots can
        start at once, so this is 0 most of the time; a stop gives these back at once."""
        consumer = self._consumer
        return consumer.unhanded + len(consumer.buffer) if consumer else 0

    def stop(self) -> None:
        """Stop gracefully: nothing more is fetched, prefetched messages go back at once, handlers
        under way finish (``shutdown_timeout`` bounds that); :meth:`run` then returns the stats."""
        if self._stop is None:
            self._stop = asyncio.Event()
        self._stop.set()

    # ---- running --------------------------------------------------------------------------------

    async def run(self) -> ProcessStats:
        """Run until ``max_messages``, ``idle_timeout`` or :meth:`stop`; the stats. Runs once."""
        if self._state != "new":
            raise RuntimeError("a Worker runs once; make a new one with queue.worker(...)")
        self._state = "running"
        stop = self._stop if self._stop is not None else asyncio.Event()
        self._stop = stop
        consumer = self._consumer = Consumer(
            self._link,
            self._options,
            poison_queue=self._poison_queue,
            raise_undecodable=False,
            on_poison=self._on_poison,
            on_lease_lost=self._on_lease_lost,
        )
        watcher = asyncio.ensure_future(self._watch(stop))
        try:
            await self._loop(stop)
            if self._fatal is not None:
                raise self._fatal
            await consumer.aclose(keep_renewing=True)  # prefetched messages go back at once
            await self._drain(self._shutdown_timeout)
        except BaseException:
            # an error retrying cannot fix, or cancellation: no handler outlives the worker
            await shielded(self._cancel_handlers())
            raise
        finally:
            watcher.cancel()
            await shielded(consumer.aclose())  # renewals end; anything still fetched goes back
            self._state = "stopped"
        return self.stats

    async def _watch(self, stop: asyncio.Event) -> None:
        await stop.wait()
        assert self._consumer is not None
        self._consumer.halt()
        for task in list(self._fetching):  # not started: each gives its message back at once
            task.cancel()
        self._changed.set()

    async def _loop(self, stop: asyncio.Event) -> None:
        consumer = self._consumer
        assert consumer is not None
        buffer = consumer.buffer
        streak = 0
        streak_started = 0.0
        while (free := await self._room(stop)) is not None:
            if not buffer:
                try:
                    # fetch no more than can start now: prefetched messages would sit hidden, their
                    # visibility timeout running, while every handler slot is busy
                    batch = await consumer.next_batch(free)
                except Exception as exc:
                    if not is_weather(exc):
                        raise
                    streak += 1
                    if self.failing_since is None:  # (an empty answer since the last failure ended that streak)
                        self._failing_since = time.monotonic()
                    if streak == 1:
                        streak_started = time.monotonic()
                        log.warning("receiving failed; the worker keeps trying with back-off: %s", exc)
                    else:
                        log.debug("receiving failed again (%d in a row): %s", streak, exc)
                    await consumer.pause(self._options.poll_delay(streak - 1))
                    continue
                finally:
                    consumer.unhanded = 0  # handed on now (or given back)
                if streak:
                    log.warning(
                        "receiving works again after %d failed attempts over %.1f s",
                        streak,
                        time.monotonic() - streak_started,
                    )
                    streak = 0
                    self._failing_since = None
                if batch is None:
                    return  # max_messages reached, idle_timeout passed, or stopped
                buffer.extend(batch)
            if stop.is_set():
                return  # what is in the buffer is released by aclose
            message = buffer.popleft()
            consumer.claim(message)  # until its task ends: the same message fetched again is not run twice
            consumer.yielded += 1
            self._running += 1
            if message._unfetched:
                self._downloading += 1  # (from now: max_messages is not reached while it may fail)
            task = asyncio.ensure_future(self._handle(message))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    async def _room(self, stop: asyncio.Event) -> int | None:
        """How many messages may start, once one may; None when the worker stops (stop, or a payload
        that cannot be fetched). Every handler slot busy: wait for one. ``max_messages`` reached
        while payloads are still fetched: wait for them (it is not, if one fails)."""
        consumer = self._consumer
        assert consumer is not None
        changed = self._changed
        while not stop.is_set() and self._fatal is None:
            free = self._free()
            left = consumer._remaining()
            if free > 0 and (consumer.buffer or not self._downloading or left is None or left > 0):
                return free
            changed.clear()
            await changed.wait()
        return None

    def _free(self) -> int:
        """Messages that may start now: a free handler slot each, while deletes and releases of
        finished handlers (at most ``concurrency`` more) are still under way."""
        return min(self._concurrency - self._running, 2 * self._concurrency - len(self._tasks))

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._changed.set()

    def _returned(self) -> None:
        """The handler is done (whatever its outcome); settling the message does not hold its slot."""
        self._running -= 1
        self._changed.set()

    async def _drain(self, shutdown_timeout: float | None) -> None:
        """Let handlers under way finish; after ``shutdown_timeout`` cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=shutdown_timeout)
        if pending:
            log.warning("%d handlers still running after shutdown_timeout; cancelling them", len(pending))
            await self._cancel_handlers()

    async def _cancel_handlers(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()  # each releases its message at once
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ---- one message ---------------------------------------------------------------------------

    async def _handle(self, message: ReceivedMessage) -> None:
        consumer = self._consumer
        assert consumer is not None
        try:
            if message._unfetched and not await self._fetch_payload(consumer, message):
                return
            await self._handle_claimed(message)
        finally:
            consumer.unclaim(message)

    async def _fetch_payload(self, consumer: Consumer, message: ReceivedMessage) -> bool:
        """Fetch the message's large payload in its own handler slot (a download per slot at most; the
        loop goes on meanwhile). False when it is not handed to the handler (poisoned, released, or the
        worker stopped: a stop cancels the download, and the message is visible again at once): then
        it was never received, and its slot is free. A failure no retry fixes (a 403) stops the worker
        and is raised from :meth:`run`, as the queue's own 403 is."""
        fetched = False
        task = asyncio.current_task()
        assert task is not None
        self._fetching.add(task)
        try:
            fetched = await consumer.fetch_payload(message)
            if fetched and self._stop is not None and self._stop.is_set():  # stopped as it came in
                fetched = False
                await shielded(release_quietly(message, 0))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._fatal is None:
                self._fatal = exc
            consumer.halt()
        finally:
            self._fetching.discard(task)
            self._downloading -= 1
            if not fetched:
                consumer.yielded -= 1
                self._returned()
            self._changed.set()
        return fetched

    async def _handle_claimed(self, message: ReceivedMessage) -> None:
        link = self._link
        with link.operation("process", message) as rec:  # the handler's own spans are its children
            try:
                error = await self._call(message)
            except asyncio.CancelledError:
                self._returned()
                if message.settled is None:
                    await shielded(release_quietly(message, 0))
                raise
            self._returned()
            if error is not None:
                self._failed += 1
                rec.fail(error_type(error), error)
                link.count("failed")
                if message.settled is None:
                    await shielded(self._settle_failed(message, error))
                if self._on_failure is not None:
                    await call_hook(self._on_failure, "on_failure", message, error)
                return
            if message.settled == "poisoned":
                return  # by its handler (message.poison): counted as poisoned, not processed
            if message.settled is None:
                try:
                    await message._delete_on_exit()
                except MessageSettled:
                    pass  # settled by the handler's own code meanwhile
                except AioQueueError as exc:
                    await self._delete_failed(message, exc, rec)
                    return
            self._processed += 1
            link.count("processed")

    async def _settle_failed(self, message: ReceivedMessage, error: BaseException) -> None:
        """A failed handler's message: poisoned now on its last allowed delivery (with the failure), else
        released after ``retry_delay``."""
        consumer = self._consumer
        assert consumer is not None
        if not await consumer.failed(message, error):
            await release_quietly(message, self._options.retry_delay_of(message))

    async def _delete_failed(self, message: ReceivedMessage, exc: AioQueueError, rec: Any) -> None:
        """A handled message could not be deleted, so it will be delivered again: a lost lease when the
        service refused its pop receipt, otherwise (the service unreachable, busy or refusing) a failed
        delete; each logged as what it is and counted apart."""
        if isinstance(exc, (MessageNotFound, PopReceiptMismatch)):
            await self._lease_was_lost(message, exc, rec)
            return
        self._undeleted += 1
        rec.fail("delete_failed", exc)
        self._link.count("delete_failed")
        log.warning(
            "message %s was handled, but deleting it failed because %s (not a lost lease); %s after its "
            "visibility timeout and is handled again, so keep handlers idempotent: %s",
            message.id,
            _why_undeleted(exc),
            "unless the delete got through before its answer was lost, it reappears"
            if _maybe_deleted(exc)
            else "it reappears",
            exc,
        )

    async def _lease_was_lost(self, message: ReceivedMessage, exc: AioQueueError, rec: Any) -> None:
        """The service refused the handled message's pop receipt: counted as lease_lost, logged, and told
        through ``on_lease_lost`` (unless its renewals stopping already told it)."""
        told = message.lease_lost
        self._lease_lost += 1
        rec.fail("lease_lost", exc)
        self._link.count("lease_lost")
        advice = (
            "keep handlers idempotent"
            if self._options.auto_renew
            else "use auto_renew=True for long handlers and keep handlers idempotent"
        )
        log.warning(
            "message %s was handled, but deleting it failed, so it will be delivered again "
            "(lease lost: its visibility timeout lapsed or another consumer took it over): %s; %s",
            message.id,
            exc,
            advice,
        )
        if self._on_lease_lost is not None and not told:
            await call_hook(self._on_lease_lost, "on_lease_lost", message, exc)

    async def _call(self, message: ReceivedMessage) -> BaseException | None:
        """Run the handler (within ``handler_timeout``); None when it returned, else what it raised
        (a TimeoutError when it ran over ``handler_timeout`` and was cancelled)."""
        timeout = self._handler_timeout
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
            await self._handler(message)
        except asyncio.CancelledError:
            if not expired:
                raise
            uncancel = getattr(asyncio.current_task(), "uncancel", None)
            if uncancel is not None:  # Python >= 3.11: this cancellation was ours, and is handled
                uncancel()
            log.error("handler for message %s ran over handler_timeout=%ss and was cancelled", message.id, timeout)
            return TimeoutError(f"the handler ran over handler_timeout={timeout}s and was cancelled")
        except Exception as exc:
            log.error(
                "handler failed for message %s (dequeue count %d): %r",
                message.id,
                message.dequeue_count,
                exc,
                exc_info=exc,
            )
            return exc
        finally:
            if timer is not None:
                timer.cancel()
        return None


def _why_undeleted(exc: AioQueueError) -> str:
    """Why a delete failed, other than a lost lease, in words for the log."""
    if isinstance(exc, RequestTimeout):
        return "the service did not answer in time"
    if isinstance(exc, TransportError):
        return "the service was unreachable" if exc.unsent else "the connection to the service failed"
    if isinstance(exc, ServiceError):
        return f"the service refused it (HTTP {exc.status})"
    return "the service's answer could not be read"


def _maybe_deleted(exc: AioQueueError) -> bool:
    """Might the delete have been done although it failed (an attempt sent, its answer lost)?"""
    if isinstance(exc, TransportError):
        return not exc.unsent
    return bool(getattr(exc, "maybe_applied", False))
