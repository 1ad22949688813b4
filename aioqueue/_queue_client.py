"""QueueClient: one queue's operations, its messages, and the consumer loop. Arguments are checked and
models built here; the requests are :class:`._operations.QueueOperations`', which is also what the
streams and the worker hold."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any

from ._auth import Credential
from ._client_base import ClientBase
from ._client_options import ClientOptions, open_pool
from ._dates import parse_rfc1123
from ._encoding import MessageEncoding, encode_message
from ._endpoint import ConnectionSettings, parse_connection_string
from ._errors import AioQueueError, ConfigurationError, MalformedResponse
from ._messages import RawMessage, decoded_messages, peeked_messages
from ._models import (
    AccessPolicy,
    PeekedMessage,
    ProcessStats,
    QueueLag,
    QueueMessage,
    QueueProperties,
    SendReceipt,
    UpdateReceipt,
)
from ._operations import UNCHANGED, Pool, QueueOperations
from ._options import ReceiveOptions, ReceiveSettings, Unpack
from ._payloads import sweep
from ._redrive import Redriver, RedriveResult, redrive_filter
from ._schedule import Envelope, Schedule, due_only, envelope_as_text, unwrap_peeked
from ._sending import after_failed_send, scheduled_text, send_all, send_at, send_large, upload
from ._settle import ReceivedMessage
from ._streams import BatchStream, MessageStream
from ._validation import (
    MAX_SECONDS,
    SERVICE_VISIBILITY,
    Duration,
    message_count,
    positive_int,
    seconds,
    signed_identifier,
)
from ._validation import message_id as check_message_id
from ._validation import pop_receipt as check_pop_receipt
from ._validation import queue_name as check_queue_name
from ._validation import user_headers as check_user_headers
from ._worker import Handler, ProcessOptions, Worker

__all__ = ["QueueClient"]


class QueueClient(ClientBase[QueueOperations]):
    """One queue: queue operations, message operations and the consumer loop.

    Service limits: 32 messages per receive or peek, 64 KiB of message text after encoding,
    visibility timeouts up to 7 days.
    """

    def __init__(
        self,
        account_url: str,
        queue_name: str,
        *,
        credential: Credential = None,
        _connection: ConnectionSettings | None = None,
        _parent: tuple[Pool, MessageEncoding] | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        name = check_queue_name(queue_name)
        if _parent is None:
            pool, encoding = open_pool(account_url, credential, options, _connection)
        else:
            pool, encoding = _parent
        self._encoding = encoding
        self._resource = f"/{name}"
        self._bind(QueueOperations(pool, name, encoding), owner=_parent is None)

    @property
    def queue_name(self) -> str:
        """The queue's name."""
        return self._ops.queue_name

    def _sibling(self, queue_name: str) -> QueueClient:
        """Another queue's client on this client's pool and encoding (a poison queue, in tests)."""
        return QueueClient("", queue_name, _parent=(self._pool, self._encoding))

    @classmethod
    def from_connection_string(cls, conn_str: str, queue_name: str, **options: Unpack[ClientOptions]) -> QueueClient:
        """A client for one queue from any connection string form."""
        settings = parse_connection_string(conn_str)
        return cls(settings.account_url, queue_name, credential=settings.credential, _connection=settings, **options)

    @classmethod
    def from_queue_url(
        cls, queue_url: str, *, credential: Credential = None, **options: Unpack[ClientOptions]
    ) -> QueueClient:
        """A client from a queue's full URL, which may carry a SAS token (``...?sv=...&sig=...``)."""
        if not isinstance(queue_url, str):
            raise ConfigurationError("queue_url must be a str")
        base, query_sep, query = queue_url.partition("?")
        base = base.rstrip("/")
        account_url, slash, name = base.rpartition("/")
        if not slash or "://" not in account_url or account_url.endswith(":/"):
            raise ConfigurationError("queue_url must look like https://<account>.queue.core.windows.net/<queue>")
        return cls(account_url + (query_sep + query if query else ""), name, credential=credential, **options)

    # ---- queue operations ------------------------------------------------------------------

    async def create_queue(
        self,
        *,
        metadata: Mapping[str, str] | None = None,
        exist_ok: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> bool:
        """Create the queue; True when created, False when it existed and ``exist_ok`` (metadata untouched).

        Raises QueueAlreadyExists when it exists and ``exist_ok`` is false. When an attempt's answer
        was lost, the retry's "already exists" is taken as this call's success (True): the lost
        attempt may have created it.
        """
        return await self._ops.create_queue(metadata=metadata, exist_ok=exist_ok, extra=headers)

    async def delete_queue(self, *, missing_ok: bool = False, headers: Mapping[str, str] | None = None) -> bool:
        """Delete the queue and its messages; True when deleted, False when missing and ``missing_ok``.

        When an attempt's answer was lost, the retry's "not found" is this call's success (True).
        """
        return await self._ops.delete_queue(missing_ok=missing_ok, extra=headers)

    async def exists(self, *, headers: Mapping[str, str] | None = None) -> bool:
        """Whether the queue exists."""
        return await self._ops.exists(extra=headers)

    async def get_queue_properties(self, *, headers: Mapping[str, str] | None = None) -> QueueProperties:
        """Metadata and the approximate message count."""
        metadata, count = await self._ops.get_metadata(extra=headers)
        return QueueProperties(name=self.queue_name, metadata=metadata, approximate_message_count=count)

    async def lag(self, *, previous: QueueLag | None = None, headers: Mapping[str, str] | None = None) -> QueueLag:
        """How far behind the queue's consumers are, for a scaler or dashboard of your own: how long the
        oldest message waiting for a handler has waited (one Peek Messages: the message the service
        would hand out next; None when none is waiting), the approximate message count (Get Queue
        Metadata: visible and hidden messages) and when that was measured. The two requests go
        concurrently. Nothing is received, hidden or decoded.

        The wait counts from when the message became ready, by the service's clock (the peek answer's
        ``Date``; whole seconds): a scheduled message's envelope (``deliver_at``/``delay`` beyond 7 days)
        from when it is due, and one not due yet, visible only to be re-enqueued, is not waiting (the
        next messages are peeked past it, a second request). Any other message counts from its
        insertion: Peek Messages tells nothing else, not when a message sent hidden (``delay`` up to 7
        days) or given back after a failure became visible. Give the ``previous`` measurement, as a
        scaler polling this does, and that is bounded too: a message visible now was either visible
        then, when the oldest had waited ``previous.oldest_message_age``, or has become visible since,
        so no age is over the previous one plus the time between the two.
        """
        if previous is not None and not isinstance(previous, QueueLag):
            raise ConfigurationError(f"previous must be a QueueLag (an earlier lag()), not {type(previous).__name__}")
        peek = asyncio.ensure_future(self._ops.peek_dated(1, headers))
        metadata = asyncio.ensure_future(self._ops.get_metadata(extra=headers))
        try:
            (raws, date), (_, count) = await asyncio.gather(peek, metadata)
        except BaseException:  # the other request is not left running on its own
            for task in (peek, metadata):
                task.cancel()
            await asyncio.gather(peek, metadata, return_exceptions=True)
            raise
        measured = parse_rfc1123(date) if date else datetime.now(timezone.utc)  # no Date: this machine's clock
        ready = _ready_since(raws, measured)
        if ready is None and raws:  # a scheduled message not due yet is next: the ones behind it
            ready = _ready_since((await self._ops.peek_dated(32, headers))[0], measured)
        age = None if ready is None else _bounded(measured - ready, measured, previous)
        return QueueLag(oldest_message_age=age, approximate_message_count=count, measured_on=measured)

    async def set_queue_metadata(
        self, metadata: Mapping[str, str] | None, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Replace all of the queue's metadata (None or {} clears it)."""
        await self._ops.set_metadata(metadata=metadata, extra=headers)

    async def get_queue_access_policy(self, *, headers: Mapping[str, str] | None = None) -> dict[str, AccessPolicy]:
        """The stored access policies, by identifier."""
        return await self._ops.get_access_policy(extra=headers)

    async def set_queue_access_policy(
        self, policies: Mapping[str, AccessPolicy | None], *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Replace the stored access policies (at most 5; identifiers up to 64 characters)."""
        if not isinstance(policies, Mapping):
            raise ConfigurationError("policies must be a mapping of identifier to AccessPolicy (or None)")
        if len(policies) > 5:
            raise ConfigurationError(f"a queue holds at most 5 stored access policies; got {len(policies)}")
        for ident, policy in policies.items():
            signed_identifier(ident, "an access policy identifier")
            _check_policy(ident, policy)
        await self._ops.set_access_policy(policies=policies, extra=headers)

    # ---- message operations ----------------------------------------------------------------

    @staticmethod
    def _send_query(visibility_timeout: Duration | None, time_to_live: Duration | None) -> dict[str, str]:
        query: dict[str, str] = {}
        ttl = None
        if time_to_live is not None:
            ttl = seconds(time_to_live, "time_to_live", low=1, high=None, allow_never=True)
            query["messagettl"] = str(ttl)
        if visibility_timeout is not None:
            vis = seconds(visibility_timeout, "visibility_timeout", low=0)
            if ttl is not None and ttl != -1 and vis >= ttl:
                raise ConfigurationError("visibility_timeout must be shorter than time_to_live")
            if ttl is None and vis >= MAX_SECONDS:
                raise ConfigurationError("visibility_timeout must be shorter than the default 7-day time_to_live")
            query["visibilitytimeout"] = str(vis)
        return query

    async def send_message(
        self,
        content: Any,
        *,
        visibility_timeout: Duration | None = None,
        time_to_live: Duration | None = None,
        headers: Mapping[str, str] | None = None,
        delay: Duration | None = None,
        deliver_at: datetime | None = None,
    ) -> SendReceipt:
        """Put one message. ``visibility_timeout`` 0 s..7 d (hidden until then) and shorter than
        ``time_to_live`` (default 7 days; -1 never expires). Over 64 KiB encoded: MessageTooLarge.
        A retried send after a lost answer can store the message twice (at-least-once).

        ``delay`` (seconds or a timedelta from now) or ``deliver_at`` (an aware datetime; one in the
        past is due now), instead of ``visibility_timeout``: delivered no earlier than then, and
        living ``time_to_live`` from then. Up to 7 days ahead the message is hidden until then;
        further ahead it travels in an envelope that this package's consumers re-enqueue once a
        week and hand over, as it was sent, when due (the guide's "Delivery at a time")."""
        schedule = Schedule.build(deliver_at, delay, visibility_timeout, time_to_live)
        if schedule is not None:
            store = self._pool.payloads
            text = scheduled_text(self._encoding, store, schedule, content)
            return await send_at(self._ops, store, schedule, text, content, headers)
        query = self._send_query(visibility_timeout, time_to_live)
        if self._pool.payloads is None:
            return await self._ops.put_message(encode_message(self._encoding, content), query, headers, content)
        return await send_large(self._ops, self._pool.payloads, content, query, headers)

    async def send_messages(
        self,
        contents: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: int = 16,
        visibility_timeout: Duration | None = None,
        time_to_live: Duration | None = None,
        headers: Mapping[str, str] | None = None,
        delay: Duration | None = None,
        deliver_at: datetime | None = None,
    ) -> list[SendReceipt]:
        """Put many messages, up to ``concurrency`` at once; receipts come back in input order.

        A list or other iterable is encoded (and checked) in full before the first request. If a send
        fails, no new sends start, those under way finish, and the first error is raised with
        a :class:`SendMessagesError` whose ``receipts`` is a list in input order holding a SendReceipt
        for each message sent and None for each that was not (``error``: the first failure).
        ``delay`` or ``deliver_at``: every message due then, as for :meth:`send_message` (a delay
        counts from this call).
        """
        positive_int(concurrency, "concurrency")
        schedule = Schedule.build(deliver_at, delay, visibility_timeout, time_to_live)
        query = self._send_query(visibility_timeout, time_to_live) if schedule is None else {}
        extra = check_user_headers(headers) if headers is not None else None
        ops, store = self._ops, self._pool.payloads
        if schedule is not None:
            at = partial(send_at, ops, store, schedule)
            text_at = partial(scheduled_text, self._encoding, store, schedule)
            return await send_all(lambda text, content: at(text, content, extra), contents, text_at, concurrency)

        async def send(text: str | None, content: Any) -> SendReceipt:
            if text is None:  # over the threshold: uploaded, then its reference sent
                assert store is not None
                return await send_large(ops, store, content, query, extra)
            return await ops.put_message(text, query, extra, content)

        encode = partial(encode_message, self._encoding) if store is None else partial(store.check, self._encoding)
        return await send_all(send, contents, encode, concurrency)

    async def receive_messages(
        self,
        *,
        max_messages: int = 1,
        visibility_timeout: Duration | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[QueueMessage]:
        """Get up to ``max_messages`` (1..32) messages, hiding them for ``visibility_timeout``
        (1 s..7 d; the service default is 30 s). Delete each one once handled, or it comes back.
        A message sent more than 7 days ahead and not due yet is re-enqueued and left out, as
        :meth:`receive` does."""
        count = message_count(max_messages)
        vis = None if visibility_timeout is None else seconds(visibility_timeout, "visibility_timeout", low=1)
        raws, leased_at = await self._ops.get_messages(count, vis, headers)
        raws, _ = await due_only(self._ops, raws, SERVICE_VISIBILITY if vis is None else vis)
        renewed = None
        if self._pool.payloads is not None:  # payloads fetched one after the other, every lease kept
            raws, renewed = await self._ops.resolve_received(raws, vis, leased_at)
        messages, failed = decoded_messages(raws, self._ops.decode, QueueMessage)
        if renewed:
            for m in messages:
                if (receipt := renewed.get(m.id)) is not None:
                    m.pop_receipt, m.next_visible_on = receipt.pop_receipt, receipt.next_visible_on
        if failed:
            # the caller gets no message, so none stays hidden for it: the decodable ones are visible
            # again at once (the undecodable ones stay hidden for their visibility timeout)
            await asyncio.gather(
                *(self.update_message(m, visibility_timeout=0) for m in messages), return_exceptions=True
            )
            raise failed[0][1]
        return messages

    async def receive_message(
        self, *, visibility_timeout: Duration | None = None, headers: Mapping[str, str] | None = None
    ) -> QueueMessage | None:
        """One message (hidden for ``visibility_timeout``, as :meth:`receive_messages`), or None when
        the queue has no visible message."""
        messages = await self.receive_messages(max_messages=1, visibility_timeout=visibility_timeout, headers=headers)
        return messages[0] if messages else None

    async def peek_messages(
        self, *, max_messages: int = 1, headers: Mapping[str, str] | None = None, resolve: bool = True
    ) -> list[PeekedMessage]:
        """Look at up to ``max_messages`` (1..32) visible messages without hiding or counting them.
        With ``large_payloads``, a large message's content is fetched; a message sent more than 7 days
        ahead shows the content it will deliver (due or not). ``resolve=False`` shows the JSON text of
        a large message's reference and of a scheduled message's envelope instead."""
        if not isinstance(resolve, bool):
            raise ConfigurationError(f"resolve must be True or False, not {resolve!r}")
        raws = await self._ops.peek_messages(message_count(max_messages), headers, resolve=False)
        if not resolve:
            return peeked_messages(raws, envelope_as_text(self._ops.undecoded))
        raws = unwrap_peeked(raws)  # a scheduled message: the text it will deliver
        if self._pool.payloads is not None:
            raws = await self._ops.resolve_peeked(raws)
        return peeked_messages(raws, self._ops.decode)

    async def update_message(
        self,
        message: QueueMessage | str,
        pop_receipt: str | None = None,
        *,
        content: Any = UNCHANGED,
        visibility_timeout: Duration = 0,
        headers: Mapping[str, str] | None = None,
    ) -> UpdateReceipt:
        """Change a message's visibility (0 s..7 d) and, if ``content`` is given, its content.

        The old pop receipt is dead afterwards; given a QueueMessage, its ``pop_receipt`` and
        ``next_visible_on`` are refreshed in place so the same object can be used again. Given a message
        from ``receive()`` still held, it waits for that message's settle or renewal under way (its
        receipt may be about to change) and uses the newest receipt.
        """
        vis = seconds(visibility_timeout, "visibility_timeout", low=0)
        store, blob = self._pool.payloads, None
        if content is UNCHANGED:
            text = None
        elif store is None:
            text = encode_message(self._encoding, content)
        else:  # with large payloads: large content uploaded now, before the update
            _id_and_receipt(message, pop_receipt)
            text, blob = await upload(self._ops, store, content, _ttl_left(message))
        try:
            if isinstance(message, ReceivedMessage) and pop_receipt is None and message.settled is None:
                return await message._in_turn(partial(self._update_held, message, content, text, vis, headers, blob))
            return await self._update(message, pop_receipt, content, text, vis, headers, blob)
        except AioQueueError as exc:
            if blob is not None and store is not None:
                await after_failed_send(store, blob, exc, "updating")
            raise

    async def _update(
        self,
        message: QueueMessage | str,
        pop_receipt: str | None,
        content: Any,
        text: str | None,
        vis: int,
        headers: Mapping[str, str] | None,
        blob: str | None = None,
    ) -> UpdateReceipt:
        msg_id, receipt = _id_and_receipt(message, pop_receipt)
        model = message if isinstance(message, QueueMessage) else None
        result = await self._ops.update_message("update", msg_id, receipt, vis, text, headers, model)
        if text is not None:
            if model is not None:
                model.content = content
            if self._pool.payloads is not None:  # the old payload blob goes only now, after the update
                await self._ops.replace_payload(msg_id, blob)
        return result

    async def _update_held(
        self,
        message: ReceivedMessage,
        content: Any,
        text: str | None,
        vis: int,
        headers: Mapping[str, str] | None,
        blob: str | None,
    ) -> UpdateReceipt:
        """Update a held message in its turn; a new visibility timeout is its lease from now on."""
        sent = time.monotonic()
        result = await self._update(message, None, content, text, vis, headers, blob)
        if vis > 0:
            message._renewed(sent, vis)
        return result

    async def delete_message(
        self, message: QueueMessage | str, pop_receipt: str | None = None, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Delete a received message. A retry after a lost answer that finds it gone counts as success.
        A message from ``receive()`` not settled yet is settled by this (its ``async with`` exit skips it),
        after any settle or renewal of it under way, with its newest receipt: as ``msg.delete()``."""
        if isinstance(message, ReceivedMessage) and pop_receipt is None and message.settled is None:
            await message._in_turn(partial(self._delete, message, None, headers), settles="deleted")
            return
        await self._delete(message, pop_receipt, headers)
        if isinstance(message, ReceivedMessage) and message.settled is None:
            message._mark_settled("deleted")  # deleted directly: its 'async with' exit skips it

    async def _delete(
        self, message: QueueMessage | str, pop_receipt: str | None, headers: Mapping[str, str] | None
    ) -> None:
        msg_id, receipt = _id_and_receipt(message, pop_receipt)
        model = message if isinstance(message, QueueMessage) else None
        await self._ops.delete_message(msg_id, receipt, False, headers, model)

    async def clear_messages(self, *, headers: Mapping[str, str] | None = None) -> None:
        """Delete every message in the queue."""
        await self._ops.clear_messages(extra=headers)

    async def sweep_payloads(self, *, dry_run: bool = False) -> int:
        """Delete this queue's orphaned large-payload blobs: those in the ``large_payloads`` container
        whose recorded expiry (``aioqueue_expires``: the message's time to live plus ``grace``) has
        passed; how many it deleted (``dry_run``: how many it would, deleting none). A blob is never
        deleted before its recorded expiry, and one marked ``never`` is kept. Without
        ``large_payloads``: ConfigurationError, before any request."""
        store = self._pool.payloads
        if store is None:
            raise ConfigurationError("sweep_payloads needs the client's large_payloads=BlobPayloads(container=...)")
        if not isinstance(dry_run, bool):
            raise ConfigurationError("dry_run must be True or False")
        return await sweep(store, self.queue_name, dry_run=dry_run)

    async def redrive(
        self,
        to: str | None = None,
        *,
        dry_run: bool = False,
        limit: int | None = None,
        rate: float | None = None,
        error: str | None = None,
        older_than: Duration | None = None,
        newer_than: Duration | None = None,
        ids: Iterable[str] | None = None,
        on_progress: Callable[[RedriveResult], object] | None = None,
    ) -> RedriveResult:
        """Move this poison queue's messages back: each poison record's original text, exactly, to its
        source queue (or to ``to``; a bare body, with no record, only to ``to``), with the original's
        time to live. Each is re-sent *before* it is deleted here, so a crash or a lost answer can only
        duplicate a message (counted in ``duplicates``), never lose one. The target queue must exist.

        ``dry_run``: move nothing, list what would move (``would_move``; it looks at each target queue
        once: a missing source queue counts in ``no_target``, a missing ``to`` stops it as it stops a
        real run). ``limit``: move at most that
        many. ``rate``: at most that many a second. Filters: ``error`` (a failure's exception type, or
        text in its message or the reason), ``older_than`` / ``newer_than`` (seconds or a timedelta
        since it was poisoned), ``ids`` (original or poison message ids). Messages it leaves (filtered
        out, a dry run's, beyond ``limit``) stay hidden while it runs and are visible again at the end.
        ``on_progress(result)`` is called after each message. Arguments are checked before any request
        (ConfigurationError); a failure part-way raises :class:`RedriveError` with the counts so far.
        Returns a :class:`RedriveResult`."""
        where = redrive_filter(error, older_than, newer_than, ids)
        run = Redriver(self._ops, to, dry_run=dry_run, limit=limit, rate=rate, where=where, on_progress=on_progress)
        return await run.run()

    # ---- consuming -------------------------------------------------------------------------

    def receive(self, **options: Unpack[ReceiveOptions]) -> MessageStream:
        """Messages one at a time, fetched up to ``max_batch_size`` (1..32) per call.

        ``async for msg in queue.receive(): async with msg: ...`` deletes each message when its block
        ends cleanly and, on an exception, makes it visible again after ``retry_delay``. The options
        (:class:`ReceiveOptions`) are checked here, before any request: ``max_batch_size=32``,
        ``visibility_timeout=30``, ``max_messages=None``, ``idle_timeout=None``,
        ``poll_interval=(0.1, 10.0)``, ``auto_renew=False``, ``max_renewal=300``,
        ``max_dequeue_count=None``, ``poison_queue=None`` (``"<queue>-poison"``), ``poison_format="record"``,
        ``retry_delay=0``.

        Leaving the stream (``break``, an exception, cancellation, the end of ``async with``, closing
        the client) stops renewals and makes fetched-but-not-yielded messages visible at once.
        Delivery is at-least-once: handlers should be idempotent.
        """
        return MessageStream(self._ops, ReceiveSettings.build(**options))

    def receive_batches(self, **options: Unpack[ReceiveOptions]) -> BatchStream:
        """Batches of up to ``max_batch_size`` (1..32) messages, one per Get Messages call.

        ``async with batch:`` deletes every unsettled message on a clean exit (concurrently) and
        releases them all after ``retry_delay`` on an exception. Options as for :meth:`receive`.
        """
        return BatchStream(self._ops, ReceiveSettings.build(**options))

    def worker(self, handler: Handler, **options: Unpack[ProcessOptions]) -> Worker:
        """The worker :meth:`process` runs, as an object: ``await worker.run()`` runs it, and while it
        runs ``worker.stats``, ``worker.in_flight``, ``worker.state`` and ``worker.last_answer`` can
        be read and ``worker.stop()`` ends it gracefully. Every argument is checked here, before any
        request; the arguments are :meth:`process`'s, plus callbacks (plain or async functions, their
        failures logged): ``on_failure(message, error)`` after a handler raised (or timed out) and its
        message was released, ``on_poison(message, why)`` after a message moved to the poison queue,
        ``on_lease_lost(message, error)`` when a handled message could not be deleted because its lease
        was lost, or its renewals stopped before it was settled. Options: :class:`ProcessOptions`.
        """
        return Worker.build(self._ops, handler, options)

    async def process(self, handler: Handler, **options: Unpack[ProcessOptions]) -> ProcessStats:
        """Run ``await handler(msg)`` on up to ``concurrency`` (16) messages at once: delete on success;
        on an exception log it, release the message after ``retry_delay`` and keep going.

        ``handler`` must be an async function (a plain function is a TypeError here, before any
        request). A handler running longer than ``handler_timeout`` seconds is cancelled and counted
        as failed. Ends when ``max_messages`` were handed out, the queue stayed empty for
        ``idle_timeout``, or ``stop`` (an ``asyncio.Event``) is set, which wakes the worker at once:
        nothing more is fetched, no new handler starts, prefetched messages are released at once,
        and handlers under way finish (those still running ``shutdown_timeout`` seconds later are
        cancelled and their messages released). Returns :class:`ProcessStats`.

        Fetch failures that retrying can fix (408, 429, 500, 502, 503, 504, connection errors,
        timeouts) are logged once per streak and retried with back-off up to ``poll_interval``'s
        maximum; any other error (authentication, queue not found) ends the worker and is raised.
        On that, on cancellation, and on every other exit no handler outlives the call: handlers
        are awaited or cancelled, and the messages of cancelled ones released at once.
        Receive options as for :meth:`receive`; the callbacks as for :meth:`worker`, which gives the
        same worker as an object whose stats can be read while it runs.
        """
        return await self.worker(handler, **options).run()


def _id_and_receipt(message: QueueMessage | SendReceipt | str, pop_receipt: str | None) -> tuple[str, str]:
    """Checked, so no id or receipt the service never issues (``..``, ``a/b``, a space) reaches a URL."""
    if isinstance(message, (QueueMessage, SendReceipt)):
        return check_message_id(message.id), check_pop_receipt(pop_receipt or message.pop_receipt)
    if not isinstance(message, str) or not message:
        raise ConfigurationError("message must be a QueueMessage or a message id str")
    if not isinstance(pop_receipt, str) or not pop_receipt:
        raise ConfigurationError("a message id needs its pop_receipt")
    return check_message_id(message), check_pop_receipt(pop_receipt)


def _ttl_left(message: QueueMessage | str) -> int:
    """The seconds a received message has left to live; -1 when it never expires, and when it is not
    known (a message id: it may never expire), so its new payload blob is never swept (an orphan at
    worst, never a live message's payload lost)."""
    if not isinstance(message, QueueMessage):
        return -1
    if message.expires_on.year >= 9999:
        return -1
    return max(1, int(message.expires_on.timestamp() - time.time()))


def _check_policy(ident: str, policy: object) -> None:
    if policy is None:
        return
    if not isinstance(policy, AccessPolicy):
        raise ConfigurationError(f"policy {ident!r} must be an AccessPolicy or None")
    for when in (policy.start, policy.expiry):
        if when is not None and when.tzinfo is None:
            raise ConfigurationError(f"policy {ident!r}: start and expiry must be aware datetimes")
    if policy.permission is not None and (
        not isinstance(policy.permission, str) or set(policy.permission) - set("raup")
    ):
        raise ConfigurationError(f"policy {ident!r}: permission must be a str of letters from 'raup'")


def _ready_since(raws: list[RawMessage], now: datetime) -> datetime | None:
    """When the first of the peeked messages that is waiting for a handler became ready (a scheduled
    message's envelope: when due; any other: its insertion); None when none of them is waiting."""
    for raw in raws:
        envelope = Envelope.parse(raw.text)
        if envelope is not None:
            if envelope.due <= now:
                return envelope.due
            continue  # visible only to be re-enqueued for the rest of its wait
        if raw.inserted_on is None:
            raise MalformedResponse("Peek Messages answered a message without its InsertionTime")
        return parse_rfc1123(raw.inserted_on)
    return None


def _bounded(age: timedelta, measured: datetime, previous: QueueLag | None) -> timedelta:
    """``age`` (at least 0), and at most the ``previous`` measurement's age plus the time since it."""
    age = max(timedelta(0), age)
    if previous is None:
        return age
    since = max(timedelta(0), measured - previous.measured_on)
    return min(age, (previous.oldest_message_age or timedelta(0)) + since)
