"""Large payloads on the way in: the content of a message whose text is a payload's reference
(fetched, checked, decoded), and the payload blobs of received messages, each deleted after its
message's delete succeeded and never before (:class:`HeldPayloads`).

Payloads are fetched one message at a time. The consumer (``receive()``, ``receive_batches()``,
``process()``) fetches each as it hands its message over (:func:`content_of`, through the QueueLink),
so prefetched messages hold only their references. ``receive_messages`` and ``peek_messages`` hand
over a list: its payloads are fetched one after the other, and a received list's leases are renewed
meanwhile (:class:`_Leases`), so none lapses while a later payload downloads.

The wire halves stay in :mod:`._operations` (Queue) and :mod:`._blob_operations` (Blob); this module
decides what to fetch, what a failure to fetch means, and when a payload blob may go.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from . import _link
from ._encoding import MessageEncoding
from ._errors import AioQueueError, MessageEncodingError
from ._messages import RawMessage
from ._models import UpdateReceipt
from ._payloads import PayloadStore, PayloadUnavailable, Reference, payload_queue
from ._retry import is_weather
from ._validation import SERVICE_VISIBILITY

__all__ = ["HeldPayloads", "Resolved", "content_of", "resolve_all", "resolve_received"]

log = logging.getLogger("aioqueue")
_HELD_BLOBS = 10_000  # the payload blobs of received messages a client remembers, to delete after their message

Release = Callable[[RawMessage, int], Awaitable[object]]
"""``release(raw, seconds)``: make a received message visible again after ``seconds``."""
Update = Callable[[str, str, int, str], Awaitable[UpdateReceipt]]
"""``update(message id, pop receipt, visibility timeout, why)``: Update Message (visibility only)."""


class Resolved(RawMessage):
    """A received or peeked message whose text is a large payload's reference: its content, fetched,
    or why it could not be (the message's failure)."""

    content: Any
    failure: MessageEncodingError | None


async def content_of(store: PayloadStore, encoding: MessageEncoding, msg_id: str, ref: Reference) -> Any:
    """The content a message's reference points at. PayloadUnavailable (naming the message) when its
    payload is missing, does not match or does not decode: the message's failure. Any other
    AioQueueError: fetching it failed (the Blob service unreachable, refusing, a timeout)."""
    try:
        return await store.resolve(ref, encoding)
    except MessageEncodingError as exc:
        raise PayloadUnavailable(f"message {msg_id}: {exc}") from None
    except AioQueueError as exc:
        if not is_weather(exc):  # no retry fixes it: say what was asked, and what it needs
            _note(exc, f"fetching the large payload of message {msg_id} (blob {ref.container}/{ref.blob}) "
                       "failed; it needs read access to that blob (a SAS: the Blob service and r)")  # fmt: skip
        raise


def _note(error: BaseException, text: str) -> None:
    add = getattr(error, "add_note", None)  # Python 3.11+
    if add is not None:
        add(text)


async def resolve_all(
    store: PayloadStore,
    encoding: MessageEncoding,
    raws: list[RawMessage],
    release: Release | None = None,
) -> list[RawMessage]:
    """Each message whose text is a large payload's reference, with its content fetched (or its
    failure: missing, not matching, not decoding), one after the other. With ``release`` (received
    messages), one whose payload could not be fetched for now (the Blob service unreachable, a
    timeout, a 5xx) is released for another try after PAYLOAD_RETRY_SECONDS and left out; any other
    failure to fetch (and, without ``release``, that one too) is raised."""
    out: list[RawMessage] = []
    for raw in raws:
        ref = Reference.parse(raw.text or "")
        if ref is None:
            out.append(raw)
            continue
        resolved = Resolved(*raw)
        resolved.content, resolved.failure = None, None
        try:
            resolved.content = await content_of(store, encoding, raw.id, ref)
        except PayloadUnavailable as exc:  # missing, not matching, not decoding: the message's failure
            resolved.failure = exc
        except AioQueueError as exc:
            if release is None or not is_weather(exc):
                raise
            await payload_later(raw, exc, release)
            continue
        out.append(resolved)
    return out


async def payload_later(raw: RawMessage, error: AioQueueError, release: Release) -> None:
    """A received message whose payload could not be fetched for now: visible again after
    PAYLOAD_RETRY_SECONDS (logged); when that release fails, after its visibility timeout."""
    delay = _link.PAYLOAD_RETRY_SECONDS
    log.warning("message %s: fetching its payload failed; it is visible again in %d s: %s", raw.id, delay, error)
    try:
        await release(raw, delay)
    except AioQueueError as exc:
        log.warning("message %s: releasing it failed; it returns after its visibility timeout: %s", raw.id, exc)


async def resolve_received(
    store: PayloadStore,
    encoding: MessageEncoding,
    raws: list[RawMessage],
    update: Update,
    visibility: int | None,
    leased_at: float,
) -> tuple[list[RawMessage], dict[str, UpdateReceipt]]:
    """A received list's payloads, fetched one after the other while every message of the list keeps
    its lease (renewed once half of it has passed); and the renewals, by message id (the newest pop
    receipt and visibility of each renewed message). A message whose payload could not be fetched for
    now is released for PAYLOAD_RETRY_SECONDS and left out. A failure no retry fixes (a 403: a SAS
    without ``r``) makes every message of the list visible again at once, and is raised."""
    if not any(Reference.parse(raw.text or "") for raw in raws):
        return raws, {}
    leases = _Leases(raws, update, visibility or SERVICE_VISIBILITY, leased_at)
    keeper = asyncio.ensure_future(leases.keep())

    async def release(raw: RawMessage, seconds: int) -> None:
        await leases.release(raw.id, seconds)

    try:
        out = await resolve_all(store, encoding, raws, release)
    except AioQueueError:  # the caller gets none of them: none stays hidden for it
        await leases.stop(keeper)
        await asyncio.gather(*(leases.release(msg_id, 0) for msg_id in list(leases.receipts)), return_exceptions=True)
        raise
    finally:
        await leases.stop(keeper)
    return out, leases.renewed


class _Leases:
    """The leases of a received list, kept while its payloads are fetched: each message renewed (its
    visibility timeout again) once half of it has passed; the newest receipts by message id."""

    def __init__(self, raws: list[RawMessage], update: Update, visibility: int, leased_at: float) -> None:
        self.receipts = {raw.id: raw.pop_receipt or "" for raw in raws}  # those still kept
        self.renewed: dict[str, UpdateReceipt] = {}
        self.update = update
        self.visibility = visibility
        self.due = leased_at + visibility / 2
        self.lock = asyncio.Lock()  # a renewal and a release of one message never cross

    async def keep(self) -> None:
        while True:
            await asyncio.sleep(max(0.0, self.due - time.monotonic()))
            async with self.lock:
                sent = time.monotonic()
                await asyncio.gather(*(self._renew(msg_id) for msg_id in list(self.receipts)))
                self.due = sent + self.visibility / 2

    async def _renew(self, msg_id: str) -> None:
        try:
            receipt = await self.update(msg_id, self.receipts[msg_id], self.visibility, "renew")
        except AioQueueError as exc:  # it may lapse: its delete then fails, and it is handled again
            log.warning("message %s: renewing its lease while its list's payloads were fetched failed: %s", msg_id, exc)
            return
        self.receipts[msg_id] = receipt.pop_receipt
        self.renewed[msg_id] = receipt

    async def release(self, msg_id: str, seconds: int) -> None:
        """Keep it no more, and make it visible again after ``seconds`` (with its newest receipt)."""
        async with self.lock:
            receipt = self.receipts.pop(msg_id, None)
            self.renewed.pop(msg_id, None)
            if receipt is not None:
                await self.update(msg_id, receipt, seconds, "release")

    async def stop(self, keeper: asyncio.Task[None]) -> None:
        """End the renewals, none cut off half-way (its new receipt would be lost)."""
        async with self.lock:
            keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)


class HeldPayloads:
    """The payload blobs of the messages one queue's client received, by message id: each deleted once
    its message's delete succeeded, never before. Only the queue's own (``<queue>/...``): a poison
    queue's copies and a reference copied from another queue are never deleted here."""

    __slots__ = ("blobs", "queue_name", "store")

    def __init__(self, store: PayloadStore, queue_name: str) -> None:
        self.store = store
        self.queue_name = queue_name
        self.blobs: collections.OrderedDict[str, str] = collections.OrderedDict()

    def hold_received(self, raws: list[RawMessage]) -> None:
        """Remember the blob of each received message whose text is a payload's reference."""
        for raw in raws:
            ref = Reference.parse(raw.text or "")
            if ref is not None:
                self.hold(raw.id, ref.blob)

    def hold(self, msg_id: str, blob: str) -> None:
        """Remember a received message's blob, to delete after its message."""
        if payload_queue(blob) != self.queue_name:
            return
        blobs = self.blobs
        blobs[msg_id] = blob
        if len(blobs) > _HELD_BLOBS:
            blobs.popitem(last=False)  # its blob is left as an orphan
            self.store.orphans += 1

    async def replace(self, msg_id: str, blob: str | None) -> None:
        """After an Update Message with new text succeeded: the old payload blob (if known) deleted,
        the new one (if any) held to go with the message."""
        await self.drop(msg_id)
        if blob is not None:
            self.hold(msg_id, blob)

    async def drop(self, msg_id: str) -> None:
        """After the message's delete succeeded: delete its payload blob (a failure leaves an orphan)."""
        blob = self.blobs.pop(msg_id, None)
        if blob is None:
            return
        try:
            await self.store.delete(blob)
        except AioQueueError as exc:
            self.store.orphans += 1
            log.warning("message %s was deleted, but its payload blob %s was not (left as an orphan): %s",
                        msg_id, blob, exc)  # fmt: skip

    def forget(self, msg_id: str) -> None:
        """After a delete answered with what only may mean the message is gone: its blob never deleted
        (the message may live on under a newer receipt, with another consumer), left as an orphan."""
        blob = self.blobs.pop(msg_id, None)
        if blob is None:
            return
        self.store.orphans += 1
        log.warning("message %s may not be deleted (its delete was not answered 2xx), so its payload "
                    "blob %s was not deleted (left as an orphan)", msg_id, blob)  # fmt: skip

    def keep(self, blob: str) -> None:
        """A poison copy points at ``blob`` now: it is never deleted after the message it came with."""
        for msg_id in [m for m, held in self.blobs.items() if held == blob]:
            del self.blobs[msg_id]
