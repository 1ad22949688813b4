"""The fake service's queues and messages, and its clock: pure logic, no HTTP.

Every operation takes checked values (the HTTP layer parses and range-checks the query) and either
returns its result or raises :class:`~._errors.Refusal` with the code Azure answers. Times come from
:class:`Clock`; nothing here sleeps or reads the wall clock itself.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal

from ._errors import Refusal

__all__ = [
    "DEFAULT_TTL",
    "MAX_MESSAGE_BYTES",
    "MAX_VISIBILITY",
    "NEVER",
    "AccessPolicy",
    "Clock",
    "MessageView",
    "Queue",
    "QueueView",
    "Service",
]

UTC = timezone.utc
MAX_VISIBILITY = 7 * 24 * 3600  # seconds: the longest visibility timeout (Get/Put/Update Message)
DEFAULT_TTL = 7 * 24 * 3600  # Put Message's messagettl when none is given
MAX_MESSAGE_BYTES = 64 * 1024  # the message text's UTF-8 size (Put Message: "up to 64 KiB")
# A message put with messagettl=-1 "does not expire"; Azure writes its expiration as the last second of 9999.
NEVER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
MAX_POLICIES = 5  # stored access policies per queue

ClockMode = Literal["real", "frozen"]


class Clock:
    """The service's time.

    ``"real"`` (the default): the wall clock plus an offset, so time passes as in any service and
    :meth:`advance` jumps ahead. ``"frozen"``: a fixed instant plus the offset; only :meth:`advance` moves
    it. ``start`` sets the service's time at creation (default: the wall clock's now).

    :meth:`wall` is the real time, unaffected by either: the clients' own clocks agree with it, so the
    checks of what a client dated (Shared Key's ``x-ms-date``, a bearer token's lifetime) use it.
    """

    def __init__(
        self,
        mode: ClockMode = "real",
        start: datetime | None = None,
        wall: Callable[[], datetime] | None = None,
    ) -> None:
        if mode not in ("real", "frozen"):
            raise ValueError(f"clock must be 'real' or 'frozen', not {mode!r}")
        if start is not None and start.tzinfo is None:
            raise ValueError("start must be an aware datetime (e.g. datetime(2030, 1, 1, tzinfo=timezone.utc))")
        self._wall = wall or (lambda: datetime.now(UTC))
        self.mode = mode
        base = self._wall()
        self._origin = (start or base).astimezone(UTC)
        self._offset = timedelta(0) if mode == "frozen" or start is None else self._origin - base

    def now(self) -> datetime:
        """The service's time now (aware, UTC)."""
        if self.mode == "frozen":
            return self._origin + self._offset
        return self._wall() + self._offset

    def wall(self) -> datetime:
        """The real time now (aware, UTC)."""
        return self._wall()

    def advance(self, delta: timedelta) -> None:
        """Move the service's time forward by ``delta`` (never back)."""
        if not isinstance(delta, timedelta) or delta < timedelta(0):
            raise ValueError("advance() takes a timedelta >= 0: the service's clock never goes back")
        self._offset += delta


def _receipt() -> str:
    """A new pop receipt: base64 of 20 bytes, shaped like Azure's (``AgAAAAMAAAAAAAAAo/G3Llq42gE=``)."""
    return base64.b64encode(b"\x02\x00\x00\x00\x03" + bytes(7) + secrets.token_bytes(8)).decode("ascii")


@dataclass
class Message:
    id: str
    text: str
    inserted: datetime
    expires: datetime  # NEVER for messagettl=-1
    visible_at: datetime
    receipt: str
    seq: int  # the order of insertion: Get and Peek Messages take the earliest visible first
    dequeue_count: int = 0


@dataclass(frozen=True)
class AccessPolicy:
    """A stored access policy: times as ISO 8601 text (as the service writes them back), or None."""

    id: str
    start: str | None = None
    expiry: str | None = None
    permission: str | None = None


@dataclass
class Queue:
    name: str
    metadata: dict[str, str] = field(default_factory=dict)
    policies: tuple[AccessPolicy, ...] = ()
    messages: dict[str, Message] = field(default_factory=dict)

    def purge(self, now: datetime) -> None:
        """Drop the messages that have expired."""
        gone = [m.id for m in self.messages.values() if m.expires <= now]
        for message_id in gone:
            del self.messages[message_id]

    def visible(self, now: datetime, count: int) -> list[Message]:
        """Up to ``count`` visible messages, the earliest visible first, then in insertion order (as Azurite)."""
        ready = [m for m in self.messages.values() if m.visible_at <= now]
        ready.sort(key=lambda m: (m.visible_at, m.seq))
        return ready[:count]


@dataclass(frozen=True)
class MessageView:
    """A message as the service holds it (a snapshot, for a test's assertions)."""

    id: str
    content: str  # the message text as sent (still encoded by the client's message encoding)
    dequeue_count: int
    inserted_on: datetime
    expires_on: datetime
    next_visible_on: datetime
    visible: bool  # visible now (Get Messages would return it)


@dataclass(frozen=True)
class QueueView:
    """A queue as the service holds it (a snapshot, for a test's assertions)."""

    name: str
    metadata: Mapping[str, str]
    messages: tuple[MessageView, ...]  # unexpired, in the order Get Messages would take the visible ones

    @property
    def approximate_message_count(self) -> int:
        return len(self.messages)


def _same_metadata(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    return {k.lower(): v for k, v in a.items()} == {k.lower(): v for k, v in b.items()}


class Service:
    """One account's queues and service properties, on a :class:`Clock`."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.queues: dict[str, Queue] = {}
        self.properties: dict[str, str] = {}  # service properties: section name -> its XML (see _wire)
        # how long a deleted queue's name stays taken (Azure: about 40 s; 0: not at all)
        self.deletion_delay = timedelta(0)
        self._deleting: dict[str, datetime] = {}  # name -> when its deletion ends
        self._seq = 0

    # ---- queues -------------------------------------------------------------------------------

    def queue(self, name: str) -> Queue:
        """The queue, its expired messages dropped; 404 QueueNotFound if there is none."""
        queue = self.queues.get(name)
        if queue is None:
            raise Refusal("QueueNotFound")
        queue.purge(self.clock.now())
        return queue

    def create_queue(self, name: str, metadata: Mapping[str, str]) -> bool:
        """True when created (201); False when it exists with the same metadata (204, "Create Queue":
        recording QueueClientTests.CreateIfNotExistsAsync_Exists); 409 QueueAlreadyExists when the
        metadata differs (recording ...CreateIfNotExistsAsync_ExistsDifferentMetadata)."""
        until = self._deleting.pop(name, None)
        if until is not None and until > self.clock.now():
            self._deleting[name] = until
            raise Refusal("QueueBeingDeleted")
        existing = self.queues.get(name)
        if existing is not None:
            if _same_metadata(existing.metadata, metadata):
                return False
            raise Refusal("QueueAlreadyExists")
        self.queues[name] = Queue(name, dict(metadata))
        return True

    def delete_queue(self, name: str) -> None:
        """Delete Queue: gone at once; its name cannot be created again for ``deletion_delay`` (409
        QueueBeingDeleted, as Azure answers while it removes the queue)."""
        self.queue(name)
        del self.queues[name]
        if self.deletion_delay:
            self._deleting[name] = self.clock.now() + self.deletion_delay

    def list_queues(self, prefix: str, start: str | None, limit: int) -> tuple[list[Queue], str | None]:
        """Up to ``limit`` queues whose names start with ``prefix``, from the name ``start`` on (a
        marker's), by name; and the next page's first name (None after the last)."""
        names = sorted(n for n in self.queues if n.startswith(prefix) and (start is None or n >= start))
        page, rest = names[:limit], names[limit:]
        return [self.queues[n] for n in page], (rest[0] if rest else None)

    def set_metadata(self, name: str, metadata: Mapping[str, str]) -> None:
        """Set Queue Metadata replaces all of it."""
        self.queue(name).metadata = dict(metadata)

    def set_policies(self, name: str, policies: Iterable[AccessPolicy]) -> None:
        chosen = tuple(policies)
        if len(chosen) > MAX_POLICIES:
            raise Refusal("InvalidXmlDocument", details={"Reason": "more than 5 signed identifiers"})
        self.queue(name).policies = chosen

    # ---- messages -----------------------------------------------------------------------------

    def put_message(self, name: str, text: str, visibility: int, ttl: int) -> Message:
        """Put Message: ``visibility`` seconds hidden (0..7 days, checked), ``ttl`` seconds to live or -1."""
        queue = self.queue(name)
        now = self.clock.now()
        lifetime = timedelta(seconds=ttl)
        expires = NEVER if ttl == -1 or lifetime >= NEVER - now else now + lifetime
        self._seq += 1
        message = Message(
            id=str(uuid.uuid4()),
            text=text,
            inserted=now,
            expires=expires,
            visible_at=now + timedelta(seconds=visibility),
            receipt=_receipt(),
            seq=self._seq,
        )
        queue.messages[message.id] = message
        return message

    def get_messages(self, name: str, count: int, visibility: int) -> list[Message]:
        """Get Messages: up to ``count`` visible messages, each hidden for ``visibility`` seconds from
        now, its dequeue count raised and a new pop receipt issued (the old one is dead)."""
        queue = self.queue(name)
        now = self.clock.now()
        taken = queue.visible(now, count)
        hidden_until = now + timedelta(seconds=visibility)
        for message in taken:
            message.visible_at = hidden_until
            message.dequeue_count += 1
            message.receipt = _receipt()
        return taken

    def peek_messages(self, name: str, count: int) -> list[Message]:
        """Peek Messages: up to ``count`` visible messages, untouched."""
        queue = self.queue(name)
        return queue.visible(self.clock.now(), count)

    def _leased(self, name: str, message_id: str, receipt: str) -> tuple[Queue, Message]:
        """The message named by an id and a pop receipt: 404 MessageNotFound when there is no such
        message, it expired, or its receipt is not this one. Azure answers a stale receipt with 404
        (the Delete Message reference: "If a message with a matching pop receipt isn't found, the
        service returns error code 404"); Azurite answers 400 PopReceiptMismatch there."""
        queue = self.queue(name)
        message = queue.messages.get(message_id)
        if message is None or not secrets.compare_digest(message.receipt.encode(), receipt.encode()):
            raise Refusal("MessageNotFound")
        return queue, message

    def delete_message(self, name: str, message_id: str, receipt: str) -> None:
        queue, message = self._leased(name, message_id, receipt)
        del queue.messages[message.id]

    def update_message(self, name: str, message_id: str, receipt: str, visibility: int, text: str | None) -> Message:
        """Update Message: visible again ``visibility`` seconds from now (0..7 days), its text replaced
        when ``text`` is not None, and a new pop receipt (the old one is dead). The dequeue count stays."""
        _, message = self._leased(name, message_id, receipt)
        message.visible_at = self.clock.now() + timedelta(seconds=visibility)
        message.receipt = _receipt()
        if text is not None:
            message.text = text
        return message

    def clear_messages(self, name: str) -> None:
        self.queue(name).messages.clear()

    # ---- what a test sees ---------------------------------------------------------------------

    def view(self) -> dict[str, QueueView]:
        """A snapshot of every queue and its unexpired messages."""
        now = self.clock.now()
        views: dict[str, QueueView] = {}
        for name in sorted(self.queues):
            queue = self.queues[name]
            queue.purge(now)
            ordered = sorted(queue.messages.values(), key=lambda m: (m.visible_at, m.seq))
            views[name] = QueueView(
                name,
                dict(queue.metadata),
                tuple(
                    MessageView(m.id, m.text, m.dequeue_count, m.inserted, m.expires, m.visible_at, m.visible_at <= now)
                    for m in ordered
                ),
            )
        return views
