"""Retry decisions, built on the ``backoff`` package's exponential generator and full jitter."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import backoff

from ._errors import ConfigurationError, MalformedResponse, ServiceError, TransportError

__all__ = ["RetryPolicy"]

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How failed attempts are retried.

    Exponential back-off with full jitter: before retry *n* the client sleeps a random time in
    ``[0, min(initial_delay * 2**(n-1), max_delay)]``, or exactly what the service's ``Retry-After``
    asks (up to ``max_retry_after`` seconds; a longer ask ends the retries). Retries 408, 429, 500,
    502, 503, 504 and connection errors; never another 4xx. Every attempt is signed afresh.
    ``max_attempts`` counts the first attempt too.
    """

    max_attempts: int = 4
    initial_delay: float = 0.2
    max_delay: float = 10.0
    max_retry_after: float = 60.0
    retry_statuses: frozenset[int] = field(default=RETRY_STATUSES)
    jitter: Callable[[float], float] | None = backoff.full_jitter

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigurationError("RetryPolicy.max_attempts must be an int >= 1")
        for name in ("initial_delay", "max_delay", "max_retry_after"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigurationError(f"RetryPolicy.{name} must be a number >= 0")
        bad = [s for s in self.retry_statuses if s < 400 or (400 <= s < 500 and s not in (408, 429))]
        if bad:
            raise ConfigurationError(f"RetryPolicy.retry_statuses may not hold {sorted(bad)}: only 408, 429 and 5xx")

    def delays(self) -> Iterator[float]:
        """The sleep before each retry, jittered (one value per retry)."""
        gen = backoff.expo(factor=self.initial_delay, max_value=self.max_delay)
        next(gen)  # backoff's generators are primed with one empty step
        jitter = self.jitter
        for value in gen:
            yield jitter(value) if jitter is not None else value


NO_RETRY = RetryPolicy(max_attempts=1)


def is_weather(exc: BaseException) -> bool:
    """Would trying again later help? (Retryable status, connection error, timeout, garbled answer.)"""
    if isinstance(exc, (TransportError, MalformedResponse)):
        return True
    return isinstance(exc, ServiceError) and exc.status in RETRY_STATUSES


def retry_after_seconds(value: str | None) -> float | None:
    """Parse ``Retry-After`` (seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
