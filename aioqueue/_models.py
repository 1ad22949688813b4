"""Typed results: frozen dataclasses with aware UTC datetimes.

``QueueMessage`` is the one mutable model: ``update_message`` refreshes its ``pop_receipt`` and
``next_visible_on`` in place, so the same object can be updated or deleted again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "AccessPolicy",
    "CorsRule",
    "GeoReplication",
    "Metrics",
    "PeekedMessage",
    "ProcessStats",
    "QueueAnalyticsLogging",
    "QueueItem",
    "QueueLag",
    "QueueMessage",
    "QueueProperties",
    "RetentionPolicy",
    "SendReceipt",
    "ServiceProperties",
    "ServiceStats",
    "UpdateReceipt",
    "UserDelegationKey",
]


@dataclass(frozen=True, slots=True)
class SendReceipt:
    """What Put Message returns. ``pop_receipt`` allows updating or deleting without receiving first."""

    id: str
    pop_receipt: str
    inserted_on: datetime
    expires_on: datetime
    next_visible_on: datetime


@dataclass(slots=True, eq=False)
class QueueMessage:
    """A received message; ``pop_receipt`` and ``next_visible_on`` follow each successful update."""

    id: str
    content: Any
    pop_receipt: str
    dequeue_count: int
    inserted_on: datetime
    expires_on: datetime
    next_visible_on: datetime

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, dequeue_count={self.dequeue_count})"


@dataclass(frozen=True, slots=True)
class PeekedMessage:
    """A peeked message: no pop receipt, and peeking does not count as a dequeue."""

    id: str
    content: Any
    dequeue_count: int
    inserted_on: datetime
    expires_on: datetime


@dataclass(frozen=True, slots=True)
class UpdateReceipt:
    """What Update Message returns: the new pop receipt (the old one is dead) and the new visibility."""

    pop_receipt: str
    next_visible_on: datetime


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One queue of a listing; ``metadata`` is empty unless listed with ``include_metadata=True``."""

    name: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueueProperties:
    """Queue metadata and the approximate message count (it may lag the true count)."""

    name: str
    metadata: dict[str, str]
    approximate_message_count: int


@dataclass(frozen=True, slots=True)
class QueueLag:
    """What ``queue.lag()`` measured: how far behind a queue's consumers are.

    - ``oldest_message_age``: how long the message the service would hand out next has waited for a
      handler, by the service's clock: from its insertion, or for a scheduled message's envelope from
      when it is due (one not due yet is not waiting); at most the previous measurement's age plus
      the time since, when given it. None when no message is waiting.
    - ``approximate_message_count``: every message, visible or not (Get Queue Metadata's count).
    - ``measured_on``: when, by the service's clock (the peek answer's ``Date``).
    """

    oldest_message_age: timedelta | None
    approximate_message_count: int
    measured_on: datetime


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """A stored access policy: ``permission`` letters from ``raup``; times are aware datetimes or None."""

    permission: str | None = None
    start: datetime | None = None
    expiry: datetime | None = None


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long analytics data is kept (1..365 days when enabled)."""

    enabled: bool = False
    days: int | None = None


@dataclass(frozen=True, slots=True)
class QueueAnalyticsLogging:
    """Storage Analytics logging settings."""

    version: str = "1.0"
    delete: bool = False
    read: bool = False
    write: bool = False
    retention_policy: RetentionPolicy = field(default_factory=RetentionPolicy)


@dataclass(frozen=True, slots=True)
class Metrics:
    """Hour or minute metrics settings."""

    version: str = "1.0"
    enabled: bool = False
    include_apis: bool | None = None
    retention_policy: RetentionPolicy = field(default_factory=RetentionPolicy)


@dataclass(frozen=True, slots=True)
class CorsRule:
    """One CORS rule (the service allows at most five)."""

    allowed_origins: tuple[str, ...]
    allowed_methods: tuple[str, ...]
    allowed_headers: tuple[str, ...] = ()
    exposed_headers: tuple[str, ...] = ()
    max_age_in_seconds: int = 0


@dataclass(frozen=True, slots=True)
class ServiceProperties:
    """Service-wide settings. A ``None`` part is left unchanged by ``set_service_properties``."""

    analytics_logging: QueueAnalyticsLogging | None = None
    hour_metrics: Metrics | None = None
    minute_metrics: Metrics | None = None
    cors: tuple[CorsRule, ...] | None = None


@dataclass(frozen=True, slots=True)
class GeoReplication:
    """Geo-replication state of the secondary: ``status`` is live, bootstrap or unavailable."""

    status: str
    last_sync_time: datetime | None


@dataclass(frozen=True, slots=True)
class ServiceStats:
    """Service statistics, answered by the secondary endpoint of a geo-redundant account."""

    geo_replication: GeoReplication


@dataclass(frozen=True, slots=True)
class ProcessStats:
    """What ``QueueClient.process`` did with each message it received.

    - ``processed``: the handler succeeded and the message was deleted.
    - ``failed``: the handler raised (or ran over ``handler_timeout``); the message was released
      for redelivery after ``retry_delay``.
    - ``poisoned``: moved to the poison queue (failed on its last allowed delivery, received too often,
      undecodable, or by its handler's ``message.poison``); a failure that poisoned it is in ``failed`` too.
    - ``lease_lost``: the handler succeeded but the message could not be deleted because the service
      refused its pop receipt (its visibility lapsed and another consumer may have it): it will be
      delivered again. Use ``auto_renew=True`` for long handlers and keep handlers idempotent.
    - ``undecodable``: content the encoding could not decode, released (poisoning off).
    - ``delete_failed``: the handler succeeded but deleting the message failed for another reason
      (the service unreachable, busy or refusing the request): it reappears after its visibility
      timeout and is handled again.
    - ``rescheduled``: a message sent with ``deliver_at`` or ``delay`` more than 7 days ahead,
      received before it was due and re-enqueued for the rest of its wait (never handed to the handler).
    """

    processed: int = 0
    failed: int = 0
    poisoned: int = 0
    lease_lost: int = 0
    undecodable: int = 0
    delete_failed: int = 0
    rescheduled: int = 0


@dataclass(frozen=True, slots=True)
class UserDelegationKey:
    """A key from Get User Delegation Key, for signing user delegation SAS tokens.

    The ``signed_*`` fields are the service's strings, passed into the SAS as they are. ``value`` is
    the secret (base64) signing key: the repr hides it.
    """

    signed_oid: str
    signed_tid: str
    signed_start: str
    signed_expiry: str
    signed_service: str
    signed_version: str
    value: str
    signed_delegated_user_tid: str | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(signed_oid={self.signed_oid!r}, signed_tid={self.signed_tid!r}, "
            f"signed_start={self.signed_start!r}, signed_expiry={self.signed_expiry!r}, "
            f"signed_service={self.signed_service!r}, signed_version={self.signed_version!r}, "
            f"signed_delegated_user_tid={self.signed_delegated_user_tid!r}, value=<hidden>)"
        )
