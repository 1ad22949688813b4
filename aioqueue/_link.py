"""The narrow interface between the consumer and a queue client.

The consumer (streams, settling, the worker) never sees a ``QueueClient``: the client hands each
stream a :class:`QueueLink`, and imports run one way, client -> consumer.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from ._messages import RawMessage
from ._models import QueueMessage, SendReceipt
from ._telemetry import Operation, _Off

__all__ = ["PAYLOAD_RETRY_SECONDS", "Closable", "QueueLink"]

# A received message whose large payload could not be fetched for now (the Blob service unreachable,
# a timeout, a 5xx; not a missing one) is visible again after this many seconds.
PAYLOAD_RETRY_SECONDS = 5


class Closable(Protocol):
    async def aclose(self) -> None: ...


class QueueLink(Protocol):
    """What a stream needs of its queue."""

    @property
    def queue_name(self) -> str: ...

    @property
    def closed(self) -> bool:
        """True once the client is closed: nothing more can be sent."""
        ...

    async def fetch(self, max_messages: int, visibility_timeout: int) -> tuple[list[RawMessage], float]:
        """Get Messages: up to ``max_messages`` (1..32), hidden for ``visibility_timeout`` seconds; and
        time.monotonic() when the request that leased them was sent (their leases run from then)."""
        ...

    def decode(self, raw: RawMessage) -> Any:
        """The message's content in the client's encoding; MessageEncodingError when it does not decode."""
        ...

    def unfetched(self, raws: list[RawMessage]) -> Collection[str]:
        """The ids of the messages whose text is a large payload's reference: not decoded, their
        content fetched with :meth:`payload` as each is handed over (empty without large payloads)."""
        ...

    async def payload(self, message_id: str, text: str) -> Any:
        """The content of a large payload's message (``text``: its reference). MessageEncodingError
        (``PayloadUnavailable``) when the payload is missing, does not match or does not decode: the
        message's failure; any other AioQueueError when fetching it failed."""
        ...

    def hold_payloads(self, raws: list[RawMessage]) -> None:
        """Remember the payload blob of each received message whose text is a large payload's
        reference, to delete once its message is deleted (Get Messages does it for what it receives;
        a scheduled message's reference, unwrapped from its envelope when due, is held with this)."""
        ...

    async def put_message(self, text: str, query: dict[str, str]) -> SendReceipt:
        """Put Message into this queue with ``text`` exactly as it is (already encoded)."""
        ...

    async def delete(self, message: QueueMessage, *, resent: bool = False) -> None:
        """Delete Message with the newest pop receipt; ``resent``: an earlier request for this very
        delete may have landed, so 'not found' counts as done."""
        ...

    async def set_visibility(self, message: QueueMessage, visibility_timeout: int, *, why: str = "update") -> None:
        """Update Message (visibility only); the message's pop receipt is refreshed in place.
        ``why`` names the operation in telemetry: "release" or "renew"."""
        ...

    def operation(self, name: str, message: QueueMessage | None = None) -> Operation | _Off:
        """The telemetry recorder of a consumer-side operation ("process", "poison"); a context manager."""
        ...

    def count(self, outcome: str) -> None:
        """Count what became of a message (``aioqueue.consumer.messages``): processed, failed, ..."""
        ...

    async def copy_text(self, queue_name: str, text: str, original: str | None = None) -> None:
        """Put ``text`` exactly as stored (already encoded) into another queue of this account,
        never expiring; that queue is created when missing. ``original``: the text of the message
        ``text`` stands for (a poison record's content; default ``text``): when it is a large payload's
        reference, that payload is kept as long as the copy."""
        ...

    def track(self, stream: Closable) -> None:
        """Close ``stream`` when the client closes (held weakly)."""
        ...

    def untrack(self, stream: Closable) -> None: ...
