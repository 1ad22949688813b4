"""The receive options, written once: what ``receive``, ``receive_batches`` and ``process`` accept.

:class:`ReceiveOptions` (a ``TypedDict``) is the keyword signature users see and mypy checks;
:class:`ReceiveSettings` holds the defaults and the validated values the consumer works with.
"""

from __future__ import annotations

import logging
import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any, TypedDict

from ._errors import ConfigurationError
from ._models import QueueMessage
from ._poison import POISON_FORMATS, PoisonFormat
from ._validation import MAX_SECONDS, Duration, message_count, nonnegative_seconds, positive_int, queue_name, seconds

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover - Python 3.10
    from typing_extensions import Unpack

__all__ = ["ReceiveOptions", "ReceiveSettings", "RetryDelay", "Unpack", "poison_queue_for"]

log = logging.getLogger("aioqueue")

RetryDelay = int | float | timedelta | Callable[[int], float]
"""How long a failed message stays invisible: seconds, a timedelta, or a function of its dequeue count."""


class ReceiveOptions(TypedDict, total=False):
    """Keyword options of ``receive()``, ``receive_batches()`` and ``process()`` (defaults in brackets).

    - ``max_batch_size`` [32]: the most messages one Get Messages call asks for, 1..32.
    - ``visibility_timeout`` [30]: how long a fetched message stays hidden, 1 s..7 d.
    - ``max_messages`` [None]: the stream's total: stop after handing out this many (``None``: no
      limit). Each call asks for at most what is left, so a ``max_messages`` below ``max_batch_size``
      is fine (``max_batch_size=5, max_messages=2`` fetches 2) and never hides a message it will not
      hand out. (The official client's ``receive_messages`` refuses ``max_messages`` below
      ``messages_per_page``.)
    - ``idle_timeout`` [None]: stop once the queue has stayed empty that long (``None``: run until
      cancelled, stopped or closed).
    - ``poll_interval`` [(0.1, 10.0)]: ``(min, max)`` seconds of randomised exponential back-off
      between empty polls, reset by a non-empty one (Azure has no long polling); one number for both.
    - ``auto_renew`` [False]: keep extending held messages' visibility before it lapses, tracking
      each new pop receipt, for at most ``max_renewal`` [300] seconds per message (``None``: no limit).
    - ``max_dequeue_count`` [None] / ``poison_queue`` [``"<queue>-poison"``]: a message whose handler
      fails on its ``max_dequeue_count``-th delivery is moved to the poison queue then, with that
      failure; one received more often (a crash, a lost lease) is moved when it arrives and not handed
      out; so is content the encoding cannot decode. The poison queue is created on demand; its
      messages never expire.
    - ``poison_format`` [``"record"``]: what the poison queue gets: ``"record"``, a poison record (JSON:
      the original text exactly, its source queue, id, dequeue count, the reason and the failures; what
      ``redrive`` reads), or ``"body"``, the original text alone (what an Azure Functions app sharing
      the poison queue expects).
    - ``retry_delay`` [0]: how long a failed message stays invisible before redelivery (seconds, a
      timedelta, or a function of the dequeue count).
    """

    max_batch_size: int
    visibility_timeout: Duration
    max_messages: int | None
    idle_timeout: Duration | None
    poll_interval: tuple[float, float] | float
    auto_renew: bool
    max_renewal: Duration | None
    max_dequeue_count: int | None
    poison_queue: str | None
    poison_format: PoisonFormat
    retry_delay: RetryDelay


@dataclass(frozen=True)
class ReceiveSettings:
    """The validated receive options; the defaults here are the only ones."""

    max_batch_size: int = 32
    visibility_timeout: int = 30
    max_messages: int | None = None
    idle_timeout: float | None = None
    poll_interval: tuple[float, float] = (0.1, 10.0)
    auto_renew: bool = False
    max_renewal: float | None = 300.0
    max_dequeue_count: int | None = None
    poison_queue: str | None = None
    poison_format: PoisonFormat = "record"
    retry_delay: RetryDelay = 0

    @classmethod
    def build(cls, **options: Unpack[ReceiveOptions]) -> ReceiveSettings:
        """Validate keyword options (a misspelt one is a TypeError, as for any function)."""
        unknown = sorted(set(options) - _NAMES)
        if unknown:
            names = ", ".join(sorted(_NAMES))
            raise TypeError(f"unexpected keyword argument {unknown[0]!r} (receive options: {names})")
        merged: dict[str, Any] = {**_DEFAULTS, **options}
        message_count(merged["max_batch_size"], "max_batch_size")
        vis = seconds(merged["visibility_timeout"], "visibility_timeout", low=1)
        if merged["max_messages"] is not None:
            positive_int(merged["max_messages"], "max_messages")
        idle = merged["idle_timeout"]
        if idle is not None:
            idle = nonnegative_seconds(idle, "idle_timeout")
        renewal = merged["max_renewal"]
        if renewal is not None:
            renewal = nonnegative_seconds(renewal, "max_renewal")
        if merged["max_dequeue_count"] is not None:
            positive_int(merged["max_dequeue_count"], "max_dequeue_count")
        if merged["poison_queue"] is not None:
            queue_name(merged["poison_queue"])
        if merged["poison_format"] not in POISON_FORMATS:
            raise ConfigurationError(f"poison_format must be 'record' or 'body', not {merged['poison_format']!r}")
        retry_delay = merged["retry_delay"]
        if not callable(retry_delay):
            seconds(retry_delay, "retry_delay", low=0)
        if not isinstance(merged["auto_renew"], bool):
            raise ConfigurationError("auto_renew must be True or False")
        merged.update(
            visibility_timeout=vis,
            idle_timeout=idle,
            max_renewal=renewal,
            poll_interval=_poll_interval(merged["poll_interval"]),
        )
        return cls(**merged)

    def retry_delay_of(self, message: QueueMessage) -> int:
        """Seconds a failed message stays invisible (0..7 days), from its dequeue count. A ``retry_delay``
        function that raises or answers no number is logged, and the message then stays invisible for
        ``visibility_timeout``, as if it had never been settled; never a failure of the settle itself."""
        value = self.retry_delay
        try:
            if callable(value):
                value = value(message.dequeue_count)
            raw = value.total_seconds() if isinstance(value, timedelta) else float(value)
            if math.isnan(raw):
                raise ValueError("not a number")
            raw = max(0.0, raw)  # and so -inf is 0
        except Exception as exc:
            log.warning(
                "retry_delay(%d) failed for message %s (%s: %s); it is released after visibility_timeout=%ds",
                message.dequeue_count,
                message.id,
                type(exc).__name__,
                exc,
                self.visibility_timeout,
            )
            return self.visibility_timeout
        return max(0, MAX_SECONDS if raw >= MAX_SECONDS else math.ceil(raw))

    def poll_delay(self, polls: int) -> float:
        """The jittered wait before the next poll after ``polls`` empty (or failed) polls in a row:
        exponential from ``poll_interval``'s minimum (its maximum when that is 0), capped at its maximum,
        a random point in the upper half so that many consumers do not poll in step."""
        low, high = self.poll_interval
        delay = min(high, (low or high) * 2 ** min(polls, 64))  # the cap is reached long before 2**64
        return random.uniform(delay / 2, delay)

    @property
    def poisons(self) -> bool:
        return self.max_dequeue_count is not None


def poison_queue_for(settings: ReceiveSettings, queue: str, *, explicit: bool = False) -> str | None:
    """The poison queue's name when poisoning is on (checked now, not when the first message is poisoned);
    with ``explicit`` (``message.poison(reason)``) also when it is off."""
    if not settings.poisons and not explicit:
        return None
    name = settings.poison_queue or f"{queue}-poison"
    if name == queue:
        raise ConfigurationError(f"poison_queue must be another queue than the one it receives from ({queue!r})")
    if len(name) > 63:
        raise ConfigurationError(
            f"the default poison queue name {name!r} is over the 63 characters a queue name may have; "
            "pass poison_queue= with a shorter name"
        )
    return name


def _poll_interval(value: Any) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        poll = (nonnegative_seconds(value, "poll_interval"),) * 2
    elif isinstance(value, tuple) and len(value) == 2:
        poll = (nonnegative_seconds(value[0], "poll_interval"), nonnegative_seconds(value[1], "poll_interval"))
    else:
        raise ConfigurationError("poll_interval must be seconds or a (min, max) pair of seconds")
    if poll[0] > poll[1] or poll[1] <= 0:
        raise ConfigurationError("poll_interval must be (min, max) with 0 <= min <= max and max > 0")
    return poll


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(ReceiveSettings)}
_NAMES = frozenset(ReceiveOptions.__annotations__)  # a test checks these name the same options as _DEFAULTS
