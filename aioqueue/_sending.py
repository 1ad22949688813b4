"""``send_messages``: many Put Message requests, a bounded number at once, receipts in input order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from ._encoding import MessageEncoding, encode_message
from ._errors import (
    AioQueueError,
    ConfigurationError,
    MessageEncodingError,
    MessageTooLarge,
    SendMessagesError,
    TransportError,
)
from ._models import SendReceipt
from ._operations import UNCHANGED, QueueOperations
from ._payloads import PayloadError, PayloadStore
from ._schedule import Schedule

__all__ = ["after_failed_send", "scheduled_text", "send_all", "send_at", "send_large", "upload"]

log = logging.getLogger("aioqueue")


async def upload(
    ops: QueueOperations, store: PayloadStore, content: Any, ttl: int | None, limit: int | None = None
) -> tuple[str, str | None]:
    """(the message text, the uploaded blob or None): content over the threshold (or ``limit``)
    uploaded first. An upload failure is a PayloadError (caused by it): no message goes out."""
    try:
        return await store.offload(ops.encoding, content, ops.queue_name, ttl, limit)
    except (MessageEncodingError, ConfigurationError):
        raise
    except AioQueueError as exc:
        raise PayloadError(
            f"uploading the message's payload failed, so no message was sent: {type(exc).__name__}: {exc}"
        ) from exc


async def send_large(
    ops: QueueOperations, store: PayloadStore, content: Any, query: dict[str, str], headers: Mapping[str, str] | None
) -> SendReceipt:
    """Put Message with large payloads on: content over the threshold is uploaded first and the
    message is its reference. An upload failure sends nothing (PayloadError says why); a send that
    fails after the upload removes the blob, unless the message may have been stored after all."""
    ttl = int(query["messagettl"]) if "messagettl" in query else None
    text, blob = await upload(ops, store, content, ttl)
    if blob is None:
        return await ops.put_message(text, query, headers, content)
    try:
        return await ops.put_message(text, query, headers)
    except AioQueueError as exc:
        await after_failed_send(store, blob, exc)
        raise


def scheduled_text(
    encoding: MessageEncoding, store: PayloadStore | None, schedule: Schedule, content: Any
) -> str | None:
    """The checked message text of ``content`` sent at ``schedule`` (in its envelope, beyond 7 days),
    or None for content to upload first: over the threshold, or whose envelope would not fit."""
    if store is None:
        return schedule.text(encode_message(encoding, content))
    text = store.check(encoding, content)
    if text is None or not schedule.envelope:
        return text
    try:
        return schedule.text(text)
    except MessageTooLarge:
        return None  # its reference travels in the envelope instead


async def send_at(
    ops: QueueOperations,
    store: PayloadStore | None,
    schedule: Schedule,
    text: str | None,
    content: Any,
    headers: Mapping[str, str] | None,
) -> SendReceipt:
    """Put Message of ``content`` at ``schedule`` (``text``: :func:`scheduled_text`'s), its
    visibility and time to live counted from now."""
    query = schedule.query()
    if text is not None:  # an envelope carries the content's text as it is: no trace context added to it
        return await ops.put_message(text, query, headers, UNCHANGED if schedule.envelope else content)
    assert store is not None
    if not schedule.envelope:
        return await send_large(ops, store, content, query, headers)
    reference, blob = await upload(ops, store, content, int(query["messagettl"]), limit=0)
    try:
        return await ops.put_message(schedule.text(reference), schedule.query(), headers)
    except AioQueueError as exc:
        if blob is not None:
            await after_failed_send(store, blob, exc)
        raise


async def after_failed_send(store: PayloadStore, blob: str, error: AioQueueError, what: str = "sending") -> None:
    """A message's send (or update) failed after its payload's upload: the blob removed when the
    service said no, else kept (the message may point at it). Said in the error's notes and the log."""
    maybe = getattr(error, "maybe_applied", False) or (isinstance(error, TransportError) and not error.unsent)
    if maybe:
        said = f"the message may have been stored: its payload blob {blob} is kept"
        store.orphans += 1
    else:
        try:
            await store.delete(blob)
            said = f"no message was stored, and its payload blob {blob} was removed"
        except AioQueueError as exc:
            said = f"no message was stored; removing its payload blob {blob} failed ({exc}): it is left as an orphan"
            store.orphans += 1
    log.warning("%s a large message failed: %s", what, said)
    _note(error, said)


def _note(error: BaseException, text: str) -> None:
    add = getattr(error, "add_note", None)  # Python 3.11+
    if add is not None:
        add(text)


Send = Callable[[str | None, Any], Awaitable[SendReceipt]]
"""``send(text, content)``: one Put Message of the encoded ``text`` (``content``: what it encodes;
``text`` None: content for a large payload, to upload first)."""
Encode = Callable[[Any], str | None]
"""The checked message text of a content, or None for one to send as a large payload."""


class _Source:
    """The (index, text, content) items to send, from a list encoded in full at once or from an async
    iterable read one item at a time; None once done or after a failure."""

    def __init__(self, contents: Iterable[Any] | AsyncIterable[Any], encode: Encode) -> None:
        self.receipts: list[SendReceipt | None] = []
        self.failure: list[BaseException] = []
        self._aiter: AsyncIterator[Any] | None = None
        self._texts: list[str | None] = []
        self._items: list[Any] = []
        self._next = 0
        self._encode = encode
        self._lock = asyncio.Lock()  # one reader of the caller's async iterator at a time
        if isinstance(contents, AsyncIterable):
            self._aiter = aiter(contents)
        elif isinstance(contents, (str, bytes)) or not isinstance(contents, Iterable):
            raise ConfigurationError("contents must be an iterable (or async iterable) of message contents")
        else:  # encoded (and so checked) in full before the first request
            self._items = list(contents)
            self._texts = [encode(item) for item in self._items]
            self.receipts = [None] * len(self._texts)

    async def next(self) -> tuple[int, str | None, Any] | None:
        if self.failure:
            return None
        if self._aiter is None:
            index = self._next
            if index >= len(self._texts):
                return None
            self._next = index + 1
            return index, self._texts[index], self._items[index]
        async with self._lock:
            return await self._next_of_async(self._aiter)

    async def _next_of_async(self, items: AsyncIterator[Any]) -> tuple[int, str | None, Any] | None:
        if self.failure:
            return None
        try:
            content = await items.__anext__()
            text = self._encode(content)
        except StopAsyncIteration:
            return None
        except BaseException as exc:  # the caller's iterator or its encoding failed
            self.failure.append(exc)
            return None
        self.receipts.append(None)
        return len(self.receipts) - 1, text, content


async def send_all(
    send: Send, contents: Iterable[Any] | AsyncIterable[Any], encode: Encode, concurrency: int
) -> list[SendReceipt]:
    """Send every content, up to ``concurrency`` at once; the receipts in input order.

    If a send fails, no new sends start, those under way finish, and the first error is raised with a
    :class:`SendMessagesError` whose ``receipts`` (in input order) hold None for each message not sent.
    """
    source = _Source(contents, encode)

    async def sender() -> None:
        while (item := await source.next()) is not None:
            index, text, content = item
            try:
                source.receipts[index] = await send(text, content)
            except BaseException as exc:
                source.failure.append(exc)
                return

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    if source.failure:
        first = source.failure[0]
        if not isinstance(first, Exception):
            raise first  # cancellation and the like pass through untouched
        raise SendMessagesError(first, source.receipts) from first
    return [r for r in source.receipts if r is not None]
